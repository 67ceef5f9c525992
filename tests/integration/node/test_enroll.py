"""Enrollment client and config refresh against a real HTTP server speaking the agreed shape."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import test_utils, web

from workers.runtime.config import load_config
from workers.runtime.enroll import EnrollmentError, enroll, fetch_clouds
from workers.runtime.process import NotEnrolled, obtain_config
from workers.settings import NodeSettings

CLOUD: dict[str, Any] = {
    "cloud_id": "onprem", "kind": "vsphere", "endpoint": "https://vc/sdk", "username": "admin",
    "password": "cloud-pw", "org": None, "insecure": True, "thumbprint": None, "options": {},
    "node_id": "n1",
}  # fmt: skip


class FakeServer:
    """The server's side of enrollment, as the lead implements it (same paths and JSON)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_first = 0

    async def enroll(self, request: web.Request) -> web.Response:
        if self.fail_first:
            self.fail_first -= 1
            return web.json_response({"title": "starting"}, status=503)
        body = await request.json()
        self.requests.append(body)
        if body["token"] != "good-token":
            return web.json_response({"title": "invalid token"}, status=401)
        return web.json_response(
            {
                "node_token": "node-secret",
                "amqp_url": "amqp://hcc-node-n1:pw@127.0.0.1:5672/",
                "server_public_key": "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n",
                "clouds": [CLOUD],
            }
        )

    async def config(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer node-secret":
            return web.json_response({"title": "unauthorized"}, status=401)
        return web.json_response({"clouds": [CLOUD, {**CLOUD, "cloud_id": "second"}]})


@pytest.fixture
async def server() -> AsyncIterator[tuple[FakeServer, str]]:
    fake = FakeServer()
    app = web.Application()
    app.router.add_post("/api/v1/enroll", fake.enroll)
    app.router.add_get("/api/v1/node/config", fake.config)
    test_server = test_utils.TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    yield fake, str(test_server.make_url("")).rstrip("/")
    await test_server.close()


async def test_enroll_sends_the_agreed_fields_and_parses_the_answer(server):
    fake, url = server
    config = await enroll(url, "good-token", "n1", "ab" * 32, "https://n1:8443")
    assert fake.requests[0]["fingerprint"] == "ab" * 32
    assert set(fake.requests[0]) == {"token", "node_id", "fingerprint", "receiver_url", "version"}
    assert config.node_token == "node-secret"
    assert config.cloud_configs()["onprem"].password == "cloud-pw"
    clouds = await fetch_clouds(url, config.node_token)
    assert [c.cloud_id for c in clouds] == ["onprem", "second"]
    with pytest.raises(EnrollmentError) as info:
        await fetch_clouds(url, "wrong")
    assert info.value.status == 401


async def test_obtain_config_retries_a_failing_server_then_saves_privately(server, tmp_path: Path):
    fake, url = server
    fake.fail_first = 1
    settings = NodeSettings(
        node_id="n1", server=url, enroll_token="good-token", data_dir=tmp_path,
        receiver_url="https://n1.example:8443",
    )  # fmt: skip
    config = await asyncio.wait_for(obtain_config(settings, asyncio.Event()), 30)
    assert config is not None
    assert fake.requests[0]["receiver_url"] == "https://n1.example:8443"
    assert len(fake.requests[0]["fingerprint"]) == 64
    path = tmp_path / "node.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_config(tmp_path) == config
    # enrolled: the next start uses the file and never calls the server again
    again = await obtain_config(settings, asyncio.Event())
    assert again == config
    assert len(fake.requests) == 1


async def test_refused_token_is_not_retried(server, tmp_path: Path):
    _fake, url = server
    settings = NodeSettings(node_id="n1", server=url, enroll_token="bad", data_dir=tmp_path)
    with pytest.raises(NotEnrolled, match="401"):
        await obtain_config(settings, asyncio.Event())
