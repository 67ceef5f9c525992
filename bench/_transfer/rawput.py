"""The baseline: one plain aiohttp HTTPS PUT of a file, written to disk and fsync'd.

    python bench/_transfer/rawput.py serve --cert-dir D --out FILE --ready-file F [--tuned]
    python bench/_transfer/rawput.py put --url https://127.0.0.1:PORT/ --fingerprint HEX \
        --file SRC [--tuned]

``put`` prints ``{"seconds": .., "cpu_s": ..}`` measured from the first byte read to the
answer (``cpu_s``: the putting process's CPU time). ``--tuned`` runs the process with the
settings hcc's node processes use (runtime/bulkio.py: malloc thresholds, uvloop); without
it, it is a plain aiohttp program, the baseline of ``ratio_1stream_vs_raw``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from runtime import bulkio
from workers.transfer.tls import (
    client_fingerprint,
    ensure_certificate,
    server_ssl_context,
)

PIECE = 1 << 20


async def _serve(args: argparse.Namespace) -> None:
    cert = ensure_certificate(Path(args.cert_dir), "raw")
    out = args.out

    async def put(request: web.Request) -> web.Response:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            async for block in request.content.iter_chunked(PIECE):
                await asyncio.to_thread(os.write, fd, block)
            await asyncio.to_thread(os.fsync, fd)
        finally:
            os.close(fd)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_put("/", put)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(cert))
    await site.start()
    port = runner.addresses[0][1]
    ready = {"port": port, "fingerprint": cert.fingerprint, "pid": os.getpid()}
    await asyncio.to_thread(Path(args.ready_file).write_text, json.dumps(ready))
    await asyncio.Event().wait()


async def _put(args: argparse.Namespace) -> None:
    async def body() -> AsyncIterator[bytes]:
        fd = os.open(args.file, os.O_RDONLY)
        try:
            while block := await asyncio.to_thread(os.read, fd, PIECE):
                yield block
        finally:
            os.close(fd)

    size = args.size
    conn = aiohttp.TCPConnector(ssl=client_fingerprint(args.fingerprint))
    async with aiohttp.ClientSession(connector=conn) as session:
        started, cpu = time.monotonic(), time.process_time()
        headers = {"Content-Length": str(size)}
        async with session.put(args.url, data=body(), headers=headers) as resp:
            resp.raise_for_status()
            await resp.read()
        print(json.dumps({"seconds": time.monotonic() - started,
                          "cpu_s": time.process_time() - cpu}))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--cert-dir", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--ready-file", required=True)
    c = sub.add_parser("put")
    c.add_argument("--url", required=True)
    c.add_argument("--fingerprint", required=True)
    c.add_argument("--file", required=True)
    c.add_argument("--size", type=int, required=True)
    for sp in (s, c):
        sp.add_argument("--tuned", action="store_true")
    args = p.parse_args()
    main = _serve(args) if args.cmd == "serve" else _put(args)
    if args.tuned:
        bulkio.run(main)
    else:
        asyncio.run(main)


if __name__ == "__main__":
    main()
