"""runtime/bulkio.py: the process settings of nodes and the transfer CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import uvloop

from runtime import bulkio

# What asyncio's TLS transport does with every read from a connection (sslproto's
# _do_read__copied): decrypt into new buffers of up to 256 KiB, join them, free them.
# 200 MiB go through it; the answer is the process's minor page faults meanwhile.
_PATTERN = """
import json, resource, ssl, sys, tempfile
from pathlib import Path
from runtime import bulkio
from workers.transfer.tls import ensure_certificate, server_ssl_context
if sys.argv[1] == "tuned":
    assert bulkio.tune_malloc()
server = server_ssl_context(ensure_certificate(Path(tempfile.mkdtemp()), "t"))
client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
c, s = client.wrap_bio(c_in, c_out), server.wrap_bio(s_in, s_out, server_side=True)
while not (c.version() and s.version()):
    for end in (c, s):
        try:
            end.do_handshake()
        except ssl.SSLWantReadError:
            pass
    s_in.write(c_out.read())
    c_in.write(s_out.read())
data = memoryview(bytes(1 << 20))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    c.write(data)
    s_in.write(c_out.read())
    parts = []
    while True:
        try:
            parts.append(s.read(256 << 10))
        except ssl.SSLWantReadError:
            break
    joined = b"".join(parts)
    del parts, joined
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _PATTERN, mode], check=True, capture_output=True, text=True
    )
    return int(json.loads(out.stdout))


def test_tuned_malloc_reuses_freed_buffers_instead_of_faulting_new_pages():
    """With glibc's defaults most buffers are new pages (about one fault per 4 KiB
    received); tuned, the same few MiB are reused."""
    default, tuned = _faults("default"), _faults("tuned")
    assert tuned < 5000, tuned
    assert tuned * 10 < default, (tuned, default)


def test_run_drives_the_coroutine_on_uvloop():
    async def loop_type() -> type:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop())

    assert bulkio.run(loop_type()) is uvloop.Loop
