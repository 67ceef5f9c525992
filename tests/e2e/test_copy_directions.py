"""Every copy direction in real processes: vCD → vSphere, vCD → vCD, vSphere → vSphere (two
nodes, and two clouds on one node, which plans no send). vSphere → vCD is tests/e2e/test_copy.py.

The disks at the destination are compared with the source's: SHA-256 of the files the
simulators store, and ``qemu-img compare`` (every disk here is a real VMDK).

The helpers at the top are shared by the other tests/e2e/test_copy_*.py files.
"""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from protocol.messages import CloudKind, Target
from sim.vcsim import seed
from sim.vcsim.process import VcsimProcess
from tests.e2e.fleet import Fleet
from tests.e2e.test_copy import VCD_PASSWORD, add_vcd_cloud, sha256
from tests.e2e.test_fleet import FAST, add_vcsim_cloud
from tests.fixtures.vcdsim import VcdSimProcess, start_vcd_sim
from tests.waiting import eventually
from workers.clouds.base import CloudConfig, Progress
from workers.clouds.vcd import VcdAdapter
from workers.clouds.vsphere import VSphereAdapter

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
FINAL = ("succeeded", "failed", "cancelled")
NO_BROKER_USERS = {"HCC_BROKER_USERS": "none"}


# --------------------------------------------------------------------------- helpers


async def start_copy(
    fleet: Fleet, source: dict[str, str], destination: dict[str, Any], **extra: Any
) -> str:
    task = await fleet.api(
        "POST",
        "/api/v1/tasks",
        {"kind": "copy", "source": source, "destination": destination, **extra},
    )
    task_id: str = task["id"]
    return task_id


async def task_of(fleet: Fleet, task_id: str) -> dict[str, Any]:
    task: dict[str, Any] = await fleet.api("GET", f"/api/v1/tasks/{task_id}")
    return task


def steps_of(task: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in task["steps"]}


async def finished(fleet: Fleet, task_id: str, timeout_s: float = 120) -> dict[str, Any]:
    async def done() -> dict[str, Any]:
        task = await task_of(fleet, task_id)
        return task if task["state"] in FINAL else {}

    task = await eventually(done, timeout_s=timeout_s, interval_s=0.2, what=f"task {task_id}")
    return task


async def succeeded(fleet: Fleet, task_id: str, timeout_s: float = 120) -> dict[str, Any]:
    task = await finished(fleet, task_id, timeout_s)
    assert task["state"] == "succeeded", json.dumps(task, indent=1, default=str)
    return task


async def step_reaches(
    fleet: Fleet, task_id: str, name: str, probe: Any, timeout_s: float = 60
) -> dict[str, Any]:
    """Poll until ``probe(step)`` is true for the step ``name``; returns that step."""

    async def check() -> dict[str, Any]:
        task = await task_of(fleet, task_id)
        assert task["state"] not in FINAL or probe(steps_of(task)[name]), json.dumps(
            {"state": task["state"], "error": task.get("error"),
             "steps": {s["name"]: [s["state"], s.get("error")] for s in task["steps"]}},
            indent=1, default=str,
        )  # fmt: skip
        step = steps_of(task)[name]
        return step if probe(step) else {}

    found: dict[str, Any] = await eventually(
        check, timeout_s=timeout_s, interval_s=0.1, what=f"{name} of {task_id}"
    )
    return found


async def inventories_listed(fleet: Fleet, count: int) -> None:
    async def listed() -> bool:
        clouds = (await fleet.api("GET", "/api/v1/clouds"))["items"]
        return len(clouds) == count and all(c["inventory_at"] for c in clouds)

    await eventually(listed, timeout_s=60, what="every inventory")


async def inventory_path(fleet: Fleet, cloud_id: str, kind: str, name: str) -> str:
    async def find() -> str:
        page = await fleet.api("GET", f"/api/v1/clouds/{cloud_id}/inventory?kind={kind}")
        return next((i["path"] for i in page["items"] if i["name"] == name), "")

    path: str = await eventually(find, timeout_s=30, what=f"{kind} {name} in {cloud_id}")
    return path


def restart_node(fleet: Fleet, node_id: str, **env: str) -> None:
    """Start an enrolled node again (1 s heartbeats, as at its first start)."""
    fleet.start_node(node_id, **FAST, **env)


def qemu_same(a: Path, b: Path) -> bool:
    return (
        subprocess.run(["qemu-img", "compare", "-q", str(a), str(b)], check=False).returncode == 0
    )


def vcsim_disks(sim: VcsimProcess) -> dict[str, Path]:
    """SHA-256 → file, for every VMDK in the simulator's datastores."""
    return {sha256(p): p for p in sim.workdir.rglob("*.vmdk") if p.is_file()}


def vcd_disks(sim: VcdSimProcess) -> dict[str, Path]:
    """SHA-256 → file, for every file the vCD simulator stores for its templates."""
    return {sha256(p): p for p in (sim.data_dir / "templates").rglob("*") if p.is_file()}


def assert_disks_arrived(sources: list[Path], stored: dict[str, Path]) -> None:
    for disk in sources:
        digest = sha256(disk)
        assert digest in stored, f"{disk.name} ({digest}) is not at the destination"
        assert qemu_same(disk, stored[digest])


def transfer_files(fleet: Fleet, node_id: str, artifact_id: str) -> list[Path]:
    root = fleet.root / node_id
    return [p for p in root.rglob("*") if p.is_file() and artifact_id in str(p)]


async def _ignore(_p: Progress) -> None:
    return None


def vcd_config(sim: VcdSimProcess) -> CloudConfig:
    return CloudConfig(
        cloud_id="seed",
        kind=CloudKind.VCD,
        endpoint=sim.url,
        username="acme-admin",
        password=VCD_PASSWORD,
        org="acme",
    )


def vcsim_config(sim: VcsimProcess) -> CloudConfig:
    return CloudConfig(
        cloud_id="seed",
        kind=CloudKind.VSPHERE,
        endpoint=sim.sdk_url,
        username=sim.username,
        password=sim.password,
        insecure=True,
    )


async def seed_vcd_from_vsphere(
    vcd: VcdSimProcess, sim: VcsimProcess, ref: str, name: str, work: Path
) -> None:
    """Put a template into the vCD simulator's ``Templates``: a vSphere export (a real
    descriptor, with controllers) uploaded with the vCD adapter."""
    pkg = work / f"seed-{name}"
    source = VSphereAdapter(vcsim_config(sim))
    try:
        await source.export(ref, pkg, _ignore)
    finally:
        await source.close()
    target = VcdAdapter(vcd_config(vcd))
    try:
        await target.import_package(pkg, Target(catalog="Templates", name=name), _ignore)
    finally:
        await target.close()


def seed_app_disks(sim: VcsimProcess, disks: list[Path]) -> None:
    """vcsim's model vApp (``-app 1``: DC0_C0_APP0, VMs ``_VM0`` and ``_VM1``) has no disk
    files; give each VM a real one."""
    si = seed.connect(sim.host, sim.port, sim.username, sim.password)
    try:
        for i, disk in enumerate(disks):
            seed.upload_datastore_file(
                si, sim.host, sim.port, "LocalDS_0", f"DC0_C0_APP0_VM{i}/disk1.vmdk", disk
            )
    finally:
        seed.disconnect(si)


async def app_vcsim(factory: Any, work: Path) -> tuple[VcsimProcess, list[Path]]:
    """A vcsim with a two-VM vApp ``DC0/vm/DC0_C0_APP0``, a 2 MiB and a 1 MiB disk."""
    sim: VcsimProcess = factory("-app", "1", "-autostart=false")
    disks = [
        await asyncio.to_thread(
            seed.make_disk_image, work / f"app-{i}.vmdk", size, seed=7 + i, zero_fraction=0.3
        )
        for i, size in enumerate([2 * MIB, MIB])
    ]
    await asyncio.to_thread(seed_app_disks, sim, disks)
    return sim, disks


async def server_and_nodes(
    fleet: Fleet, *nodes: str, server_env: dict[str, str] | None = None, **node_env: str
) -> None:
    """The server, then every node enrolled and started at once (each start imports a lot).

    Nodes get the server's own broker URL (``HCC_BROKER_USERS=none``): node broker users are
    global on the machine's broker, and another test enrolling its own ``n1`` would reset the
    password a restarted node of this test logs in with."""
    fleet.start_server(**{**NO_BROKER_USERS, **(server_env or {})})
    await fleet.wait_ready()
    tokens = {n: fleet.cli("nodes", "add", n).strip().splitlines()[-1] for n in nodes}
    for node, token in tokens.items():
        fleet.start_node(node, token, **FAST, **node_env)

    async def online() -> bool:
        return all([await fleet.node_status(n) == "online" for n in nodes])

    await eventually(online, timeout_s=60, what=f"{nodes} online")


# --------------------------------------------------------------------------- tests


async def test_copy_from_vcd_to_vsphere_and_to_another_vcd(
    fleet: Fleet, vcsim_factory, vcd_sim, tmp_path: Path
):
    """A two-VM vApp template leaves one vCD for vSphere (a vApp there) and for another vCD;
    the vSphere vApp it came from goes to that other vCD too."""
    sim, disks = await app_vcsim(vcsim_factory, tmp_path)
    await seed_vcd_from_vsphere(vcd_sim, sim, "DC0/vm/DC0_C0_APP0", "shop", tmp_path)
    other = start_vcd_sim(tmp_path / "vcdsim2")
    try:
        await server_and_nodes(fleet, "n1", "n2", "n3")
        add_vcsim_cloud(fleet, sim, "onprem", "n1")
        add_vcd_cloud(fleet, vcd_sim, "provider", "n2")
        add_vcd_cloud(fleet, other, "provider2", "n3")
        await inventories_listed(fleet, 3)
        ref = await inventory_path(fleet, "provider", "vapp_template", "shop")
        before = set(sim.workdir.rglob("*.vmdk"))
        to_vsphere = await start_copy(
            fleet,
            {"cloud": "provider", "ref": ref},
            {"cloud": "onprem", "folder": "DC0/vm", "name": "shop-copy"},
        )
        to_vcd = await start_copy(
            fleet,
            {"cloud": "provider", "ref": ref},
            {"cloud": "provider2", "catalog": "Templates", "name": "shop-copy"},
        )
        app_to_vcd = await start_copy(  # and vSphere → vCD with a vApp
            fleet,
            {"cloud": "onprem", "ref": "DC0/vm/DC0_C0_APP0"},
            {"cloud": "provider2", "catalog": "Templates", "name": "app-copy"},
        )
        for task_id in (to_vsphere, to_vcd, app_to_vcd):
            task = await succeeded(fleet, task_id)
            assert set(steps_of(task)) == {
                "export",
                "send",
                "import",
                "refresh",
                "cleanup-source",
                "cleanup-destination",
            }
        # the source vApp's disks are in this vcsim already: only new files count
        copies = {sha256(p): p for p in set(sim.workdir.rglob("*.vmdk")) - before}
        assert_disks_arrived(disks, copies)
        assert_disks_arrived(disks, vcd_disks(other))
        vsphere = await fleet.api("GET", "/api/v1/clouds/onprem/inventory?name=shop-copy")
        assert ("vapp", "shop-copy") in {(i["kind"], i["name"]) for i in vsphere["items"]}
        copied = await fleet.api("GET", "/api/v1/clouds/provider2/inventory?name=shop-copy")
        assert ("vapp_template", "shop-copy") in {(i["kind"], i["name"]) for i in copied["items"]}
        state = json.dumps(other.state())
        assert "DC0_C0_APP0_VM1" in state  # both VMs of the template arrived
        assert "app-copy" in state
        # both templates in the second vCD carry both disks: the one via vCD, the one direct
        stored = collections.Counter(
            sha256(p) for p in (other.data_dir / "templates").rglob("*") if p.is_file()
        )
        assert [stored[sha256(d)] for d in disks] == [2, 2]
        for node in ("n1", "n2", "n3"):
            assert transfer_files(fleet, node, "-copy-") == []
    finally:
        other.stop()


async def test_copy_between_vspheres_over_two_nodes_and_on_one(
    fleet: Fleet, vcsim_factory, tmp_path: Path
):
    """A vApp (two VMs) from vcsim A on n1 to vcsim B on n2; a VM from A to B with both
    clouds on n1 (no send step: the import reads the export where it lies)."""
    a, app_disks = await app_vcsim(vcsim_factory, tmp_path)
    b = vcsim_factory()
    si = await asyncio.to_thread(seed.connect, a.host, a.port, a.username, a.password)
    vm_disks = [
        await asyncio.to_thread(
            seed.make_disk_image, tmp_path / f"web-{i}.vmdk", size * MIB, seed=40 + i
        )
        for i, size in enumerate([3, 1])
    ]
    await asyncio.to_thread(seed.seed_vm, si, a.host, a.port, "web", vm_disks)
    await asyncio.to_thread(seed.disconnect, si)
    await server_and_nodes(fleet, "n1", "n2")
    add_vcsim_cloud(fleet, a, "dc-a", "n1")
    add_vcsim_cloud(fleet, b, "dc-b", "n2")
    add_vcsim_cloud(fleet, b, "dc-b-local", "n1")  # the same vCenter, served by n1 as well
    await inventories_listed(fleet, 3)
    vapp = await start_copy(
        fleet, {"cloud": "dc-a", "ref": "DC0/vm/DC0_C0_APP0"}, {"cloud": "dc-b", "name": "app-copy"}
    )
    vm = await start_copy(
        fleet,
        {"cloud": "dc-a", "ref": "DC0/vm/web"},
        {"cloud": "dc-b-local", "folder": "DC0/vm", "name": "web-copy"},
    )
    task = await succeeded(fleet, vapp)
    assert "send" in steps_of(task)
    task = await succeeded(fleet, vm)
    assert set(steps_of(task)) == {"export", "import", "refresh", "cleanup"}
    assert_disks_arrived([*app_disks, *vm_disks], vcsim_disks(b))
    for cloud, kind, name in (("dc-b", "vapp", "app-copy"), ("dc-b-local", "vm", "web-copy")):
        listed = await fleet.api("GET", f"/api/v1/clouds/{cloud}/inventory?name={name}")
        assert (kind, name) in {(i["kind"], i["name"]) for i in listed["items"]}
    for node in ("n1", "n2"):
        assert transfer_files(fleet, node, "copy-") == []
