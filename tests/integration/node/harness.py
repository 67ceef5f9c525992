"""Real node processes and a tap on hcc.events, for the node's integration tests.

``write_node_config`` is the documented stand-in for enrollment: it writes ``node.json`` in the
data dir exactly as ``hcc node`` saves what ``POST /api/v1/enroll`` returned, so a node starts
without a server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from protocol import parse_event
from protocol.messages import Envelope
from protocol.topology import EVENTS_EXCHANGE
from tests.fixtures.rabbit import free_port
from workers.runtime.config import CloudEntry, NodeConfig, save_config

REPO = Path(__file__).resolve().parents[3]


def write_node_config(
    data_dir: Path,
    node_id: str,
    amqp_url: str,
    clouds: Sequence[CloudEntry] = (),
    server_public_key: str = "",
) -> Path:
    """Write the node config file as enrollment would (no server needed).

    Without ``server_public_key`` (PEM) the node runs without a transfer receiver.
    """
    config = NodeConfig(
        node_id=node_id,
        amqp_url=amqp_url,
        clouds=list(clouds),
        server_public_key=server_public_key,
    )
    return save_config(data_dir, config)


def cloud_entry(cloud_id: str = "c1", adapter: str = "StaticAdapter", **options: str) -> CloudEntry:
    return CloudEntry(
        cloud_id=cloud_id,
        kind="vsphere",
        endpoint="https://127.0.0.1:1/sdk",
        username="u",
        password="p",
        options={"adapter": f"tests.integration.node.clouds:{adapter}", **options},
    )


async def poll(predicate: Callable[[], Any], timeout_s: float = 60.0, what: str = "") -> Any:
    end = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what or predicate}")
        await asyncio.sleep(0.05)


async def next_message(
    queue: aio_pika.abc.AbstractQueue, timeout_s: float = 60.0
) -> aio_pika.abc.AbstractIncomingMessage:
    """The next message of ``queue`` (acked), polling with basic.get until ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while True:
        message = await queue.get(fail=False)
        if message is not None:
            await message.ack()
            return message
        if time.monotonic() > end:
            raise AssertionError(f"no message on {queue.name} within {timeout_s}s")
        await asyncio.sleep(0.05)


class NodeProcess:
    """``python -m cli.node`` with HCC_ settings; stdout/stderr to ``<data_dir>/node.log``."""

    def __init__(self, node_id: str, data_dir: Path, **env: str) -> None:
        self.node_id = node_id
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {
            **os.environ,
            "HCC_NODE_ID": node_id,
            "HCC_DATA_DIR": str(data_dir),
            "HCC_LISTEN": f"127.0.0.1:{self.port}",
            "HCC_HEARTBEAT_INTERVAL_S": "0.5",
            "HCC_PROGRESS_INTERVAL_S": "0",
            "HCC_SHUTDOWN_GRACE_S": "1",
            "PYTHONPATH": str(REPO),
            **env,
        }
        self.env.pop("CI", None)
        self.log = data_dir / "node.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli.node"],
                env=self.env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout_s)
        self.proc = None
        return code

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(30)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


class EventTap:
    """Collects the events of one node from hcc.events through a queue of its own."""

    def __init__(self, connection: AbstractRobustConnection, node_id: str) -> None:
        self.connection = connection
        self.node_id = node_id
        self.events: list[Envelope] = []

    async def start(self, *, durable_name: str | None = None) -> EventTap:
        channel = await self.connection.channel()
        exchange = await channel.declare_exchange(
            EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        if durable_name:
            queue = await channel.declare_queue(durable_name, durable=True)
        else:
            queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, f"node.{self.node_id}.#")

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            self.events.append(parse_event(message.body))
            await message.ack()

        await queue.consume(on_message)
        return self

    def of_type(self, event_type: str, step_id: object = None) -> list[Envelope]:
        return [
            e
            for e in self.events
            if getattr(e, "type", None) == event_type and (step_id is None or e.step_id == step_id)
        ]

    def for_step(self, step_id: object) -> list[Envelope]:
        return [e for e in self.events if e.step_id == step_id]

    async def wait(
        self, event_type: str, step_id: object = None, timeout_s: float = 60.0
    ) -> Envelope:
        found = await poll(
            lambda: self.of_type(event_type, step_id), timeout_s, f"{event_type} {step_id}"
        )
        event: Envelope = found[0]
        return event
