"""The outbox relay: publishes committed commands, then marks them sent.

Publishing uses publisher confirms with ``mandatory=True`` (runtime.amqp.Publisher): a row
is marked sent only once the broker has the message in a queue. A command the broker
returns as unroutable (its node's queue is gone) fails its step with ``node-unknown``
instead of being marked sent silently. While the broker is away the relay waits and
retries; rows stay in the outbox, so a server crash loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from appliance.store import tasks as store_tasks
from appliance.store.models import OutboxRow
from protocol import parse_command
from protocol.messages import StepError, StepFailedBody, StepFailedEvent
from runtime.amqp import AmqpError, Publisher, Unroutable, backoff_delays

log = structlog.get_logger(__name__)

KILL_HOOK = "HCC_TEST_KILL_BEFORE_PUBLISH"
"""Test-only: when set to 1, the server SIGKILLs itself after a command is committed to the
outbox and before it is published (tests/e2e prove the command is not lost)."""

FailStep = Callable[[StepFailedEvent], Awaitable[None]]


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publisher: Publisher,
        fail_step: FailStep,
        *,
        poll_s: float = 1.0,
        batch: int = 100,
        on_published: Callable[[int], None] | None = None,
    ) -> None:
        self._on_published = on_published
        self._sessions = sessions
        self._publisher = publisher
        self._fail_step = fail_step
        self._poll_s = poll_s
        self._batch = batch
        self._wake = asyncio.Event()
        self.published = 0

    def wake(self) -> None:
        """Called after a commit that added outbox rows."""
        self._wake.set()

    async def run(self) -> None:
        delays = backoff_delays(cap_s=10.0)
        while True:
            try:
                sent = await self.relay_once()
                delays = backoff_delays(cap_s=10.0)
            except AmqpError as exc:
                delay = next(delays)
                log.warning("outbox relay: broker unavailable", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                continue
            if sent < self._batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_s)
                self._wake.clear()

    async def relay_once(self) -> int:
        """Publish one batch of unsent rows; returns how many were handled."""
        done: list[int] = []
        failed: list[StepFailedEvent] = []
        broker_error: AmqpError | None = None
        async with self._sessions.begin() as session:
            rows = await store_tasks.claim_outbox(session, self._batch)
            for row in rows:
                try:
                    unroutable = await self._publish(row)
                except AmqpError as exc:
                    broker_error = exc  # keep what was confirmed; the rest waits in the outbox
                    break
                if unroutable is not None:
                    failed.append(unroutable)
                done.append(row.id)
            await store_tasks.mark_sent(session, done)
        self.published += len(done)
        if self._on_published is not None:
            self._on_published(len(done))
        for event in failed:
            await self._fail_step(event)
        if broker_error is not None:
            raise broker_error
        return len(rows)

    async def _publish(self, row: OutboxRow) -> StepFailedEvent | None:
        command = parse_command(row.payload)
        if os.environ.get(KILL_HOOK) == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            await self._publisher.publish(row.exchange, row.routing_key, command)
        except Unroutable:
            row.last_error = f"no queue for node {row.routing_key!r}"
            log.error("command unroutable: unknown node", node_id=row.routing_key,
                      task_id=str(command.task_id), step_id=str(command.step_id))  # fmt: skip
            if command.step_id is None:
                return None
            return StepFailedEvent(
                node_id=command.node_id,
                task_id=command.task_id,
                step_id=command.step_id,
                attempt=command.attempt,
                seq=2**62,  # after anything the node could have said
                body=StepFailedBody(
                    error=StepError(
                        code="node-unknown",
                        message=f"node {command.node_id!r} has no command queue (removed?)",
                    )
                ),
            )
        return None
