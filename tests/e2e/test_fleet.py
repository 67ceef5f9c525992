"""Server and nodes as separate processes that talk only through RabbitMQ."""

from __future__ import annotations

import contextlib
import json
import signal

from appliance.bus.relay import KILL_HOOK
from sim.vcsim.process import VcsimProcess
from tests.e2e.fleet import Fleet
from tests.waiting import eventually

FAST = {"HCC_HEARTBEAT_INTERVAL_S": "1"}
"""Nodes beat every second here; the server shows them offline after 3 s."""


async def test_two_nodes_enroll_go_online_and_offline(fleet: Fleet):
    fleet.start_server(HCC_BROKER_USERS="rabbitmqctl", HCC_HEARTBEAT_TIMEOUT_S="3")
    await fleet.wait_ready()
    tokens = {n: fleet.cli("nodes", "add", n).strip().splitlines()[-1] for n in ("n1", "n2")}
    nodes = {n: fleet.start_node(n, tokens[n], **FAST) for n in tokens}

    async def both(status: str) -> bool:
        return all([await fleet.node_status(n) == status for n in nodes])

    await eventually(lambda: both("online"), timeout_s=15, what="both nodes online")
    listed = json.loads(fleet.cli("nodes", "list", "--json"))
    assert {n["id"]: n["status"] for n in listed} == {"n1": "online", "n2": "online"}
    assert all(n["free_bytes"] > 0 and n["version"] for n in listed)
    for proc in nodes.values():
        proc.kill()
    await eventually(lambda: both("offline"), timeout_s=15, what="both nodes offline")


async def enrolled_node(fleet: Fleet, node_id: str) -> None:
    token = fleet.cli("nodes", "add", node_id).strip().splitlines()[-1]
    fleet.start_node(node_id, token, **FAST)

    async def online() -> bool:
        return await fleet.node_status(node_id) == "online"

    await eventually(online, timeout_s=15, what=f"{node_id} online")


def add_vcsim_cloud(
    fleet: Fleet, vcsim: VcsimProcess, cloud_id: str, node_id: str, endpoint: str | None = None
) -> None:
    """Register ``vcsim`` (or ``endpoint``, e.g. a proxy in front of it) as a vSphere cloud."""
    fleet.cli("clouds", "add", cloud_id, "--kind", "vsphere", "--endpoint",
              endpoint or vcsim.sdk_url,
              "--username", vcsim.username, "--password", vcsim.password, "--node", node_id,
              "--insecure")  # fmt: skip


async def inventory_paths(fleet: Fleet, cloud_id: str) -> set[str]:
    page = await fleet.api("GET", f"/api/v1/clouds/{cloud_id}/inventory?kind=vm")
    return {i["path"] for i in page["items"]}


async def test_inventory_refresh_round_trips_through_a_real_node(fleet: Fleet, vcsim):
    fleet.start_server()
    await fleet.wait_ready()
    await enrolled_node(fleet, "n1")
    add_vcsim_cloud(fleet, vcsim, "onprem", "n1")  # adding a cloud starts a refresh

    async def listed() -> set[str]:
        return await inventory_paths(fleet, "onprem")

    paths = await eventually(listed, timeout_s=30, what="inventory from the node")
    assert "DC0/vm/DC0_H0_VM0" in paths
    task_id = fleet.cli("clouds", "refresh", "onprem", "--watch").strip().splitlines()[0]
    task = await fleet.api("GET", f"/api/v1/tasks/{task_id}")
    assert task["state"] == "succeeded"
    assert task["steps"][0]["node_id"] == "n1"

    async def reachable() -> bool:
        cloud = await fleet.api("GET", "/api/v1/clouds/onprem")
        return cloud["reachable"] is True and cloud["node_online"] is True

    await eventually(reachable, timeout_s=15, what="the node reports the cloud reachable")
    clouds = json.loads(fleet.cli("clouds", "list", "--json"))
    assert [(c["id"], c["kind"], c["reachable"]) for c in clouds] == [("onprem", "vsphere", True)]


async def test_server_killed_between_commit_and_publish_loses_no_command(fleet: Fleet, vcsim):
    fleet.start_server()
    await fleet.wait_ready()
    await enrolled_node(fleet, "n1")
    server = fleet.procs[0]
    assert server.stop() == 0
    crashing = fleet.start_server(**{KILL_HOOK: "1"})
    await fleet.wait_ready()
    with contextlib.suppress(AssertionError):  # the server may die before it answers
        add_vcsim_cloud(fleet, vcsim, "onprem", "n1")
    crashing.popen.wait(timeout=30)
    assert crashing.popen.returncode == -signal.SIGKILL
    fleet.start_server()
    await fleet.wait_ready()

    async def listed() -> set[str]:
        return await inventory_paths(fleet, "onprem")

    assert "DC0/vm/DC0_H0_VM0" in await eventually(listed, timeout_s=30, what="inventory")
