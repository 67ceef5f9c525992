"""Runs journaled commands as asyncio tasks: events, cancellation, resume, metrics.

Each step runs in its own task with ``task_id``/``step_id`` bound in structlog's contextvars,
so every log line of the step carries them. Final events and the job's final state are
written to the journal in one transaction. At shutdown the tasks are cancelled without a
final event: their jobs stay ``running`` in the journal and resume at the next start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from uuid import UUID

import structlog

from protocol.messages import (
    Command,
    StepError,
    StepFailedBody,
    StepFailedEvent,
    StepProgressBody,
    StepProgressEvent,
    StepStartedBody,
    StepStartedEvent,
    StepSucceededBody,
    StepSucceededEvent,
)
from workers.clouds.base import (
    OPERATOR_CANCEL,
    CloudAdapter,
    CloudConfig,
    CloudError,
    Progress,
    ProgressFn,
)
from workers.runtime.events import EventSink, ProgressThrottle, RateMeter
from workers.runtime.journal import (
    CANCELLED,
    EVERY_ATTEMPT,
    FAILED,
    RUNNING,
    SUCCEEDED,
    AsyncJournal,
    job_key,
)
from workers.runtime.metrics import NodeMetrics
from workers.runtime.steps import StepContext, StepFailure, StepHandler, StepOutcome

log = structlog.get_logger(__name__)


class StepRunner:
    def __init__(
        self,
        *,
        journal: AsyncJournal,
        sink: EventSink,
        registry: Mapping[str, StepHandler],
        storage_dir: Path,
        clouds: Callable[[], Mapping[str, CloudConfig]],
        adapter_factory: Callable[[CloudConfig], CloudAdapter],
        metrics: NodeMetrics,
        progress_interval_s: float = 1.0,
        refresh_clouds: Callable[[], Awaitable[Mapping[str, CloudConfig]]] | None = None,
        renew_token: Callable[[str, str], Awaitable[str]] | None = None,
    ) -> None:
        self.refresh_clouds = refresh_clouds
        self.renew_token = renew_token
        self.discard_received: Callable[[str], Awaitable[None]] | None = None
        """Set by the node when its transfer receiver runs."""
        self.journal = journal
        self.sink = sink
        self.registry = registry
        self.storage_dir = storage_dir
        self.clouds = clouds
        self.adapter_factory = adapter_factory
        self.metrics = metrics
        self.progress_interval_s = progress_interval_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._steps: dict[str, UUID | None] = {}
        self._cancel_reasons: dict[str, str] = {}
        self._finishing: set[str] = set()

    def running_steps(self) -> tuple[UUID, ...]:
        return tuple(s for k, s in self._steps.items() if s is not None and k in self._tasks)

    def is_running(self, key: str) -> bool:
        return key in self._tasks

    def start(self, command: Command, *, resumed: bool = False) -> None:
        key = job_key(command)
        if key in self._tasks:
            return
        task = asyncio.create_task(self._run(command, resumed), name=f"step {key}")
        self._tasks[key] = task
        self._steps[key] = command.step_id
        self.metrics.steps_running.set(len(self._tasks))

        def done(_task: asyncio.Task[None]) -> None:
            self._tasks.pop(key, None)
            self._steps.pop(key, None)
            self.metrics.steps_running.set(len(self._tasks))

        task.add_done_callback(done)

    async def cancel(self, step_id: UUID, reason: str, attempt: int = EVERY_ATTEMPT) -> None:
        """Cancel the unfinished attempts of ``step_id`` up to ``attempt`` (and any of them
        that arrives later); a higher attempt is a retry and runs."""
        keys = await self.journal.call(self.journal.sync.cancel, step_id, reason, attempt)
        for key in keys:
            task = self._tasks.get(key)
            if key in self._finishing:
                continue  # its final event is being written
            if task is not None:
                self._cancel_reasons[key] = reason
                task.cancel(OPERATOR_CANCEL)
                continue
            job = await self.journal.call(self.journal.sync.job, key)
            if job is not None:
                await self._fail(job.command, "cancelled", reason, state=CANCELLED)
        log.info("cancel requested", target_step_id=str(step_id), jobs=len(keys))

    async def reject_cancelled(self, command: Command) -> None:
        """A command that arrived after its step was cancelled: fail it without running."""
        await self._fail(command, "cancelled", "step was cancelled before it ran", state=CANCELLED)

    async def shutdown(self, grace_s: float) -> None:
        """Give running steps ``grace_s`` to finish, then cancel them (they resume later)."""
        pending = set(self._tasks.values())
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=grace_s)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            log.info("steps interrupted by shutdown; they resume at next start", steps=len(late))

    async def _run(self, command: Command, resumed: bool) -> None:
        key = job_key(command)
        with structlog.contextvars.bound_contextvars(
            task_id=str(command.task_id) if command.task_id else None,
            step_id=str(command.step_id) if command.step_id else None,
            attempt=command.attempt,
            command=command.type,
        ):
            try:
                handler = await self._begin(command, resumed)
                if handler is not None:
                    await self._execute(command, handler, resumed)
            except asyncio.CancelledError:
                reason = self._cancel_reasons.pop(key, None)
                if reason is None:
                    raise  # shutdown: the job stays running and resumes at the next start
                await asyncio.shield(self._fail(command, "cancelled", reason, state=CANCELLED))
            finally:
                self._finishing.discard(key)

    async def _begin(self, command: Command, resumed: bool) -> StepHandler | None:
        """Mark the job running and say so; None when it must not run."""
        if await self.journal.call(
            self.journal.sync.is_cancelled, command.step_id, command.attempt
        ):
            await self.reject_cancelled(command)
            return None
        handler = self.registry.get(command.type)
        if handler is None:
            await self._fail(command, "unsupported", f"this node cannot run {command.type!r}")
            return None
        await self.journal.call(self.journal.sync.set_state, job_key(command), RUNNING)
        if resumed:
            log.info("step resumed")
            body = StepProgressBody(bytes_done=0, message="resumed after node restart")
            await self.sink.emit(command, StepProgressEvent, body)
        else:
            log.info("step started")
            await self.sink.emit(command, StepStartedEvent, StepStartedBody(kind=command.type))
        return handler

    async def _execute(self, command: Command, handler: StepHandler, resumed: bool) -> None:
        started = time.monotonic()
        ctx = StepContext(
            command=command,
            storage_dir=self.storage_dir,
            clouds=self.clouds(),
            adapter_factory=self.adapter_factory,
            progress=self._progress_fn(command),
            emit=lambda event_type, body: self.sink.emit(command, event_type, body),
            resumed=resumed,
            refresh_clouds=self.refresh_clouds,
            renew_token=self.renew_token,
            discard_received=self.discard_received,
        )
        outcome = "interrupted"
        try:
            try:
                result = await handler(ctx)
            except (CloudError, StepFailure) as exc:
                outcome = "failed"
                self._finishing.add(job_key(command))
                await self._fail(command, exc.code, str(exc), retryable=exc.retryable)
            except Exception as exc:
                outcome = "failed"
                self._finishing.add(job_key(command))
                log.exception("step crashed")
                await self._fail(command, "internal", repr(exc))
            else:
                outcome = "succeeded"
                self._finishing.add(job_key(command))  # a cancel now changes nothing
                await self._succeed(command, result)
        finally:
            elapsed = time.monotonic() - started
            self.metrics.step_duration.labels(command.type, outcome).observe(elapsed)

    async def _succeed(self, command: Command, result: StepOutcome) -> None:
        body = StepSucceededBody(bytes_done=result.bytes_done, result=result.result)
        await self.sink.emit(command, StepSucceededEvent, body, state=SUCCEEDED)
        log.info("step succeeded", bytes_done=result.bytes_done)

    async def _fail(
        self,
        command: Command,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        state: str = FAILED,
    ) -> None:
        error = StepError(code=code, message=message, retryable=retryable)
        body = StepFailedBody(error=error)
        await self.sink.emit(command, StepFailedEvent, body, state=state, error=code)
        log.warning("step failed", code=code, error=message, retryable=retryable)

    def _progress_fn(self, command: Command) -> ProgressFn:
        throttle = ProgressThrottle(interval_s=self.progress_interval_s)
        meter = RateMeter()
        counter = self.metrics.bytes_moved.labels(command.type)
        last_done = 0

        async def report(progress: Progress) -> None:
            nonlocal last_done
            if progress.bytes_done > last_done:
                counter.inc(progress.bytes_done - last_done)
            last_done = max(last_done, progress.bytes_done)
            now = time.monotonic()
            rate = meter.update(now, progress.bytes_done)
            if not throttle.admit(now, progress.bytes_done, progress.bytes_total):
                return
            body = StepProgressBody(
                bytes_done=progress.bytes_done,
                bytes_total=progress.bytes_total,
                rate_bytes_per_s=rate,
                message=progress.message,
            )
            await self.sink.emit(command, StepProgressEvent, body)

        return report
