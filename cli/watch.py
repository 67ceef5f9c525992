"""``hcc tasks watch``: a rich progress bar per step (bytes, rate, ETA) until the task ends.

Driven by the server's SSE stream; each notification for the task re-reads it. A slow
poll runs beside the stream so a dropped stream never leaves the watch stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID
from rich.table import Column
from rich.text import Text

from cli import units
from cli.client import Client

TERMINAL = {"succeeded", "failed", "cancelled"}
POLL_S = 2.0
STATE_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def step_columns(step: dict[str, Any]) -> dict[str, str]:
    """What a step's row shows, from the server's view of it (GET /api/v1/tasks/{id}):
    the same bytes, rate and ETA as the UI and the API, not an estimate of the CLI's own.
    A step that succeeded shows the average rate the server gives it, if any."""
    done, total, state = step["bytes_done"], step["bytes_total"], step["state"]
    cols = {"bytes": "", "rate": "", "eta": ""}
    if not (done or total):
        return cols
    cols["bytes"] = units.progress(done, total) if total else units.size(done)
    if state == "running":
        rate = step.get("rate_bytes_per_s") or 0.0
        cols["rate"] = f"{units.size(rate)}/s" if rate > 0 else "?"
        eta = step.get("eta_s")
        cols["eta"] = _clock(eta) if eta is not None else "-:--:--"
        return cols
    average = step.get("average_bytes_per_s")
    if state == "succeeded" and average:
        cols["rate"] = f"{units.size(average)}/s"
    return cols


class _Field(ProgressColumn):
    """One of a row's fields, on one line unless ``wrap`` (the bar gives up width first)."""

    def __init__(self, key: str, style: str = "", *, markup: bool = False, wrap: bool = False):
        super().__init__(table_column=Column(no_wrap=not wrap))
        self.key, self.style, self.markup = key, style, markup

    def render(self, task: Task) -> RenderableType:
        value = str(task.fields.get(self.key, ""))
        return Text.from_markup(value) if self.markup else Text(value, style=self.style)


def _state(state: str) -> str:
    return f"[{STATE_STYLE[state]}]{state}[/]" if state in STATE_STYLE else state


def step_progress(console: Console) -> Progress:
    """One row per step: name, node, bar, bytes, rate, ETA, state."""
    return Progress(
        _Field("name", "bold"),
        _Field("node", "dim"),
        BarColumn(bar_width=None),
        _Field("bytes"),
        _Field("rate"),
        _Field("eta"),
        _Field("state", markup=True),
        _Field("error", "red", wrap=True),
        console=console,
        transient=False,
    )


def show_step(progress: Progress, bars: dict[str, TaskID], step: dict[str, Any]) -> None:
    """Add or update the row of ``step`` (as GET /api/v1/tasks/{id} shows it)."""
    moves = bool(step["bytes_total"] or step["bytes_done"])
    finished = step["state"] in TERMINAL
    total = step["bytes_total"] if moves else (1 if finished else None)
    done = step["bytes_done"] if moves else (1 if finished else 0)
    bar = bars.get(step["id"])
    if bar is None:
        bar = bars[step["id"]] = progress.add_task("", total=total)
    cols = step_columns(step)
    progress.update(bar, completed=done, total=total, name=step["name"], node=step["node_id"],
                    state=_state(step["state"]), error=(step.get("error") or {}).get("message", ""),
                    bytes=cols["bytes"], rate=cols["rate"], eta=cols["eta"])  # fmt: skip


async def watch_task(client: Client, task_id: str, console: Console) -> dict[str, Any]:
    changed = asyncio.Event()

    async def listen() -> None:
        with contextlib.suppress(Exception):
            async for note in client.events():
                if note.get("type") == "task" and note.get("id") == task_id:
                    changed.set()

    listener = asyncio.create_task(listen())
    bars: dict[str, TaskID] = {}
    try:
        with step_progress(console) as progress:
            while True:
                task: dict[str, Any] = await client.get(f"/api/v1/tasks/{task_id}")
                for step in task["steps"]:
                    show_step(progress, bars, step)
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
