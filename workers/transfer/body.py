"""Receiving one chunk's body: header checks, hashing and writing it as it streams in,
or inflating a zstd frame. Used by :mod:`workers.transfer.receiver`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import blake3
import zstandard
from aiohttp import web

from workers.transfer import testhooks
from workers.transfer.errors import (
    BadRequest,
    BodyTimeout,
    ChunkHashMismatch,
    ChunkTooLarge,
    NotFound,
)
from workers.transfer.ledger import ChunkRecord
from workers.transfer.manifest import check_relpath, chunk_length
from workers.transfer.store import IncomingArtifact, Store

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
PIECE_BYTES = 1 << 20
BODY_IDLE_S = 120.0


@dataclass(frozen=True)
class ChunkRequest:
    artifact: IncomingArtifact
    file_index: int
    index: int
    length: int
    digest: bytes
    zstd: bool


def parse_chunk_request(request: web.Request, store: Store, artifact_id: str) -> ChunkRequest:
    path = check_relpath(request.match_info["file"])
    art = store.artifacts.get(artifact_id)
    file_index = art.decl.index_of(path) if art else None
    if art is None or file_index is None:
        raise NotFound("declare the file in the manifest first")
    index = int(request.match_info["chunk"])
    size = art.decl.files[file_index].size
    try:
        expected = chunk_length(size, art.decl.chunk_bytes, index)
    except ValueError as exc:
        raise BadRequest("bad-chunk", str(exc)) from exc
    digest = request.headers.get("X-Hcc-Hash", "")
    if not _HEX64.match(digest):
        raise BadRequest("bad-hash", "X-Hcc-Hash must be a 64-hex BLAKE3 digest")
    try:
        length = int(request.headers.get("X-Hcc-Length", ""))
    except ValueError as exc:
        raise BadRequest("bad-length", "X-Hcc-Length is required") from exc
    if length > expected:
        raise ChunkTooLarge(f"chunk {index} is {expected} bytes, not {length}")
    if length != expected:
        raise BadRequest("bad-length", f"chunk {index} is {expected} bytes, not {length}")
    encoding = request.headers.get("X-Hcc-Encoding", "identity")
    if encoding not in ("identity", "zstd"):
        raise BadRequest("bad-encoding", "X-Hcc-Encoding is identity or zstd")
    wire = request.content_length
    if wire is None:
        raise BadRequest("length-required", "Content-Length is required")
    if wire > expected or (encoding == "identity" and wire != expected):
        raise ChunkTooLarge(f"body of {wire} bytes for a chunk of {expected}")
    return ChunkRequest(art, file_index, index, length, bytes.fromhex(digest), encoding == "zstd")


async def read_some(request: web.Request) -> bytes:
    """The next bytes of the body as they came off the connection (no joining copy); a
    sender silent for BODY_IDLE_S is given up (its chunk lock would otherwise block the
    resumed sender forever)."""
    try:
        async with asyncio.timeout(BODY_IDLE_S):
            data, _ = await request.content.readchunk()
            return data
    except TimeoutError as exc:
        raise BodyTimeout(f"no body bytes for {BODY_IDLE_S:.0f} s") from exc


def finish(c: ChunkRequest, digest: bytes) -> None:
    """Blocking: verify the chunk (``digest``: BLAKE3 of its bytes) and, if it matches,
    make it durable and journal it."""
    if digest != c.digest:
        raise ChunkHashMismatch(f"chunk {c.index}: bytes do not match X-Hcc-Hash")
    c.artifact.finish_chunk(ChunkRecord(c.file_index, c.index, digest))


class _Sink:
    """Blocking side of :func:`receive_plain`: hash and write pieces of one chunk.

    Hashing and writing are separate calls so that they run in two threads at once
    (BLAKE3 and ``pwritev`` both release the GIL on large buffers)."""

    def __init__(self, c: ChunkRequest, offset: int) -> None:
        self.c = c
        self.offset = offset
        self.hasher = blake3.blake3()

    def hash(self, batch: list[bytes]) -> None:
        for piece in batch:
            self.hasher.update(piece)

    def write(self, at: int, batch: list[bytes]) -> None:
        self.c.artifact.write_pieces(self.c.file_index, self.offset + at, batch)

    def finish(self) -> None:
        finish(self.c, self.hasher.digest())


async def receive_plain(request: web.Request, c: ChunkRequest, offset: int, first: bytes) -> None:
    """Stream the body to disk, verify it, journal it.

    Every ~1 MiB of received pieces is hashed (BLAKE3) in one worker thread and written
    with one pwritev in another, both while the next MiB is being received (one hash
    and one write outstanding; the kernel starts writing each piece back at once). No
    copy of the body is made in Python. Once the last piece is hashed and written, the
    check against ``X-Hcc-Hash``, fdatasync and the journal record share one thread
    hop: with one chunk in flight per stream, this is the stream's idle time, so the
    file's SHA-256 is not computed here but after the answer, from the page cache
    (:meth:`IncomingArtifact.advance_sha`), while the next chunk comes in.
    """
    sink = _Sink(c, offset)  # after the first bytes: the chunk before may now be held
    pieces: list[bytes] = []
    pending = received = 0
    busy: list[asyncio.Future[None]] = []
    landed = False

    async def settled() -> None:
        nonlocal busy, landed
        if busy:
            done, busy = busy, []
            for failed in await asyncio.gather(*done, return_exceptions=True):
                if isinstance(failed, BaseException):  # both ended: nothing lands later
                    raise failed
            if not landed:
                landed = True
                testhooks.crash_point("receiver.mid-body")

    def dispatch(batch: list[bytes]) -> None:
        busy.append(asyncio.ensure_future(asyncio.to_thread(sink.hash, batch)))
        busy.append(asyncio.ensure_future(asyncio.to_thread(sink.write, received, batch)))

    try:
        data = first
        while data:
            pieces.append(data)
            pending += len(data)
            if received + pending > c.length:
                raise ChunkTooLarge(f"body longer than the chunk's {c.length} bytes")
            if pending >= PIECE_BYTES:
                await settled()
                dispatch(pieces)
                pieces = []
                received += pending
                pending = 0
            data = await read_some(request)
        if received + pending != c.length:
            raise BadRequest("short-body", f"got {received + pending} of {c.length} bytes")
        await settled()
        if pieces:
            dispatch(pieces)
            await settled()
        await asyncio.to_thread(sink.finish)
    finally:
        if busy:  # failing: no write may land after the chunk lock is gone
            await asyncio.gather(*busy, return_exceptions=True)


async def receive_zstd(request: web.Request, c: ChunkRequest, offset: int, first: bytes) -> None:
    try:
        rest = await request.content.readexactly((request.content_length or 0) - len(first))
    except asyncio.IncompleteReadError as exc:
        raise BadRequest("short-body", "the body ended early") from exc
    compressed = first + rest
    size = zstandard.frame_content_size(compressed)
    if size != c.length:
        raise ChunkTooLarge("compressed frame does not declare the chunk's length")

    def inflate() -> None:
        raw = zstandard.ZstdDecompressor().decompress(compressed, max_output_size=c.length)
        if len(raw) != c.length:
            raise BadRequest("bad-body", "decompressed length differs")
        c.artifact.write(c.file_index, offset, raw)
        finish(c, blake3.blake3(raw).digest())

    try:
        await asyncio.to_thread(inflate)
    except zstandard.ZstdError as exc:
        raise BadRequest("bad-body", f"zstd: {exc}") from exc
