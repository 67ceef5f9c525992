"""Step events: throttled progress, seq from the journal, a relay that publishes in order.

An event is first written to the journal's outbox (with its seq), then the relay publishes it
with a publisher confirm and deletes the row. A broker outage or a node restart delays events
but loses none, and seq keeps increasing across restarts.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from protocol import parse_event
from protocol.messages import Command, Envelope
from runtime.amqp import AmqpError, Publisher
from workers.runtime.journal import AsyncJournal, job_key

log = structlog.get_logger(__name__)


@dataclass
class ProgressThrottle:
    """Let a progress update through at most every ``interval_s`` or every ``fraction`` done."""

    interval_s: float = 1.0
    fraction: float = 0.01
    _last_t: float | None = None
    _last_done: int = 0

    def admit(self, now: float, done: int, total: int | None) -> bool:
        due = (
            self._last_t is None
            or now - self._last_t >= self.interval_s
            or (bool(total) and done - self._last_done >= (total or 0) * self.fraction)
            or (total is not None and done >= total > self._last_done)
        )
        if due:
            self._last_t, self._last_done = now, done
        return due


@dataclass
class RateMeter:
    """Bytes per second over about the last ``window_s``: how fast a step goes now, not its
    average since it started (which would count the wait for an export to write its first
    chunk, and the bytes a resumed send found already there, and make the first ETA absurd).
    Unknown (0.0) until two readings are apart in time."""

    window_s: float = 10.0
    _samples: deque[tuple[float, int]] = field(default_factory=deque)

    def update(self, now: float, done: int) -> float:
        samples = self._samples
        if samples and done < samples[-1][1]:
            samples.clear()  # counted again from lower down (a new pass): start over
        samples.append((now, done))
        # keep one reading at least window_s old, so the rate spans the whole window
        while len(samples) > 2 and now - samples[1][0] >= self.window_s:
            samples.popleft()
        t0, d0 = samples[0]
        return (done - d0) / (now - t0) if now > t0 else 0.0


class EventSink:
    """Builds a command's events and queues them in the journal; wakes the relay."""

    def __init__(self, journal: AsyncJournal, node_id: str) -> None:
        self.journal = journal
        self.node_id = node_id
        self.wake = asyncio.Event()

    async def emit(
        self,
        command: Command,
        event_type: Callable[..., Envelope],
        body: Any,
        *,
        state: str | None = None,
        error: str | None = None,
    ) -> Envelope:
        def make(seq: int) -> Envelope:
            return event_type(
                node_id=self.node_id,
                task_id=command.task_id,
                step_id=command.step_id,
                attempt=command.attempt,
                seq=seq,
                body=body,
            )

        event = await self.journal.call(
            self.journal.sync.append_event, job_key(command), make, state=state, error=error
        )
        self.wake.set()
        return event


class EventRelay:
    """Publishes the outbox in order; retries while the broker is away."""

    def __init__(
        self,
        journal: AsyncJournal,
        publisher: Publisher,
        wake: asyncio.Event,
        *,
        retry_s: float = 1.0,
        on_published: Callable[[int], None] | None = None,
    ) -> None:
        self.journal = journal
        self.publisher = publisher
        self.wake = wake
        self.retry_s = retry_s
        self.on_published = on_published
        self._failing = False

    async def run(self) -> None:
        while True:
            self.wake.clear()
            sent = await self.flush()
            if sent is None:
                await asyncio.sleep(self.retry_s)
            elif sent == 0:
                await self.wake.wait()

    async def flush(self, limit: int = 100) -> int | None:
        """Publish up to ``limit`` pending events; their count, or None if publishing failed."""
        rows = await self.journal.call(self.journal.sync.pending_events, limit)
        for row in rows:
            try:
                await self.publisher.publish_event(parse_event(row.event))
            except AmqpError as exc:
                if not self._failing:
                    log.warning("event publishing failed; will retry", error=str(exc))
                    self._failing = True
                return None
            await self.journal.call(self.journal.sync.delete_event, row.id)
        if rows and self._failing:
            log.info("event publishing recovered")
            self._failing = False
        if self.on_published is not None:
            self.on_published(await self.journal.call(self.journal.sync.count_pending_events))
        return len(rows)

    async def drain(self, timeout_s: float) -> bool:
        """Publish everything pending (at shutdown); True when the outbox is empty."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            sent = await self.flush()
            if sent == 0:
                return True
            if sent is None:
                await asyncio.sleep(min(self.retry_s, max(0.0, deadline - time.monotonic())))
        return False
