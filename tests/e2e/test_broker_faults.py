"""The server and a node against broker trouble: down at start, restarted while running."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.e2e.fleet import Fleet
from tests.e2e.test_fleet import add_vcsim_cloud, enrolled_node, inventory_paths
from tests.fixtures.rabbit import PrivateRabbit, free_port
from tests.waiting import eventually

pytestmark = pytest.mark.slow


async def readiness(fleet: Fleet) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(fleet.server_url + "/readyz") as resp:
        return resp.status, await resp.json()


async def test_server_waits_for_a_broker_that_is_down_at_start(tmp_path: Path):
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    fleet = Fleet(tmp_path, dead)
    try:
        fleet.start_server()

        async def degraded() -> bool:
            try:
                status, body = await readiness(fleet)
            except aiohttp.ClientError:
                return False
            return status == 503 and body["checks"] == {
                "store": "ok",
                "bus": "connecting",
                "events": "starting",
            }

        await eventually(degraded, timeout_s=30, what="server up, bus connecting")
        async with aiohttp.ClientSession() as http, http.get(fleet.server_url + "/healthz") as r:
            assert r.status == 200
        assert fleet.procs[0].popen.poll() is None  # still running, not crashed
        assert "amqp connect failed; retrying" in fleet.procs[0].tail(200)
        assert "guest:guest" not in fleet.procs[0].tail(200)  # the password is never logged
    finally:
        fleet.close()


async def test_broker_restart_loses_no_command(tmp_path: Path, private_rabbit: PrivateRabbit,
                                               vcsim):  # fmt: skip
    fleet = Fleet(tmp_path, private_rabbit.url)
    try:
        fleet.start_server(HCC_BROKER_USERS="none")
        await fleet.wait_ready()
        await enrolled_node(fleet, "n1")
        private_rabbit.stop()
        # while the broker is away the server keeps taking requests; the commands wait in
        # its outbox
        add_vcsim_cloud(fleet, vcsim, "onprem", "n1")
        private_rabbit.start()

        async def listed() -> set[str]:
            return await inventory_paths(fleet, "onprem")

        paths = await eventually(listed, timeout_s=90, what="inventory after the broker came back")
        assert "DC0/vm/DC0_H0_VM0" in paths

        async def online() -> bool:
            return await fleet.node_status("n1") == "online"

        await eventually(online, timeout_s=30, what="node online again")
    finally:
        fleet.close()
