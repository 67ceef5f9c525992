"""The server on the real broker: outbox → node queue, events → task state, SSE, heartbeats."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest

from protocol import dump, parse_command
from protocol.messages import (
    HeartbeatBody,
    HeartbeatEvent,
    InventoryItem,
    InventorySnapshotBody,
    InventorySnapshotEvent,
    ObjectKind,
    StepProgressBody,
    StepProgressEvent,
    StepStartedBody,
    StepStartedEvent,
    StepSucceededBody,
    StepSucceededEvent,
)
from protocol.topology import DEAD_QUEUE, DEAD_REASON_HEADER, EVENTS_EXCHANGE, event_routing_key
from tests.integration.server.conftest import Server
from tests.waiting import eventually


async def add_node_and_cloud(server: Server, node: str = "n1", cloud: str = "vc") -> None:
    c = server.client
    assert (await c.post("/api/v1/nodes", json={"id": node}, headers=server.auth())).status == 201
    resp = await c.post(
        "/api/v1/clouds",
        json={"id": cloud, "kind": "vsphere", "endpoint": "https://vc/sdk", "username": "u",
              "password": "p", "node_id": node},
        headers=server.auth(),
    )  # fmt: skip
    assert resp.status == 201, await resp.text()


async def next_command(conn: aio_pika.abc.AbstractConnection, node: str) -> Any:
    channel = await conn.channel()
    queue = await channel.get_queue(f"hcc.node.{node}", ensure=True)

    async def get() -> Any:
        return await queue.get(fail=False, no_ack=True)

    message = await eventually(get, what=f"a command on hcc.node.{node}")
    await channel.close()
    return parse_command(message.body)


async def publish(conn: aio_pika.abc.AbstractConnection, event: Any) -> None:
    channel = await conn.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(EVENTS_EXCHANGE)
    await exchange.publish(
        aio_pika.Message(dump(event), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        event_routing_key(event.node_id, event.type),
    )
    await channel.close()


def heartbeat() -> HeartbeatEvent:
    body = HeartbeatBody(version="t", started_at=datetime.now(UTC), free_bytes=7, total_bytes=9)
    return HeartbeatEvent(node_id="n1", body=body)


async def get_task(server: Server, task_id: str) -> dict[str, Any]:
    resp = await server.client.get(f"/api/v1/tasks/{task_id}", headers=server.auth())
    data: dict[str, Any] = await resp.json()
    return data


async def test_command_round_trip_through_the_broker(server: Server, amqp):
    await add_node_and_cloud(server)
    # adding the cloud started a refresh: its command waits in the node's queue
    first = await next_command(amqp, "n1")
    assert first.type == "inventory.refresh"
    resp = await server.client.post("/api/v1/clouds/vc/refresh", headers=server.auth())
    assert resp.status == 202
    task = await resp.json()
    cmd = await next_command(amqp, "n1")
    assert (cmd.type, str(cmd.task_id), cmd.body.cloud_id) == (
        "inventory.refresh",
        task["id"],
        "vc",
    )
    base = {"node_id": "n1", "task_id": cmd.task_id, "step_id": cmd.step_id, "attempt": 0}
    item = InventoryItem(id="vm-1", kind=ObjectKind.VM, name="web", path="DC0/vm/web")
    await publish(amqp, StepStartedEvent(**base, seq=0, body=StepStartedBody(kind=cmd.type)))
    await publish(
        amqp, StepProgressEvent(**base, seq=1, body=StepProgressBody(bytes_done=5, bytes_total=10))
    )
    await publish(
        amqp,
        InventorySnapshotEvent(
            node_id="n1", body=InventorySnapshotBody(cloud_id="vc", items=(item,))
        ),
    )
    await publish(amqp, StepSucceededEvent(**base, seq=2, body=StepSucceededBody()))

    async def succeeded() -> dict[str, Any] | None:
        t = await get_task(server, task["id"])
        return t if t["state"] == "succeeded" else None

    done = await eventually(succeeded, what="task succeeded")
    assert done is not None
    assert done["steps"][0]["state"] == "succeeded"
    assert {"dispatch", "started", "succeeded"} <= {e["type"] for e in done["events"]}
    inv = await (
        await server.client.get("/api/v1/clouds/vc/inventory", headers=server.auth())
    ).json()
    assert [i["path"] for i in inv["items"]] == ["DC0/vm/web"]


async def test_invalid_event_is_dead_lettered_and_consumer_survives(server: Server, amqp):
    await add_node_and_cloud(server)
    channel = await amqp.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(EVENTS_EXCHANGE)
    for body in (
        b"not json",
        json.dumps({"v": 99, "type": "step.started"}).encode(),
        json.dumps({"v": 1, "type": "node.explode", "node_id": "n1"}).encode(),
    ):
        await exchange.publish(aio_pika.Message(body), "node.n1.step.started")
    dead = await channel.get_queue(DEAD_QUEUE, ensure=True)

    async def three() -> list[Any]:
        got = []
        while (m := await dead.get(fail=False, no_ack=True)) is not None:
            got.append(m)
        three.seen.extend(got)  # type: ignore[attr-defined]
        return three.seen if len(three.seen) >= 3 else []  # type: ignore[attr-defined]

    three.seen = []  # type: ignore[attr-defined]
    messages = await eventually(three, what="three dead letters")
    reasons = sorted(m.headers[DEAD_REASON_HEADER] for m in messages)
    assert any("not JSON" in r for r in reasons)
    assert any("unsupported envelope version 99" in r for r in reasons)
    assert any("unknown event type 'node.explode'" in r for r in reasons)
    # still consuming: a heartbeat brings the node online
    await publish(amqp, heartbeat())

    async def online() -> bool:
        n = await (await server.client.get("/api/v1/nodes/n1", headers=server.auth())).json()
        return bool(n["status"] == "online")

    await eventually(online, what="node online")
    await channel.close()


async def test_heartbeats_online_then_offline_and_steps_wait(server: Server, amqp):
    await add_node_and_cloud(server)
    cmd = await next_command(amqp, "n1")
    beat = heartbeat()
    base = {"node_id": "n1", "task_id": cmd.task_id, "step_id": cmd.step_id, "attempt": 0}
    await publish(amqp, beat)
    await publish(amqp, StepStartedEvent(**base, seq=0, body=StepStartedBody(kind=cmd.type)))

    async def node_status(want: str) -> bool:
        n = await (await server.client.get("/api/v1/nodes/n1", headers=server.auth())).json()
        return bool(n["status"] == want)

    await eventually(lambda: node_status("online"), what="online")
    # heartbeat timeout in these tests is 2 s; the sweeper marks the node offline
    await eventually(lambda: node_status("offline"), timeout_s=10, what="offline")

    async def waiting() -> bool:
        t = await get_task(server, str(cmd.task_id))
        return bool(t["steps"][0]["state"] == "waiting-for-node" and t["state"] == "running")

    await eventually(waiting, timeout_s=10, what="step waiting for its node")
    await publish(amqp, heartbeat())

    async def back() -> bool:
        t = await get_task(server, str(cmd.task_id))
        return bool(t["steps"][0]["state"] == "running")

    await eventually(back, what="step running again")


async def test_sse_stream_reports_task_changes(server: Server, amqp):
    await add_node_and_cloud(server)
    resp = await server.client.get("/api/v1/events/stream", headers=server.auth())
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert (await resp.content.readline()).startswith(b": connected")
    created = await server.client.post("/api/v1/clouds/vc/refresh", headers=server.auth())
    task_id = (await created.json())["id"]

    async def read_event() -> dict[str, Any]:
        event = None
        while True:
            line = (await resp.content.readline()).decode().strip()
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "task":
                return json.loads(line[6:])

    note = await asyncio.wait_for(read_event(), 10)
    assert note == {"type": "task", "id": task_id}
    deleted = await server.client.delete("/api/v1/clouds/vc", headers=server.auth())
    assert deleted.status == 204

    async def read_cloud_event() -> dict[str, Any]:
        event = None
        while True:
            line = (await resp.content.readline()).decode().strip()
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "cloud":
                return json.loads(line[6:])

    assert await asyncio.wait_for(read_cloud_event(), 10) == {"type": "cloud", "id": "vc"}
    resp.close()


async def test_cancel_then_retry_over_the_api(server: Server, amqp):
    await add_node_and_cloud(server)
    cmd = await next_command(amqp, "n1")
    task_id = str(cmd.task_id)
    base = {"node_id": "n1", "task_id": cmd.task_id, "step_id": cmd.step_id, "attempt": 0}
    await publish(amqp, StepStartedEvent(**base, seq=0, body=StepStartedBody(kind=cmd.type)))

    async def running() -> bool:
        return (await get_task(server, task_id))["steps"][0]["state"] == "running"

    await eventually(running, what="step running")
    resp = await server.client.post(f"/api/v1/tasks/{task_id}/cancel", headers=server.auth())
    assert resp.status == 202
    assert (await resp.json())["state"] == "cancelling"
    cancel = await next_command(amqp, "n1")
    assert cancel.type == "cancel"
    assert cancel.body.target_step_id == cmd.step_id
    resp = await server.client.post(f"/api/v1/tasks/{task_id}/retry", headers=server.auth())
    assert resp.status == 409  # not while cancelling
    from protocol.messages import StepError, StepFailedBody, StepFailedEvent

    await publish(amqp, StepFailedEvent(**base, seq=1, body=StepFailedBody(
        error=StepError(code="cancelled", message="cancelled by operator"))))  # fmt: skip

    async def cancelled() -> bool:
        return (await get_task(server, task_id))["state"] == "cancelled"

    await eventually(cancelled, what="task cancelled")
    resp = await server.client.post(f"/api/v1/tasks/{task_id}/retry", headers=server.auth())
    assert resp.status == 202
    again = await next_command(amqp, "n1")
    assert (again.type, again.attempt, again.step_id) == ("inventory.refresh", 1, cmd.step_id)


@pytest.mark.parametrize("kind", ["nope", None])
async def test_bad_task_requests(server: Server, kind):
    body = {"kind": kind, "cloud": "x"} if kind else {"kind": "inventory-refresh", "cloud": "ghost"}
    resp = await server.client.post("/api/v1/tasks", json=body, headers=server.auth())
    assert resp.status == 422
    assert resp.content_type == "application/problem+json"
