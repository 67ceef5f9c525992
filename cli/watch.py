"""``hcc tasks watch``: a rich progress bar per step (bytes, rate, ETA) until the task ends.

Driven by the server's SSE stream; each notification for the task re-reads it. A slow
poll runs beside the stream so a dropped stream never leaves the watch stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from cli.client import Client

TERMINAL = {"succeeded", "failed", "cancelled"}
POLL_S = 2.0


class _Bytes(ProgressColumn):
    """Bytes done/total, rate and ETA, for steps that move bytes; blank for the others."""

    def __init__(self, inner: ProgressColumn) -> None:
        super().__init__()
        self.inner = inner

    def render(self, task: Task) -> RenderableType:
        if not task.fields.get("moves_bytes"):
            return Text("")
        return self.inner.render(task)


def _describe(step: dict[str, Any]) -> str:
    state = step["state"]
    text = f"{step['name']:<8} [dim]{step['node_id']}[/dim] {state}"
    if step.get("error"):
        text += f" [red]{step['error'].get('message', '')}[/red]"
    return text


async def watch_task(client: Client, task_id: str, console: Console) -> dict[str, Any]:
    changed = asyncio.Event()

    async def listen() -> None:
        with contextlib.suppress(Exception):
            async for note in client.events():
                if note.get("type") == "task" and note.get("id") == task_id:
                    changed.set()

    listener = asyncio.create_task(listen())
    bars: dict[str, TaskID] = {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        _Bytes(DownloadColumn()),
        _Bytes(TransferSpeedColumn()),
        _Bytes(TimeRemainingColumn()),
    )
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            while True:
                task: dict[str, Any] = await client.get(f"/api/v1/tasks/{task_id}")
                for step in task["steps"]:
                    bar = bars.get(step["id"])
                    moves = bool(step["bytes_total"] or step["bytes_done"])
                    finished = step["state"] in TERMINAL
                    total = step["bytes_total"] if moves else (1 if finished else None)
                    done = step["bytes_done"] if moves else (1 if finished else 0)
                    if bar is None:
                        bar = bars[step["id"]] = progress.add_task(_describe(step), total=total)
                    progress.update(bar, description=_describe(step), completed=done,
                                    total=total, moves_bytes=moves)  # fmt: skip
                if task["state"] in TERMINAL:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), POLL_S)
                changed.clear()
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    colour = "green" if task["state"] == "succeeded" else "red"
    console.print(f"task {task_id}: [{colour}]{task['state']}[/{colour}]")
    if task.get("error"):
        console.print(f"[red]{task['error'].get('step')}: {task['error'].get('message')}[/red]")
    return task
