"""docs/amqp.md on a real broker: the permissions it tells operators to give another tool,
and its aio-pika examples, run as written (the code blocks are executed).

The RPC example runs against a stand-in that answers like the server would (one reply with
the request's correlation id); the server's own request handling is tested elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused
from yarl import URL

from protocol.asyncapi import examples
from protocol.rpc import ApiReply, parse_request
from protocol.topology import COMMANDS_EXCHANGE, SERVER_EVENTS_QUEUE, SERVER_REQUESTS_QUEUE
from runtime.amqp import Publisher, Unroutable, declare_topology
from tests.waiting import eventually

pytestmark = pytest.mark.rabbit

DOC = (Path(__file__).resolve().parents[2] / "docs" / "amqp.md").read_text()
PERMISSIONS = re.findall(r"rabbitmqctl set_permissions -p / mytool '(.+)' '(.+)' '(.+)'", DOC)
CODE = re.findall(r"```python\n(.*?)```", DOC, re.DOTALL)


def test_the_doc_has_what_these_tests_run():
    assert len(PERMISSIONS) == 2  # events only; events and RPC
    assert len(CODE) == 2
    assert "async def follow(" in CODE[0]
    assert "async def call(" in CODE[1]


def _ctl(*args: str, stdin: str | None = None) -> None:
    subprocess.run(["rabbitmqctl", *args], input=stdin, text=True, check=True,
                   capture_output=True, timeout=60)  # fmt: skip


@contextlib.contextmanager
def tool_user(amqp_url: str, permissions: tuple[str, str, str]) -> Iterator[str]:
    """A broker user with ``permissions`` in the test's vhost; its URL."""
    url = URL(amqp_url)
    user, password = f"hcc-test-tool-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    _ctl("add_user", user, stdin=password)  # as the doc says: the password on stdin
    try:
        _ctl("set_permissions", "-p", url.path.lstrip("/") or "/", user, *permissions)
        yield str(url.with_user(user).with_password(password))
    finally:
        _ctl("delete_user", user)


@pytest.fixture
async def hcc(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    """hcc's side: the topology declared by the broker's owner."""
    connection = await aio_pika.connect(amqp_url)
    async with connection.channel() as channel:
        await declare_topology(channel)
    try:
        yield connection
    finally:
        await connection.close()


def load_doc_code(code: str, **names: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = dict(names)
    exec(compile(code, "docs/amqp.md", "exec"), namespace)
    return namespace


async def _refused(connection: aio_pika.abc.AbstractConnection, act: Callable[[Any], Any]):
    with pytest.raises(ChannelAccessRefused):
        async with connection.channel() as channel:
            await act(channel)


async def test_a_tool_follows_events_with_the_documented_permissions(hcc, amqp_url):
    seen: list[tuple[Any, ...]] = []
    made = examples()
    with tool_user(amqp_url, PERMISSIONS[0]) as url:
        follow = load_doc_code(CODE[0], print=lambda *args: seen.append(args))["follow"]
        following = asyncio.create_task(follow(url))
        try:
            publisher = await Publisher.open(hcc)
            # hcc.server.events takes everything: make the tool's queue the only taker
            async with hcc.channel() as channel:
                await (await channel.get_queue(SERVER_EVENTS_QUEUE)).unbind("hcc.events", "#")

            async def started() -> bool:
                with contextlib.suppress(Unroutable):  # until the tool's queue is bound
                    await publisher.publish_event(made["step.started"], mandatory=True)
                    return True
                return False

            await eventually(started, what="the tool's queue bound to hcc.events")
            await publisher.publish_event(made["node.heartbeat"])  # not a step event
            await publisher.publish_event(made["step.succeeded"])

            async def both() -> bool:
                return len(seen) >= 2

            await eventually(both, what="the tool printing two events")
            wire = [made[t].model_dump(mode="json") for t in ("step.started", "step.succeeded")]
            assert seen == [(w["type"], "n1", w["step_id"], w["body"]) for w in wire]
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
        # and nothing more than reading: no publishing, no hcc queue, no commands
        tool = await aio_pika.connect(url)
        try:
            await _refused(tool, lambda ch: ch.default_exchange.publish(
                aio_pika.Message(b"{}"), SERVER_REQUESTS_QUEUE))  # fmt: skip
            events = await (await tool.channel()).get_exchange("hcc.events", ensure=False)
            await _refused(tool, lambda ch: _publish_on(ch, "hcc.events"))
            await _refused(tool, lambda ch: ch.declare_queue("hcc.mine", durable=True))
            await _refused(tool, lambda ch: _consume(ch, SERVER_EVENTS_QUEUE))
            await _refused(tool, lambda ch: _bind(ch, "mytool.events", COMMANDS_EXCHANGE))
            assert events.name == "hcc.events"
        finally:
            await tool.close()


async def _publish_on(channel: aio_pika.abc.AbstractChannel, exchange: str) -> None:
    target = await channel.get_exchange(exchange, ensure=False)
    await target.publish(aio_pika.Message(b"{}"), "node.n1.step.started")


async def _consume(channel: aio_pika.abc.AbstractChannel, queue: str) -> None:
    async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        return None

    await (await channel.get_queue(queue, ensure=False)).consume(ignore)


async def _bind(channel: aio_pika.abc.AbstractChannel, queue: str, exchange: str) -> None:
    await (await channel.get_queue(queue, ensure=False)).bind(exchange, "n1")


async def test_the_documented_rpc_call_gets_its_reply(hcc, amqp_url):
    """The doc's ``call`` against a stand-in server on hcc.server.requests."""
    requests: list[tuple[Any, aio_pika.abc.AbstractIncomingMessage]] = []
    channel = await hcc.channel()
    queue = await channel.get_queue(SERVER_REQUESTS_QUEUE)

    async def answer(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            request = parse_request(message.body)
            requests.append((request, message))
            reply = ApiReply(status=201, body={"id": "t-1", "echo": message.message_id})
            assert message.reply_to is not None
            await channel.default_exchange.publish(
                aio_pika.Message(reply.model_dump_json().encode(),
                                 correlation_id=message.correlation_id,
                                 content_type="application/json"),
                routing_key=message.reply_to,
            )  # fmt: skip

    await queue.consume(answer)
    with tool_user(amqp_url, PERMISSIONS[1]) as url:
        tool = await aio_pika.connect(url)
        try:
            call = load_doc_code(CODE[1])["call"]
            body = {"kind": "inventory-refresh", "cloud": "onprem"}
            status, result = await call(tool, "tok-123", "POST", "/api/v1/tasks", body)
            (request, message), = requests  # fmt: skip
            assert (request.method, request.path, request.body) == ("POST", "/api/v1/tasks", body)
            assert message.headers["authorization"] == "Bearer tok-123"
            assert (message.reply_to or "").startswith("amq.rabbitmq.reply-to")
            assert message.content_type == "application/json"
            uuid.UUID(message.message_id)
            assert (status, result) == (201, {"id": "t-1", "echo": message.message_id})
        finally:
            await tool.close()
    await channel.close()
    # the events-only permissions cannot call: no write on the default exchange
    with tool_user(amqp_url, PERMISSIONS[0]) as url:
        tool = await aio_pika.connect(url)
        try:
            with pytest.raises(ChannelAccessRefused):
                await call(tool, "tok-123", "GET", "/api/v1/nodes")
        finally:
            await tool.close()
    assert json.loads(requests[0][1].body)["v"] == 1
