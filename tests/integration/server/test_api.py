"""The REST API: auth, roles, problem+json, nodes, clouds, audit, OpenAPI, metrics."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from appliance.api.context import api
from appliance.api.framework import MUTATING
from tests.integration.server.conftest import Server

PROBLEM = "application/problem+json"


async def problem(resp, status: int) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM
    body = await resp.json()
    assert body["status"] == status
    return body


async def test_login_wrong_password_and_tokens(server: Server):
    c = server.client
    resp = await c.post("/api/v1/auth/login", json={"username": "admin", "password": "nope"})
    await problem(resp, 401)
    await problem(await c.get("/api/v1/nodes"), 401)
    await problem(await c.get("/api/v1/nodes", headers=server.auth("forged")), 401)
    resp = await c.get("/api/v1/auth/me", headers=server.auth())
    assert await resp.json() == {"username": "admin", "role": "admin"}
    token = await server.login("admin", "admin-pw-for-tests")
    assert (await c.post("/api/v1/auth/logout", headers=server.auth(token))).status == 204
    await problem(await c.get("/api/v1/auth/me", headers=server.auth(token)), 401)


async def test_a_stale_token_does_not_block_login(server: Server):
    resp = await server.client.post(
        "/api/v1/auth/login", json={"username": "admin", "password": "admin-pw-for-tests"},
        headers=server.auth("stale-token-from-an-old-session"),
    )  # fmt: skip
    assert resp.status == 200
    await problem(await server.client.get("/api/v1/nodes", headers=server.auth("stale")), 401)


async def test_unknown_route_is_problem_json(server: Server):
    body = await problem(await server.client.get("/api/v1/no/such/thing"), 404)
    assert body["title"] == "Not Found"


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        (b"{not json", 400, None),
        (b'{"id": "Has Spaces"}', 422, "id"),
        (b'{"id": "n1", "extra": true}', 422, "extra"),
        (b"[]", 422, ""),
    ],
)
async def test_malformed_bodies(server: Server, raw: bytes, status: int, field: str | None):
    resp = await server.client.post(
        "/api/v1/nodes", data=raw,
        headers={**server.auth(), "Content-Type": "application/json"},
    )  # fmt: skip
    body = await problem(resp, status)
    if field is not None:
        assert field in [e["field"] for e in body["errors"]]


async def test_viewer_gets_403_on_every_mutating_endpoint(server: Server):
    viewer = await server.make_user("vera", "viewer")
    mutating = [r for r in api.routes if r.method in MUTATING and r.role is not None]
    assert len(mutating) >= 10
    checked = 0
    for route in mutating:
        if route.path == "/api/v1/auth/logout":
            continue  # a viewer may end its own session
        path = route.path.format(
            node_id="n1", cloud_id="c1", task_id="00000000-0000-0000-0000-000000000000"
        )
        resp = await server.client.request(route.method, path, json={}, headers=server.auth(viewer))
        await problem(resp, 403)
        checked += 1
    assert checked == len(mutating) - 1
    # reading is fine
    assert (await server.client.get("/api/v1/nodes", headers=server.auth(viewer))).status == 200


async def test_operator_cannot_do_admin_things(server: Server):
    op = await server.make_user("otto", "operator")
    resp = await server.client.post("/api/v1/nodes", json={"id": "n9"}, headers=server.auth(op))
    await problem(resp, 403)


async def test_every_mutating_call_is_audited(server: Server):
    c = server.client
    await c.post("/api/v1/nodes", json={"id": "audited"}, headers=server.auth())
    await c.post("/api/v1/nodes", json={"id": "BAD"}, headers=server.auth())
    resp = await c.get("/api/v1/audit", headers=server.auth())
    rows = (await resp.json())["items"]
    seen = [(r["actor"], r["method"], r["path"], r["status"]) for r in rows]
    assert ("admin", "POST", "/api/v1/nodes", 201) in seen
    assert ("admin", "POST", "/api/v1/nodes", 422) in seen
    assert ("admin", "POST", "/api/v1/auth/login", 200) in seen


async def test_enrollment_is_one_time_and_gives_node_config(server: Server):
    c = server.client
    resp = await c.post("/api/v1/nodes", json={"id": "n1"}, headers=server.auth())
    token = (await resp.json())["enroll_token"]
    await problem(await c.post("/api/v1/nodes", json={"id": "n1"}, headers=server.auth()), 409)
    listed = await (await c.get("/api/v1/nodes/n1", headers=server.auth())).json()
    assert listed["status"] == "pending"
    enroll = {"token": token, "node_id": "n1", "fingerprint": "ab" * 32,
              "receiver_url": "https://127.0.0.1:8443", "version": "0.1.0"}  # fmt: skip
    await problem(await c.post("/api/v1/enroll", json={**enroll, "token": "wrong"}), 401)
    resp = await c.post("/api/v1/enroll", json=enroll)
    assert resp.status == 200, await resp.text()
    got = await resp.json()
    assert got["server_public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert got["amqp_url"] == server.amqp_url
    await problem(await c.post("/api/v1/enroll", json=enroll), 401)  # used up
    resp = await c.post(
        "/api/v1/clouds",
        json={"id": "vc", "kind": "vsphere", "endpoint": "https://vc.example/sdk",
              "username": "u", "password": "cloud-secret-77", "node_id": "n1"},
        headers=server.auth(),
    )  # fmt: skip
    assert resp.status == 201, await resp.text()
    assert "password" not in await resp.json()
    await problem(await c.get("/api/v1/node/config", headers=server.auth("bad")), 401)
    cfg = await (await c.get("/api/v1/node/config", headers=server.auth(got["node_token"]))).json()
    assert cfg["clouds"][0]["password"] == "cloud-secret-77"
    # at rest the password is encrypted
    db = sqlite3.connect(server.services.settings.data_dir / "hcc.db")
    dump = "\n".join(db.iterdump())
    assert "cloud-secret-77" not in dump
    db.close()


async def test_cloud_for_unknown_node_names_the_field(server: Server):
    resp = await server.client.post(
        "/api/v1/clouds",
        json={"id": "vc", "kind": "vsphere", "endpoint": "https://vc", "username": "u",
              "password": "p", "node_id": "ghost"},
        headers=server.auth(),
    )  # fmt: skip
    body = await problem(resp, 422)
    assert body["errors"][0]["field"] == "node_id"


async def test_pagination_bounds(server: Server):
    c = server.client
    for i in range(3):
        await c.post("/api/v1/nodes", json={"id": f"p{i}"}, headers=server.auth())
    page = await (await c.get("/api/v1/nodes?offset=1&limit=1", headers=server.auth())).json()
    assert (page["total"], [n["id"] for n in page["items"]]) == (3, ["p1"])
    await problem(await c.get("/api/v1/nodes?limit=0", headers=server.auth()), 400)
    await problem(await c.get("/api/v1/nodes?offset=x", headers=server.auth()), 400)


async def test_openapi_document_covers_every_route(server: Server):
    doc = await (await server.client.get("/api/v1/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    for route in api.routes:
        op = doc["paths"][route.path][route.method.lower()]
        assert op["responses"]
        if route.body is not None:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(schema))
            assert refs, f"{route.path}: request body has no model"
            assert set(refs) <= set(doc["components"]["schemas"])
    # every $ref anywhere resolves
    every = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc))
    assert set(every) <= set(doc["components"]["schemas"])
    copy = doc["components"]["schemas"]["CopyTask"]
    assert {"source", "destination"} <= set(copy["required"])


async def test_health_readiness_and_metrics(server: Server):
    c = server.client
    assert (await (await c.get("/healthz")).json())["status"] == "ok"
    ready = await c.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"store": "ok", "bus": "ok", "events": "ok"}
    text = await (await c.get("/metrics")).text()
    assert "hcc_http_requests_total" in text
    assert "hcc_outbox_pending" in text
