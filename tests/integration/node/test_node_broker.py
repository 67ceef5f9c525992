"""A node and a broker that goes away: down at start, restarted while the node runs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aio_pika.abc import AbstractRobustConnection

from protocol.messages import InventoryRefreshBody, InventoryRefreshCommand
from runtime import amqp
from tests.fixtures.rabbit import PrivateRabbit
from tests.integration.node.harness import (
    EventTap,
    NodeProcess,
    cloud_entry,
    poll,
    write_node_config,
)

pytestmark = [pytest.mark.rabbit, pytest.mark.slow]


@pytest.fixture
def node(tmp_path: Path, private_rabbit: PrivateRabbit) -> Iterator[NodeProcess]:
    data = tmp_path / "n1"
    write_node_config(data, "n1", private_rabbit.url, [cloud_entry("c1")])
    process = NodeProcess("n1", data)
    yield process
    process.kill()


def refresh() -> InventoryRefreshCommand:
    return InventoryRefreshCommand(
        node_id="n1", step_id=uuid.uuid4(), body=InventoryRefreshBody(cloud_id="c1")
    )


async def server_side(url: str) -> tuple[AbstractRobustConnection, amqp.Publisher, EventTap]:
    """What the server does: topology, the node's queue, a durable subscription to events."""
    connection = await amqp.connect(url, name="test-server", attempts=20, max_delay_s=0.5)
    channel = await connection.channel()
    await amqp.declare_topology(channel)
    await amqp.declare_node_queue(channel, "n1")
    tap = await EventTap(connection, "n1").start(durable_name="test-tap-n1")
    return connection, await amqp.Publisher.open(connection), tap


async def test_broker_down_at_start_node_retries_then_works(private_rabbit, node):
    private_rabbit.stop()
    node.start()
    await poll(lambda: node.log_text().count("amqp connect failed; retrying") >= 2, what="retries")
    assert node.proc is not None
    assert node.proc.poll() is None  # still running, not crashed
    await asyncio.to_thread(private_rabbit.start)
    connection, publisher, tap = await server_side(private_rabbit.url)
    command = refresh()
    await publisher.publish_command(command)
    await tap.wait("step.succeeded", command.step_id, timeout_s=60)
    assert "guest:guest@" not in node.log_text()  # the broker password never reaches the log
    await connection.close()


async def test_broker_restart_while_node_runs_loses_no_command(private_rabbit, node):
    connection, publisher, tap = await server_side(private_rabbit.url)
    node.start()
    before = refresh()
    await publisher.publish_command(before)
    await tap.wait("step.succeeded", before.step_id)
    await connection.close()

    await asyncio.to_thread(private_rabbit.stop)
    await asyncio.to_thread(private_rabbit.start)
    # published the moment the broker is back, before the node has reconnected
    connection, publisher, tap = await server_side(private_rabbit.url)
    after = [refresh() for _ in range(5)]
    for command in after:
        await publisher.publish_command(command)
    for command in after:
        await tap.wait("step.succeeded", command.step_id, timeout_s=60)
    await poll(lambda: "amqp reconnected" in node.log_text(), what="reconnect logged")
    assert node.proc is not None
    assert node.proc.poll() is None
    await connection.close()
