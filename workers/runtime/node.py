"""The node process: wires journal, broker, runner, heartbeat and the HTTP listener together.

Start: open the journal, serve /metrics and /healthz, connect to the broker (waiting with
backoff while it is away), start the event relay, resume unfinished jobs, then consume
``hcc.node.<id>`` (waiting while the server has not declared it yet). A delivery is written
to the journal, then acked; the step runs from the journal. Stop (SIGTERM): stop consuming,
give running steps a grace period, leave the rest ``running`` in the journal (they resume at
the next start), publish the events still queued, close.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from aiohttp import web

from protocol import parse_command
from protocol.messages import CancelCommand, Command
from protocol.topology import node_queue
from runtime import amqp
from workers.clouds import make_adapter
from workers.clouds.base import CloudAdapter, CloudConfig
from workers.runtime.config import NodeConfig, save_config
from workers.runtime.enroll import (
    EnrollmentError,
    fetch_clouds,
    hcc_version,
    renew_transfer_token,
)
from workers.runtime.events import EventRelay, EventSink
from workers.runtime.heartbeat import CloudChecker, Heartbeat, heartbeat_body
from workers.runtime.journal import CANCELLED, FINISHED, PENDING, AsyncJournal, job_key
from workers.runtime.metrics import NodeMetrics
from workers.runtime.runner import StepRunner
from workers.runtime.steps import StepHandler, default_registry
from workers.settings import NodeSettings

log = structlog.get_logger(__name__)
T = TypeVar("T")

JOURNAL_FILE = "journal.db"
CONFIG_REFRESH_S = 300.0


class Node:
    def __init__(
        self,
        settings: NodeSettings,
        config: NodeConfig,
        *,
        adapter_factory: Callable[[CloudConfig], CloudAdapter] = make_adapter,
        registry: Mapping[str, StepHandler] | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self._config_lock = asyncio.Lock()
        self.node_id = settings.node_id
        self.metrics = NodeMetrics()
        self.journal = AsyncJournal.open(settings.data_dir / JOURNAL_FILE)
        self.sink = EventSink(self.journal, self.node_id)
        self.adapter_factory = adapter_factory
        self.runner = StepRunner(
            journal=self.journal,
            sink=self.sink,
            registry=registry if registry is not None else default_registry(),
            storage_dir=settings.storage_dir,
            clouds=self.clouds,
            adapter_factory=adapter_factory,
            metrics=self.metrics,
            progress_interval_s=settings.progress_interval_s,
            refresh_clouds=self.refresh_clouds,
            renew_token=self.renew_token,
        )
        self.checker = CloudChecker(self.clouds, adapter_factory, settings.cloud_check_timeout_s)
        self.started_at = datetime.now(UTC)
        self.connected = False

    def clouds(self) -> Mapping[str, CloudConfig]:
        return self.config.cloud_configs()

    @property
    def amqp_url(self) -> str:
        return self.settings.amqp_url or self.config.amqp_url

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; returns after a clean shutdown."""
        self.settings.storage_dir.mkdir(parents=True, exist_ok=True)
        http = await self._start_http()
        try:
            connection = await _until(
                stop, amqp.connect(self.amqp_url, name=f"hcc-node-{self.node_id}")
            )
            if connection is not None:
                try:
                    await self._serve(connection, stop)
                finally:
                    await connection.close()
        finally:
            await http.cleanup()
            await self.journal.close()
            log.info("node stopped")

    async def _serve(self, connection: AbstractRobustConnection, stop: asyncio.Event) -> None:
        self.connected = True
        publisher = await amqp.Publisher.open(connection)
        relay = EventRelay(
            self.journal, publisher, self.sink.wake, on_published=self._count_pending
        )
        heartbeat = Heartbeat(
            node_id=self.node_id, publisher=publisher, body=self._heartbeat_body,
            metrics=self.metrics,
        )  # fmt: skip
        interval = self.settings.heartbeat_interval_s
        background = [
            asyncio.create_task(_supervised("event relay", relay.run)),
            asyncio.create_task(_supervised("heartbeat", lambda: heartbeat.run(interval))),
            asyncio.create_task(_supervised("cloud checks", lambda: self.checker.run(interval))),
            asyncio.create_task(_supervised("config refresh", self._refresh_clouds_forever)),
        ]
        consumer: amqp.Consumer[Command] | None = None
        try:
            await self._resume()
            consumer = await _until(stop, self._consume(connection, publisher))
            await stop.wait()
            log.info("stopping: no new commands")
        finally:
            if consumer is not None:
                await consumer.stop(grace_s=self.settings.shutdown_grace_s)
            await self.runner.shutdown(self.settings.shutdown_grace_s)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.checker.close()
            if not await relay.drain(timeout_s=5.0):
                log.warning("events left unpublished; they go out at next start")
            await publisher.close()

    async def _resume(self) -> None:
        jobs = await self.journal.call(self.journal.sync.unfinished)
        for job in jobs:
            self.runner.start(job.command, resumed=job.state != PENDING)
        if jobs:
            log.info("resuming unfinished jobs", jobs=len(jobs))

    async def _consume(
        self, connection: AbstractRobustConnection, publisher: amqp.Publisher
    ) -> amqp.Consumer[Command]:
        queue, waiting = node_queue(self.node_id), False
        delays = amqp.backoff_delays(base_s=0.5, cap_s=10.0)
        while True:
            try:
                consumer = await amqp.consume(
                    connection, queue, self._on_command, parse=parse_command,
                    publisher=publisher, prefetch=self.settings.prefetch,
                )  # fmt: skip
            except Exception as exc:
                if not waiting:
                    log.warning(
                        "cannot consume yet; the server declares this queue",
                        queue=queue,
                        error=str(exc),
                    )
                waiting = True
                await asyncio.sleep(next(delays))
                continue
            log.info("consuming commands", queue=queue, prefetch=self.settings.prefetch)
            return consumer

    async def _on_command(self, command: Command, message: AbstractIncomingMessage) -> None:
        lag = (datetime.now(UTC) - command.ts).total_seconds()
        self.metrics.queue_lag.observe(max(0.0, lag))
        with structlog.contextvars.bound_contextvars(
            task_id=str(command.task_id) if command.task_id else None,
            step_id=str(command.step_id) if command.step_id else None,
            command=command.type,
        ):
            if command.node_id != self.node_id:
                self.metrics.commands.labels(command.type, "wrong-node").inc()
                raise amqp.Permanent(
                    f"command for node {command.node_id!r} reached {self.node_id!r}"
                )
            if isinstance(command, CancelCommand):
                body = command.body
                await self.runner.cancel(body.target_step_id, body.reason, command.attempt)
                self.metrics.commands.labels(command.type, "accepted").inc()
                return
            is_new, state = await self.journal.call(self.journal.sync.record, command)
            outcome = self._dispatch(command, is_new, state)
            if outcome == "cancelled":
                await self.runner.reject_cancelled(command)
            self.metrics.commands.labels(command.type, outcome).inc()

    def _dispatch(self, command: Command, is_new: bool, state: str) -> str:
        if state == CANCELLED and is_new:
            return "cancelled"
        if is_new:
            self.runner.start(command)
            return "accepted"
        if state not in FINISHED and not self.runner.is_running(job_key(command)):
            self.runner.start(command, resumed=True)
            return "resumed"
        log.info("duplicate command ignored", state=state)
        return "duplicate"

    def _count_pending(self, pending: int) -> None:
        self.metrics.events_pending.set(pending)

    def _heartbeat_body(self) -> Any:
        return heartbeat_body(
            version=hcc_version(),
            started_at=self.started_at,
            storage_dir=self.settings.storage_dir,
            running_steps=self.runner.running_steps(),
            clouds=self.checker.reachable,
            receiver_url=self.settings.advertised_url,
        )

    async def renew_token(self, artifact_id: str, destination_node: str) -> str:
        """A fresh capability token for a running send (POST /api/v1/node/transfer-token)."""
        if not self.config.server_url or not self.config.node_token:
            raise EnrollmentError("this node has no server to renew transfer tokens from")
        return await renew_transfer_token(
            self.config.server_url, self.config.node_token, artifact_id, destination_node
        )

    async def refresh_clouds(self) -> Mapping[str, CloudConfig]:
        """Fetch this node's clouds from the server, save them; the clouds known afterwards."""
        if not (self.config.server_url and self.config.node_token):
            return self.clouds()
        async with self._config_lock:  # one fetch and save at a time: the newest is kept
            try:
                clouds = await fetch_clouds(self.config.server_url, self.config.node_token)
            except EnrollmentError as exc:
                log.warning("cloud config refresh failed", error=str(exc))
                return self.clouds()
            self.config = self.config.model_copy(update={"clouds": clouds})
            await asyncio.to_thread(save_config, self.settings.data_dir, self.config)
        return self.clouds()

    async def _refresh_clouds_forever(self) -> None:
        if not (self.config.server_url and self.config.node_token):
            return
        while True:
            await self.refresh_clouds()
            await asyncio.sleep(CONFIG_REFRESH_S)

    def _http_app(self) -> web.Application:
        """The transfer receiver (when the server's key is known) plus /metrics and /healthz."""
        key_pem = self.config.server_public_key.strip()
        if not key_pem:
            log.warning("no server public key in the node config: transfer receiver disabled")
            app = web.Application()
        else:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            from workers.transfer.receiver import discard_artifact, make_receiver_app

            key = load_pem_public_key(key_pem.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("the server public key is not an Ed25519 key")
            app = make_receiver_app(
                self.settings.storage_dir,
                key,
                self.node_id,
                self.settings.quota_bytes,
                reserve_bytes=self.settings.reserve_bytes,
            )
            receiver = app

            async def discard(artifact_id: str) -> None:
                await discard_artifact(receiver, artifact_id)

            self.runner.discard_received = discard
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def _start_http(self) -> web.AppRunner:
        ssl_context = None
        if self.settings.tls:
            from workers.transfer.tls import ensure_certificate, server_ssl_context

            cert = ensure_certificate(self.settings.data_dir, self.node_id)
            ssl_context = server_ssl_context(cert)
        runner = web.AppRunner(self._http_app(), access_log=None)
        await runner.setup()
        host, port = self.settings.host_port
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        log.info("node listening", listen=f"{host}:{port}", tls=ssl_context is not None)
        return runner

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "node_id": self.node_id,
                "connected": self.connected,
                "running_steps": [str(s) for s in self.runner.running_steps()],
            }
        )


async def _supervised(
    name: str, run: Callable[[], Coroutine[Any, Any, None]], restart_s: float = 1.0
) -> None:
    """Run a background loop; if it crashes (disk full, a bug), log it and start it again."""
    while True:
        try:
            await run()
            return
        except Exception:
            log.exception("background task crashed; restarting", task=name)
            await asyncio.sleep(restart_s)


async def _until(stop: asyncio.Event, work: Coroutine[Any, Any, T]) -> T | None:
    """``await work``, unless ``stop`` is set first (then ``work`` is cancelled: None)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None
