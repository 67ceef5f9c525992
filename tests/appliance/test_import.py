"""The appliance OVAs, packed as `make appliance` packs them (tiny disks), imported through
hcc's own adapters: into vcsim (vSphere) and into the vCD simulator. A descriptor that
govmomi's OVF parser or vCD's upload rules refuse fails here. (vcsim 0.24 does not turn a
ProductSection into vApp options; test_descriptor.py checks the properties themselves.)"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import tarfile
from typing import Any

import pytest

from firstboot.properties import Kind
from protocol.messages import CloudKind, Target
from sim.vcsim.process import VcsimProcess
from tests.appliance.helpers import TINY_DISKS, extract_ova, tiny_ova
from tests.fixtures.vcdsim import VcdSimInProcess
from workers.clouds._vsphere_session import vim
from workers.clouds.base import CloudConfig, Progress
from workers.clouds.vcd import VcdAdapter
from workers.clouds.vsphere import VSphereAdapter


async def _ignore(p: Progress) -> None:
    return None


def vcsim_config(sim: VcsimProcess) -> CloudConfig:
    pem = ssl.get_server_certificate((sim.host, sim.port))
    return CloudConfig(
        cloud_id="vc1",
        kind=CloudKind.VSPHERE,
        endpoint=f"https://{sim.host}:{sim.port}/sdk",
        username=sim.username,
        password=sim.password,
        thumbprint=hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest(),
    )


def vm_facts(si: Any, moid: str) -> dict[str, Any]:
    vm = vim.VirtualMachine(moid, si._stub)
    hw = vm.config.hardware
    disks = [d for d in hw.device if isinstance(d, vim.vm.device.VirtualDisk)]
    nics = [d for d in hw.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]
    return {
        "name": vm.name,
        "cpus": hw.numCPU,
        "memory_mib": hw.memoryMB,
        "disks": [d.capacityInBytes or d.capacityInKB * 1024 for d in disks],
        "nics": len(nics),
    }


@pytest.mark.vcsim
@pytest.mark.parametrize("kind", list(Kind))
async def test_appliance_ova_imports_into_vcsim(kind, vcsim: VcsimProcess, vcsim_si, tmp_path):
    ova = await asyncio.to_thread(tiny_ova, kind, tmp_path)
    with tarfile.open(ova) as tar:  # descriptor first, then manifest, then disks (ovftool's order)
        names = tar.getnames()
    assert names[:2] == [f"hcc-{kind.value}.ovf", f"hcc-{kind.value}.mf"]
    assert names[2:] == [f"hcc-{kind.value}-disk{i + 1}.vmdk" for i in range(len(TINY_DISKS[kind]))]
    pkg = await asyncio.to_thread(extract_ova, ova, tmp_path / "pkg")
    adapter = VSphereAdapter(vcsim_config(vcsim))
    try:
        result = await adapter.import_package(pkg, Target(name=f"hcc-{kind.value}-1"), _ignore)
    finally:
        await adapter.close()
    facts = await asyncio.to_thread(vm_facts, vcsim_si, result.object_id)
    assert facts["name"] == f"hcc-{kind.value}-1"
    assert (facts["cpus"], facts["memory_mib"], facts["nics"]) == (1, 64, 1)
    assert facts["disks"] == TINY_DISKS[kind]


@pytest.mark.vcdsim
@pytest.mark.parametrize("kind", list(Kind))
async def test_appliance_ova_imports_into_vcd(kind, vcd_sim_app: VcdSimInProcess, tmp_path):
    ova = await asyncio.to_thread(tiny_ova, kind, tmp_path)
    pkg = await asyncio.to_thread(extract_ova, ova, tmp_path / "pkg")
    config = CloudConfig(
        cloud_id="vcd1",
        kind=CloudKind.VCD,
        endpoint=vcd_sim_app.url,
        username="acme-admin",
        password="hcc-demo-password",
        org="acme",
    )
    adapter = VcdAdapter(config)
    try:
        target = Target(catalog="Templates", name=f"hcc-{kind.value}")
        result = await adapter.import_package(pkg, target, _ignore)
    finally:
        await adapter.close()
    assert result.kind == "vapp_template"
    tid = result.object_id.rsplit(":", 1)[1]
    disks = sorted(p.name for p in pkg.glob("*.vmdk"))
    assert len(disks) == len(TINY_DISKS[kind])
    for name in disks:
        stored = vcd_sim_app.store.file_path(tid, name)
        assert stored.read_bytes() == (pkg / name).read_bytes()
