"""runtime/amqp.py against the real broker: topology, confirmed publish, dead-lettering consume."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import pytest
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from yarl import URL

from protocol import parse_command
from protocol.messages import Command, InventoryRefreshBody, InventoryRefreshCommand
from protocol.topology import (
    COMMANDS_EXCHANGE,
    DEAD_EXCHANGE,
    DEAD_REASON_HEADER,
    DEAD_SOURCE_HEADER,
    DELIVERY_LIMIT,
    node_queue,
)
from runtime import amqp
from tests.fixtures.rabbit import PrivateRabbit, free_port

pytestmark = pytest.mark.rabbit


async def until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def conn(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await amqp.connect(amqp_url, name="test", attempts=3)
    channel = await connection.channel()
    await amqp.declare_topology(channel)
    await channel.close()
    yield connection
    await connection.close()


async def tap_dead(connection: AbstractRobustConnection) -> aio_pika.abc.AbstractQueue:
    """A private queue on the hcc.dead fanout, to see dead letters without consuming hcc.dead."""
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(DEAD_EXCHANGE)
    return queue


async def next_message(queue: aio_pika.abc.AbstractQueue, timeout_s: float = 10.0) -> Any:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        message = await queue.get(fail=False)
        if message is not None:
            await message.ack()
            return message
        await asyncio.sleep(0.02)
    raise AssertionError(f"no message on {queue.name} in {timeout_s}s")


def refresh(node_id: str) -> InventoryRefreshCommand:
    return InventoryRefreshCommand(
        node_id=node_id, step_id=uuid.uuid4(), body=InventoryRefreshBody(cloud_id="c1")
    )


def queue_arguments(amqp_url: str) -> dict[str, dict[str, Any]]:
    vhost = URL(amqp_url).path.lstrip("/")
    out = subprocess.run(
        ["rabbitmqctl", "list_queues", "-p", vhost, "name", "arguments", "--formatter", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = json.loads(out[out.index("[") :])
    return {row["name"]: {arg[0]: arg[-1] for arg in row["arguments"]} for row in rows}


async def test_topology_is_idempotent_and_queues_have_quorum_arguments(conn, amqp_url):
    channel = await conn.channel()
    await amqp.declare_topology(channel)  # second time: same names and arguments, no error
    await amqp.declare_node_queue(channel, "n1")
    await amqp.declare_node_queue(channel, "n1")
    args = queue_arguments(amqp_url)
    assert set(args) >= {"hcc.server.events", "hcc.server.requests", "hcc.dead", "hcc.node.n1"}
    for name in ("hcc.server.events", "hcc.node.n1"):
        assert args[name]["x-queue-type"] == "quorum"
        assert args[name]["x-delivery-limit"] == DELIVERY_LIMIT
        assert args[name]["x-dead-letter-strategy"] == "at-least-once"
        assert args[name]["x-overflow"] == "reject-publish"
        assert args[name]["x-dead-letter-exchange"] == DEAD_EXCHANGE


async def test_publish_to_unknown_node_raises_unroutable(conn):
    publisher = await amqp.Publisher.open(conn)
    with pytest.raises(amqp.Unroutable) as info:
        await publisher.publish_command(refresh("nobody"))
    assert info.value.routing_key == "nobody"
    # the channel stays usable after a return
    channel = await conn.channel()
    await amqp.declare_node_queue(channel, "known")
    await publisher.publish_command(refresh("known"))


async def test_published_command_is_persistent_with_envelope_id(conn):
    channel = await conn.channel()
    queue = await amqp.declare_node_queue(channel, "n2")
    publisher = await amqp.Publisher.open(conn)
    command = refresh("n2")
    await publisher.publish(COMMANDS_EXCHANGE, "n2", command)
    message = await next_message(queue)
    assert message.message_id == str(command.id)
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.type == "inventory.refresh"
    assert parse_command(message.body) == command


Handler = Callable[[Command, AbstractIncomingMessage], Awaitable[None]]


async def start_consumer(conn, node_id: str, handler: Handler) -> amqp.Consumer[Command]:
    channel = await conn.channel()
    await amqp.declare_node_queue(channel, node_id)
    publisher = await amqp.Publisher.open(conn)
    return await amqp.consume(
        conn, node_queue(node_id), handler, parse=parse_command, publisher=publisher
    )


BAD_MESSAGES = [
    (b"{not json", "not JSON"),
    (json.dumps({"v": 99, "type": "export", "node_id": "n3", "body": {}}).encode(), "version 99"),
    (json.dumps({"v": 1, "type": "teleport", "node_id": "n3", "body": {}}).encode(), "teleport"),
    (json.dumps({"v": 1, "type": "cleanup", "node_id": "n3", "body": {}}).encode(), "artifact_id"),
]


async def test_invalid_messages_are_dead_lettered_with_reason_and_consumer_keeps_running(conn):
    dead = await tap_dead(conn)
    handled: list[Command] = []

    async def handler(command: Command, _message: AbstractIncomingMessage) -> None:
        handled.append(command)

    consumer = await start_consumer(conn, "n3", handler)
    raw = await (await conn.channel()).get_exchange(COMMANDS_EXCHANGE)
    for body, _reason in BAD_MESSAGES:
        await raw.publish(aio_pika.Message(body, message_id=uuid.uuid4().hex), "n3")
    good = refresh("n3")
    publisher = await amqp.Publisher.open(conn)
    await publisher.publish_command(good)
    await until(lambda: len(handled) == 1)
    assert handled == [good]
    reasons = []
    for body, expected in BAD_MESSAGES:
        message = await next_message(dead)
        assert message.body == body
        assert message.headers[DEAD_SOURCE_HEADER] == "hcc.node.n3"
        assert expected in message.headers[DEAD_REASON_HEADER]
        reasons.append(message.headers[DEAD_REASON_HEADER])
    assert len(set(reasons)) == len(BAD_MESSAGES)
    # nothing left unacked on the node queue: everything was settled
    channel = await conn.channel()
    queue = await channel.declare_queue(node_queue("n3"), passive=True)
    await consumer.stop()
    assert queue.declaration_result.message_count == 0


async def test_retryable_is_redelivered_and_permanent_is_dead_lettered(conn):
    dead = await tap_dead(conn)
    seen: list[tuple[str, bool]] = []
    fail_once = refresh("n4")
    poison = refresh("n4")

    async def handler(command: Command, message: AbstractIncomingMessage) -> None:
        seen.append((str(command.id), bool(message.redelivered)))
        if command.id == fail_once.id and not message.redelivered:
            raise amqp.Retryable("cloud busy")
        if command.id == poison.id:
            raise amqp.Permanent("no such cloud")

    consumer = await start_consumer(conn, "n4", handler)
    publisher = await amqp.Publisher.open(conn)
    await publisher.publish_command(fail_once)
    await publisher.publish_command(poison)
    await until(lambda: (str(fail_once.id), True) in seen)
    message = await next_message(dead)
    assert message.message_id == str(poison.id)
    assert message.headers[DEAD_REASON_HEADER] == "permanent: no such cloud"
    assert [s for s in seen if s[0] == str(poison.id)] == [(str(poison.id), False)]
    await consumer.stop()


async def test_consume_missing_queue_raises_queue_missing(conn):
    publisher = await amqp.Publisher.open(conn)

    async def handler(_c: Command, _m: AbstractIncomingMessage) -> None:
        raise AssertionError("no delivery expected")

    with pytest.raises(amqp.QueueMissing):
        await amqp.consume(
            conn, "hcc.node.ghost", handler, parse=parse_command, publisher=publisher
        )


async def test_connect_gives_up_after_attempts_and_never_logs_password():
    url = f"amqp://guest:s3cret-pw@127.0.0.1:{free_port()}/"
    with structlog.testing.capture_logs() as logs, pytest.raises(amqp.BrokerUnavailable) as info:
        await amqp.connect(url, name="t", attempts=3, max_delay_s=0.05)
    failures = [entry for entry in logs if entry["event"] == "amqp connect failed; retrying"]
    assert [entry["attempt"] for entry in failures] == [1, 2]
    assert all(0 < entry["retry_in_s"] <= 0.05 for entry in failures)
    assert "s3cret-pw" not in repr(logs)
    assert "s3cret-pw" not in str(info.value)


@pytest.mark.slow
async def test_connect_waits_for_a_broker_that_starts_later(private_rabbit: PrivateRabbit):
    private_rabbit.stop()
    task = asyncio.create_task(amqp.connect(private_rabbit.url, name="late", max_delay_s=0.5))
    await asyncio.sleep(0)  # let it fail at least once before the broker is back
    await asyncio.to_thread(private_rabbit.start)
    connection = await asyncio.wait_for(task, 60)
    channel = await connection.channel()
    await amqp.declare_topology(channel)
    await connection.close()


async def test_retryable_forever_ends_in_dead_letters_after_the_delivery_limit(conn):
    dead = await tap_dead(conn)
    deliveries: list[bool] = []

    async def handler(_command: Command, message: AbstractIncomingMessage) -> None:
        deliveries.append(bool(message.redelivered))
        raise amqp.Retryable("always failing")

    consumer = await start_consumer(conn, "n5", handler)
    publisher = await amqp.Publisher.open(conn)
    command = refresh("n5")
    await publisher.publish_command(command)
    message = await next_message(dead, timeout_s=30)
    assert message.message_id == str(command.id)
    assert message.headers["x-first-death-reason"] == "delivery_limit"
    assert len(deliveries) == DELIVERY_LIMIT + 1
    await consumer.stop()


def messages_in(amqp_url: str, queue: str) -> int:
    """Ready plus unacknowledged messages of ``queue``, as the broker counts them."""
    vhost = URL(amqp_url).path.lstrip("/")
    out = subprocess.run(
        ["rabbitmqctl", "list_queues", "-p", vhost, "name", "messages", "--formatter", "json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = json.loads(out[out.index("[") :])
    return next(int(row["messages"]) for row in rows if row["name"] == queue)


async def test_coalesced_acks_settle_every_delivery_once(conn, amqp_url):
    """The events worker acks what one turn of its loop finished with one
    basic.ack(multiple): every delivery is settled exactly once, a nacked one in the middle
    of a batch comes back (multiple does not swallow it), a poisoned one goes to hcc.dead,
    and the broker holds nothing more once the handlers are done."""
    node = "n-acks"
    dead = await tap_dead(conn)
    commands = [refresh(node) for _ in range(200)]
    retry_once, poison = commands[50], commands[120]
    gate = asyncio.Event()
    seen: list[tuple[str, bool]] = []

    async def handler(command: Command, message: AbstractIncomingMessage) -> None:
        seen.append((str(command.id), bool(message.redelivered)))
        await gate.wait()  # they all finish in one turn, like a batch of the worker's
        if command.id == retry_once.id and not message.redelivered:
            raise amqp.Retryable("cloud busy")
        if command.id == poison.id:
            raise amqp.Permanent("no such cloud")

    channel = await conn.channel()
    await amqp.declare_node_queue(channel, node)
    publisher = await amqp.Publisher.open(conn)
    for command in commands:
        await publisher.publish_command(command)
    consumer = await amqp.consume(
        conn, node_queue(node), handler, parse=parse_command, publisher=publisher,
        prefetch=500, coalesce_acks=True,
    )  # fmt: skip
    await until(lambda: len(seen) == 200)
    gate.set()
    await until(lambda: (str(retry_once.id), True) in seen)
    assert (await next_message(dead)).message_id == str(poison.id)
    deadline = time.monotonic() + 15
    while (left := await asyncio.to_thread(messages_in, amqp_url, node_queue(node))) > 0:
        assert time.monotonic() < deadline, f"{left} messages never acked"
        await asyncio.sleep(0.2)
    assert not consumer.channel.is_closed  # no ack of an unknown tag closed it
    assert sorted(seen) == sorted([(str(c.id), False) for c in commands]
                                  + [(str(retry_once.id), True)])  # fmt: skip
    await consumer.stop()
