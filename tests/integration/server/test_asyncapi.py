"""The AsyncAPI document as the server serves it, and its AMQP bindings against the broker."""

from __future__ import annotations

import json
from typing import Any

import aio_pika
import pytest
from aio_pika.exceptions import ChannelPreconditionFailed

from appliance.services import VERSION
from protocol.asyncapi import build, rpc_examples
from tests.integration.server.conftest import Server
from tests.integration.test_amqp_docs import CODE as DOC_CODE
from tests.integration.test_amqp_docs import PERMISSIONS as DOC_PERMISSIONS
from tests.integration.test_amqp_docs import load_doc_code, tool_user


async def test_the_served_document_is_the_generated_one(server: Server):
    resp = await server.client.get("/api/v1/asyncapi.json")  # public, like openapi.json
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == json.loads(json.dumps(build(version=VERSION)))


def _bound(address: str) -> str:
    return address.replace("{nodeId}", "n1")


async def test_the_bindings_are_what_the_broker_has(
    server: Server, amqp: aio_pika.abc.AbstractRobustConnection
):
    """Re-declaring every exchange and queue exactly as the document says is accepted by
    the broker, which refuses (PRECONDITION_FAILED) any other type, durability or argument
    than those of the exchanges and queues the server declared."""
    resp = await server.client.post("/api/v1/nodes", json={"id": "n1"}, headers=server.auth())
    assert resp.status == 201, await resp.text()  # declares hcc.node.n1
    doc = await (await server.client.get("/api/v1/asyncapi.json")).json()
    seen: dict[str, Any] = {"routingKey": set(), "queue": set()}
    for channel in doc["channels"].values():
        binding = channel["bindings"]["amqp"]
        async with amqp.channel() as ch:
            if binding["is"] == "routingKey":
                exchange = binding["exchange"]
                if exchange["type"] == "default":
                    continue
                await ch.declare_exchange(
                    exchange["name"], exchange["type"], durable=exchange["durable"],
                    auto_delete=exchange["autoDelete"],
                )  # fmt: skip
                seen["routingKey"].add(exchange["name"])
            else:
                queue = binding["queue"]
                await ch.declare_queue(
                    _bound(queue["name"]), durable=queue["durable"],
                    exclusive=queue["exclusive"], auto_delete=queue["autoDelete"],
                    arguments=binding["x-arguments"],
                )  # fmt: skip
                seen["queue"].add(_bound(queue["name"]))
    assert seen == {
        "routingKey": {"hcc.commands", "hcc.events", "hcc.dead"},
        "queue": {"hcc.node.n1", "hcc.server.events", "hcc.server.requests", "hcc.dead"},
    }
    # and the broker does refuse a difference, so the loop above checked something
    requests = doc["channels"]["serverRequests"]["bindings"]["amqp"]
    wrong = {**requests["x-arguments"], "x-delivery-limit": 99}
    with pytest.raises(ChannelPreconditionFailed):
        async with amqp.channel() as ch:
            await ch.declare_queue("hcc.server.requests", durable=True, arguments=wrong)
    with pytest.raises(ChannelPreconditionFailed):
        async with amqp.channel() as ch:
            await ch.declare_exchange("hcc.events", "direct", durable=True)


async def test_the_documented_rpc_call_works_against_the_server(server: Server):
    """docs/amqp.md's ``call``, run as written by a broker user with the documented
    permissions, against the real request handling; the document's reply example is what
    the server answers to an unknown token."""
    server.services.api_url = f"http://{server.client.host}:{server.client.port}"
    call = load_doc_code(DOC_CODE[1])["call"]
    with tool_user(server.amqp_url, DOC_PERMISSIONS[1]) as url:
        tool = await aio_pika.connect(url)
        try:
            status, nodes = await call(tool, server.token, "GET", "/api/v1/nodes")
            rest = await server.client.get("/api/v1/nodes", headers=server.auth())
            assert (status, nodes) == (200, await rest.json())
            status, body = await call(tool, "not-a-token", "GET", "/api/v1/nodes")
        finally:
            await tool.close()
    _, reply_example = rpc_examples()
    assert {"status": status, "body": body} == {
        k: reply_example["payload"][k] for k in ("status", "body")
    }
