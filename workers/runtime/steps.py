"""Step handlers, dispatched by command type through a small registry.

A handler gets a :class:`StepContext` and returns a :class:`StepOutcome`; it raises
:class:`~workers.clouds.base.CloudError` (or :class:`StepFailure`) to fail the step with a
stable code. The runner turns outcomes and errors into step events. ``cancel`` is not a step:
the runner handles it directly.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.messages import (
    CleanupCommand,
    Command,
    DeployCommand,
    Envelope,
    ExportCommand,
    ImportCommand,
    InventoryRefreshCommand,
    InventorySnapshotBody,
    InventorySnapshotEvent,
)
from workers.clouds.base import (
    CloudAdapter,
    CloudConfig,
    Progress,
    ProgressFn,
    unless_retryable,
)
from workers.ovf.package import EXPORTING_MARKER


class StepFailure(Exception):
    """Fail the step with ``code`` (stable, machine-readable)."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


@dataclass(frozen=True)
class StepOutcome:
    bytes_done: int = 0
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepContext:
    command: Command
    storage_dir: Path
    clouds: Mapping[str, CloudConfig]
    adapter_factory: Callable[[CloudConfig], CloudAdapter]
    progress: ProgressFn
    emit: Callable[[Callable[..., Envelope], Any], Awaitable[Envelope]]
    """Queue an extra event of this step (e.g. inventory.snapshot) with the next seq."""
    resumed: bool = False
    refresh_clouds: Callable[[], Awaitable[Mapping[str, CloudConfig]]] | None = None
    """Fetch the clouds from the server again (a cloud added after enrollment)."""
    discard_received: Callable[[str], Awaitable[None]] | None = None
    """Make the transfer receiver forget an artifact (open files, journal), when it runs."""
    renew_token: Callable[[str, str], Awaitable[str]] | None = None
    """(artifact_id, destination_node) -> a fresh capability token from the server."""

    async def cloud(self, cloud_id: str, *, fresh: bool = False) -> CloudConfig:
        """The cloud's settings; read anew from the server when unknown, when ``fresh``, or
        for a retried step (a retry usually follows a fix: PATCH /api/v1/clouds/{id})."""
        config = self.clouds.get(cloud_id)
        fresh = fresh or self.command.attempt > 0
        if (config is None or fresh) and self.refresh_clouds is not None:
            self.clouds = await self.refresh_clouds()
            config = self.clouds.get(cloud_id)
        if config is None:
            raise StepFailure("unknown-cloud", f"this node does not serve cloud {cloud_id!r}")
        return config

    def artifact_dir(self, artifact_id: str) -> Path:
        return safe_child(self.storage_dir, artifact_id)


StepHandler = Callable[[StepContext], Awaitable[StepOutcome]]


def safe_child(root: Path, name: str) -> Path:
    """``root/name``, refusing anything that is not one plain name inside ``root``."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise StepFailure("invalid-name", f"not a plain artifact name: {name!r}")
    base = root.resolve()
    path = (base / name).resolve()
    if path.parent != base:
        raise StepFailure("invalid-name", f"artifact path escapes storage: {name!r}")
    return path


async def _with_adapter(
    ctx: StepContext, cloud_id: str, use: Callable[[CloudAdapter], Awaitable[StepOutcome]]
) -> StepOutcome:
    # an inventory refresh is what the server starts when a cloud changed: new settings
    fresh = ctx.command.type == "inventory.refresh"
    adapter = ctx.adapter_factory(await ctx.cloud(cloud_id, fresh=fresh))
    try:
        return await use(adapter)
    finally:
        await asyncio.shield(adapter.close())


async def inventory_refresh(ctx: StepContext) -> StepOutcome:
    assert isinstance(ctx.command, InventoryRefreshCommand)
    cloud_id = ctx.command.body.cloud_id

    async def use(adapter: CloudAdapter) -> StepOutcome:
        items = await adapter.inventory()
        body = InventorySnapshotBody(cloud_id=cloud_id, items=tuple(items))
        await ctx.emit(InventorySnapshotEvent, body)
        return StepOutcome(result={"cloud_id": cloud_id, "items": len(items)})

    return await _with_adapter(ctx, cloud_id, use)


async def export(ctx: StepContext) -> StepOutcome:
    assert isinstance(ctx.command, ExportCommand)
    body = ctx.command.body
    dest = ctx.artifact_dir(body.artifact_id)

    async def use(adapter: CloudAdapter) -> StepOutcome:
        # The send streams this package while it is written: the marker says "still
        # exporting" (files grow as <name>.part); it goes only once the export succeeded.
        dest.mkdir(parents=True, exist_ok=True)
        marker = dest / EXPORTING_MARKER
        marker.touch()
        result = await adapter.export(body.ref, dest, ctx.progress)
        marker.unlink(missing_ok=True)
        return StepOutcome(
            bytes_done=sum(result.files.values()),
            result={"descriptor": result.descriptor, "files": dict(result.files)},
        )

    return await _with_adapter(ctx, body.cloud_id, use)


async def import_package(ctx: StepContext) -> StepOutcome:
    assert isinstance(ctx.command, ImportCommand)
    body = ctx.command.body
    package = ctx.artifact_dir(body.artifact_id)
    if not body.streaming and not package.is_dir():
        raise StepFailure("not-found", f"artifact {body.artifact_id!r} is not in storage")

    async def use(adapter: CloudAdapter) -> StepOutcome:
        if body.streaming and not package.is_dir():
            # log in first: wrong credentials fail the copy now, not once the export
            # and the send are over (a vSphere export writes its descriptor last)
            await unless_retryable(adapter.check(), f"log in to {body.cloud_id}")
            await ctx.progress(Progress(0, None, "waiting for the package"))
        result = await adapter.import_package(
            package, body.target, ctx.progress, streaming=body.streaming
        )
        return StepOutcome(
            result={
                "object_id": result.object_id,
                "name": result.name,
                "kind": result.kind,
                "attributes": dict(result.attributes),
            }
        )

    return await _with_adapter(ctx, body.cloud_id, use)


async def deploy(ctx: StepContext) -> StepOutcome:
    assert isinstance(ctx.command, DeployCommand)
    body = ctx.command.body

    async def use(adapter: CloudAdapter) -> StepOutcome:
        result = await adapter.deploy(body.template_ref, body.spec, ctx.progress)
        return StepOutcome(
            result={
                "object_id": result.object_id,
                "name": result.name,
                "power_state": result.power_state,
            }
        )

    return await _with_adapter(ctx, body.cloud_id, use)


def remove_artifact(storage_dir: Path, artifact_id: str) -> list[str]:
    """Delete everything transfer storage holds for ``artifact_id``; what was removed."""
    removed: list[str] = []
    for path in artifact_paths(storage_dir, artifact_id):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(str(path.relative_to(storage_dir.resolve())))
    return removed


def artifact_paths(storage_dir: Path, artifact_id: str) -> list[Path]:
    """Where transfer storage can hold something of ``artifact_id`` (path-safe)."""
    return [
        safe_child(storage_dir, artifact_id),
        safe_child(storage_dir / ".incoming", artifact_id),
        safe_child(storage_dir / ".committed", artifact_id + ".json"),
    ]


async def cleanup(ctx: StepContext) -> StepOutcome:
    assert isinstance(ctx.command, CleanupCommand)
    artifact_id = ctx.command.body.artifact_id
    root = ctx.storage_dir.resolve()
    present = [
        str(p.relative_to(root)) for p in artifact_paths(ctx.storage_dir, artifact_id) if p.exists()
    ]
    if ctx.discard_received is not None:
        await ctx.discard_received(artifact_id)  # the receiver lets go of it first
    leftovers = await asyncio.to_thread(remove_artifact, ctx.storage_dir, artifact_id)
    return StepOutcome(result={"removed": sorted(set(present) | set(leftovers))})


def default_registry() -> dict[str, StepHandler]:
    """Command type -> handler (``cancel`` is handled by the runner itself)."""
    from workers.runtime.send import send

    return {
        "inventory.refresh": inventory_refresh,
        "export": export,
        "send": send,
        "import": import_package,
        "deploy": deploy,
        "cleanup": cleanup,
    }
