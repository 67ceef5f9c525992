"""ExportVApp through the adapter (vcsim -app 1: vApp DC0_C0_APP0 with two VMs)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import structlog

from protocol.messages import ObjectKind, Target
from sim.vcsim import seed
from tests.integration.vsphere.conftest import sim_config
from workers.clouds.vsphere import VSphereAdapter
from workers.ovf.descriptor import check_files, parse_descriptor
from workers.ovf.manifest import verify_manifest

pytestmark = pytest.mark.vcsim
MIB = 2**20


async def _ignore(_p: Any) -> None:
    return None


def seed_model_disk(sim: Any, source: Any) -> None:
    si = seed.connect(sim.host, sim.port, sim.username, sim.password)
    try:
        seed.upload_datastore_file(
            si, sim.host, sim.port, "LocalDS_0", "DC0_C0_APP0_VM0/disk1.vmdk", source
        )
    finally:
        seed.disconnect(si)


def check(dest: Any, descriptor: str) -> Any:
    desc = parse_descriptor((dest / descriptor).read_bytes())
    check_files(desc, {p.name: p.stat().st_size for p in dest.iterdir()})
    verify_manifest(dest, descriptor.removesuffix(".ovf") + ".mf")
    return desc


async def test_export_vapp_as_a_virtual_system_collection(vcsim_factory, tmp_path):
    sim = vcsim_factory("-app", "1", "-autostart=false")
    disk = await asyncio.to_thread(
        seed.make_disk_image, tmp_path / "app.vmdk", MIB, seed=7, zero_fraction=0.0
    )
    await asyncio.to_thread(seed_model_disk, sim, disk)
    adapter = VSphereAdapter(sim_config(sim))
    try:
        items = await adapter.inventory()
        (vapp,) = [i for i in items if i.kind is ObjectKind.VAPP]
        assert vapp.path == "DC0/vm/DC0_C0_APP0"
        dest = tmp_path / "vapp"
        result = await adapter.export(vapp.id, dest, _ignore)
        desc = await asyncio.to_thread(check, dest, result.descriptor)
        assert desc.collection
        assert [s.name for s in desc.systems] == ["DC0_C0_APP0_VM0", "DC0_C0_APP0_VM1"]
        assert len(desc.files) == 2
        first = dest / desc.files[0].href
        assert first.read_bytes() == disk.read_bytes()

        imported = await adapter.import_package(dest, Target(name="vapp-copy"), _ignore)
        assert imported.kind == "vapp"
        items = await adapter.inventory()
        by_id = {i.id: i for i in items}
        assert by_id[imported.object_id].path == "DC0/vm/vapp-copy"
        again = tmp_path / "again"
        result2 = await adapter.export(imported.object_id, again, _ignore)
        desc2 = await asyncio.to_thread(check, again, result2.descriptor)
        assert [s.name for s in desc2.systems] == ["DC0_C0_APP0_VM0", "DC0_C0_APP0_VM1"]
        assert (again / desc2.files[0].href).read_bytes() == disk.read_bytes()
    finally:
        await adapter.close()


async def test_session_expiry_is_handled_by_logging_in_again(adapter):
    await adapter.check()
    si = adapter._session.si()
    await asyncio.to_thread(si.content.sessionManager.Logout)
    items = await adapter.inventory()
    assert any(i.kind is ObjectKind.VM for i in items)
    assert adapter._session.si() is not si


async def test_keepalive_runs_in_the_background_and_logs_in_again(vcsim):
    a = VSphereAdapter(sim_config(vcsim, options={"keepalive_s": "0.05", "timeout_s": "10"}))
    try:
        with structlog.testing.capture_logs() as logs:
            await a.check()
            si = a._session.si()
            await asyncio.to_thread(si.content.sessionManager.Logout)
            deadline = time.monotonic() + 10
            while not any(e["event"] == "vsphere.relogin" for e in logs):  # the keep-alive's
                assert time.monotonic() < deadline, "keep-alive never noticed the lost session"
                await asyncio.sleep(0.05)
        assert a._session.si() is not si
    finally:
        await a.close()
