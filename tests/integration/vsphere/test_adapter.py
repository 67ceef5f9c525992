"""VSphereAdapter against vcsim: inventory, export, import, round trip."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest

from protocol.messages import ObjectKind, Target
from workers.clouds._vsphere_session import vim
from workers.clouds.base import CloudError
from workers.ovf.descriptor import check_files, parse_descriptor
from workers.ovf.manifest import verify_manifest

pytestmark = pytest.mark.vcsim
MIB = 2**20


def model_vms(si: Any) -> dict[str, tuple[str, str]]:
    """name -> (moid, power state), read attribute by attribute (independent of the adapter)."""
    view = si.content.viewManager.CreateContainerView(
        si.content.rootFolder, [vim.VirtualMachine], True
    )
    try:
        return {vm.name: (vm._moId, str(vm.runtime.powerState)) for vm in view.view}
    finally:
        view.DestroyView()


def package_listing(dest: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in dest.iterdir()}


def check_package(dest: Path, descriptor: str) -> Any:
    desc = parse_descriptor((dest / descriptor).read_bytes())
    check_files(desc, package_listing(dest))
    mf = descriptor.removesuffix(".ovf") + ".mf"
    verify_manifest(dest, mf, required=[descriptor, *(f.href for f in desc.files)])
    return desc


def qemu_compare(a: Path, b: Path) -> int:
    return subprocess.run(["qemu-img", "compare", "-q", str(a), str(b)], check=False).returncode


def vm_shape(si: Any, moid: str) -> tuple[int, int, list[int]]:
    vm = vim.VirtualMachine(moid, si._stub)
    hw = vm.config.hardware
    caps = [
        d.capacityInBytes or d.capacityInKB * 1024
        for d in hw.device
        if isinstance(d, vim.vm.device.VirtualDisk)
    ]
    return hw.numCPU, hw.memoryMB, caps


def model_ids(si: Any, vimtype: Any) -> set[str]:
    """Morefs of every ``vimtype`` in the simulator (a vApp is not counted as a pool)."""
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vimtype], True)
    try:
        return {
            o._moId for o in view.view
            if vimtype is not vim.ResourcePool or not isinstance(o, vim.VirtualApp)
        }  # fmt: skip
    finally:
        view.DestroyView()


async def test_inventory_equals_what_the_simulator_holds(adapter, vcsim_si):
    await adapter.check()
    items = await adapter.inventory()
    by_kind: dict[ObjectKind, list[Any]] = {}
    for item in items:
        by_kind.setdefault(item.kind, []).append(item)
    truth = await asyncio.to_thread(model_vms, vcsim_si)
    vms = {i.name: i for i in by_kind[ObjectKind.VM]}
    assert {n: (i.id, i.power_state) for n, i in vms.items()} == truth
    assert [i.path for i in by_kind[ObjectKind.DATACENTER]] == ["DC0"]
    assert [i.path for i in by_kind[ObjectKind.CLUSTER]] == ["DC0/host/DC0_C0"]
    assert len(by_kind[ObjectKind.HOST]) == 4
    (ds,) = by_kind[ObjectKind.DATASTORE]
    assert ds.path == "DC0/datastore/LocalDS_0"
    assert ds.free_bytes is not None
    assert ds.capacity_bytes is not None
    assert 0 < ds.free_bytes <= ds.capacity_bytes
    assert "DC0/network/VM Network" in {i.path for i in by_kind[ObjectKind.NETWORK]}
    vm0 = vms["DC0_H0_VM0"]
    assert vm0.path == "DC0/vm/DC0_H0_VM0"
    assert (vm0.cpus, vm0.memory_mib) == (1, 32)
    assert [d.capacity_bytes for d in vm0.disks] == [MIB]
    folders = {i.path: i.id for i in by_kind[ObjectKind.FOLDER]}
    assert vm0.parent_id == folders["DC0/vm"]
    for item in vms.values():  # every path is a real inventory path
        found = vcsim_si.content.searchIndex.FindByInventoryPath(item.path)
        assert found is not None
        assert found._moId == item.id
    # every object of every kind, not only VMs, is what the simulator holds
    kinds = {
        ObjectKind.DATACENTER: vim.Datacenter, ObjectKind.CLUSTER: vim.ClusterComputeResource,
        ObjectKind.HOST: vim.HostSystem, ObjectKind.RESOURCE_POOL: vim.ResourcePool,
        ObjectKind.DATASTORE: vim.Datastore, ObjectKind.NETWORK: vim.Network,
        ObjectKind.FOLDER: vim.Folder, ObjectKind.VAPP: vim.VirtualApp,
    }  # fmt: skip
    for kind, vimtype in kinds.items():
        held = await asyncio.to_thread(model_ids, vcsim_si, vimtype)
        assert {i.id for i in by_kind.get(kind, [])} == held, kind


async def test_export_writes_a_valid_package(adapter, vcsim_seeder, tmp_path, progress):
    seeded = await asyncio.to_thread(vcsim_seeder.vm, "web-01", [8 * MIB, 3 * MIB])
    dest = tmp_path / "pkg"
    result = await adapter.export(seeded.ref, dest, progress)
    assert result.descriptor == "web-01.ovf"
    listing = await asyncio.to_thread(package_listing, dest)
    assert listing == result.files
    assert set(listing) == {"web-01.ovf", "web-01.mf", "disk-0.vmdk", "disk-1.vmdk"}
    desc = await asyncio.to_thread(check_package, dest, result.descriptor)
    assert [d.capacity_bytes for d in desc.disks] == [8 * MIB, 3 * MIB]
    assert (desc.systems[0].cpus, desc.systems[0].memory_mib) == (2, 128)
    for i, disk in enumerate(seeded.disks):
        assert (dest / f"disk-{i}.vmdk").read_bytes() == disk.read_bytes()
    assert progress.last_bytes == sum(d.stat().st_size for d in seeded.disks)


async def test_round_trip_returns_the_same_disks(adapter, vcsim_seeder, vcsim_si, tmp_path):
    seeded = await asyncio.to_thread(
        vcsim_seeder.vm, "db-01", [16 * MIB, 4 * MIB, 2 * MIB], zero_fraction=0.6
    )
    first, second = tmp_path / "first", tmp_path / "second"
    out = await adapter.export(seeded.ref, first, _ignore)
    imported = await adapter.import_package(first, Target(name="db-01-copy"), _ignore)
    assert imported.name == "db-01-copy"
    assert imported.kind == "vm"
    shape = await asyncio.to_thread(vm_shape, vcsim_si, imported.object_id)
    assert shape == (2, 128, [16 * MIB, 4 * MIB, 2 * MIB])
    back = await adapter.export(imported.object_id, second, _ignore)
    assert back.descriptor == "db-01-copy.ovf"
    for i, original in enumerate(seeded.disks):
        copy = second / f"disk-{i}.vmdk"
        assert copy.read_bytes() == (first / f"disk-{i}.vmdk").read_bytes()
        assert await asyncio.to_thread(qemu_compare, original, copy) == 0
    assert out.files["disk-0.vmdk"] == back.files["disk-0.vmdk"]


async def test_powered_on_vm_is_refused_with_a_clear_error(adapter, tmp_path):
    with pytest.raises(CloudError, match="powered-off") as err:
        await adapter.export("DC0/vm/DC0_H0_VM0", tmp_path / "p", _ignore)
    assert err.value.code == "invalid-power-state"
    assert list((tmp_path / "p").iterdir()) == []


async def test_deploy_clones_and_powers_on(adapter, vcsim_seeder, vcsim_si):
    from protocol.messages import DeploySpec

    seeded = await asyncio.to_thread(vcsim_seeder.vm, "tmpl", [MIB])
    result = await adapter.deploy(seeded.ref, DeploySpec(name="from-tmpl"), _ignore)
    assert result.name == "from-tmpl"
    assert result.power_state == "poweredOn"
    assert (await asyncio.to_thread(model_vms, vcsim_si))["from-tmpl"][0] == result.object_id


async def test_deploy_again_takes_up_its_own_clone_and_refuses_anything_else(
    adapter, vcsim_seeder, vcsim_si
):
    """A deploy step resumed after a crash finds the clone it made (marked with its source)
    and only powers it on; a VM of that name that is not its clone is a conflict."""
    from protocol.messages import DeploySpec
    from workers.clouds.base import CloudConflict

    seeded = await asyncio.to_thread(vcsim_seeder.vm, "tmpl", [MIB])
    first = await adapter.deploy(seeded.ref, DeploySpec(name="run", power_on=False), _ignore)
    assert first.power_state == "poweredOff"
    again = await adapter.deploy(seeded.ref, DeploySpec(name="run"), _ignore)
    assert (again.object_id, again.power_state) == (first.object_id, "poweredOn")
    vms = await asyncio.to_thread(model_vms, vcsim_si)
    assert vms["run"] == (first.object_id, "poweredOn")
    other = await asyncio.to_thread(vcsim_seeder.vm, "other", [MIB], seed_value=2)
    with pytest.raises(CloudConflict, match="'run' already exists"):
        await adapter.deploy(other.ref, DeploySpec(name="run"), _ignore)
    with pytest.raises(CloudConflict, match="'tmpl' already exists"):  # not a clone at all
        await adapter.deploy(other.ref, DeploySpec(name="tmpl"), _ignore)
    assert await asyncio.to_thread(model_vms, vcsim_si) == {
        **vms, "other": (other.ref, "poweredOff")
    }  # fmt: skip


async def _ignore(_p: Any) -> None:
    return None


async def test_template_exports_and_deploys(adapter, vcsim_seeder, vcsim_si, tmp_path):
    from protocol.messages import DeploySpec

    seeded = await asyncio.to_thread(vcsim_seeder.vm, "golden", [2 * MIB])
    await asyncio.to_thread(vim.VirtualMachine(seeded.ref, vcsim_si._stub).MarkAsTemplate)
    items = {i.id: i for i in await adapter.inventory()}
    assert items[seeded.ref].kind is ObjectKind.TEMPLATE
    result = await adapter.export("DC0/vm/golden", tmp_path / "golden", _ignore)
    assert (tmp_path / "golden" / "disk-0.vmdk").read_bytes() == seeded.disks[0].read_bytes()
    assert result.descriptor == "golden.ovf"
    spec = DeploySpec(name="golden-1", power_on=False)
    deployed = await adapter.deploy(seeded.ref, spec, _ignore)
    assert deployed.power_state == "poweredOff"
    items = {i.id: i for i in await adapter.inventory()}
    assert items[deployed.object_id].kind is ObjectKind.VM
    assert items[deployed.object_id].path == "DC0/vm/golden-1"
    await adapter.export(deployed.object_id, tmp_path / "golden-1", _ignore)
    copy = tmp_path / "golden-1" / "disk-0.vmdk"
    assert copy.read_bytes() == seeded.disks[0].read_bytes()  # a clone has the content
    await adapter.export(seeded.ref, tmp_path / "again", _ignore)  # and the source kept its own
    assert (tmp_path / "again" / "disk-0.vmdk").read_bytes() == seeded.disks[0].read_bytes()


async def test_powered_on_vm_exports_through_a_temporary_clone(
    vcsim, vcsim_seeder, vcsim_si, tmp_path
):
    from tests.integration.vsphere.conftest import sim_config
    from workers.clouds.vsphere import VSphereAdapter

    seeded = await asyncio.to_thread(vcsim_seeder.vm, "live", [3 * MIB])
    vm = vim.VirtualMachine(seeded.ref, vcsim_si._stub)
    await asyncio.to_thread(lambda: vm.PowerOnVM_Task() and None)
    before = await asyncio.to_thread(model_vms, vcsim_si)
    assert before["live"][1] == "poweredOn"
    options = {"timeout_s": "10", "export_powered_on": "clone"}
    a = VSphereAdapter(sim_config(vcsim, options=options))
    try:
        result = await a.export(seeded.ref, tmp_path / "live", _ignore)
    finally:
        await a.close()
    desc = await asyncio.to_thread(check_package, tmp_path / "live", result.descriptor)
    assert result.descriptor == "live.ovf"
    assert [s.name for s in desc.systems] == ["live"]  # the clone carries the VM's name
    assert (tmp_path / "live" / "disk-0.vmdk").read_bytes() == seeded.disks[0].read_bytes()
    assert await asyncio.to_thread(model_vms, vcsim_si) == before  # clone removed, VM still on


async def test_pyvmomi_and_nfc_never_run_on_the_event_loop(
    adapter, vcsim_seeder, tmp_path, monkeypatch
):
    """Every SOAP call and every disk transfer runs in a worker thread (spied, not mocked)."""
    import threading

    from pyVmomi.SoapAdapter import SoapStubAdapter

    from workers.clouds import _vsphere_nfc as nfc

    seeded = await asyncio.to_thread(vcsim_seeder.vm, "busy", [4 * MIB, 2 * MIB])
    loop_thread = threading.current_thread()
    threads: list[tuple[str, threading.Thread]] = []

    def spy(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            threads.append((name, threading.current_thread()))
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(SoapStubAdapter, "InvokeMethod", spy("soap", SoapStubAdapter.InvokeMethod))
    monkeypatch.setattr(nfc, "download", spy("nfc-get", nfc.download))
    monkeypatch.setattr(nfc, "upload", spy("nfc-put", nfc.upload))
    await adapter.inventory()
    await adapter.export(seeded.ref, tmp_path / "busy", _ignore)
    await adapter.import_package(tmp_path / "busy", Target(name="busy-2"), _ignore)
    await adapter.close()
    assert {name for name, _ in threads} == {"soap", "nfc-get", "nfc-put"}
    on_loop = [name for name, t in threads if t is loop_thread]
    assert on_loop == []


@pytest.mark.parametrize("vms_per_pool", ["1", "12"])
async def test_inventory_costs_the_same_few_calls_whatever_its_size(
    vcsim_factory, monkeypatch, vms_per_pool
):
    """One PropertyCollector pass, not attribute by attribute (slow on a real vCenter)."""
    from pyVmomi.SoapAdapter import SoapStubAdapter

    from tests.integration.vsphere.conftest import sim_config
    from workers.clouds.vsphere import VSphereAdapter

    sim = vcsim_factory("-vm", vms_per_pool)
    a = VSphereAdapter(sim_config(sim))
    try:
        await a.check()
        methods: list[str] = []
        real: Any = SoapStubAdapter.InvokeMethod

        def spy(self: Any, mo: Any, info: Any, args: Any, *rest: Any) -> Any:
            methods.append(info.name)
            return real(self, mo, info, args, *rest)

        monkeypatch.setattr(SoapStubAdapter, "InvokeMethod", spy)
        items = await a.inventory()
        calls = list(methods)
    finally:
        await a.close()
    vms = [i for i in items if i.kind is ObjectKind.VM]
    assert len(vms) == 2 * int(vms_per_pool)  # standalone host pool + cluster pool
    # the same four calls for 2 or 24 VMs (a large vCenter adds ContinueRetrievePropertiesEx
    # pages of 1000 objects)
    assert calls == ["content", "CreateContainerView", "RetrievePropertiesEx", "Destroy"]
