"""In-process fan-out of change notifications to SSE clients (and tests).

Subscribers get a bounded queue; a slow subscriber loses old notifications rather than
slowing the aggregator (the UI re-reads the resource it is told changed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

Notification = dict[str, Any]


class Hub:
    def __init__(self, queue_size: int = 256) -> None:
        self._subscribers: set[asyncio.Queue[Notification]] = set()
        self._queue_size = queue_size

    def publish(self, notification: Notification) -> None:
        for queue in self._subscribers:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(notification)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Notification]]:
        queue: asyncio.Queue[Notification] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
