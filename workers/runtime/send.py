"""The ``send`` step: push an artifact from transfer storage to the destination node's receiver
with the transfer engine (workers/transfer), resuming from what the receiver already holds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from workers.clouds.base import Progress
from workers.ovf.package import EXPORTING_MARKER
from workers.runtime.steps import StepContext, StepFailure, StepOutcome
from workers.transfer.errors import TransferError, Unauthorized
from workers.transfer.sender import send_package

PACKAGE_WAIT_S = 600.0
"""How long a send waits for its export to start writing (the saga sends it the moment the
export step started, so this only covers a slow start of the export)."""


async def wait_for_package(package: Path, artifact_id: str, timeout_s: float = PACKAGE_WAIT_S,
                           poll_s: float = 0.2) -> None:  # fmt: skip
    """Until the package is being exported (marker) or holds files without a marker (done)."""
    deadline = time.monotonic() + timeout_s

    def started() -> bool:
        if (package / EXPORTING_MARKER).exists():
            return True
        return package.is_dir() and any(p.is_file() for p in package.rglob("*"))

    # written by another task of this node: there is nothing to await but its contents
    while not await asyncio.to_thread(started):
        if time.monotonic() > deadline:
            raise StepFailure("not-found", f"artifact {artifact_id!r} is not in storage "
                              "and no export is writing it")  # fmt: skip
        await asyncio.sleep(poll_s)


async def send(ctx: StepContext) -> StepOutcome:
    from protocol.messages import SendCommand

    assert isinstance(ctx.command, SendCommand)
    body = ctx.command.body
    package = ctx.artifact_dir(body.artifact_id)
    await wait_for_package(package, body.artifact_id)

    async def progress(done: int, total: int | None, _rate: float) -> None:
        await ctx.progress(Progress(done, total))

    async def refresh_token() -> str:
        if ctx.renew_token is None:
            raise Unauthorized("capability token expired", code="token-expired")
        try:
            return await ctx.renew_token(body.artifact_id, body.destination_node)
        except Exception as exc:
            raise Unauthorized(f"capability token expired; renewal failed: {exc}",
                               code="token-expired") from exc  # fmt: skip

    try:
        result = await send_package(package, body, progress, refresh_token)
    except TransferError as exc:
        raise StepFailure(
            exc.code, str(exc), retryable=exc.retryable or exc.code == "token-expired"
        ) from exc
    return StepOutcome(
        bytes_done=result.bytes_total,
        result={
            "chunks_total": result.chunks_total,
            "chunks_sent": result.chunks_sent,
            "chunks_held": result.chunks_held,
            "resent_chunks": result.resent_chunks,
            "zero_chunks": result.zero_chunks,
            "wire_bytes": result.wire_bytes,
            "already_committed": result.already_committed,
            "files": dict(result.files),
        },
    )
