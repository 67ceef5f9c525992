"""VSphereAdapter refuses bad input clearly and leaves nothing half-done (against vcsim)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from protocol.messages import Target
from sim.vcsim import seed
from tests.integration.vsphere.conftest import Recorder, sim_config
from workers.clouds._vsphere_session import vim
from workers.clouds.base import (
    CloudAuthError,
    CloudConflict,
    CloudError,
    CloudNotFound,
    CloudQuotaExceeded,
    CloudUnreachable,
    InvalidPackage,
)
from workers.clouds.vsphere import VSphereAdapter

pytestmark = pytest.mark.vcsim
MIB = 2**20


async def _ignore(_p: Any) -> None:
    return None


def vm_names(si: Any) -> set[str]:
    view = si.content.viewManager.CreateContainerView(
        si.content.rootFolder, [vim.VirtualMachine], True
    )
    try:
        return {vm.name for vm in view.view}
    finally:
        view.DestroyView()


async def exported(adapter: VSphereAdapter, seeder: Any, tmp_path: Path, name: str) -> Path:
    seeded = await asyncio.to_thread(seeder.vm, name, [4 * MIB])
    dest = tmp_path / name
    await adapter.export(seeded.ref, dest, _ignore)
    return dest


async def test_wrong_credentials(vcsim):
    a = VSphereAdapter(sim_config(vcsim, password="wrong"))
    try:
        with pytest.raises(CloudAuthError, match="InvalidLogin"):
            await a.check()
    finally:
        await a.close()


@pytest.mark.parametrize("ref", ["vm-999999", "DC0/vm/no-such-vm", "DC0/host"])
async def test_vm_not_found(adapter, tmp_path, ref):
    with pytest.raises(CloudNotFound):
        await adapter.export(ref, tmp_path / "p", _ignore)


async def test_unreachable_vcenter_refused_port(vcsim):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    a = VSphereAdapter(sim_config(vcsim, endpoint=f"https://127.0.0.1:{port}/sdk"))
    try:
        with pytest.raises(CloudUnreachable) as err:
            await a.check()
        assert err.value.retryable
    finally:
        await a.close()


async def test_unreachable_vcenter_times_out(vcsim):
    with socket.socket() as silent:  # accepts TCP (backlog) but never speaks TLS
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        config = sim_config(vcsim, endpoint=f"127.0.0.1:{port}", options={"timeout_s": "1"})
        a = VSphereAdapter(config)
        started = time.monotonic()
        try:
            with pytest.raises(CloudUnreachable, match="timed out"):
                await a.check()
        finally:
            await a.close()
        assert time.monotonic() - started < 10


async def test_untrusted_certificate_is_refused_unless_pinned_or_insecure(vcsim):
    verify = VSphereAdapter(sim_config(vcsim, thumbprint=None))
    wrong_pin = VSphereAdapter(sim_config(vcsim, thumbprint="ab" * 32))
    insecure = VSphereAdapter(sim_config(vcsim, thumbprint=None, insecure=True))
    try:
        for a in (verify, wrong_pin):
            with pytest.raises(CloudError) as err:
                await a.check()
            assert err.value.code == "tls-untrusted"
        with structlog.testing.capture_logs() as logs:
            await insecure.check()
        assert any(e["event"] == "vsphere.tls_unverified" for e in logs)
    finally:
        for a in (verify, wrong_pin, insecure):
            await a.close()


async def test_datastore_too_small(adapter, vcsim_seeder, vcsim_si, tmp_path):
    pkg = await exported(adapter, vcsim_seeder, tmp_path, "big")

    def fill() -> None:  # vcsim books a new disk's capacity against the datastore
        ds = vcsim_si.content.searchIndex.FindByInventoryPath("DC0/datastore/LocalDS_0")
        seed.create_vm(vcsim_si, "filler", [ds.summary.freeSpace - 8 * MIB])

    await asyncio.to_thread(fill)
    before = await asyncio.to_thread(vm_names, vcsim_si)
    with pytest.raises(CloudQuotaExceeded, match="LocalDS_0"):
        await adapter.import_package(pkg, Target(name="big-copy"), _ignore)
    assert await asyncio.to_thread(vm_names, vcsim_si) == before


XXE = (
    '<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">&x;</Envelope>'
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE e [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">&c;</Envelope>'
)


def tamper(pkg: Path, how: str) -> None:
    ovf = pkg / "src.ovf"
    if how == "xxe":
        ovf.write_text(XXE)
    elif how == "laughs":
        ovf.write_text(LAUGHS)
    elif how == "missing-file":
        (pkg / "disk-0.vmdk").unlink()
    elif how == "escape":
        ovf.write_text(ovf.read_text().replace('ovf:href="disk-0.vmdk"', 'ovf:href="../x.vmdk"'))
    elif how == "bad-manifest":
        with open(pkg / "disk-0.vmdk", "r+b") as f:
            f.seek(1000)
            f.write(b"tampered")
    elif how == "two-descriptors":
        shutil.copy(ovf, pkg / "other.ovf")


@pytest.mark.parametrize(
    "how", ["xxe", "laughs", "missing-file", "escape", "bad-manifest", "two-descriptors"]
)
async def test_malformed_or_hostile_package(adapter, vcsim_seeder, vcsim_si, tmp_path, how):
    pkg = await exported(adapter, vcsim_seeder, tmp_path, "src")
    await asyncio.to_thread(tamper, pkg, how)
    before = await asyncio.to_thread(vm_names, vcsim_si)
    with pytest.raises(InvalidPackage):
        await adapter.import_package(pkg, Target(name="evil"), _ignore)
    assert await asyncio.to_thread(vm_names, vcsim_si) == before


async def test_name_collision_fails_or_gets_a_suffix(adapter, vcsim_seeder, tmp_path):
    pkg = await exported(adapter, vcsim_seeder, tmp_path, "app")
    with pytest.raises(CloudConflict, match="already exists"):
        await adapter.import_package(pkg, Target(name="app"), _ignore)
    result = await adapter.import_package(pkg, Target(name="app", on_conflict="suffix"), _ignore)
    assert result.name == "app-2"


async def test_failed_import_leaves_no_vm(adapter, vcsim_seeder, vcsim_si, tmp_path):
    pkg = await exported(adapter, vcsim_seeder, tmp_path, "half")

    async def fail_at_the_end(p: Any) -> None:
        if p.bytes_done:
            raise RuntimeError("operator cancelled")

    with pytest.raises(CloudError, match="operator cancelled"):
        await adapter.import_package(pkg, Target(name="half-copy"), fail_at_the_end)
    assert "half-copy" not in await asyncio.to_thread(vm_names, vcsim_si)


async def test_the_vm_of_an_import_whose_process_died_goes_before_the_retry(
    adapter, vcsim_seeder, vcsim_si, tmp_path, monkeypatch
):
    """A SIGKILLed node cannot destroy the VM its import had made. Its death is played by
    taking the in-process cleanup away for one attempt (only the lease ends, as vCenter ends
    a lease nobody renews); the retry finds the recorded VM, destroys it, and imports under
    the same name instead of failing on it or making ``name-2``."""
    from workers.clouds import _vsphere_import as import_

    pkg = await exported(adapter, vcsim_seeder, tmp_path, "orphan")

    def died(lease: Any, _entity: Any) -> bool:
        lease.HttpNfcLeaseAbort()
        return False

    async def fail_midway(p: Any) -> None:
        if p.bytes_done:
            raise RuntimeError("node killed")

    with monkeypatch.context() as m:
        m.setattr(import_, "discard", died)
        with pytest.raises(CloudError, match="node killed"):
            await adapter.import_package(pkg, Target(name="orphan-copy"), fail_midway)
    assert "orphan-copy" in await asyncio.to_thread(vm_names, vcsim_si)  # half-imported
    assert (pkg / import_.MADE_FILE).exists()

    result = await adapter.import_package(pkg, Target(name="orphan-copy"), _ignore)
    assert result.name == "orphan-copy"
    names = await asyncio.to_thread(vm_names, vcsim_si)
    assert "orphan-copy-2" not in names
    vm = vim.VirtualMachine(result.object_id, vcsim_si._stub)
    assert await asyncio.to_thread(lambda: vm.name) == "orphan-copy"  # the new one
    assert not (pkg / import_.MADE_FILE).exists()


async def test_failed_export_aborts_and_retry_moves_only_unfinished_disks(
    adapter, vcsim_seeder, tmp_path
):
    seeded = await asyncio.to_thread(vcsim_seeder.vm, "resume", [6 * MIB, 2 * MIB])
    dest = tmp_path / "resume"

    async def fail_at_the_end(p: Any) -> None:
        if p.bytes_done:
            raise RuntimeError("link down")

    with pytest.raises(CloudError, match="link down"):
        await adapter.export(seeded.ref, dest, fail_at_the_end)
    left = sorted(p.name for p in dest.iterdir())
    # finished disks stay for the retry, the marker says "incomplete"; no .part, no .ovf
    assert left == [".hcc-export.json", ".hcc-exporting", "disk-0.vmdk", "disk-1.vmdk"]
    with pytest.raises(InvalidPackage, match="incomplete"):
        await adapter.import_package(dest, Target(name="nope"), _ignore)
    (dest / "disk-1.vmdk").unlink()  # as if the attempt had died during disk 1

    progress = Recorder()
    result = await adapter.export(seeded.ref, dest, progress)
    assert progress.last_bytes == seeded.disks[1].stat().st_size
    assert sorted(result.files) == ["disk-0.vmdk", "disk-1.vmdk", "resume.mf", "resume.ovf"]
    assert sorted(p.name for p in dest.iterdir()) == sorted(result.files)
    assert (dest / "disk-1.vmdk").read_bytes() == seeded.disks[1].read_bytes()


async def test_a_part_file_of_a_dead_attempt_is_reused_not_recreated(
    adapter, vcsim_seeder, tmp_path
):
    seeded = await asyncio.to_thread(vcsim_seeder.vm, "crashed", [8 * MIB])
    dest = tmp_path / "crashed"
    dest.mkdir()
    (dest / ".hcc-exporting").touch()
    part = dest / "disk-0.vmdk.part"
    part.write_bytes(seeded.disks[0].read_bytes()[: 1024 * 1024])  # what the dead node wrote
    inode = part.stat().st_ino
    result = await adapter.export(seeded.ref, dest, _ignore)
    disk = dest / "disk-0.vmdk"
    assert disk.read_bytes() == seeded.disks[0].read_bytes()
    assert disk.stat().st_ino == inode  # appended to, never recreated
    assert sorted(p.name for p in dest.iterdir()) == sorted(result.files)  # marker gone


@pytest.mark.slow
async def test_cancelled_export_stops_its_streams_and_a_retry_completes(
    adapter, vcsim_seeder, tmp_path
):
    import threading

    seeded = await asyncio.to_thread(
        vcsim_seeder.vm, "cancel", [48 * MIB, 48 * MIB], zero_fraction=0.0
    )
    dest = tmp_path / "cancel"
    task = asyncio.create_task(adapter.export(seeded.ref, dest, _ignore))
    deadline = time.monotonic() + 30
    while not any(dest.glob("*.part")):  # a disk stream has started
        assert time.monotonic() < deadline, "no disk stream started"
        assert not task.done(), "export ended before it could be cancelled"
        await asyncio.sleep(0.002)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not [t.name for t in threading.enumerate() if t.name.startswith("nfc")]
    assert (dest / ".hcc-exporting").exists()  # incomplete

    result = await adapter.export(seeded.ref, dest, _ignore)
    for i, disk in enumerate(seeded.disks):
        assert (dest / f"disk-{i}.vmdk").read_bytes() == disk.read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == sorted(result.files)
