"""The sending side: push a package directory to a receiver, resuming where it stopped.

One reader walks the package's files in order, chunk by chunk (bounded: at most
``streams`` chunks wait in a queue), computing each file's SHA-256 on the way and each
chunk's BLAKE3. Chunks the receiver already holds and all-zero chunks are not sent;
the others go to ``streams`` workers, each with one request in flight on its own
connection. Each file whose chunks are all held is committed on its own (a partial
commit: the receiver publishes it, and the import may start on it while the rest is on
the way); at the end the final manifest is committed.

Long fat links: one TCP connection carries at most its window per round trip, so on a
link whose bandwidth-delay product exceeds ``streams`` windows, ``streams`` chunks in
flight cannot fill it. When the measured round trip is at least
``SendOptions.widen_min_rtt_s``, the sender probes once: it goes to :func:`max_streams`
(as many as the memory budget of ``streams * chunk * 3 + 32 MiB`` holds, at most
``3 * streams - 2``) and keeps them unless the rate drops. Each stream
still has one chunk in flight, so a kill re-sends at most one chunk per stream in use
(``SendResult.streams_used``).

Growing files (an export in progress, docs/transfer.md): a file named ``X.part`` is
still being written and is sent as ``X``, whole chunks only, as they appear; the tail
goes once it is renamed to ``X``. While ``.hcc-exporting`` exists in the package, new
files may still appear. Exporters write append-only.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import structlog
import zstandard

from protocol.messages import SendBody
from workers.transfer import testhooks
from workers.transfer.client import ReceiverClient
from workers.transfer.errors import (
    ChunkHashMismatch,
    ExportStalled,
    SourceChanged,
    TransferError,
    TransferNetworkError,
)
from workers.transfer.ledger import decode_bitmap
from workers.transfer.manifest import FinalManifest
from workers.transfer.plan import ChunkJob, SourceFile
from workers.transfer.ratelimit import TokenBucket
from workers.transfer.source import ChunkData, PackageSource
from workers.transfer.threads import READ_AHEAD_NICENESS, background_executor

log = structlog.get_logger()
Progress = Callable[[int, int | None, float], Awaitable[None]]
PIECE_BYTES = 1024 * 1024


@dataclass
class SendResult:
    artifact_id: str
    bytes_total: int = 0
    chunks_total: int = 0
    chunks_sent: int = 0
    chunks_held: int = 0
    """Already on the receiver (resume)."""
    zero_chunks: int = 0
    compressed_chunks: int = 0
    resent_chunks: int = 0
    """PUTs repeated after a failure (network, hash mismatch)."""
    wire_bytes: int = 0
    """Chunk body bytes put on the wire, resends included."""
    token_refreshes: int = 0
    already_committed: bool = False
    duration_s: float = 0.0
    rtt_ms: float | None = None
    """Round trip to the receiver (least of three HEADs), when measured."""
    streams_used: int = 0
    """Most chunks in flight at once: ``streams``, or more on a long fat link."""
    files: dict[str, str] = field(default_factory=dict)
    """Path -> SHA-256 hex of every file sent."""


@dataclass
class SendOptions:
    poll_interval_s: float = 0.5
    stall_timeout_s: float = 300.0
    """Give up when no chunk succeeds for this long (the receiver is gone)."""
    progress_interval_s: float = 0.5
    growth_timeout_s: float = 3600.0
    """Give up when a package marked as being exported does not grow for this long."""
    partial_suffix: str = ".part"
    exporting_marker: str = ".hcc-exporting"
    widen_min_rtt_s: float = 0.01
    """Probe for more streams only on a link with at least this round trip (on a LAN the
    limit is CPU or disk, and more chunks in flight would only cost re-sends)."""
    max_streams: int | None = None
    """Most streams the probe may reach; None: what the memory budget holds
    (:func:`max_streams`)."""


Wire = bytes | bytearray | memoryview
T = TypeVar("T")


STREAM_BYTES = 3 << 20
"""What a stream in use costs besides its chunk buffer: its two connections' TLS and socket
buffers (measured on the sender: 4 streams of 8 MiB chunks +63-65 MiB, 10 streams
+121-131 MiB)."""
BASE_BYTES = 8 << 20
"""What a send costs besides its streams (the session, the manifest, the meter)."""
BUDGET_EXTRA_BYTES = 32 << 20


def max_streams(streams: int, chunk_bytes: int, opts: SendOptions) -> int:
    """Most streams a send may widen to: ``opts.max_streams`` if given, else as many as
    the memory budget of ``streams * chunk * 3 + 32 MiB`` holds (a chunk buffer and
    STREAM_BYTES per stream, two spare chunk buffers, BASE_BYTES), at most
    ``3 * streams - 2`` (so one stream never widens). 4 streams of 8 MiB: 9."""
    if opts.max_streams:
        return max(streams, opts.max_streams)
    budget = 3 * streams * chunk_bytes + BUDGET_EXTRA_BYTES - 2 * chunk_bytes - BASE_BYTES
    return max(streams, min(3 * streams - 2, budget // (chunk_bytes + STREAM_BYTES)))


class _Buffers:
    """A pool of chunk buffers, allocated on first use and reused; at most ``limit`` out
    at once (the limit follows the number of streams)."""

    def __init__(self, limit: int, size: int) -> None:
        self.size = size
        self.limit = limit
        self.out = 0
        self.free: list[bytearray] = []
        self.changed = asyncio.Event()

    async def take(self) -> bytearray:
        while self.out >= self.limit:
            self.changed.clear()
            await self.changed.wait()
        self.out += 1
        return self.free.pop() if self.free else bytearray(self.size)

    def give(self, buf: object) -> None:
        assert isinstance(buf, bytearray)
        self.out -= 1
        if self.out + len(self.free) < self.limit:
            self.free.append(buf)
        self.changed.set()

    def set_limit(self, limit: int) -> None:
        self.limit = limit
        del self.free[max(0, limit - self.out) :]
        self.changed.set()


class _Meter:
    """Counts bytes done and reports them; a slow ``progress`` never holds up a stream:
    reports run in their own task, at most one at a time, the final one awaited.

    What is reported as done includes the bytes of chunks still on the wire, counted as
    their pieces leave (in raw bytes, so a compressed chunk counts in proportion): with
    several streams sharing a slow link, whole chunks land rarely and all at once, and
    progress would stand still in between. A chunk that fails takes its bytes back."""

    def __init__(self, progress: Progress, interval_s: float) -> None:
        self.progress = progress
        self.interval_s = interval_s
        self.started = time.monotonic()
        self.last = 0.0
        self.done = 0
        self.moved = 0
        self.on_wire = 0
        self.reporting: asyncio.Task[None] | None = None

    def add(self, n: int, total: int | None, moved: bool) -> None:
        """``n`` bytes held by the receiver (or zero, or held before)."""
        self.done += n
        self.moved += n if moved else 0
        self._maybe_report(total)

    def flowing(self, n: int, total: int | None) -> None:
        """``n`` more bytes of a chunk on the wire (``n`` < 0: taken back)."""
        self.on_wire += n
        if n > 0:
            self._maybe_report(total)

    def _maybe_report(self, total: int | None) -> None:
        now = time.monotonic()
        busy = self.reporting is not None and not self.reporting.done()
        if now - self.last >= self.interval_s and not busy:
            self.last = now
            self.reporting = asyncio.create_task(self._report_quietly(total))

    async def _report_quietly(self, total: int | None) -> None:
        try:
            await self._report(total)
        except Exception as exc:  # a failing progress report must not fail the copy
            log.warning("transfer.progress_failed", error=repr(exc))

    def stop(self) -> None:
        if self.reporting is not None and not self.reporting.done():
            self.reporting.cancel()

    async def _report(self, total: int | None) -> None:
        rate = self.moved / max(time.monotonic() - self.started, 1e-6)
        await self.progress(self.done + self.on_wire, total, rate)

    async def finish(self, total: int | None) -> None:
        if self.reporting is not None:
            await self.reporting
        await self._report(total)


class _Sender:
    def __init__(
        self,
        source: PackageSource,
        client: ReceiverClient,
        body: SendBody,
        meter: _Meter,
        opts: SendOptions,
    ) -> None:
        self.source = source
        self.client = client
        self.body = body
        self.meter = meter
        self.reading = background_executor("hcc-read", READ_AHEAD_NICENESS)
        """Where chunks are read ahead and hashed (workers/transfer/threads.py)."""
        self.opts = opts
        self.result = SendResult(body.artifact_id)
        self.queue: asyncio.Queue[ChunkData | None] = asyncio.Queue()
        # Chunk buffers: one per stream in flight, one queued, one being read. Memory is
        # bounded by this pool, whatever the file size.
        self.buffers = _Buffers(body.streams + 2, body.chunk_bytes)
        self.streams = body.streams
        """Streams wanted now; workers numbered from it up stop after their chunk."""
        self.workers: set[int] = set()
        self.sent_bytes = 0
        self.sent_chunks = 0
        self.progressed = asyncio.Event()
        self.bucket = (
            TokenBucket(
                body.bandwidth_bytes_per_s, max(PIECE_BYTES, body.bandwidth_bytes_per_s / 20)
            )
            if body.bandwidth_bytes_per_s
            else None
        )
        self.last_success = time.monotonic()
        self.unacked: dict[str, int] = {}
        """Per file, chunks being read, queued or in flight."""
        self.published: set[str] = set()
        """Files committed on their own (or being)."""

    def publish_ready(self, file: SourceFile | None = None) -> None:
        """Commit on its own ``file`` (None: each file) if it is final, read to its end and
        held by the receiver; not when the whole package is about to be committed anyway."""
        if self.source.done() and not any(self.unacked.values()):
            return
        for f in self.source.files if file is None else (file,):
            if (
                f.path not in self.published
                and f.finished(self.body.chunk_bytes)
                and not self.unacked.get(f.path)
            ):
                self.published.add(f.path)
                final = FinalManifest(chunk_bytes=self.body.chunk_bytes,
                                      files=(self.source.final_file(f),), partial=True)  # fmt: skip
                self.tg.create_task(self.retrying(functools.partial(self.client.commit, final)))

    async def retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """Retry a manifest or commit request on network errors until the stall timeout."""
        attempt = 0
        while True:
            try:
                return await call()
            except TransferNetworkError:
                attempt += 1
                if time.monotonic() - self.last_success > self.opts.stall_timeout_s:
                    raise
                await asyncio.sleep(min(5.0, 0.1 * 2 ** min(attempt, 6)))

    async def run(self) -> None:
        """Read and send every chunk, then commit the final manifest."""
        if await asyncio.to_thread(self.source.rescan):
            await self.declare()
        if not self.result.already_committed:
            await self.measure_rtt()
            async with asyncio.TaskGroup() as tg:
                self.tg = tg
                tg.create_task(self.produce())
                self.set_streams(self.body.streams)
                tg.create_task(self.widen())
        if not self.result.already_committed:
            final = self.source.final_manifest()
            await self.retrying(lambda: self.client.commit(final))
            self.result.files = {f.path: f.sha256 for f in final.files}
            self.result.bytes_total = sum(f.size for f in final.files)
        await self.meter.finish(self.result.bytes_total)

    async def declare(self) -> None:
        decl = self.source.decl()
        answer = await self.retrying(lambda: self.client.put_manifest(decl))
        self.last_success = time.monotonic()
        if answer.get("committed"):
            self.result.already_committed = True
            return
        for path, bitmap in answer.get("files", {}).items():
            self.source.set_held(path, decode_bitmap(bitmap))

    async def produce(self) -> None:
        """Read every chunk in order; queue the ones to send."""
        loop = asyncio.get_running_loop()
        while True:
            if await asyncio.to_thread(self.source.rescan):
                await self.declare()
                if self.result.already_committed:
                    break
            job = self.source.next_job()
            if job is None:
                self.publish_ready()
                if self.source.done():
                    break
                idle = time.monotonic() - self.source.last_growth
                if idle > self.opts.growth_timeout_s:
                    raise ExportStalled(f"the export has not grown for {idle:.0f} s")
                await asyncio.sleep(self.opts.poll_interval_s)
                continue
            buf = await self.buffers.take()
            # counted from before the read: the read marks the file finished
            self.unacked[job.file.path] = self.unacked.get(job.file.path, 0) + 1
            try:
                chunk = await loop.run_in_executor(self.reading, self.source.read, job, buf)
            except BaseException:
                self.buffers.give(buf)
                raise
            self.result.chunks_total += 1
            if chunk.zero or chunk.held:
                self.buffers.give(buf)
                self.result.zero_chunks += chunk.zero
                self.result.chunks_held += chunk.held and not chunk.zero
                self.meter.add(job.length, self.source.total_bytes(), moved=False)
                self.unacked[job.file.path] -= 1
                self.publish_ready(job.file)
                continue
            await self.queue.put(chunk)
        await self.queue.put(None)  # each worker puts it back for the next one
        self.progressed.set()

    def set_streams(self, n: int) -> None:
        self.streams = n
        self.buffers.set_limit(n + 2)
        for wid in range(n):
            if wid not in self.workers:
                self.workers.add(wid)
                self.tg.create_task(self.work(wid))
        self.result.streams_used = max(self.result.streams_used, len(self.workers))

    async def work(self, wid: int) -> None:
        """One stream: each chunk's request starts while the one before is still being
        made durable, and its body follows once that one is held (:meth:`_send_chunk`)."""
        before: asyncio.Task[None] | None = None
        held: asyncio.Future[bool] | None = None
        try:
            while wid < self.streams:
                chunk = await self.queue.get()
                if chunk is None:
                    await self.queue.put(None)
                    break
                landed = asyncio.get_running_loop().create_future()
                task = self.tg.create_task(self._send_chunk(chunk, held, landed))
                if before is not None:
                    await before
                before, held = task, landed
            if before is not None:
                await before
        finally:
            self.workers.discard(wid)
            self.progressed.set()

    async def _send_chunk(
        self, chunk: ChunkData, before: asyncio.Future[bool] | None, landed: asyncio.Future[bool]
    ) -> None:
        """Send ``chunk`` once ``before`` (the stream's chunk before) is held; ``landed``
        says at once whether this one is (True) or failed (False)."""
        try:
            await self._send(chunk, before, landed)
        finally:
            if not landed.done():
                landed.set_result(False)
            self.buffers.give(chunk.data.obj if isinstance(chunk.data, memoryview) else chunk.data)
        self.unacked[chunk.job.file.path] -= 1
        self.publish_ready(chunk.job.file)
        self.result.chunks_sent += 1
        self.sent_bytes += chunk.job.length
        self.sent_chunks += 1
        self.progressed.set()
        self.meter.add(chunk.job.length, self.source.total_bytes(), moved=True)

    async def measure_rtt(self) -> None:
        """Least time of three HEADs of a chunk (the receiver only looks at its ledger)."""
        if not self.source.files:
            return
        path = self.source.files[0].path
        best = float("inf")
        for _ in range(3):
            started = time.monotonic()
            await self.retrying(lambda: self.client.chunk_held(path, 0))
            best = min(best, time.monotonic() - started)
        self.result.rtt_ms = round(best * 1000, 2)

    async def _window(self, rtt_s: float) -> float | None:
        """Bytes/s over the next ``streams`` chunks sent (at least two round trips);
        None when the send ends first."""
        start_t, start_b, start_n = time.monotonic(), self.sent_bytes, self.sent_chunks
        while self.sent_chunks - start_n < self.streams or time.monotonic() - start_t < 2 * rtt_s:
            if not self.workers:
                return None
            self.progressed.clear()
            await self.progressed.wait()
        return (self.sent_bytes - start_b) / max(time.monotonic() - start_t, 1e-6)

    async def widen(self) -> None:
        """On a long link, go to the most streams allowed unless that lowers the rate
        (module docstring). One probe, not steps: each costs two windows of chunks at the
        old rate (the first after a change carries the new connections' handshakes), which
        on a 512 MiB send was a tenth of its time."""
        while self.result.rtt_ms is None:  # an export had written nothing yet at the start
            if not self.workers:
                return
            if self.source.files:
                await self.measure_rtt()
                break
            self.progressed.clear()
            await self.progressed.wait()
        rtt_ms = self.result.rtt_ms
        most = max_streams(self.body.streams, self.body.chunk_bytes, self.opts)
        if rtt_ms is None or rtt_ms / 1000 < self.opts.widen_min_rtt_s:
            return
        rtt_s = rtt_ms / 1000
        if await self._window(rtt_s) is None:  # the first chunks carry the handshakes
            return
        rate = await self._window(rtt_s)
        if rate is None or self.streams >= most:
            return
        before = self.streams
        self.set_streams(most)
        await self._window(rtt_s)  # the new streams' first chunks
        probed = await self._window(rtt_s)
        if probed is None:
            return
        kept = probed >= rate
        log.info("transfer.widen", streams=self.streams, before=before, kept=kept,
                 rate=round(probed), previous=round(rate))  # fmt: skip
        if not kept:
            self.set_streams(before)

    async def _encode(self, chunk: ChunkData) -> tuple[bytes | bytearray | memoryview, bool]:
        if not self.body.compress:
            return chunk.data, False
        packed = await asyncio.to_thread(zstandard.ZstdCompressor(level=1).compress, chunk.data)
        if len(packed) <= len(chunk.data) * 0.9:
            self.result.compressed_chunks += 1
            return packed, True
        return chunk.data, False

    def _body(
        self, wire: Wire, job: ChunkJob, before: asyncio.Future[bool] | None, counted: list[int]
    ) -> Callable[[], AsyncIterator[Wire]]:
        """The body as 1 MiB views of ``wire``: no copy of the chunk, a cap per piece.

        (A whole bytearray handed to aiohttp is sliced and joined with the headers:
        two extra copies of every chunk.)

        It starts with an empty piece, which makes aiohttp send the headers at once, and
        then waits for ``before`` (the stream's chunk before, being made durable by the
        receiver): the receiver parses, authorizes and locks this chunk meanwhile, yet
        a stream never has more than one chunk's bytes unacknowledged.

        Each piece the connection took is counted as progress on the wire (in raw bytes)
        in ``meter`` and in ``counted[0]``, which the caller takes back after the attempt."""
        bucket = self.bucket
        meter, total = self.meter, self.source.total_bytes
        raw_per_wire = job.length / max(len(wire), 1)

        async def pieces() -> AsyncIterator[Wire]:
            if before is not None and not before.done():
                yield b""
                await asyncio.wait([before])
                if not before.result():
                    return  # the send fails with the chunk before; this body stays short
            testhooks.log_put_attempt("sender", job.file.path, job.index)
            with memoryview(wire) as view:
                for i, at in enumerate(range(0, len(view), PIECE_BYTES)):
                    piece = view[at : at + PIECE_BYTES]
                    if bucket is not None:
                        delay = bucket.reserve(len(piece), time.monotonic())
                        if delay > 0:
                            await asyncio.sleep(delay)
                    if i == 1:
                        testhooks.crash_point("sender.mid-body")
                    yield piece
                    share = min(round(len(piece) * raw_per_wire), job.length - counted[0])
                    counted[0] += share
                    meter.flowing(share, total())

        return pieces

    async def _send(
        self,
        chunk: ChunkData,
        before: asyncio.Future[bool] | None,
        landed: asyncio.Future[bool],
    ) -> None:
        """PUT one chunk, retrying network failures (asking first whether it landed) and
        hash mismatches (at most 3), until no chunk has succeeded for the stall timeout."""
        wire, zstd = await self._encode(chunk)
        job = chunk.job
        attempt = mismatches = 0
        while True:
            put = False
            counted = [0]  # this attempt's bytes on the wire: the chunk counts once held
            try:
                if attempt and await self.client.chunk_held(job.file.path, job.index):
                    landed.set_result(True)
                    return
                put = True
                try:
                    await self.client.put_chunk(
                        job.file.path, job.index, chunk.digest, job.length,
                        self._body(wire, job, before, counted),
                        len(wire), zstd,
                    )  # fmt: skip
                finally:
                    self.meter.flowing(-counted[0], None)
                landed.set_result(True)  # the stream's next body may go
                self.result.wire_bytes += len(wire)
                self.last_success = time.monotonic()
                testhooks.crash_point("sender.after-chunk")
                return
            except (TransferNetworkError, ChunkHashMismatch) as exc:
                attempt += 1
                if put:
                    self.result.wire_bytes += len(wire)
                    self.result.resent_chunks += 1
                mismatches += isinstance(exc, ChunkHashMismatch)
                stalled = time.monotonic() - self.last_success > self.opts.stall_timeout_s
                if stalled or mismatches >= 3:
                    raise
                log.warning(
                    "transfer.chunk_retry",
                    path=job.file.path,
                    index=job.index,
                    attempt=attempt,
                    error=str(exc),
                )
                await asyncio.sleep(min(5.0, 0.1 * 2 ** min(attempt, 6)))


async def send_package(
    package_dir: Path,
    body: SendBody,
    progress: Progress,
    refresh_token: Callable[[], Awaitable[str]],
    *,
    options: SendOptions | None = None,
) -> SendResult:
    """Send ``package_dir`` to ``body.destination_url`` as artifact ``body.artifact_id``.

    Resumable: call it again after any failure or crash (of either side) and only the
    chunks the receiver lacks are sent. ``progress(bytes_done, bytes_total, rate)`` is
    called at most every ``options.progress_interval_s`` and once at the end;
    ``bytes_total`` is None while a file is still growing. ``refresh_token`` is awaited
    when the receiver says the capability token expired. Raises TransferError
    subclasses (``retryable`` says whether a later retry may help).
    """
    opts = options or SendOptions()
    started = time.monotonic()
    source = PackageSource(
        package_dir, body.chunk_bytes, opts.partial_suffix, opts.exporting_marker
    )
    client = ReceiverClient(
        body.destination_url,
        body.destination_fingerprint,
        body.artifact_id,
        body.token,
        refresh_token,
        max_streams(body.streams, body.chunk_bytes, opts),
    )
    sender = _Sender(source, client, body, _Meter(progress, opts.progress_interval_s), opts)
    try:
        await sender.run()
    except* TransferError as group:
        raise group.exceptions[0] from None
    except* OSError as group:
        raise SourceChanged(f"reading the package: {group.exceptions[0]}") from None
    finally:
        sender.meter.stop()
        await client.close()
        sender.reading.shutdown()  # a read still running finishes before its file closes
        source.close()
    sender.result.token_refreshes = client.refreshes
    sender.result.duration_s = time.monotonic() - started
    log.info(
        "transfer.sent",
        artifact=body.artifact_id,
        chunks=sender.result.chunks_sent,
        held=sender.result.chunks_held,
        seconds=round(sender.result.duration_s, 2),
    )
    return sender.result
