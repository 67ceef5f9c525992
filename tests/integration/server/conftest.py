"""A real server app (store on disk, real RabbitMQ in a vhost of its own) behind a test client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from appliance.api.app import create_app
from appliance.api.context import SERVICES
from appliance.services import Services
from appliance.settings import ServerSettings

ADMIN_PASSWORD = "admin-pw-for-tests"


@dataclass
class Server:
    client: TestClient[Any, Any]
    services: Services
    amqp_url: str
    token: str

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    async def login(self, user: str, password: str) -> str:
        resp = await self.client.post(
            "/api/v1/auth/login", json={"username": user, "password": password}
        )
        assert resp.status == 200, await resp.text()
        token: str = (await resp.json())["token"]
        return token

    async def make_user(self, name: str, role: str) -> str:
        password = f"{name}-password-1"
        resp = await self.client.post(
            "/api/v1/users", json={"username": name, "password": password, "role": role},
            headers=self.auth(),
        )  # fmt: skip
        assert resp.status == 201, await resp.text()
        return await self.login(name, password)


@pytest.fixture
async def server(tmp_path: Path, amqp_url: str) -> AsyncIterator[Server]:
    settings = ServerSettings(
        data_dir=tmp_path / "server",
        amqp_url=amqp_url,
        admin_password=SecretStr(ADMIN_PASSWORD),
        broker_users="none",
        heartbeat_timeout_s=2.0,
        outbox_poll_s=0.2,
    )
    app = create_app(settings)
    # no cookie jar: each request authenticates exactly as the test says
    async with TestClient(TestServer(app), cookie_jar=aiohttp.DummyCookieJar()) as client:
        services = app[SERVICES]
        await services.bus.ready.wait()
        await services.events.ready.wait()
        srv = Server(client, services, amqp_url, "")
        srv.token = await srv.login("admin", ADMIN_PASSWORD)
        yield srv


@pytest.fixture
async def amqp(server: Server) -> AsyncIterator[aio_pika.abc.AbstractRobustConnection]:
    """A test's own connection to the server's vhost, to play a node."""
    conn = await aio_pika.connect_robust(server.amqp_url)
    try:
        yield conn
    finally:
        await conn.close()
