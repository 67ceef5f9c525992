"""Aggregates node events into the store, in batches, idempotently.

Each delivery's handler hands its event to the batcher and waits; the batcher applies
everything that queued up in one transaction, then the handlers return and the consumer
acks. A batch that fails is re-applied event by event, so one poisonous event is
dead-lettered alone (``Permanent``) instead of taking its neighbours with it.

Also here: the offline sweeper. A node whose heartbeats stop for ``timeout_s`` is shown
offline and its steps wait for it (DESIGN.md §3); its next heartbeat brings them back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from appliance.bus.hub import Notification
from appliance.store import fleet
from appliance.store import tasks as store_tasks
from appliance.store.accounts import now
from appliance.store.models import Node
from appliance.tasks import saga
from appliance.tasks.saga import Binder
from protocol.messages import Event, HeartbeatEvent, InventorySnapshotEvent, StepProgressEvent
from runtime.amqp import Permanent

log = structlog.get_logger(__name__)

BinderFor = Callable[[str], Binder | None]


class EventAggregator:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        notify: Callable[[Notification], None],
        *,
        binder_for: BinderFor,
        on_commands: Callable[[], None],
        on_applied: Callable[[int], None],
        batch: int = 300,
    ) -> None:
        self._sessions = sessions
        self._notify = notify
        self._binder_for = binder_for
        self._on_commands = on_commands
        self._on_applied = on_applied
        self._batch = batch
        self._pending: list[tuple[Event, asyncio.Future[None]]] = []
        self._kick = asyncio.Event()

    async def handle(self, event: Event, _message: object = None) -> None:
        """Consumer handler: returns once the event is durably applied (then it is acked)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((event, future))
        self._kick.set()
        await future

    async def run(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            while self._pending:
                batch, self._pending = self._pending[: self._batch], self._pending[self._batch :]
                await self._apply_batch(batch)
                await asyncio.sleep(0)  # let API requests in between batches

    async def _apply_batch(self, batch: Sequence[tuple[Event, asyncio.Future[None]]]) -> None:
        try:
            notes = await self._apply_all([event for event, _ in batch])
        except Exception as exc:
            log.warning("event batch failed; applying one by one", size=len(batch), error=repr(exc))
            for event, future in batch:
                try:
                    notes = await self._apply_all([event])
                except Exception as one_exc:
                    log.exception("event cannot be applied", event_id=str(event.id))
                    if not future.done():
                        future.set_exception(Permanent(f"cannot apply event: {one_exc!r}"))
                    continue
                self._publish(notes)
                if not future.done():
                    future.set_result(None)
            return
        self._publish(notes)
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    def _publish(self, notes: list[Notification]) -> None:
        for note in notes:
            self._notify(note)

    async def _apply_all(self, events: Sequence[Event]) -> list[Notification]:
        notes: list[Notification] = []
        commands = False
        progress = [e for e in events if isinstance(e, StepProgressEvent)]
        async with self._sessions.begin() as session:
            for event in events:
                if isinstance(event, StepProgressEvent):
                    continue
                note, made_commands = await self.apply(session, event)
                commands = commands or made_commands
                if note is not None and note not in notes:
                    notes.append(note)
            # after the others: a final event in the same batch wins over older progress
            for task_id in await store_tasks.apply_progress_batch(
                session, progress, self._binder_for
            ):
                note = {"type": "task", "id": str(task_id)}
                if note not in notes:
                    notes.append(note)
        self._on_applied(len(events))
        if commands:
            self._on_commands()
        return notes

    async def apply(self, session: AsyncSession, event: Event) -> tuple[Notification | None, bool]:
        """Apply one event; returns what changed and whether commands were queued."""
        if isinstance(event, HeartbeatEvent):
            return await self._heartbeat(session, event), False
        if isinstance(event, InventorySnapshotEvent):
            if await fleet.apply_inventory(session, event):
                return {"type": "cloud", "id": event.body.cloud_id}, False
            return None, False
        task_id = await store_tasks.apply_step_event(session, event, self._binder_for)
        if task_id is None:
            return None, False
        return {"type": "task", "id": str(task_id)}, event.type != "step.progress"

    async def _heartbeat(self, session: AsyncSession, event: HeartbeatEvent) -> Notification | None:
        node = await fleet.get_node(session, event.node_id)
        if node is None or not fleet.apply_heartbeat(node, event):
            return None
        if not node.online:
            node.online = True
            log.info("node online", node_id=node.id, version=event.body.version)
            await self._for_tasks_of(session, node.id, saga.node_online)
        return {"type": "node", "id": node.id}

    async def _for_tasks_of(
        self, session: AsyncSession, node_id: str, op: Callable[[saga.Task, str], saga.Outcome]
    ) -> None:
        for task_id in await store_tasks.tasks_of_node(session, node_id):
            # node_offline/online only change states; they never dispatch, so no binder
            await store_tasks.operate(session, task_id, lambda t: op(t, node_id))

    async def sweep_offline(self, timeout_s: float) -> list[str]:
        """Mark nodes without a recent heartbeat offline; their steps wait for them."""
        gone: list[str] = []
        async with self._sessions.begin() as session:
            for node in await session.scalars(select(Node).where(Node.online.is_(True))):
                if not fleet.node_online(node, timeout_s, at=now()):
                    node.online = False
                    gone.append(node.id)
                    log.warning("node offline: no heartbeat", node_id=node.id,
                                last_heartbeat=str(node.last_heartbeat))  # fmt: skip
                    await self._for_tasks_of(session, node.id, saga.node_offline)
        for node_id in gone:
            self._notify({"type": "node", "id": node_id})
        return gone

    async def run_sweeper(self, timeout_s: float, interval_s: float) -> None:
        while True:
            try:
                await self.sweep_offline(timeout_s)
            except Exception:
                log.exception("offline sweep failed; trying again next round")
            await asyncio.sleep(interval_s)
