"""Store: migrations, accounts, tasks + outbox in one transaction, idempotent aggregation."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from appliance.store import accounts, fleet
from appliance.store import tasks as store_tasks
from appliance.store.db import migrate
from appliance.store.models import Cloud, OutboxRow, Step
from appliance.tasks import saga
from appliance.tasks.saga import StepPlan
from protocol.messages import (
    HeartbeatBody,
    HeartbeatEvent,
    InventoryItem,
    InventorySnapshotBody,
    InventorySnapshotEvent,
    ObjectKind,
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

Sessions = async_sessionmaker[AsyncSession]


def plans() -> list[StepPlan]:
    return [
        StepPlan("first", "n1", {"type": "cleanup", "body": {"artifact_id": "a"}}, {}),
        StepPlan(
            "second",
            "n2",
            {"type": "cleanup", "body": {"artifact_id": "b"}},
            {"first": "succeeded"},
        ),
    ]


async def outbox(sessions: Sessions) -> list[dict[str, Any]]:
    async with sessions() as s:
        rows = await s.scalars(select(OutboxRow).order_by(OutboxRow.id))
        return [{"key": r.routing_key, **json.loads(r.payload)} for r in rows]


async def new_task(sessions: Sessions) -> tuple[UUID, list[Step]]:
    async with sessions.begin() as s:
        task = await store_tasks.create_task(s, "test", {}, "alice", plans())
    async with sessions() as s:
        loaded = await store_tasks.load_task(s, task.id)
        assert loaded
        return task.id, loaded[1]


async def apply(sessions: Sessions, event) -> UUID | None:
    async with sessions.begin() as s:
        return await store_tasks.apply_step_event(s, event, lambda _kind: None)


async def test_migrate_is_idempotent(db_url):
    from appliance.store.db import create_engine

    engine = create_engine(db_url)
    await migrate(engine)
    await migrate(engine)
    await engine.dispose()


async def test_admin_bootstrap_login_and_tokens(sessions: Sessions):
    async with sessions.begin() as s:
        assert await accounts.ensure_admin(s, "pw-1")
        assert not await accounts.ensure_admin(s, "other")
    async with sessions.begin() as s:
        assert await accounts.login(s, "admin", "wrong", timedelta(hours=1)) is None
        got = await accounts.login(s, "admin", "pw-1", timedelta(hours=1))
        assert got is not None
        token, user, _ = got
        assert user.role == "admin"
        expired = await accounts.login(s, "admin", "pw-1", timedelta(seconds=-1))
        assert expired
    async with sessions() as s:
        p = await accounts.principal_for_token(s, token)
        assert p == accounts.Principal("admin", accounts.Role.ADMIN)
        assert await accounts.principal_for_token(s, expired[0]) is None
        assert await accounts.principal_for_token(s, "no-such-token") is None
    async with sessions.begin() as s:
        await accounts.logout(s, token)
    async with sessions() as s:
        assert await accounts.principal_for_token(s, token) is None


async def test_task_and_its_first_command_commit_together(sessions: Sessions):
    task_id, steps = await new_task(sessions)
    sent = await outbox(sessions)
    assert [(m["key"], m["type"], m["step_id"]) for m in sent] == [
        ("n1", "cleanup", str(steps[0].id))
    ]
    assert sent[0]["task_id"] == str(task_id)
    assert [s.state for s in steps] == ["dispatched", "pending"]


async def test_rollback_leaves_no_command(sessions: Sessions):
    async def crash() -> None:
        async with sessions.begin() as s:
            await store_tasks.create_task(s, "test", {}, "alice", plans())
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        await crash()
    assert await outbox(sessions) == []


async def test_events_aggregate_idempotently(sessions: Sessions):
    task_id, steps = await new_task(sessions)
    first = steps[0].id
    base = {"task_id": task_id, "step_id": first, "node_id": "n1", "attempt": 0}
    started = StepStartedEvent(**base, seq=0, body=StepStartedBody(kind="cleanup"))
    p1 = StepProgressEvent(**base, seq=1, body=StepProgressBody(bytes_done=10, bytes_total=100))
    p2 = StepProgressEvent(**base, seq=2, body=StepProgressBody(bytes_done=50, bytes_total=100))
    done = StepSucceededEvent(**base, seq=3, body=StepSucceededBody(bytes_done=100))
    assert await apply(sessions, started) == task_id
    assert await apply(sessions, p2) == task_id
    assert await apply(sessions, p1) is None  # out of order: older than what we have
    assert await apply(sessions, p2) is None  # duplicate
    wrong_node = StepProgressEvent(**{**base, "node_id": "n2"}, seq=9, body=p2.body)
    assert await apply(sessions, wrong_node) is None
    stale = StepSucceededEvent(**{**base, "attempt": 7}, seq=10, body=done.body)
    assert await apply(sessions, stale) is None
    async with sessions() as s:
        step = await s.get(Step, first)
        assert step
        assert (step.state, step.bytes_done, step.last_seq) == ("running", 50, 2)
    assert await apply(sessions, done) == task_id
    assert await apply(sessions, done) is None
    sent = await outbox(sessions)
    assert [m["step_id"] for m in sent] == [str(first), str(steps[1].id)]
    second = {**base, "step_id": steps[1].id, "node_id": "n2"}
    await apply(sessions, StepSucceededEvent(**second, seq=0, body=StepSucceededBody()))
    async with sessions() as s:
        loaded = await store_tasks.load_task(s, task_id)
        assert loaded
        assert loaded[0].state == "succeeded"
        assert loaded[0].finished_at is not None


async def test_failure_then_retry_dispatches_a_new_attempt(sessions: Sessions):
    task_id, steps = await new_task(sessions)
    base = {"task_id": task_id, "step_id": steps[0].id, "node_id": "n1", "attempt": 0}
    err = StepError(code="cloud-unreachable", message="vCenter did not answer", retryable=True)
    await apply(sessions, StepFailedEvent(**base, seq=0, body=StepFailedBody(error=err)))
    async with sessions() as s:
        loaded = await store_tasks.load_task(s, task_id)
        assert loaded
        assert loaded[0].state == "failed"
        assert loaded[0].error == {"step": "first", **err.model_dump()}
    async with sessions.begin() as s:
        await store_tasks.operate(s, task_id, saga.retry)
    sent = await outbox(sessions)
    assert [(m["step_id"], m["attempt"]) for m in sent] == [
        (str(steps[0].id), 0),
        (str(steps[0].id), 1),
    ]
    # the old attempt's late events no longer count; the new attempt's do, from seq 0
    assert (
        await apply(sessions, StepProgressEvent(**base, seq=5, body=StepProgressBody(bytes_done=1)))
        is None
    )
    new = {**base, "attempt": 1}
    assert await apply(sessions, StepStartedEvent(**new, seq=0, body=StepStartedBody(kind="x")))


async def test_cancel_sends_cancel_to_running_step(sessions: Sessions):
    task_id, steps = await new_task(sessions)
    async with sessions.begin() as s:
        await store_tasks.operate(s, task_id, saga.cancel)
    sent = await outbox(sessions)
    assert sent[-1]["type"] == "cancel"
    assert sent[-1]["body"]["target_step_id"] == str(steps[0].id)
    async with sessions.begin() as s:
        with pytest.raises(saga.IllegalTransition):
            await store_tasks.operate(s, task_id, saga.retry)


async def test_a_locked_task_has_one_writer_at_a_time(sessions: Sessions):
    """The events worker and the API are two processes writing the same tasks: a cancel must
    not read a task while the worker is moving it, or the worker's commit would dispatch a
    step the cancel never saw (a lost update: the task would hang in ``cancelling``).
    ``load_task(lock=True)`` waits for the writer that holds the task, on both databases."""
    task_id, steps = await new_task(sessions)
    async with sessions() as worker, sessions() as api:
        loaded = await store_tasks.load_task(worker, task_id, lock=True)
        assert loaded
        task, rows = loaded
        cancel = asyncio.create_task(store_tasks.operate(api, task_id, saga.cancel))
        # bounded wait for something that must not happen: the cancel reading the task now
        finished, _ = await asyncio.wait({cancel}, timeout=1.0)
        assert not finished, "a second writer read the task while the first one held it"
        rows[1].state = saga.StepState.DISPATCHED.value  # what the worker decided meanwhile
        task.version += 1
        await worker.commit()
        await cancel
        await api.commit()
    sent = await outbox(sessions)
    cancelled = {m["body"]["target_step_id"] for m in sent if m["type"] == "cancel"}
    assert cancelled == {str(steps[0].id), str(steps[1].id)}  # the dispatched one too


async def test_outbox_claim_and_mark_sent(sessions: Sessions):
    await new_task(sessions)
    await new_task(sessions)
    async with sessions.begin() as s:
        rows = await store_tasks.claim_outbox(s, 10)
        assert len(rows) == 2
        await store_tasks.mark_sent(s, [rows[0].id])
    async with sessions.begin() as s:
        assert [r.id for r in await store_tasks.claim_outbox(s, 10)] == [rows[1].id]


async def test_heartbeat_and_inventory(sessions: Sessions):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    async with sessions.begin() as s:
        node = await fleet.add_node(s, "n1", "h")
        beat = HeartbeatEvent(
            node_id="n1",
            ts=t0,
            body=HeartbeatBody(version="1", started_at=t0, free_bytes=5, total_bytes=9),
        )
        assert fleet.apply_heartbeat(node, beat)
        assert not fleet.apply_heartbeat(node, beat)  # duplicate
        assert fleet.node_online(node, 30, at=t0 + timedelta(seconds=29))
        assert not fleet.node_online(node, 30, at=t0 + timedelta(seconds=31))
        s.add(
            Cloud(
                id="c1", kind="vsphere", endpoint="https://vc", username="u", password_enc=b"x",
                node_id="n1", created_at=t0, updated_at=t0,
            )
        )  # fmt: skip
    items = (
        InventoryItem(id="dc-1", kind=ObjectKind.DATACENTER, name="DC0", path="DC0"),
        InventoryItem(id="vm-1", kind=ObjectKind.VM, name="web_01", path="DC0/vm/web_01",
                      parent_id="dc-1"),
        InventoryItem(id="vm-2", kind=ObjectKind.VM, name="db%01", path="DC0/vm/db%01",
                      parent_id="dc-1"),
    )  # fmt: skip
    snap = InventorySnapshotEvent(
        node_id="n1", ts=t0, body=InventorySnapshotBody(cloud_id="c1", items=items)
    )
    foreign = InventorySnapshotEvent(
        node_id="n2", ts=t0 + timedelta(1), body=InventorySnapshotBody(cloud_id="c1")
    )
    async with sessions.begin() as s:
        assert await fleet.apply_inventory(s, snap)
        assert not await fleet.apply_inventory(s, foreign)  # not the cloud's node
    async with sessions.begin() as s:
        assert not await fleet.apply_inventory(s, snap)  # not newer
    async with sessions() as s:
        got, total = await fleet.list_inventory(s, "c1", 0, 10, kind="vm")
        assert total == 2
        assert [i["name"] for i in got] == ["db%01", "web_01"]
        got, total = await fleet.list_inventory(s, "c1", 0, 10, name="%")
        assert [i["name"] for i in got] == ["db%01"]  # % is literal, not a wildcard
        got, total = await fleet.list_inventory(s, "c1", 0, 10, parent="dc-1")
        assert total == 2
        found = await fleet.find_inventory_item(s, "c1", "DC0/vm/web_01")
        assert found is not None
        assert found["id"] == "vm-1"
        assert await s.scalar(select(func.count()).select_from(OutboxRow)) == 0


async def test_progress_batch_coalesces_and_respects_order(sessions: Sessions):
    task_id, steps = await new_task(sessions)
    first = steps[0].id
    base = {"task_id": task_id, "step_id": first, "node_id": "n1", "attempt": 0}

    def prog(seq: int, done: int, **kw: Any) -> StepProgressEvent:
        return StepProgressEvent(
            **{**base, **kw}, seq=seq, body=StepProgressBody(bytes_done=done, bytes_total=100)
        )

    async def batch(*events: StepProgressEvent) -> set[UUID]:
        async with sessions.begin() as s:
            return await store_tasks.apply_progress_batch(s, events, lambda _k: None)

    # not running yet: the slow path starts the step
    assert await batch(prog(1, 10)) == {task_id}
    # coalesced: the newest per step wins, whatever the arrival order
    assert await batch(prog(4, 40), prog(2, 20), prog(3, 30)) == {task_id}
    async with sessions() as s:
        step = await s.get(Step, first)
        assert step
        assert (step.state, step.bytes_done, step.last_seq) == ("running", 40, 4)
    # stale, foreign node, other attempt: nothing changes
    assert await batch(prog(3, 99), prog(9, 99, node_id="n2"), prog(9, 99, attempt=3)) == set()
    await apply(
        sessions, StepSucceededEvent(**base, seq=10, body=StepSucceededBody(bytes_done=100))
    )
    assert await batch(prog(11, 1)) == set()  # a finished step takes no more progress
    async with sessions() as s:
        step = await s.get(Step, first)
        assert step
        assert (step.state, step.bytes_done) == ("succeeded", 100)
