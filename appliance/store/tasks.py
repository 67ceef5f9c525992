"""Tasks, steps and the outbox: the saga's decisions applied in one transaction.

Every change of task state and the commands it causes are written together: the outbox
rows commit with the state, and the relay (appliance/bus/relay.py) publishes them later.
A crash between commit and publish loses nothing; a re-publish is harmless because nodes
dedupe by (step_id, attempt).

Events are applied idempotently: a step event counts only for the step's current attempt
and only when its ``seq`` is above the last one applied. The task is locked while it is read
and changed (``FOR UPDATE`` on PostgreSQL, SQLite's writer lock), so the API, the events
worker and server replicas never undo each other's decisions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from appliance.store.accounts import now
from appliance.store.models import OutboxRow, Step, Task, TaskEvent
from appliance.tasks import saga
from appliance.tasks.saga import Binder, StepPlan
from protocol.messages import (
    COMMAND_ADAPTER,
    CancelBody,
    CancelCommand,
    CleanupBody,
    CleanupCommand,
    Envelope,
    StepFailedEvent,
    StepProgressEvent,
    StepStartedEvent,
    StepSucceededEvent,
    dump,
)
from protocol.topology import COMMANDS_EXCHANGE

StepEvent = StepStartedEvent | StepProgressEvent | StepSucceededEvent | StepFailedEvent


def _record(step: Step) -> saga.StepRecord:
    return saga.StepRecord(step.name, step.node_id, step.command, step.result)


def _snapshot(task: Task, steps: Sequence[Step]) -> saga.Task:
    return saga.Task(
        id=task.id,
        state=saga.TaskState(task.state),
        steps=tuple(
            saga.Step(
                id=s.id,
                name=s.name,
                node_id=s.node_id,
                state=saga.StepState(s.state),
                attempt=s.attempt,
                needs=s.command.get("needs", {}),
            )
            for s in steps
        ),
    )


async def enqueue(session: AsyncSession, envelope: Envelope, exchange: str, key: str) -> None:
    session.add(
        OutboxRow(
            message_id=envelope.id,
            exchange=exchange,
            routing_key=key,
            payload=dump(envelope),
            created_at=now(),
        )
    )


def _note(session: AsyncSession, task: Task, step: Step | None, kind: str, message: str) -> None:
    session.add(
        TaskEvent(
            task_id=task.id, step_id=step.id if step else None, ts=now(), type=kind, message=message
        )
    )


async def _apply(
    session: AsyncSession,
    task: Task,
    steps: Sequence[Step],
    outcome: saga.Outcome,
    binder: Binder | None,
) -> None:
    """Write the saga's new states and turn its actions into outbox rows."""
    by_id = {s.id: s for s in steps}
    at = now()
    for new in outcome.task.steps:
        row = by_id[new.id]
        if row.state != new.state or row.attempt != new.attempt:
            if row.attempt != new.attempt:  # a retry: the new attempt starts from its checkpoint
                row.last_seq = -1
                row.error = None
                row.rate_bytes_per_s = 0.0
                row.finished_at = None
            row.state = new.state.value
            row.attempt = new.attempt
            if new.state in (
                saga.StepState.SUCCEEDED,
                saga.StepState.FAILED,
                saga.StepState.CANCELLED,
            ):
                row.finished_at = row.finished_at or at
    if (
        outcome.task.state == saga.TaskState.CANCELLED
        and task.state != saga.TaskState.CANCELLED.value
    ):
        await _clean_up_after_cancel(session, task, steps)
    if task.state != outcome.task.state.value:
        _note(session, task, None, "task", f"task {outcome.task.state.value}")
        task.state = outcome.task.state.value
        task.finished_at = at if outcome.task.state in saga.TERMINAL_TASK_STATES else None
    task.updated_at = at
    task.version += 1
    for action in outcome.actions:
        step = by_id[action.step_id]
        if isinstance(action, saga.Dispatch):
            await _dispatch(session, task, step, steps, binder)
        else:
            command = CancelCommand(  # the attempt it stops: a later one (a retry) runs
                task_id=task.id, node_id=step.node_id, attempt=step.attempt,
                body=CancelBody(target_step_id=step.id),
            )  # fmt: skip
            await enqueue(session, command, COMMANDS_EXCHANGE, step.node_id)


async def _clean_up_after_cancel(session: AsyncSession, task: Task, steps: Sequence[Step]) -> None:
    """A cancelled task leaves nothing in transfer storage: its planned cleanups still run
    (as plain commands; the task is over). A failed task keeps its artifacts so that a
    retry resumes from the checkpoint."""
    for step in steps:
        if step.command["type"] == "cleanup" and step.state != saga.StepState.SUCCEEDED.value:
            command = CleanupCommand(
                task_id=task.id, node_id=step.node_id, body=CleanupBody(**step.command["body"])
            )
            await enqueue(session, command, COMMANDS_EXCHANGE, step.node_id)
            _note(session, task, step, "cleanup", f"transfer storage on {step.node_id} cleaned")


async def _dispatch(
    session: AsyncSession, task: Task, step: Step, steps: Sequence[Step], binder: Binder | None
) -> None:
    if binder is None:
        body = step.command["body"]
    else:
        body = binder(_record(step), [_record(s) for s in steps])
    command = COMMAND_ADAPTER.validate_python(
        {
            "type": step.command["type"],
            "body": body,
            "task_id": task.id,
            "step_id": step.id,
            "attempt": step.attempt,
            "node_id": step.node_id,
        }
    )
    await enqueue(session, command, COMMANDS_EXCHANGE, step.node_id)
    _note(session, task, step, "dispatch", f"{step.name} sent to node {step.node_id}")


async def create_task(
    session: AsyncSession,
    kind: str,
    spec: dict[str, Any],
    created_by: str,
    plans: Sequence[StepPlan],
    binder: Binder | None = None,
    *,
    idempotency_key: str | None = None,
) -> Task:
    at = now()
    task = Task(
        id=uuid4(),
        kind=kind,
        state=saga.TaskState.RUNNING.value,
        spec=spec,
        created_by=created_by,
        created_at=at,
        updated_at=at,
        version=1,
        idempotency_key=idempotency_key,
    )
    session.add(task)
    await session.flush()  # no ORM relationship: the task row must exist before its steps
    steps = [
        Step(
            id=uuid4(),
            task_id=task.id,
            position=i,
            name=p.name,
            node_id=p.node_id,
            command={**p.command, "needs": p.needs},
            state=saga.StepState.PENDING.value,
            attempt=0,
            last_seq=-1,
            bytes_done=0,
            rate_bytes_per_s=0.0,
        )
        for i, p in enumerate(plans)
    ]
    session.add_all(steps)
    await session.flush()
    _note(session, task, None, "task", f"{kind} task created by {created_by}")
    await _apply(session, task, steps, saga.start(_snapshot(task, steps)), binder)
    return task


async def task_id_by_key(session: AsyncSession, created_by: str, key: str) -> UUID | None:
    """The task a user's earlier request with this Idempotency-Key made, if any."""
    found: UUID | None = await session.scalar(
        select(Task.id).where(Task.created_by == created_by, Task.idempotency_key == key)
    )
    return found


async def load_task(
    session: AsyncSession, task_id: UUID, *, lock: bool = False
) -> tuple[Task, list[Step]] | None:
    query = select(Task).where(Task.id == task_id)
    if lock and session.get_bind().dialect.name == "sqlite":
        # SQLite has no SELECT ... FOR UPDATE, and its driver runs a SELECT outside any
        # transaction: two processes (the API and the events worker) could both read the
        # task and the later commit would undo the other's decision. A write first takes
        # the database's one writer lock (waiting out the busy timeout), so the reads below
        # see the last commit and nobody else writes until this transaction ends.
        touch = update(Task).where(Task.id == task_id).values(version=Task.version)
        await session.execute(touch, execution_options={"synchronize_session": False})
    elif lock:
        query = query.with_for_update()
    task = await session.scalar(query)
    if task is None:
        return None
    steps = list(
        await session.scalars(select(Step).where(Step.task_id == task_id).order_by(Step.position))
    )
    return task, steps


async def list_tasks(
    session: AsyncSession,
    offset: int,
    limit: int,
    state: str | None = None,
    kind: str | None = None,
) -> tuple[list[tuple[Task, list[Step]]], int]:
    query = select(Task)
    if state:
        query = query.where(Task.state == state)
    if kind:
        query = query.where(Task.kind == kind)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    tasks = list(
        await session.scalars(query.order_by(Task.created_at.desc()).offset(offset).limit(limit))
    )
    steps: dict[UUID, list[Step]] = {t.id: [] for t in tasks}
    if tasks:
        for s in await session.scalars(
            select(Step).where(Step.task_id.in_(list(steps))).order_by(Step.position)
        ):
            steps[s.task_id].append(s)
    return [(t, steps[t.id]) for t in tasks], total


async def task_events(session: AsyncSession, task_id: UUID, limit: int = 200) -> list[TaskEvent]:
    return list(
        await session.scalars(
            select(TaskEvent)
            .where(TaskEvent.task_id == task_id)
            .order_by(TaskEvent.id.desc())
            .limit(limit)
        )
    )


async def operate(
    session: AsyncSession,
    task_id: UUID,
    op: Callable[[saga.Task], saga.Outcome],
    binder: Binder | None = None,
) -> Task | None:
    """Run cancel or retry on a locked task. Raises saga.IllegalTransition."""
    loaded = await load_task(session, task_id, lock=True)
    if loaded is None:
        return None
    task, steps = loaded
    await _apply(session, task, steps, op(_snapshot(task, steps)), binder)
    return task


def _progress(step: Step, bytes_done: int, total: int | None, rate: float) -> None:
    step.bytes_done = bytes_done
    if total is not None:
        step.bytes_total = total
    step.rate_bytes_per_s = rate


async def apply_step_event(
    session: AsyncSession, event: StepEvent, binder_for: Callable[[str], Binder | None]
) -> UUID | None:
    """Apply one step event. Returns the task id when something changed, None when stale."""
    if event.task_id is None or event.step_id is None:
        return None
    loaded = await load_task(session, event.task_id, lock=True)
    if loaded is None:
        return None
    task, steps = loaded
    step = next((s for s in steps if s.id == event.step_id), None)
    if step is None or event.attempt != step.attempt or event.seq <= step.last_seq:
        return None  # another attempt's, a duplicate, or older than what we have
    if isinstance(event, StepProgressEvent) and step.state not in saga.ACTIVE_STEP_STATES:
        return None  # late progress of a finished step
    if step.node_id != event.node_id:
        return None  # only the step's own node speaks for it
    step.last_seq = event.seq
    snapshot = _snapshot(task, steps)
    outcome: saga.Outcome | None = None
    if isinstance(event, StepProgressEvent):
        b = event.body
        _progress(step, b.bytes_done, b.bytes_total, b.rate_bytes_per_s)
        step.message = b.message
        if step.state in (saga.StepState.DISPATCHED, saga.StepState.WAITING_FOR_NODE):
            outcome = saga.step_started(snapshot, step.id)
    elif isinstance(event, StepStartedEvent):
        step.started_at = step.started_at or event.ts
        _note(session, task, step, "started", f"{step.name} started on node {step.node_id}")
        outcome = saga.step_started(snapshot, step.id)
    elif isinstance(event, StepSucceededEvent):
        step.result = event.body.result
        step.bytes_done = max(step.bytes_done, event.body.bytes_done)
        step.rate_bytes_per_s = 0.0
        _note(session, task, step, "succeeded", f"{step.name} succeeded")
        outcome = saga.step_succeeded(snapshot, step.id)
    else:
        error = event.body.error
        step.error = error.model_dump()
        step.rate_bytes_per_s = 0.0
        _note(session, task, step, "failed", f"{step.name} failed: {error.message}")
        if error.code == "cancelled":
            outcome = saga.step_cancelled(snapshot, step.id)
        else:
            task.error = {"step": step.name, **error.model_dump()}
            outcome = saga.step_failed(snapshot, step.id)
    if outcome is not None:
        await _apply(session, task, steps, outcome, binder_for(task.kind))
    else:
        task.updated_at = now()
    return task.id


async def apply_progress_batch(
    session: AsyncSession,
    events: Sequence[StepProgressEvent],
    binder_for: Callable[[str], Binder | None],
) -> set[UUID]:
    """Apply many progress events at once (they are most of the traffic).

    Only the newest event per (step, attempt) matters, so the batch is coalesced first.
    Steps already running are updated with one executemany; a progress event for a step
    that is not running yet (its ``started`` was lost or is late) takes the full path,
    which also moves the saga. Returns the ids of the tasks that changed.
    """
    newest: dict[tuple[UUID, int], StepProgressEvent] = {}
    for ev in events:
        if ev.step_id is None or ev.task_id is None:
            continue
        key = (ev.step_id, ev.attempt)
        if key not in newest or newest[key].seq < ev.seq:
            newest[key] = ev
    if not newest:
        return set()
    step_ids = list({step_id for step_id, _ in newest})
    rows = (
        await session.execute(
            select(
                Step.id, Step.task_id, Step.state, Step.attempt, Step.last_seq, Step.node_id
            ).where(Step.id.in_(step_ids))
        )
    ).all()
    params: list[dict[str, Any]] = []
    changed: set[UUID] = set()
    slow: list[StepProgressEvent] = []
    for step_id, task_id, state, attempt, last_seq, node_id in rows:
        found = newest.get((step_id, attempt))
        if found is None or found.seq <= last_seq or found.node_id != node_id:
            continue
        ev = found
        if state in (saga.StepState.DISPATCHED.value, saga.StepState.WAITING_FOR_NODE.value):
            slow.append(ev)  # not known to be running yet: let the saga move it
            continue
        if state != saga.StepState.RUNNING.value:
            continue  # finished or cancelled: late progress changes nothing
        b = ev.body
        params.append({"b_id": step_id, "b_attempt": attempt, "b_seq": ev.seq,
                       "b_done": b.bytes_done, "b_total": b.bytes_total,
                       "b_rate": b.rate_bytes_per_s, "b_msg": b.message})  # fmt: skip
        changed.add(task_id)
    if params:
        table = Step.__table__
        assert isinstance(table, Table)
        stmt = (
            update(table)
            .where(
                table.c.id == bindparam("b_id"),
                table.c.attempt == bindparam("b_attempt"),
                table.c.last_seq < bindparam("b_seq"),
            )
            .values(
                last_seq=bindparam("b_seq"),
                bytes_done=bindparam("b_done"),
                bytes_total=func.coalesce(bindparam("b_total"), table.c.bytes_total),
                rate_bytes_per_s=bindparam("b_rate"),
                message=bindparam("b_msg"),
            )
        )
        await session.execute(stmt, params, execution_options={"synchronize_session": False})
    for ev in slow:
        moved = await apply_step_event(session, ev, binder_for)
        if moved is not None:
            changed.add(moved)
    return changed


async def tasks_of_node(session: AsyncSession, node_id: str) -> list[UUID]:
    """Running tasks with a step on ``node_id``."""
    rows = await session.scalars(
        select(Task.id)
        .join(Step, Step.task_id == Task.id)
        .where(Step.node_id == node_id, Task.state == saga.TaskState.RUNNING.value)
        .distinct()
    )
    return list(rows)


async def claim_outbox(session: AsyncSession, limit: int) -> list[OutboxRow]:
    query = select(OutboxRow).where(OutboxRow.sent_at.is_(None)).order_by(OutboxRow.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(await session.scalars(query))


async def mark_sent(session: AsyncSession, ids: Sequence[int]) -> None:
    if ids:
        await session.execute(
            update(OutboxRow).where(OutboxRow.id.in_(list(ids))).values(sent_at=now())
        )
