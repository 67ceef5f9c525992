"""Copies into vSphere that deploy (issue #7: "power on in vSphere"), in real processes.

The deploy step clones the imported template into a VM next to it and powers it on. What it
made is checked in vcsim itself through pyvmomi, not only through hcc's API: the VM is in the
target folder under the deploy name, its power state, and its disks (capacity, and the bytes
the simulator stores for them).
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sim.vcsim import seed
from sim.vcsim.process import VcsimProcess
from tests.e2e.fleet import Fleet
from tests.e2e.test_copy import add_vcd_cloud, sha256
from tests.e2e.test_copy_directions import (
    MIB,
    app_vcsim,
    inventories_listed,
    inventory_path,
    seed_vcd_from_vsphere,
    server_and_nodes,
    start_copy,
    steps_of,
    succeeded,
    transfer_files,
)
from tests.e2e.test_fleet import add_vcsim_cloud
from tests.fixtures.vcdsim import VcdSimProcess

pytestmark = pytest.mark.slow
vim: Any = seed.vim
FOLDER = "DC0/vm/imports"


@dataclass(frozen=True)
class Found:
    """What vcsim holds at an inventory path."""

    kind: str
    moid: str
    power: str | tuple[str, ...]
    """A VM's power state; a vApp: its VMs'."""
    parent: str
    disks: tuple[tuple[int, str], ...]
    """(capacity in bytes, SHA-256 of the file the simulator stores) per disk."""
    vms: tuple[str, ...] = ()
    """A vApp: the names of its VMs."""


def _vm_disks(sim: VcsimProcess, vm: Any) -> list[tuple[int, str]]:
    root = {ds.name: Path(ds.info.url) for ds in vm.datastore}
    out = []
    for dev in vm.config.hardware.device:
        if isinstance(dev, vim.vm.device.VirtualDisk):
            ds, _, rel = dev.backing.fileName.partition("] ")
            path = root[ds.lstrip("[")] / rel
            assert path.is_relative_to(sim.workdir), path
            # vcsim's import sets capacityInKB only (vCenter sets both)
            capacity = dev.capacityInBytes or dev.capacityInKB * 1024
            out.append((int(capacity), sha256(path)))
    return out


def look_up(sim: VcsimProcess, path: str) -> Found | None:
    """The VM or vApp at ``path`` (a VM's folder or a vApp's parent folder), via pyvmomi."""
    si = seed.connect(sim.host, sim.port, sim.username, sim.password)
    try:
        folder_path, _, name = path.rpartition("/")
        folder = si.content.searchIndex.FindByInventoryPath(folder_path)
        assert isinstance(folder, vim.Folder), folder_path
        obj = si.content.searchIndex.FindChild(folder, name)
        if isinstance(obj, vim.VirtualMachine):
            return Found("vm", obj._moId, str(obj.runtime.powerState), obj.parent.name,
                         tuple(_vm_disks(sim, obj)))  # fmt: skip
        view = si.content.viewManager.CreateContainerView(
            si.content.rootFolder, [vim.VirtualApp], True
        )
        try:
            apps = [a for a in view.view if a.name == name and a.parentFolder._moId == folder._moId]
        finally:
            view.DestroyView()
        if not apps:
            return None
        app = apps[0]
        vms = sorted(app.vm, key=lambda v: str(v.name))
        return Found(
            "vapp", app._moId, tuple(str(v.runtime.powerState) for v in vms), app.parentFolder.name,
            tuple(d for v in vms for d in _vm_disks(sim, v)), tuple(str(v.name) for v in vms),
        )  # fmt: skip
    finally:
        seed.disconnect(si)


def make_folder(sim: VcsimProcess, path: str) -> None:
    si = seed.connect(sim.host, sim.port, sim.username, sim.password)
    try:
        parent, _, name = path.rpartition("/")
        si.content.searchIndex.FindByInventoryPath(parent).CreateFolder(name)
    finally:
        seed.disconnect(si)


def expected_disks(disks: list[Path]) -> list[tuple[int, str]]:
    return [(seed.virtual_size(d), sha256(d)) for d in disks]


async def test_copy_between_vspheres_deploys_a_powered_on_vm(
    fleet: Fleet, vcsim_factory, tmp_path: Path
):
    """vcsim A (n1) → vcsim B (n2), folder DC0/vm/imports, deploy ``web-run`` powered on;
    and a second copy that deploys without powering on."""
    a, b = vcsim_factory(), vcsim_factory()
    disks = [
        await asyncio.to_thread(
            seed.make_disk_image, tmp_path / f"web-{i}.vmdk", size * MIB, seed=60 + i
        )
        for i, size in enumerate([3, 2])
    ]
    si = await asyncio.to_thread(seed.connect, a.host, a.port, a.username, a.password)
    await asyncio.to_thread(seed.seed_vm, si, a.host, a.port, "web", disks)
    await asyncio.to_thread(seed.disconnect, si)
    await asyncio.to_thread(make_folder, b, FOLDER)
    await server_and_nodes(fleet, "n1", "n2")
    add_vcsim_cloud(fleet, a, "dc-a", "n1")
    add_vcsim_cloud(fleet, b, "dc-b", "n2")
    await inventories_listed(fleet, 2)
    running = await start_copy(
        fleet,
        {"cloud": "dc-a", "ref": "DC0/vm/web"},
        {"cloud": "dc-b", "folder": FOLDER, "name": "web-copy"},
        deploy={"name": "web-run"},  # power_on defaults to true
    )
    stopped = await start_copy(
        fleet,
        {"cloud": "dc-a", "ref": "DC0/vm/web"},
        {"cloud": "dc-b", "folder": FOLDER, "name": "web-copy2"},
        deploy={"name": "web-idle", "power_on": False},
    )
    first = await succeeded(fleet, running)
    second = await succeeded(fleet, stopped)
    want = tuple(expected_disks(disks))

    template = await asyncio.to_thread(look_up, b, f"{FOLDER}/web-copy")
    assert template is not None
    assert template.kind == "vm"
    assert template.disks == want  # the import: the source's disks, byte for byte
    deployed = await asyncio.to_thread(look_up, b, f"{FOLDER}/web-run")
    assert deployed is not None, "no VM web-run in DC0/vm/imports"
    assert (deployed.kind, deployed.parent, deployed.power) == ("vm", "imports", "poweredOn")
    assert deployed.disks == want  # a full clone of the template
    assert deployed.moid != template.moid
    assert template.power == "poweredOff"  # the template itself stays as imported
    result = steps_of(first)["deploy"]["result"]
    assert (result["object_id"], result["name"], result["power_state"]) == (
        deployed.moid, "web-run", "poweredOn",
    )  # fmt: skip
    assert steps_of(first)["import"]["result"]["object_id"] == template.moid

    idle = await asyncio.to_thread(look_up, b, f"{FOLDER}/web-idle")
    assert idle is not None
    assert (idle.kind, idle.parent, idle.power, idle.disks) == ("vm", "imports", "poweredOff", want)
    assert steps_of(second)["deploy"]["result"]["power_state"] == "poweredOff"

    # the API lists what vcsim holds
    listed = await fleet.api("GET", "/api/v1/clouds/dc-b/inventory?kind=vm")
    paths = {i["path"]: i for i in listed["items"]}
    assert {f"{FOLDER}/{n}" for n in ("web-copy", "web-run", "web-copy2", "web-idle")} <= set(paths)
    # the disks are in B four times: two imports, two clones; the source VM still in A
    stored = collections.Counter(sha256(p) for p in b.workdir.rglob("*.vmdk") if p.is_file())
    assert [stored[sha256(d)] for d in disks] == [4, 4]
    for node in ("n1", "n2"):
        assert transfer_files(fleet, node, "web-copy") == []


async def test_copy_from_vcd_deploys_a_vapp_in_vsphere(
    fleet: Fleet, vcsim_factory, vcd_sim: VcdSimProcess, tmp_path: Path
):
    """A two-VM vApp template from vCD becomes a vApp in vSphere (a VirtualSystemCollection
    imports as one); the deploy clones that vApp, both VMs with their disks, and starts it."""
    sim, disks = await app_vcsim(vcsim_factory, tmp_path)
    await seed_vcd_from_vsphere(vcd_sim, sim, "DC0/vm/DC0_C0_APP0", "shop", tmp_path)
    await asyncio.to_thread(make_folder, sim, FOLDER)
    await server_and_nodes(fleet, "n1", "n2")
    add_vcd_cloud(fleet, vcd_sim, "provider", "n1")
    add_vcsim_cloud(fleet, sim, "onprem", "n2")
    await inventories_listed(fleet, 2)
    ref = await inventory_path(fleet, "provider", "vapp_template", "shop")
    task_id = await start_copy(
        fleet,
        {"cloud": "provider", "ref": ref},
        {"cloud": "onprem", "folder": FOLDER, "name": "shop-copy"},
        deploy={"name": "shop-run"},
    )
    task = await succeeded(fleet, task_id)
    # vcsim's model vApp VMs keep their own disk capacities (the seeded files are bigger)
    source = await asyncio.to_thread(look_up, sim, "DC0/vm/DC0_C0_APP0")
    assert source is not None
    want = source.disks
    assert [digest for _, digest in want] == [sha256(d) for d in disks]
    template = await asyncio.to_thread(look_up, sim, f"{FOLDER}/shop-copy")
    assert template is not None
    assert template.kind == "vapp"
    assert template.disks == want
    deployed = await asyncio.to_thread(look_up, sim, f"{FOLDER}/shop-run")
    assert deployed is not None, "no vApp shop-run in DC0/vm/imports"
    assert (deployed.kind, deployed.parent) == ("vapp", "imports")
    assert deployed.power == ("poweredOn", "poweredOn")  # both VMs
    assert deployed.disks == want  # both VMs' disks, copies of the template's
    assert deployed.moid != template.moid
    assert template.power == ("poweredOff", "poweredOff")
    result = steps_of(task)["deploy"]["result"]
    assert (result["object_id"], result["name"], result["power_state"]) == (
        deployed.moid, "shop-run", "poweredOn",
    )  # fmt: skip
    for node in ("n1", "n2"):
        assert transfer_files(fleet, node, "shop-copy") == []
