"""The server appliance's broker user, made with rabbitmqctl against the machine's RabbitMQ
(in a vhost of the test's own; guest is kept here, the appliance removes it)."""

from __future__ import annotations

import asyncio
import stat
import subprocess
import uuid
from pathlib import Path

import aio_pika
import pytest
from yarl import URL

from firstboot.broker import BrokerSetup, ensure_broker_user, saved_password

pytestmark = [pytest.mark.rabbit, pytest.mark.slow]  # rabbitmqctl takes 1-3 s a call


@pytest.fixture
def setup(amqp_url: str, tmp_path: Path):
    vhost = URL(amqp_url).path.removeprefix("/")
    s = BrokerSetup(
        user=f"hcc-test-{uuid.uuid4().hex[:8]}",
        vhost=vhost,
        delete_guest=False,
        cookie_from=tmp_path / "rabbit-cookie",
        cookie_to=tmp_path / "hcc-home" / ".erlang.cookie",
        service_user=None,
        host=URL(amqp_url).host or "127.0.0.1",
        port=URL(amqp_url).port or 5672,
    )
    yield s
    subprocess.run(["rabbitmqctl", "delete_user", s.user], capture_output=True, check=False)


async def can_declare(url: str) -> bool:
    conn = await aio_pika.connect(url, timeout=10)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(f"hcc.probe.{uuid.uuid4().hex[:6]}", auto_delete=True)
        return q.name.startswith("hcc.probe.")
    finally:
        await conn.close()


async def test_server_broker_user_is_made_once_and_kept(setup: BrokerSetup, tmp_path):
    url = await asyncio.to_thread(ensure_broker_user, setup, tmp_path)
    assert URL(url).user == setup.user
    assert await can_declare(url)
    env = tmp_path / "etc/hcc/broker.env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert saved_password(env.read_text(), setup.user) == URL(url).password
    # the next boot keeps the password (hcc-server's running connections stay valid)
    assert await asyncio.to_thread(ensure_broker_user, setup, tmp_path) == url
    assert await can_declare(url)


async def test_a_wrong_password_in_the_broker_is_reset_from_the_env_file(setup, tmp_path):
    url = await asyncio.to_thread(ensure_broker_user, setup, tmp_path)
    await asyncio.to_thread(
        subprocess.run,
        ["rabbitmqctl", "change_password", setup.user, "changed-elsewhere"],
        capture_output=True,
        check=True,
    )
    with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
        await can_declare(url)
    assert await asyncio.to_thread(ensure_broker_user, setup, tmp_path) == url
    assert await can_declare(url)
