"""AMQP RPC on hcc.server.requests (real broker), and the Idempotency-Key it relies on."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aio_pika
import pytest

from protocol.topology import DEAD_QUEUE, DEAD_REASON_HEADER, SERVER_REQUESTS_QUEUE
from tests.integration.server.conftest import Server
from tests.integration.server.test_bus import add_node_and_cloud
from tests.waiting import eventually

Conn = aio_pika.abc.AbstractConnection


@pytest.fixture
async def rpc_server(server: Server) -> Server:
    # the in-process test server listens on a port of the OS's choosing
    server.services.api_url = f"http://{server.client.host}:{server.client.port}"
    return server


async def call(
    conn: Conn,
    body: dict[str, Any] | bytes,
    *,
    token: str | None,
    message_id: str | None = None,
    direct_reply_to: bool = False,
) -> tuple[int, Any]:
    """One request the way another tool makes it; returns the reply's status and body."""
    channel = await conn.channel(publisher_confirms=True)
    try:
        if direct_reply_to:
            replies = await channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
            reply_to = "amq.rabbitmq.reply-to"
        else:
            replies = await channel.declare_queue(exclusive=True, auto_delete=True)
            reply_to = replies.name
        got: asyncio.Future[aio_pika.abc.AbstractIncomingMessage] = (
            asyncio.get_running_loop().create_future()
        )
        correlation_id = uuid.uuid4().hex

        async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            if message.correlation_id == correlation_id and not got.done():
                got.set_result(message)

        await replies.consume(on_reply, no_ack=True)
        headers: dict[str, Any] = {"authorization": f"Bearer {token}"} if token else {}
        await channel.default_exchange.publish(
            aio_pika.Message(
                body if isinstance(body, bytes) else json.dumps(body).encode(),
                content_type="application/json",
                reply_to=reply_to,
                correlation_id=correlation_id,
                message_id=message_id or uuid.uuid4().hex,
                headers=headers,
            ),
            SERVER_REQUESTS_QUEUE,
        )
        reply = await asyncio.wait_for(got, 30)
        assert reply.content_type == "application/json"
        data = json.loads(reply.body)
        assert set(data) == {"v", "status", "body"}
        return int(data["status"]), data["body"]
    finally:
        await channel.close()


async def dead_letters(conn: Conn, count: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
    channel = await conn.channel()
    dead = await channel.get_queue(DEAD_QUEUE, ensure=True)
    seen: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def enough() -> list[aio_pika.abc.AbstractIncomingMessage]:
        while (m := await dead.get(fail=False, no_ack=True)) is not None:
            seen.append(m)
        return seen if len(seen) >= count else []

    try:
        return await eventually(enough, what=f"{count} dead letters")
    finally:
        await channel.close()


async def test_a_request_is_the_rest_call_with_the_callers_rights(rpc_server: Server, amqp):
    admin = rpc_server.token
    status, node = await call(amqp, {"method": "POST", "path": "/api/v1/nodes",
                                     "body": {"id": "n7"}}, token=admin)  # fmt: skip
    assert status == 201, node
    assert node["id"] == "n7"
    assert node["enroll_token"]
    status, page = await call(amqp, {"method": "GET", "path": "/api/v1/nodes",
                                     "query": {"limit": "10"}}, token=admin)  # fmt: skip
    rest = await rpc_server.client.get("/api/v1/nodes?limit=10", headers=rpc_server.auth())
    assert status == 200
    assert page == await rest.json()
    assert [n["id"] for n in page["items"]] == ["n7"]

    viewer = await rpc_server.make_user("vera", "viewer")
    status, problem = await call(amqp, {"method": "POST", "path": "/api/v1/nodes",
                                        "body": {"id": "n8"}}, token=viewer)  # fmt: skip
    assert (status, problem["status"]) == (403, 403)
    status, problem = await call(amqp, {"method": "GET", "path": "/api/v1/nodes"}, token=None)
    assert status == 401
    status, problem = await call(amqp, {"method": "GET", "path": "/api/v1/nodes"},
                                 token="not-a-token")  # fmt: skip
    assert status == 401
    status, problem = await call(amqp, {"method": "POST", "path": "/api/v1/tasks",
                                        "body": {"kind": "copy"}}, token=admin)  # fmt: skip
    assert status == 422
    assert "source" in {e["field"] for e in problem["errors"]}
    status, problem = await call(amqp, {"method": "GET", "path": "/api/v1/nope"}, token=admin)
    assert status == 404

    # the audit log records the call as the caller's
    audit = await rpc_server.client.get("/api/v1/audit?limit=50", headers=rpc_server.auth())
    entries = (await audit.json())["items"]
    assert any(e["actor"] == "admin" and e["method"] == "POST" and e["path"] == "/api/v1/nodes"
               and e["status"] == 201 for e in entries)  # fmt: skip
    assert any(e["actor"] == "vera" and e["status"] == 403 for e in entries)


async def test_a_repeated_request_starts_one_task(rpc_server: Server, amqp):
    await add_node_and_cloud(rpc_server)
    request = {"method": "POST", "path": "/api/v1/tasks",
               "body": {"kind": "inventory-refresh", "cloud": "vc"}}  # fmt: skip
    message_id = uuid.uuid4().hex
    first_status, first = await call(amqp, request, token=rpc_server.token, message_id=message_id)
    again_status, again = await call(amqp, request, token=rpc_server.token, message_id=message_id)
    other_status, other = await call(amqp, request, token=rpc_server.token)
    assert (first_status, again_status, other_status) == (202, 200, 202)
    assert again["id"] == first["id"]
    assert other["id"] != first["id"]
    tasks = await (await rpc_server.client.get("/api/v1/tasks", headers=rpc_server.auth())).json()
    ids = [t["id"] for t in tasks["items"]]
    assert ids.count(first["id"]) == 1
    assert other["id"] in ids


async def test_direct_reply_to_works(rpc_server: Server, amqp):
    status, body = await call(amqp, {"method": "GET", "path": "/api/v1/clouds"},
                              token=rpc_server.token, direct_reply_to=True)  # fmt: skip
    assert (status, body["items"]) == (200, [])


async def test_malformed_requests_are_answered_and_dead_lettered_without_the_token(
    rpc_server: Server, amqp
):
    token = rpc_server.token
    status, problem = await call(amqp, b"not json", token=token)
    assert status == 400
    assert "not an API request" in problem["detail"]
    status, problem = await call(amqp, {"method": "GET", "path": "/api/v1/../metrics"},
                                 token=token)  # fmt: skip
    assert status == 400
    assert "'..'" in problem["detail"]
    status, problem = await call(amqp, {"method": "GET", "path": "/metrics"}, token=token)
    assert status == 400
    assert "path" in problem["detail"]
    status, problem = await call(amqp, {"method": "GET", "path": "/api/v1/events/stream"},
                                 token=token)  # fmt: skip
    assert status == 400
    assert "hcc.events" in problem["detail"]
    # without reply_to there is nobody to answer: dead-lettered with the reason
    channel = await amqp.channel(publisher_confirms=True)
    await channel.default_exchange.publish(
        aio_pika.Message(json.dumps({"method": "GET", "path": "/api/v1/nodes"}).encode(),
                         headers={"authorization": f"Bearer {token}"}),
        SERVER_REQUESTS_QUEUE,
    )  # fmt: skip
    await channel.close()

    letters = await dead_letters(amqp, 5)
    reasons = [m.headers[DEAD_REASON_HEADER] for m in letters]
    assert sum("not an API request" in str(r) for r in reasons) == 3
    assert any("hcc.events" in str(r) for r in reasons)
    assert any("no reply_to" in str(r) for r in reasons)
    for letter in letters:
        assert "authorization" not in (letter.headers or {})
        assert token not in letter.body.decode("utf-8", "replace")
    # and the server still answers
    status, _ = await call(amqp, {"method": "GET", "path": "/api/v1/nodes"}, token=token)
    assert status == 200


async def test_idempotency_key_over_rest(server: Server):
    await add_node_and_cloud(server)
    body = {"kind": "inventory-refresh", "cloud": "vc"}
    headers = {**server.auth(), "Idempotency-Key": "refresh-vc-1"}
    first = await server.client.post("/api/v1/tasks", json=body, headers=headers)
    again = await server.client.post("/api/v1/tasks", json=body, headers=headers)
    assert (first.status, again.status) == (202, 200)
    assert (await first.json())["id"] == (await again.json())["id"]
    # the key belongs to its user: another operator with the same key gets a task of its own
    olga = await server.make_user("olga", "operator")
    theirs = await server.client.post(
        "/api/v1/tasks", json=body,
        headers={**server.auth(olga), "Idempotency-Key": "refresh-vc-1"},
    )  # fmt: skip
    assert theirs.status == 202
    assert (await theirs.json())["id"] != (await first.json())["id"]
    bad = await server.client.post(
        "/api/v1/tasks", json=body, headers={**server.auth(), "Idempotency-Key": "x" * 201}
    )
    assert bad.status == 400
    assert bad.content_type == "application/problem+json"
    assert "Idempotency-Key" in (await bad.json())["title"] + (await bad.json()).get("detail", "")
