"""Bad input that is no refusal: a destination node that is offline. The copy is accepted,
its send says it waits for that node, and it goes on and succeeds once the node is back.

(Wrong source credentials, a clearly failed export step, are in test_copy_cancel_retry.py;
the refusals with a 4xx are API tests of the server.)
"""

from __future__ import annotations

import pytest

from tests.e2e.fleet import Fleet
from tests.e2e.test_copy import add_vcd_cloud
from tests.e2e.test_copy_directions import (
    MIB,
    assert_disks_arrived,
    restart_node,
    server_and_nodes,
    start_copy,
    step_reaches,
    succeeded,
    vcd_disks,
)
from tests.e2e.test_fleet import add_vcsim_cloud
from tests.waiting import eventually

pytestmark = pytest.mark.slow


async def test_destination_node_offline_the_copy_waits_and_succeeds_when_it_is_back(
    fleet: Fleet, vcsim, vcsim_seeder, vcd_sim
):
    vm = vcsim_seeder.vm("web", [3 * MIB])
    await server_and_nodes(fleet, "n1", "n2", server_env={"HCC_HEARTBEAT_TIMEOUT_S": "3"})
    add_vcsim_cloud(fleet, vcsim, "onprem", "n1")
    add_vcd_cloud(fleet, vcd_sim, "provider", "n2")
    n2 = fleet.procs[2]
    n2.kill()

    async def offline() -> bool:
        return await fleet.node_status("n2") == "offline"

    await eventually(offline, timeout_s=30, what="n2 offline")
    to_vcd = {"cloud": "provider", "catalog": "Templates", "name": "web-copy"}
    task_id = await start_copy(fleet, {"cloud": "onprem", "ref": "DC0/vm/web"}, to_vcd)
    send = await step_reaches(
        fleet, task_id, "send", lambda s: (s["message"] or "").startswith("waiting for node n2")
    )
    assert send["state"] in ("dispatched", "running")
    restart_node(fleet, "n2")
    await succeeded(fleet, task_id, timeout_s=180)
    assert_disks_arrived(list(vm.disks), vcd_disks(vcd_sim))
