"""NFC transfers: stream disks from and to HttpNfcLease device URLs.

Each transfer is blocking (http.client over TLS, 1 MiB buffers, so memory is bounded) and runs
in a worker thread; :func:`run_parallel` runs several at once (one NFC stream per disk moves
only 20-30 MB/s on real ESXi), reports progress on the event loop, keeps the lease alive with
HttpNfcLeaseProgress, and on error or cancellation stops every stream at its next buffer.

Device URLs: vCenter puts the ESXi host in the URL (``*`` means "the host you called"), and
``sslThumbprint`` holds that host's SHA-1 certificate thumbprint, which we pin. The session
cookie goes with every request, only after the TLS handshake has been checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import structlog

from workers.clouds._vsphere_session import pinned_context
from workers.clouds.base import CloudError, Progress, ProgressFn

CHUNK_BYTES = 1024 * 1024
log = structlog.get_logger()
T = TypeVar("T")


class TransferCancelled(CloudError):
    code = "cancelled"


class NfcError(CloudError):
    code = "nfc-error"
    retryable = True


@dataclass(frozen=True)
class Endpoint:
    """Where a device URL points, and how to trust it."""

    host: str
    port: int
    path: str
    context: ssl.SSLContext


def endpoint_for(
    url: str, vc_host: str, vc_port: int, vc_context: ssl.SSLContext, thumbprint: str | None
) -> Endpoint:
    """Resolve ``*`` to vCenter's host; pin the device's thumbprint when it has one."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise NfcError(f"device URL is not https: {url[:100]!r}")
    if parts.hostname in (None, "*") or parts.netloc.startswith("*"):
        host, port = vc_host, parts.port or vc_port
    else:
        host, port = parts.hostname, parts.port or 443
    context = pinned_context(thumbprint) if thumbprint else vc_context
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return Endpoint(host, port, path, context)


class ByteCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.value += n


def _connection(ep: Endpoint, timeout_s: float) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection(ep.host, ep.port, context=ep.context, timeout=timeout_s)


class AppendOnlyWriter:
    """Writes a stream into a file that may already hold an earlier attempt's bytes.

    Bytes that match what is on disk are only compared, new bytes are appended, and the
    file is cut back only where the stream differs: a concurrent sender that streams the
    ``.part`` file (docs/transfer.md) sees it grow, never change, when the source is the
    same. Plain writes when the file is new.
    """

    def __init__(self, path: Path) -> None:
        self.f = open(path, "r+b" if path.exists() else "wb")  # noqa: SIM115 - closed in close()
        self.f.seek(0, 2)
        self.on_disk = self.f.tell()
        self.f.seek(0)
        self.offset = 0
        self.reused = 0

    def write(self, chunk: bytes) -> None:
        if self.offset < self.on_disk:
            old = self.f.read(len(chunk))
            if old == chunk:
                self.offset += len(chunk)
                self.reused += len(chunk)
                return
            pairs = enumerate(zip(old, chunk, strict=False))  # old may be the shorter
            same = next((i for i, (a, b) in pairs if a != b), len(old))
            self.f.seek(self.offset + same)
            self.f.truncate()
            self.on_disk = self.offset + same
            self.reused += same
            self.f.write(chunk[same:])
        else:
            self.f.write(chunk)
        self.offset += len(chunk)

    def close(self) -> None:
        if self.offset < self.on_disk:  # the stream is shorter than an earlier attempt's
            self.f.truncate(self.offset)
        self.f.close()


def download(
    ep: Endpoint,
    dest: Path,
    *,
    cookie: str,
    timeout_s: float,
    cancel: threading.Event,
    on_bytes: Callable[[int], None],
) -> tuple[int, str]:
    """GET the device URL into ``dest`` (reusing matching bytes already there, see
    :class:`AppendOnlyWriter`); return (size, sha256 hex)."""
    conn = _connection(ep, timeout_s)
    try:
        conn.request("GET", ep.path, headers={"Cookie": cookie, "Accept": "*/*"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise NfcError(f"NFC GET {ep.path.rsplit('/', 1)[-1]}: HTTP {resp.status}")
        h, size = hashlib.sha256(), 0
        out = AppendOnlyWriter(dest)
        try:
            while chunk := resp.read(CHUNK_BYTES):
                if cancel.is_set():
                    raise TransferCancelled("transfer cancelled")
                out.write(chunk)
                h.update(chunk)
                size += len(chunk)
                on_bytes(len(chunk))
        finally:
            out.close()
        expected = resp.getheader("Content-Length")
        if expected is not None and int(expected) != size:
            raise NfcError(f"NFC GET ended after {size} of {expected} bytes")
        return size, h.hexdigest()
    finally:
        conn.close()


def upload(
    ep: Endpoint,
    source: Path,
    *,
    disk: bool,
    cookie: str,
    timeout_s: float,
    cancel: threading.Event,
    on_bytes: Callable[[int], None],
) -> int:
    """POST a disk (streamVmdk) or PUT another file (Overwrite: t) to the device URL."""
    size = source.stat().st_size
    conn = _connection(ep, timeout_s)
    try:
        conn.putrequest("POST" if disk else "PUT", ep.path, skip_accept_encoding=True)
        content_type = "application/x-vnd.vmware-streamVmdk" if disk else "application/octet-stream"
        conn.putheader("Content-Type", content_type)
        conn.putheader("Content-Length", str(size))
        conn.putheader("Cookie", cookie)
        if not disk:
            conn.putheader("Overwrite", "t")
        conn.endheaders()
        with open(source, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                if cancel.is_set():
                    raise TransferCancelled("transfer cancelled")
                conn.send(chunk)
                on_bytes(len(chunk))
        resp = conn.getresponse()
        resp.read()
        if not 200 <= resp.status < 300:
            raise NfcError(f"NFC upload of {source.name}: HTTP {resp.status}")
        return size
    finally:
        conn.close()


Job = Callable[[threading.Event, Callable[[int], None]], T]


async def _report(
    counter: ByteCounter,
    total: int | None,
    progress: ProgressFn,
    keepalive: Callable[[int], None],
    keepalive_s: float,
    interval_s: float,
) -> None:
    last_keepalive = time.monotonic()
    while True:
        await asyncio.sleep(interval_s)
        await progress(Progress(counter.value, total))
        if time.monotonic() - last_keepalive >= keepalive_s:
            percent = min(99, counter.value * 100 // total) if total else 0
            try:
                await asyncio.to_thread(keepalive, percent)
            except CloudError as exc:  # one missed update is not fatal; a dead lease fails NFC
                log.warning("vsphere.lease_progress_failed", code=exc.code, error=str(exc))
            last_keepalive = time.monotonic()


async def run_parallel(
    jobs: Sequence[Job[T]],
    *,
    parallel: int,
    progress: ProgressFn,
    total: int | None,
    keepalive: Callable[[int], None],
    keepalive_s: float = 30.0,
    interval_s: float = 0.5,
) -> list[T]:
    """Run blocking jobs in threads, ``parallel`` at a time, with progress and lease keep-alive.

    On error or cancellation every job sees ``cancel`` at its next buffer; this returns only
    after all threads have stopped, so the caller may remove partial files safely.
    """
    loop = asyncio.get_running_loop()
    cancel = threading.Event()
    counter = ByteCounter()
    executor = ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="nfc")
    futures = [loop.run_in_executor(executor, job, cancel, counter.add) for job in jobs]
    reporter = asyncio.create_task(
        _report(counter, total, progress, keepalive, keepalive_s, interval_s)
    )
    try:
        results = await asyncio.gather(*futures)
        await progress(Progress(counter.value, total or counter.value))
        return list(results)
    except BaseException:
        cancel.set()
        raise
    finally:
        reporter.cancel()
        await asyncio.shield(asyncio.to_thread(executor.shutdown, True, cancel_futures=True))
        for f in futures:  # retrieve exceptions of siblings so none is "never retrieved"
            if f.done() and not f.cancelled():
                f.exception()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
