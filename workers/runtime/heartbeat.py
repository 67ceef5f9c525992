"""Heartbeats (every 10 s: version, free transfer storage, running steps, cloud reachability)
and the cloud reachability checks behind them."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from uuid import UUID

import structlog

from protocol.messages import HeartbeatBody, HeartbeatEvent
from runtime.amqp import AmqpError, Publisher
from workers.clouds.base import CloudAdapter, CloudConfig
from workers.runtime.metrics import NodeMetrics

log = structlog.get_logger(__name__)


def heartbeat_body(
    *,
    version: str,
    started_at: datetime,
    storage_dir: Path,
    running_steps: tuple[UUID, ...],
    clouds: Mapping[str, bool],
    receiver_url: str | None,
) -> HeartbeatBody:
    storage_dir.mkdir(parents=True, exist_ok=True)
    usage = shutil.disk_usage(storage_dir)
    return HeartbeatBody(
        version=version,
        started_at=started_at,
        free_bytes=usage.free,
        total_bytes=usage.total,
        running_steps=running_steps,
        clouds=dict(clouds),
        receiver_url=receiver_url,
    )


class CloudChecker:
    """Checks each cloud with ``adapter.check()`` under a timeout; logs only state changes.

    One adapter per cloud is kept between checks, so a check is one cheap call on an open
    session, not a login and a logout every interval (vCenter keeps a session list); it is
    replaced when the cloud's configuration changes."""

    def __init__(
        self,
        clouds: Callable[[], Mapping[str, CloudConfig]],
        adapter_factory: Callable[[CloudConfig], CloudAdapter],
        timeout_s: float = 5.0,
    ) -> None:
        self.clouds = clouds
        self.adapter_factory = adapter_factory
        self.timeout_s = timeout_s
        self.reachable: dict[str, bool] = {}
        self._adapters: dict[str, tuple[CloudConfig, CloudAdapter]] = {}

    async def check_all(self) -> dict[str, bool]:
        configs = dict(self.clouds())
        for gone in set(self._adapters) - set(configs):
            await self._close(self._adapters.pop(gone)[1], gone)
        results = await asyncio.gather(*(self._check(c) for c in configs.values()))
        fresh = dict(zip(configs, results, strict=True))
        for cloud_id, ok in fresh.items():
            if self.reachable.get(cloud_id) != ok:
                log.info("cloud reachability changed", cloud_id=cloud_id, reachable=ok)
        self.reachable = fresh
        return fresh

    async def _adapter(self, config: CloudConfig) -> CloudAdapter:
        kept = self._adapters.get(config.cloud_id)
        if kept is not None and kept[0] == config:
            return kept[1]
        if kept is not None:
            await self._close(kept[1], config.cloud_id)
        adapter = self.adapter_factory(config)
        self._adapters[config.cloud_id] = (config, adapter)
        return adapter

    async def _check(self, config: CloudConfig) -> bool:
        adapter = await self._adapter(config)
        try:
            async with asyncio.timeout(self.timeout_s):
                await adapter.check()
            return True
        except Exception as exc:
            log.debug("cloud check failed", cloud_id=config.cloud_id, error=str(exc))
            return False

    async def _close(self, adapter: CloudAdapter, cloud_id: str) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await adapter.close()
        except Exception as exc:
            log.debug("adapter close failed", cloud_id=cloud_id, error=str(exc))

    async def close(self) -> None:
        """Close the kept adapters (log out of every cloud)."""
        for cloud_id, (_config, adapter) in list(self._adapters.items()):
            await self._close(adapter, cloud_id)
        self._adapters.clear()

    async def run(self, interval_s: float) -> None:
        while True:
            await self.check_all()
            await asyncio.sleep(interval_s)


class Heartbeat:
    def __init__(
        self,
        *,
        node_id: str,
        publisher: Publisher,
        body: Callable[[], HeartbeatBody],
        metrics: NodeMetrics,
    ) -> None:
        self.node_id = node_id
        self.publisher = publisher
        self.body = body
        self.metrics = metrics
        self._seq = 0
        self._failing = False

    async def beat(self) -> bool:
        self._seq += 1
        event = HeartbeatEvent(node_id=self.node_id, seq=self._seq, body=self.body())
        try:
            await self.publisher.publish_event(event)
        except AmqpError as exc:
            if not self._failing:
                log.warning("heartbeat not published", error=str(exc))
            self._failing = True
            return False
        if self._failing:
            log.info("heartbeats published again")
        self._failing = False
        self.metrics.heartbeats.inc()
        return True

    async def run(self, interval_s: float) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(interval_s)
