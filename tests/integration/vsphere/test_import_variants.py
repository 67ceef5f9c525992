"""Descriptors from other tools: what vcsim 0.24 got wrong (fixed in the overlay) and defaults."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from protocol.messages import Target
from workers.clouds._vsphere_session import vim
from workers.clouds.base import InvalidPackage
from workers.ovf.manifest import sha256_file, write_manifest

pytestmark = pytest.mark.vcsim
MIB = 2**20


async def _ignore(_p: Any) -> None:
    return None


def rewrite(pkg: Path, name: str) -> None:
    """No capacity units (= bytes), a CD-ROM on the SCSI controller, an unknown network."""
    ovf = pkg / f"{name}.ovf"
    text = ovf.read_text()
    text = text.replace(' ovf:capacityAllocationUnits="byte"', "")
    scsi = re.search(
        r"<rasd:InstanceID>(\d+)</rasd:InstanceID>\s*<rasd:ResourceSubType>VirtualSCSI", text
    )
    assert scsi is not None
    cdrom = (
        "<Item><rasd:AddressOnParent>3</rasd:AddressOnParent>"
        "<rasd:ElementName>CD/DVD drive 1</rasd:ElementName><rasd:InstanceID>99</rasd:InstanceID>"
        f"<rasd:Parent>{scsi.group(1)}</rasd:Parent><rasd:ResourceType>15</rasd:ResourceType>"
        "</Item>"
    )
    text = text.replace("</VirtualHardwareSection>", cdrom + "</VirtualHardwareSection>")
    text = text.replace('ovf:name="VM Network"', 'ovf:name="Prod"')
    text = text.replace("<rasd:Connection>VM Network<", "<rasd:Connection>Prod<")
    ovf.write_text(text)
    names = [p.name for p in sorted(pkg.iterdir()) if not p.name.endswith(".mf")]
    write_manifest(pkg, f"{name}.mf", {n: sha256_file(pkg / n) for n in names})


def devices(si: Any, moid: str) -> tuple[list[int], int, list[str]]:
    vm = vim.VirtualMachine(moid, si._stub)
    devs = vm.config.hardware.device
    caps = [
        d.capacityInBytes or d.capacityInKB * 1024
        for d in devs
        if isinstance(d, vim.vm.device.VirtualDisk)
    ]
    cdroms = sum(isinstance(d, vim.vm.device.VirtualCdrom) for d in devs)
    nets = [n.name for n in vm.network]
    return caps, cdroms, nets


async def test_units_cdrom_on_scsi_and_network_default(adapter, vcsim_seeder, vcsim_si, tmp_path):
    seeded = await asyncio.to_thread(vcsim_seeder.vm, "other", [4 * MIB])
    pkg = tmp_path / "other"
    await adapter.export(seeded.ref, pkg, _ignore)
    await asyncio.to_thread(rewrite, pkg, "other")
    result = await adapter.import_package(pkg, Target(name="other-copy"), _ignore)
    assert "Prod" in result.attributes["warnings"]
    caps, cdroms, nets = await asyncio.to_thread(devices, vcsim_si, result.object_id)
    assert caps == [4 * MIB]  # stock vcsim read a unit-less capacity as KB
    assert cdroms == 1  # stock vcsim panicked on a CD-ROM whose parent is SCSI
    assert len(nets) == 1


async def test_explicit_placement(adapter, vcsim_seeder, vcsim_si, tmp_path):
    seeded = await asyncio.to_thread(vcsim_seeder.vm, "placed", [MIB])
    pkg = tmp_path / "placed"
    await adapter.export(seeded.ref, pkg, _ignore)
    target = Target(
        name="placed-copy",
        folder="DC0/vm",
        datastore="LocalDS_0",
        resource_pool="DC0/host/DC0_C0/Resources",
        network="DC0_DVPG0",
    )
    result = await adapter.import_package(pkg, target, _ignore)
    assert result.attributes["datastore"] == "LocalDS_0"
    assert "warnings" not in result.attributes
    vm = vim.VirtualMachine(result.object_id, vcsim_si._stub)
    assert vm.resourcePool.name == "Resources"
    assert vm.resourcePool.owner.name == "DC0_C0"
    assert [n.name for n in vm.network] == ["DC0_DVPG0"]


OVF = """<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
    xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
    xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
    xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References><File ovf:href="d.vmdk" ovf:id="f1" ovf:size="{size}"/></References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:capacity="{capacity}" ovf:diskId="d1" ovf:fileRef="f1"/></DiskSection>
  <NetworkSection><Info>nets</Info><Network ovf:name="VM Network"/></NetworkSection>
  <VirtualSystem ovf:id="hand"><Info>vm</Info><Name>hand</Name>
    <VirtualHardwareSection><Info>hw</Info>
      <System><vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType></System>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>4</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>512</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType>
        <rasd:Connection>VM Network</rasd:Connection></Item>
      <Item><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType>
        {parent}<rasd:HostResource>ovf:/disk/d1</rasd:HostResource></Item>
    </VirtualHardwareSection></VirtualSystem>
</Envelope>
"""


def hand_package(tmp_path: Path, parent: bool) -> Path:
    from sim.vcsim import seed

    pkg = tmp_path / ("with-parent" if parent else "no-parent")
    pkg.mkdir()
    disk = seed.make_disk_image(pkg / "d.vmdk", 2 * MIB, seed=3)
    text = OVF.format(
        size=disk.stat().st_size,
        capacity=2 * MIB,
        parent="<rasd:Parent>3</rasd:Parent>" if parent else "",
    )
    (pkg / "hand.ovf").write_text(text)
    return pkg


async def test_a_minimal_descriptor_from_another_tool(adapter, vcsim_si, tmp_path):
    """No controller or NIC subtype (defaults), no manifest, unit-less capacity."""
    pkg = await asyncio.to_thread(hand_package, tmp_path, True)
    result = await adapter.import_package(pkg, Target(name="hand"), _ignore)
    caps, cdroms, nets = await asyncio.to_thread(devices, vcsim_si, result.object_id)
    assert caps == [2 * MIB]
    assert cdroms == 0
    assert nets == ["VM Network"]
    vm = vim.VirtualMachine(result.object_id, vcsim_si._stub)
    assert (vm.config.hardware.numCPU, vm.config.hardware.memoryMB) == (4, 512)


async def test_a_disk_without_controller_is_refused_clearly(adapter, tmp_path):
    pkg = await asyncio.to_thread(hand_package, tmp_path, False)
    with pytest.raises(InvalidPackage, match="no parent"):
        await adapter.import_package(pkg, Target(name="hand"), _ignore)


async def test_datacenters_and_clusters_inside_folders(vcsim_factory, tmp_path):
    """vcsim -folder 1: F0/DC0 with its hosts, VMs, networks and datastores in F0 sub-folders."""
    from tests.integration.vsphere.conftest import sim_config
    from workers.clouds.vsphere import VSphereAdapter

    sim = vcsim_factory("-folder", "1")
    a = VSphereAdapter(sim_config(sim))
    try:
        pkg = await asyncio.to_thread(hand_package, tmp_path, True)
        default = await a.import_package(pkg, Target(name="nested"), _ignore)
        placed = await a.import_package(
            pkg, Target(name="nested-2", folder="F0/DC0/vm/F0"), _ignore
        )
        paths = {i.id: i.path for i in await a.inventory()}
    finally:
        await a.close()
    assert paths[default.object_id] == "F0/DC0/vm/nested"
    assert paths[placed.object_id] == "F0/DC0/vm/F0/nested-2"
    assert default.attributes["resource_pool"] == placed.attributes["resource_pool"]
