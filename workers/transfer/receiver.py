"""The receiving side: an aiohttp application the node mounts on its HTTPS listener.

Routes (DESIGN.md §6; every one needs ``Authorization: Bearer <capability token>``):

* ``PUT  /transfer/v1/{artifact}/manifest``  declare (or re-declare) files → held bitmaps
* ``GET  /transfer/v1/{artifact}/manifest``  held bitmaps, or ``committed: true``
* ``HEAD /transfer/v1/{artifact}/{file}/{n}`` 200 if chunk n is held, else 404
* ``PUT  /transfer/v1/{artifact}/{file}/{n}`` one chunk; headers ``X-Hcc-Hash`` (BLAKE3
  hex of the raw bytes), ``X-Hcc-Length`` (raw length), optional ``X-Hcc-Encoding: zstd``
* ``POST /transfer/v1/{artifact}/commit``    final manifest → verify, move into place
  (``partial: true``: only the files listed, which an import may then read)

Errors are ``application/problem+json`` with a stable ``code``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from workers.transfer import testhooks
from workers.transfer.auth import token_claims
from workers.transfer.body import (
    PIECE_BYTES,
    parse_chunk_request,
    read_some,
    receive_plain,
    receive_zstd,
)
from workers.transfer.download import Downloads, add_download_routes
from workers.transfer.errors import (
    BadRequest,
    Forbidden,
    ManifestConflict,
    NotFound,
    StorageFull,
    TransferError,
)
from workers.transfer.manifest import (
    FinalManifest,
    ManifestDecl,
    check_relpath,
)
from workers.transfer.store import IncomingArtifact, Store
from workers.transfer.threads import RUNNING_HASH_NICENESS, background_executor

log = structlog.get_logger()
_ARTIFACT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_MANIFEST_BYTES = 64 << 20


@dataclass
class ReceiverState:
    store: Store
    public_key: Ed25519PublicKey
    node_id: str
    clock: Callable[[], float]
    artifact_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    chunk_locks: dict[tuple[str, int, int], asyncio.Lock] = field(default_factory=dict)
    background: set[asyncio.Task[None]] = field(default_factory=set)
    hashing: ThreadPoolExecutor = field(
        default_factory=lambda: background_executor("hcc-sha", RUNNING_HASH_NICENESS)
    )
    """Where running SHA-256s are extended (:func:`_advance_sha`)."""

    async def settle(self) -> None:
        """Let the running-hash tasks finish (before a commit or a shutdown)."""
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)

    def artifact_lock(self, artifact_id: str) -> asyncio.Lock:
        return self.artifact_locks.setdefault(artifact_id, asyncio.Lock())


STATE = web.AppKey("transfer_receiver", ReceiverState)


def _problem(status: int, code: str, detail: str) -> web.Response:
    return web.json_response(
        {"type": "about:blank", "title": code, "status": status, "code": code, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except TransferError as exc:
        if exc.status >= 500 and not isinstance(exc, StorageFull):
            log.exception("transfer.receiver_error", path=request.path)
        return _problem(exc.status, exc.code, str(exc))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return _problem(400, "bad-request", f"{where}: {first['msg']}")
    except ConnectionResetError as exc:
        # The sender went away mid-request (killed, its link down): a flaky link's
        # everyday event, not a receiver error (aiohttp would log a traceback at error
        # level). Nothing of an unfinished chunk is held; the sender sends it again. The
        # answer goes nowhere: aiohttp drops it on the closed connection.
        log.info("transfer.sender_gone", path=request.path, error=str(exc))
        return _problem(400, "connection-lost", str(exc))


def _authorize(request: web.Request, artifact_id: str) -> None:
    state = request.app[STATE]
    claims = token_claims(request, state.public_key, now=state.clock())
    if claims.destination_node != state.node_id or claims.artifact_id != artifact_id:
        raise Forbidden("the token is for another artifact or node")
    if claims.access is not None:
        raise Forbidden("a read-only token cannot write")


def _artifact_id(request: web.Request) -> str:
    artifact_id = request.match_info["artifact"]
    if not _ARTIFACT.match(artifact_id):
        raise BadRequest("bad-artifact", "artifact id is not valid")
    _authorize(request, artifact_id)
    return artifact_id


def _status(state: ReceiverState, artifact_id: str) -> dict[str, Any]:
    art = state.store.artifacts.get(artifact_id)
    if art is None:
        committed = state.store.committed(artifact_id) is not None
        return {"artifact": artifact_id, "committed": committed, "files": {}}
    bitmaps = art.ledger.bitmaps(art.decl)
    return {"artifact": artifact_id, "committed": False, "files": bitmaps}


async def put_manifest(request: web.Request) -> web.Response:
    state = request.app[STATE]
    artifact_id = _artifact_id(request)
    body = await request.read()
    decl = ManifestDecl.model_validate_json(body)
    async with state.artifact_lock(artifact_id):
        if state.store.committed(artifact_id) is None:
            await asyncio.to_thread(state.store.declare, artifact_id, decl)
        answer = _status(state, artifact_id)
    log.info("transfer.manifest", artifact=artifact_id, files=len(decl.files))
    return web.json_response(answer)


async def get_manifest(request: web.Request) -> web.Response:
    artifact_id = _artifact_id(request)
    state = request.app[STATE]
    if artifact_id not in state.store.artifacts and not state.store.committed(artifact_id):
        raise NotFound("no such artifact")
    return web.json_response(_status(state, artifact_id))


@contextlib.asynccontextmanager
async def _chunk_lock(state: ReceiverState, key: tuple[str, int, int]) -> AsyncIterator[None]:
    """One writer per chunk: a resumed sender may race the dying request of its past self."""
    lock = state.chunk_locks.setdefault(key, asyncio.Lock())
    try:
        async with lock:
            yield
    finally:
        if not lock.locked() and state.chunk_locks.get(key) is lock:
            del state.chunk_locks[key]


async def put_chunk(request: web.Request) -> web.Response:
    state = request.app[STATE]
    artifact_id = _artifact_id(request)
    c = parse_chunk_request(request, state.store, artifact_id)
    async with _chunk_lock(state, (artifact_id, c.file_index, c.index)):
        held = c.artifact.ledger.digest(c.file_index, c.index)
        if held is not None:
            if held != c.digest:
                raise ManifestConflict(f"chunk {c.index} is held with another hash")
            return web.json_response({"held": True, "already": True})
        offset = c.index * c.artifact.decl.chunk_bytes
        size = c.artifact.decl.files[c.file_index].size
        if size is None:
            state.store.check_room(artifact_id, c.artifact.reserved_bytes() + c.length, c.length)
        # A sender sends the headers of a stream's next chunk while the last one is
        # being made durable, and its body once that one is held: an attempt counts
        # from its first body bytes.
        first = await read_some(request)
        testhooks.log_put_attempt("receiver", request.match_info["file"], c.index)
        # both verify the bytes against X-Hcc-Hash before they journal the chunk
        if c.zstd:
            await receive_zstd(request, c, offset, first)
        else:
            await receive_plain(request, c, offset, first)
        testhooks.crash_point("receiver.after-journal")
    # Off the answer's critical path: extend the file's running SHA-256 over the chunks
    # now held in a row (IncomingArtifact.advance_sha).
    task = asyncio.create_task(_advance_sha(state, c.artifact, c.file_index))
    state.background.add(task)
    task.add_done_callback(state.background.discard)
    return web.json_response({"held": True, "already": False})


async def _advance_sha(state: ReceiverState, art: IncomingArtifact, file_index: int) -> None:
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(state.hashing, art.advance_sha, file_index)
    except (OSError, ValueError) as exc:  # closed meanwhile; commit hashes what is left
        log.warning("transfer.running_hash_stopped", error=str(exc))


async def head_chunk(request: web.Request) -> web.Response:
    state = request.app[STATE]
    artifact_id = _artifact_id(request)
    path = check_relpath(request.match_info["file"])
    art = state.store.artifacts.get(artifact_id)
    idx = art.decl.index_of(path) if art else None
    held = art is not None and idx is not None
    if held and art is not None and idx is not None:
        held = art.ledger.digest(idx, int(request.match_info["chunk"])) is not None
    return web.Response(status=200 if held else 404)


async def commit(request: web.Request) -> web.Response:
    state = request.app[STATE]
    artifact_id = _artifact_id(request)
    final = FinalManifest.model_validate_json(await request.read())
    async with state.artifact_lock(artifact_id):
        done = state.store.committed(artifact_id)
        if done is not None:
            if final.partial:
                ok = {f.path: f for f in done.files}
                if any(ok.get(f.path) != f for f in final.files):
                    raise ManifestConflict("the artifact was committed with other files")
            elif done != final:
                raise ManifestConflict("the artifact was committed with another manifest")
            return web.json_response({"committed": True, "already": True})
        if artifact_id not in state.store.artifacts:
            raise NotFound("no such artifact")
        await state.settle()
        if final.partial:
            await asyncio.to_thread(state.store.commit_files, artifact_id, final)
            log.info("transfer.files_committed", artifact=artifact_id,
                     files=[f.path for f in final.files])  # fmt: skip
            return web.json_response({"committed": False, "files": len(final.files)})
        await asyncio.to_thread(state.store.commit, artifact_id, final)
    log.info("transfer.committed", artifact=artifact_id, files=len(final.files))
    return web.json_response({"committed": True, "already": False})


async def discard_artifact(app: web.Application, artifact_id: str) -> None:
    """Delete everything the receiver holds for ``artifact_id`` (the ``cleanup`` step):
    partial data, journal, commit marker and the committed package."""
    if not _ARTIFACT.match(artifact_id):
        raise BadRequest("bad-artifact", "artifact id is not valid")
    state = app[STATE]
    async with state.artifact_lock(artifact_id):
        await state.settle()
        await asyncio.to_thread(state.store.discard, artifact_id)


def make_receiver_app(
    storage_root: Path,
    trusted_public_key: Ed25519PublicKey,
    node_id: str,
    quota_bytes: int | None = None,
    *,
    reserve_bytes: int = 0,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The receiver as an aiohttp application; mount it on the node's HTTPS listener.

    ``trusted_public_key`` is the server's Ed25519 key: the only signer trusted.
    ``quota_bytes`` caps the transfer storage (None: only free disk counts);
    ``reserve_bytes`` is disk space always left free.
    """
    app = web.Application(
        middlewares=[_errors],
        client_max_size=MAX_MANIFEST_BYTES,
        handler_args={"read_bufsize": PIECE_BYTES},
    )
    store = Store(storage_root, quota_bytes, reserve_bytes)
    state = ReceiverState(store, trusted_public_key, node_id, clock)
    app[STATE] = state

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await asyncio.to_thread(store.recover)
        yield
        await state.settle()
        state.hashing.shutdown()
        store.close()

    app.cleanup_ctx.append(lifecycle)
    base = "/transfer/v1/{artifact}"
    app.router.add_put(base + "/manifest", put_manifest)
    app.router.add_get(base + "/manifest", get_manifest)
    app.router.add_post(base + "/commit", commit)
    chunk = base + r"/{file:.+}/{chunk:\d{1,9}}"
    app.router.add_put(chunk, put_chunk)
    app.router.add_route("HEAD", chunk, head_chunk)
    # read-only GETs of packages in storage, for `hcc export` (workers/transfer/download.py)
    add_download_routes(app, base, Downloads(storage_root, trusted_public_key, node_id, clock))
    return app


async def start_receiver(
    app: web.Application, host: str, port: int, ssl_context: object | None
) -> tuple[web.AppRunner, int]:
    """Run ``app`` on host:port (0 = any free port); returns the runner and the real port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)  # type: ignore[arg-type]
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    return runner, int(sockets[0].getsockname()[1])
