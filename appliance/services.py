"""Everything a running server holds: store, keys, bus, metrics. Built once in create_app."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib.metadata import version as dist_version
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from appliance.bus.aggregator import EventAggregator
from appliance.bus.brokerusers import BrokerUsers, broker_users
from appliance.bus.hub import Hub
from appliance.bus.relay import OutboxRelay
from appliance.bus.requests import RequestServer
from appliance.bus.worker import EventsWorker
from appliance.metrics import Metrics
from appliance.security import SecretBox, load_signing_key, transfer_signer
from appliance.settings import ServerSettings
from appliance.store import accounts
from appliance.store.db import create_engine, migrate, sessionmaker
from appliance.store.models import Node
from appliance.tasks import kinds
from protocol.messages import StepFailedEvent
from runtime import amqp

log = structlog.get_logger(__name__)

VERSION = dist_version("hcc")


@dataclass
class Bus:
    """The broker side of the server; ``ready`` once connected, declared and consuming."""

    connection: Any = None
    publisher: amqp.Publisher | None = None
    relay: OutboxRelay | None = None
    requests: RequestServer | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Services:
    settings: ServerSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    box: SecretBox
    signing_key: Ed25519PrivateKey
    metrics: Metrics
    hub: Hub
    aggregator: EventAggregator
    """Applies the events the relay makes up for commands it cannot route; node events are
    applied by the events worker, a process of its own."""
    events: EventsWorker
    kinds: kinds.Kinds
    broker_users: BrokerUsers
    bus: Bus = field(default_factory=Bus)
    background: list[asyncio.Task[None]] = field(default_factory=list)
    api_url: str = ""
    """Where this server's own API answers on this machine (AMQP requests are run there)."""

    def wake_relay(self) -> None:
        if self.bus.relay is not None:
            self.bus.relay.wake()

    async def declare_node_queue(self, node_id: str) -> None:
        """Declare a node's queue so commands wait for it; when the bus is down, the bus
        start-up declares every known node's queue."""
        if self.bus.connection is None:
            return
        channel = await self.bus.connection.channel()
        try:
            await amqp.declare_node_queue(channel, node_id)
        finally:
            await channel.close()

    async def db_ok(self) -> bool:
        try:
            async with self.sessions() as s:
                await s.execute(text("SELECT 1"))
            return True
        except Exception:
            return False


async def _bootstrap_admin(services: Services) -> None:
    configured = services.settings.admin_password
    password = configured.get_secret_value() if configured else secrets.token_urlsafe(12)
    async with services.sessions.begin() as s:
        created = await accounts.ensure_admin(s, password)
    if created and configured is None:
        # printed once, on the console only: it is never logged nor stored in clear
        print(f"hcc: created user admin with password {password}", file=sys.stderr, flush=True)
    elif created:
        log.info("created user admin from HCC_ADMIN_PASSWORD")


async def _fail_unroutable(services: Services, event: StepFailedEvent) -> None:
    async with services.sessions.begin() as s:
        note, _ = await services.aggregator.apply(s, event)
    if note:
        services.hub.publish(note)


async def _supervise_bus(services: Services) -> None:
    """Keep the bus running: a failure during set-up is logged and set-up starts over."""
    delays = amqp.backoff_delays(cap_s=30.0)
    while True:
        try:
            await _run_bus(services)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            services.bus.ready.clear()
            await _stop_requests(services)
            delay = next(delays)
            log.error("bus set-up failed; retrying", error=repr(exc), retry_in_s=round(delay, 1))
            if services.bus.connection is not None:
                with contextlib.suppress(Exception):
                    await services.bus.connection.close()
                services.bus.connection = None
            await asyncio.sleep(delay)


async def _run_bus(services: Services) -> None:
    """Connect (retrying while the broker is down), declare, then relay and consume."""
    settings = services.settings
    bus = services.bus
    bus.connection = await amqp.connect(settings.amqp_url, name="hcc-server")
    channel = await bus.connection.channel()
    await amqp.declare_topology(channel)
    async with services.sessions() as s:
        node_ids = list(await s.scalars(Node.__table__.select().with_only_columns(Node.id)))
    for node_id in node_ids:
        await amqp.declare_node_queue(channel, node_id)
    await channel.close()
    bus.publisher = await amqp.Publisher.open(bus.connection)

    async def fail(event: StepFailedEvent) -> None:
        await _fail_unroutable(services, event)

    bus.relay = OutboxRelay(
        services.sessions,
        bus.publisher,
        fail,
        poll_s=settings.outbox_poll_s,
        on_published=services.metrics.commands_published.inc,
    )
    bus.requests = RequestServer(
        lambda: services.api_url,
        cafile=str(settings.tls_cert) if settings.tls_cert is not None else None,
    )
    await bus.requests.start(bus.connection, bus.publisher)
    bus.ready.set()
    log.info("bus ready", nodes=len(node_ids))
    await bus.relay.run()


async def _stop_requests(services: Services) -> None:
    if services.bus.requests is not None:
        with contextlib.suppress(Exception):
            await services.bus.requests.stop()
        services.bus.requests = None


def local_api_url(settings: ServerSettings) -> str:
    """The API's URL from this machine: a wildcard listen address is reached on loopback."""
    host, port = settings.host_port
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.tls_cert is not None else "http"
    return f"{scheme}://{host}:{port}"


@contextlib.asynccontextmanager
async def running(settings: ServerSettings) -> AsyncIterator[Services]:
    """Open the store, start the bus, the events worker and the background loops; close all
    on exit."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    hub = Hub()
    metrics = Metrics()
    services_ref: list[Services] = []
    events = EventsWorker(
        settings,
        notify=hub.publish,
        on_applied=metrics.events_applied.inc,
        on_commands=lambda: services_ref[0].wake_relay(),
    )
    await events.spawn()  # it imports while the store is migrated
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        sessions = sessionmaker(engine)
        signing_key = load_signing_key(settings.data_dir)
        task_kinds = kinds.Kinds(transfer_signer(signing_key, settings.transfer_token_ttl_s))
        aggregator = EventAggregator(
            sessions,
            hub.publish,
            binder_for=task_kinds.binder_for,
            on_commands=lambda: services_ref[0].wake_relay(),
            on_applied=metrics.events_applied.inc,
        )
        services = Services(
            settings=settings,
            engine=engine,
            sessions=sessions,
            box=SecretBox.from_data_dir(settings.data_dir),
            signing_key=signing_key,
            kinds=task_kinds,
            metrics=metrics,
            hub=hub,
            aggregator=aggregator,
            events=events,
            broker_users=broker_users(settings.broker_users, settings.nodes_amqp_url),
            api_url=local_api_url(settings),
        )
        services_ref.append(services)
        await _bootstrap_admin(services)
        loops = [_supervise_bus(services), events.run()]
        services.background = [asyncio.create_task(c) for c in loops]
        try:
            yield services
        finally:
            for task in services.background:
                task.cancel()
            await asyncio.gather(*services.background, return_exceptions=True)
            await _stop_requests(services)
            if services.bus.connection is not None:
                with contextlib.suppress(Exception):
                    await services.bus.connection.close()
    finally:
        await events.close()
        await engine.dispose()
