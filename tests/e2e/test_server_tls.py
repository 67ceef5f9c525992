"""`hcc server` serves HTTPS when given a certificate (HCC_TLS_CERT / HCC_TLS_KEY); AMQP
requests still reach its API (over loopback HTTPS, trusting that certificate)."""

from __future__ import annotations

from pathlib import Path

import aio_pika
import aiohttp

from tests.e2e.fleet import ADMIN_PASSWORD, Fleet
from tests.integration.server.test_requests import call
from tests.waiting import eventually
from workers.transfer.tls import client_fingerprint, ensure_certificate


async def test_server_over_https(tmp_path: Path, amqp_url: str):
    cert = ensure_certificate(tmp_path / "tls", "server", ["127.0.0.1"])
    fleet = Fleet(tmp_path, amqp_url)
    try:
        fleet.start_server(HCC_TLS_CERT=str(cert.cert_path), HCC_TLS_KEY=str(cert.key_path))
        # ready, not only up: the AMQP request server below answers once the bus is set up
        url = fleet.server_url.replace("http://", "https://") + "/readyz"

        async def ready() -> bool:
            try:
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(url, ssl=client_fingerprint(cert.fingerprint)) as resp,
                ):
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, timeout_s=60, what="HTTPS /readyz")

        async def plain_http_refused() -> bool:
            try:
                async with aiohttp.ClientSession() as http, http.get(fleet.server_url + "/healthz"):
                    return False
            except aiohttp.ClientError:
                return True

        assert await plain_http_refused()

        base = fleet.server_url.replace("http://", "https://")
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{base}/api/v1/auth/login", ssl=client_fingerprint(cert.fingerprint),
                      json={"username": "admin", "password": ADMIN_PASSWORD}) as resp,
        ):  # fmt: skip
            token = (await resp.json())["token"]
        conn = await aio_pika.connect_robust(amqp_url)
        try:
            status, body = await call(conn, {"method": "GET", "path": "/api/v1/nodes"},
                                      token=token)  # fmt: skip
        finally:
            await conn.close()
        assert (status, body["items"]) == (200, [])
    finally:
        fleet.close()
