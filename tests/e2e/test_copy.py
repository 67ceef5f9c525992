"""The product's main job, in real processes: copy a VM from vSphere to vCD and deploy it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.e2e.fleet import Fleet
from tests.e2e.test_fleet import add_vcsim_cloud, enrolled_node
from tests.fixtures.vcdsim import VcdSimProcess
from tests.waiting import eventually

VCD_PASSWORD = "hcc-demo-password"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def add_vcd_cloud(
    fleet: Fleet, sim: VcdSimProcess, cloud_id: str, node_id: str, endpoint: str | None = None
) -> None:
    """Register the vCD simulator's org acme (or ``endpoint`` in front of it) as a cloud."""
    fleet.cli("clouds", "add", cloud_id, "--kind", "vcd", "--endpoint", endpoint or sim.url,
              "--username", "acme-admin", "--password", VCD_PASSWORD, "--org", "acme",
              "--node", node_id)  # fmt: skip


async def two_clouds(fleet: Fleet, vcsim, vcd_sim) -> None:
    fleet.start_server()
    await fleet.wait_ready()
    await enrolled_node(fleet, "n1")
    await enrolled_node(fleet, "n2")
    add_vcsim_cloud(fleet, vcsim, "onprem", "n1")
    add_vcd_cloud(fleet, vcd_sim, "provider", "n2")

    async def inventories() -> bool:
        clouds = (await fleet.api("GET", "/api/v1/clouds"))["items"]
        return len(clouds) == 2 and all(c["inventory_at"] for c in clouds)

    await eventually(inventories, timeout_s=60, what="both inventories")


async def test_copy_vsphere_to_vcd_and_deploy(fleet: Fleet, vcsim, vcsim_seeder, vcd_sim):
    vm = vcsim_seeder.vm("web", [32 * 1024 * 1024], zero_fraction=0.6)
    await two_clouds(fleet, vcsim, vcd_sim)
    out = fleet.cli("copy", "onprem:DC0/vm/web", "provider:Templates/web-copy",
                    "--deploy", "web-app", "--watch")  # fmt: skip
    task_id = out.strip().splitlines()[0]
    task = await fleet.api("GET", f"/api/v1/tasks/{task_id}")
    assert task["state"] == "succeeded", json.dumps(task, indent=1)
    steps = {s["name"]: s for s in task["steps"]}
    assert set(steps) == {"export", "send", "import", "deploy", "refresh", "cleanup-source",
                          "cleanup-destination"}  # fmt: skip
    assert steps["send"]["bytes_done"] >= vm.disks[0].stat().st_size
    # the disk in vCD is the disk that left vSphere, byte for byte
    stored = {sha256(p) for p in (vcd_sim.data_dir / "templates").rglob("*") if p.is_file()}
    assert sha256(vm.disks[0]) in stored
    inventory = await fleet.api("GET", "/api/v1/clouds/provider/inventory")
    names = {(i["kind"], i["name"]) for i in inventory["items"]}
    assert ("vapp_template", "web-copy") in names or ("catalog_item", "web-copy") in names
    assert ("vapp", "web-app") in names
    # transfer storage on both nodes is empty again
    for node in ("n1", "n2"):
        left = [p for p in (fleet.root / node).rglob("*")
                if p.is_file() and "web-copy" in str(p)]  # fmt: skip
        assert left == []
