"""POST /api/v1/tasks kind=copy: validation before anything moves, and the first commands."""

from __future__ import annotations

import time
from typing import Any

import pytest

from protocol.messages import (
    InventoryItem,
    InventorySnapshotBody,
    InventorySnapshotEvent,
    ObjectKind,
    StepStartedBody,
    StepStartedEvent,
)
from protocol.tokens import load_public_key, verify_token
from tests.integration.server.conftest import Server
from tests.integration.server.test_bus import next_command, publish
from tests.waiting import eventually


async def enroll(server: Server, node_id: str) -> dict[str, Any]:
    c = server.client
    resp = await c.post("/api/v1/nodes", json={"id": node_id}, headers=server.auth())
    token = (await resp.json())["enroll_token"]
    resp = await c.post("/api/v1/enroll", json={
        "token": token, "node_id": node_id, "fingerprint": "cd" * 32,
        "receiver_url": f"https://127.0.0.1:9/{node_id}"})  # fmt: skip
    assert resp.status == 200
    data: dict[str, Any] = await resp.json()
    return data


async def add_cloud(server: Server, cloud_id: str, kind: str, node_id: str) -> None:
    resp = await server.client.post("/api/v1/clouds", headers=server.auth(), json={
        "id": cloud_id, "kind": kind, "endpoint": "https://x", "username": "u",
        "password": "p", "node_id": node_id})  # fmt: skip
    assert resp.status == 201, await resp.text()


async def snapshot(server: Server, amqp, cloud: str, node: str, items) -> None:
    await publish(amqp, InventorySnapshotEvent(
        node_id=node, body=InventorySnapshotBody(cloud_id=cloud, items=tuple(items))))  # fmt: skip

    async def listed() -> bool:
        r = await server.client.get(f"/api/v1/clouds/{cloud}", headers=server.auth())
        return (await r.json())["inventory_at"] is not None

    await eventually(listed, what=f"inventory of {cloud}")


@pytest.fixture
async def two_clouds(server: Server, amqp) -> dict[str, Any]:
    n1 = await enroll(server, "n1")
    await enroll(server, "n2")
    await add_cloud(server, "onprem", "vsphere", "n1")
    await add_cloud(server, "provider", "vcd", "n2")
    # drain the refreshes that adding the clouds started
    await next_command(amqp, "n1")
    await next_command(amqp, "n2")
    await snapshot(server, amqp, "onprem", "n1", [
        InventoryItem(id="dc-1", kind=ObjectKind.DATACENTER, name="DC0", path="DC0"),
        InventoryItem(id="vm-7", kind=ObjectKind.VM, name="web", path="DC0/vm/web"),
        InventoryItem(id="folder-3", kind=ObjectKind.FOLDER, name="vm", path="DC0/vm"),
        InventoryItem(id="resgroup-9", kind=ObjectKind.VAPP, name="shop", path="DC0/vm/shop"),
    ])  # fmt: skip
    await snapshot(server, amqp, "provider", "n2", [
        InventoryItem(id="cat-1", kind=ObjectKind.CATALOG, name="Templates", path="acme/Templates"),
        InventoryItem(id="tpl-1", kind=ObjectKind.VAPP_TEMPLATE, name="web",
                      path="acme/Templates/web"),
    ])  # fmt: skip
    return n1


def copy(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "copy",
        "source": {"cloud": "onprem", "ref": "DC0/vm/web"},
        "destination": {"cloud": "provider", "catalog": "Templates", "name": "web-copy"},
    }
    for key, value in over.items():
        section, _, field = key.partition("__")
        if field:
            body[section] = {**body[section], field: value}
        else:
            body[section] = value
    return body


# the other way: from vCD to a folder of the vSphere cloud
TO_VSPHERE_PARTS: dict[str, Any] = {
    "source": {"cloud": "provider", "ref": "acme/Templates/web"},
    "destination": {"cloud": "onprem", "folder": "DC0/vm", "name": "web-back"},
}
TO_VSPHERE = copy(**TO_VSPHERE_PARTS)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (copy(source__cloud="nowhere"), 422, "source.cloud"),
        (copy(destination__cloud="nowhere"), 422, "destination.cloud"),
        (copy(source__ref="DC0/vm/ghost"), 422, "source.ref"),
        (copy(destination__catalog="Nope"), 422, "destination.catalog"),
        (copy(destination__catalog=None), 422, "destination.catalog"),
        (copy(destination__name="a/b"), 422, "destination.name"),
        (copy(destination__name="web"), 409, None),
        (TO_VSPHERE, 202, None),
        (copy(**TO_VSPHERE_PARTS, destination__folder="DC0/vm/nope"), 422, "destination.folder"),
        (copy(**TO_VSPHERE_PARTS, destination__folder="DC0/vm/web"), 422, "destination.folder"),
        (copy(**TO_VSPHERE_PARTS, destination__name="shop"), 409, None),  # a vApp's name
    ],
)
async def test_copy_refusals(server: Server, two_clouds, body, status, field):
    resp = await server.client.post("/api/v1/tasks", json=body, headers=server.auth())
    assert resp.status == status, await resp.text()
    problem = await resp.json()
    if field:
        assert field in [e["field"] for e in problem["errors"]]


async def test_copy_to_a_node_that_never_enrolled(server: Server, two_clouds):
    await server.client.post("/api/v1/nodes", json={"id": "n3"}, headers=server.auth())
    await add_cloud(server, "later", "vcd", "n3")
    resp = await server.client.post("/api/v1/tasks", headers=server.auth(),
                                    json=copy(destination__cloud="later"))  # fmt: skip
    assert resp.status == 422
    assert "has not enrolled" in (await resp.json())["detail"]


async def test_copy_starts_with_the_export_and_signs_the_send(server: Server, amqp, two_clouds):
    body = copy(destination__name="web", destination__on_conflict="suffix",
                deploy={"name": "web-app"})  # fmt: skip
    resp = await server.client.post("/api/v1/tasks", json=body, headers=server.auth())
    assert resp.status == 202, await resp.text()
    task = await resp.json()
    assert task["spec"]["destination"]["name"] == "web-2"
    assert [s["name"] for s in task["steps"]] == [
        "export",
        "send",
        "import",
        "deploy",
        "refresh",
        "cleanup-source",
        "cleanup-destination",
    ]
    export = await next_command(amqp, "n1")
    assert (export.type, export.body.ref, export.body.cloud_id) == (
        "export",
        "DC0/vm/web",
        "onprem",
    )
    await publish(
        amqp,
        StepStartedEvent(
            node_id="n1",
            task_id=export.task_id,
            step_id=export.step_id,
            body=StepStartedBody(kind="export"),
        ),
    )
    send = await next_command(amqp, "n1")
    assert send.type == "send"
    assert send.body.artifact_id == export.body.artifact_id
    public = load_public_key(two_clouds["server_public_key"])
    claims = verify_token(public, send.body.token, now=time.time())
    assert (claims.artifact_id, claims.source_node, claims.destination_node) == (
        export.body.artifact_id,
        "n1",
        "n2",
    )
    # the source node renews the token of its running send with its node token
    c = server.client
    node_auth = server.auth(two_clouds["node_token"])
    resp = await c.post(
        "/api/v1/node/transfer-token",
        headers=node_auth,
        json={"artifact_id": export.body.artifact_id, "destination_node": "n2"},
    )
    assert resp.status == 200, await resp.text()
    fresh = verify_token(public, (await resp.json())["token"], now=time.time())
    assert fresh.artifact_id == export.body.artifact_id
    for wrong in (
        {"artifact_id": "other", "destination_node": "n2"},
        {"artifact_id": export.body.artifact_id, "destination_node": "n1"},
    ):
        assert (
            await c.post("/api/v1/node/transfer-token", headers=node_auth, json=wrong)
        ).status == 403
    assert (
        await c.post(
            "/api/v1/node/transfer-token",
            headers=server.auth(),
            json={"artifact_id": "x", "destination_node": "n2"},
        )
    ).status == 401


async def test_waiting_node_is_shown_and_cancel_cleans_both_nodes(server: Server, amqp, two_clouds):
    resp = await server.client.post("/api/v1/tasks", json=copy(), headers=server.auth())
    task = await resp.json()
    # n1 never sent a heartbeat: the export waits for it and says why
    export_view = task["steps"][0]
    detail = await (await server.client.get(f"/api/v1/tasks/{task['id']}",
                                            headers=server.auth())).json()  # fmt: skip
    assert detail["steps"][0]["message"].startswith("waiting for node n1")
    assert export_view["state"] == "dispatched"
    export = await next_command(amqp, "n1")
    resp = await server.client.post(f"/api/v1/tasks/{task['id']}/cancel", headers=server.auth())
    assert (await resp.json())["state"] == "cancelling"
    cancel = await next_command(amqp, "n1")
    assert (cancel.type, cancel.body.target_step_id) == ("cancel", export.step_id)
    from protocol.messages import StepError, StepFailedBody, StepFailedEvent

    await publish(amqp, StepFailedEvent(
        node_id="n1", task_id=export.task_id, step_id=export.step_id, seq=1,
        body=StepFailedBody(error=StepError(code="cancelled", message="cancelled"))))  # fmt: skip
    cleanups = {}
    for node in ("n1", "n2"):
        cmd = await next_command(amqp, node)
        cleanups[node] = (cmd.type, cmd.body.artifact_id, cmd.step_id)
    artifact = export.body.artifact_id
    assert cleanups == {"n1": ("cleanup", artifact, None), "n2": ("cleanup", artifact, None)}
    final = await (await server.client.get(f"/api/v1/tasks/{task['id']}",
                                           headers=server.auth())).json()  # fmt: skip
    assert final["state"] == "cancelled"


async def test_tasks_are_listed_by_kind_and_state(server: Server, two_clouds):
    resp = await server.client.post("/api/v1/tasks", json=copy(), headers=server.auth())
    assert resp.status == 202, await resp.text()
    copy_id = (await resp.json())["id"]
    resp = await server.client.post("/api/v1/clouds/onprem/refresh", headers=server.auth())
    assert resp.status == 202, await resp.text()
    refresh_id = (await resp.json())["id"]

    async def listed(query: str) -> tuple[set[str], int]:
        resp = await server.client.get(f"/api/v1/tasks?{query}", headers=server.auth())
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        return {t["id"] for t in page["items"]}, page["total"]

    assert await listed("kind=copy") == ({copy_id}, 1)
    refreshes, _ = await listed("kind=inventory-refresh")
    assert refresh_id in refreshes
    assert copy_id not in refreshes
    assert await listed("kind=copy&state=running") == ({copy_id}, 1)
    assert await listed("kind=copy&state=failed") == (set(), 0)
