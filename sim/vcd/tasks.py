"""Tasks: queued → running (progress) → success | error | canceled, run in the background.

What a task *does* when it finishes is registered per ``operationName``
(:meth:`TaskRunner.register`), so tasks left unfinished in ``state.json`` resume after a
restart. Fault flags (:mod:`sim.vcd.faults`) slow tasks down or make them end in error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

from sim.vcd.errors import forbidden
from sim.vcd.faults import Faults
from sim.vcd.model import Task, TaskError, TaskStatus, now_iso
from sim.vcd.render import Hrefs
from sim.vcd.render import task as render_task
from sim.vcd.store import Store
from sim.vcd.web import STORE, TASKS, ctx, xml_response
from sim.vcd.xmlgen import MT_TASK

log = structlog.get_logger()

_TICK_S = 0.1
"""Running tasks look at cancel requests (and move their progress) this often."""

OnSuccess = Callable[[Store, Task], None]
OnError = Callable[[Store, Task], None]


@dataclass(frozen=True)
class Completion:
    on_success: OnSuccess
    on_error: OnError
    waits_for_client: bool = False
    """True for uploads: the task runs while the client sends bytes; not resumed on start."""


class TaskRunner:
    def __init__(self, store: Store, faults: Faults, duration_s: float = 0.2) -> None:
        self.store = store
        self.faults = faults
        self.duration_s = duration_s
        self._completions: dict[str, Completion] = {}
        self._running: dict[str, asyncio.Task[None]] = {}

    def register(self, operation_name: str, completion: Completion) -> None:
        self._completions[operation_name] = completion

    def cancel(self, t: Task) -> None:
        """Running work notices ``cancel_requested``; an upload is canceled at once."""
        t.cancel_requested = True
        completion = self._completions.get(t.operation_name)
        if completion is not None and completion.waits_for_client and t.id not in self._running:
            self.fail(
                t,
                TaskError(major=400, minor="BAD_REQUEST", message="Task canceled."),
                TaskStatus.CANCELED,
            )

    def create(self, **fields: str) -> Task:
        """A new task in state (saved); ``start`` it, or leave it running for an upload."""
        t = Task.model_validate(fields)
        self.store.state.tasks[t.id] = t
        self.store.save()
        return t

    def start(self, t: Task) -> None:
        if t.id in self._running:
            return
        self._running[t.id] = asyncio.get_running_loop().create_task(self._run(t))
        self._running[t.id].add_done_callback(lambda _f: self._running.pop(t.id, None))

    def resume_all(self) -> None:
        for t in list(self.store.state.tasks.values()):
            completion = self._completions.get(t.operation_name)
            if not t.done and completion is not None and not completion.waits_for_client:
                self.start(t)

    async def close(self) -> None:
        for running in list(self._running.values()):
            running.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _run(self, t: Task) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        total_s = self.duration_s + self.faults.task_delay_s
        base = t.progress
        if t.status == TaskStatus.QUEUED:
            t.status = TaskStatus.RUNNING
            self.store.save()
        while (elapsed := loop.time() - start) < total_s:
            await asyncio.sleep(min(_TICK_S, total_s - elapsed))
            if t.cancel_requested:
                error = TaskError(major=400, minor="BAD_REQUEST", message="Task canceled.")
                self.fail(t, error, TaskStatus.CANCELED)
                return
            done = (loop.time() - start) / total_s
            t.progress = max(t.progress, min(99, int(base + (100 - base) * done)))
        if self.faults.take_failure(t.operation_name):
            self.fail(t, TaskError(message=self.faults.fail_message))
            return
        try:
            self._completions[t.operation_name].on_success(self.store, t)
        except Exception as exc:  # the simulated work failed: that is the task's error
            log.warning("vcdsim.task_failed", task=t.id, error=str(exc))
            self.fail(t, TaskError(message=str(exc)))
            return
        t.status, t.progress, t.end = TaskStatus.SUCCESS, 100, now_iso()
        self.store.save()
        log.info("vcdsim.task_done", task=t.id, operation=t.operation_name)

    def fail(self, t: Task, error: TaskError, status: str = TaskStatus.ERROR) -> None:
        t.status, t.error, t.end = status, error, now_iso()
        completion = self._completions.get(t.operation_name)
        if completion is not None:
            completion.on_error(self.store, t)
        self.store.save()
        log.info("vcdsim.task_failed", task=t.id, operation=t.operation_name, status=status)


def _visible_task(request: web.Request) -> Task:
    c = ctx(request)
    tid = request.match_info["id"]
    t = request.app[STORE].state.tasks.get(tid)
    if t is None or not c.sees(t.org_id):
        raise forbidden("task", tid)
    return t


async def get_task(request: web.Request) -> web.Response:
    t = _visible_task(request)
    h = Hrefs(ctx(request).base)
    return xml_response(request, render_task(h, t, request.app[STORE].state), MT_TASK)


async def cancel_task(request: web.Request) -> web.Response:
    t = _visible_task(request)
    if not t.done:
        request.app[TASKS].cancel(t)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/task/{id}", get_task)
    app.router.add_post("/api/task/{id}/action/cancel", cancel_task)
