"""The import of a package that is still arriving (a copy's send runs beside it): the VM is
made from the descriptor as soon as it is there, and each disk is uploaded as it completes
while the next one is still on the way (workers/ovf/package.py, ``streaming``). The NFC
lease is kept alive meanwhile."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from protocol.messages import Target
from tests.fixtures.transfer import arrive
from tests.integration.vsphere.conftest import Recorder
from tests.waiting import eventually
from workers.clouds._vsphere_import import MADE_FILE
from workers.clouds.base import InvalidPackage
from workers.ovf.layout import EXPORTING_MARKER

pytestmark = pytest.mark.vcsim
MIB = 2**20


async def _ignore(*_a: Any) -> None:
    return None


async def test_each_disk_is_uploaded_as_it_arrives(adapter, vcsim_seeder, tmp_path: Path):
    seeded = await asyncio.to_thread(vcsim_seeder.vm, "grow", [8 * MIB, 2 * MIB])
    src = tmp_path / "src"
    exported = await adapter.export(seeded.ref, src, _ignore)
    pkg = tmp_path / "artifact"
    pkg.mkdir()
    (pkg / EXPORTING_MARKER).touch()
    progress = Recorder()
    importing = asyncio.create_task(
        adapter.import_package(pkg, Target(name="grow-copy"), progress, streaming=True)
    )
    arrive(src, pkg, "grow.ovf")

    async def vm_made() -> bool:  # written right after ImportVApp, before any upload
        return (pkg / MADE_FILE).exists()

    await eventually(vm_made, what="ImportVApp before any disk is there")
    arrive(src, pkg, "disk-0.vmdk")
    disk0 = exported.files["disk-0.vmdk"]

    async def disk0_uploaded() -> bool:
        return progress.last_bytes == disk0

    await eventually(disk0_uploaded, what="disk-0 uploaded while disk-1 is on its way")
    assert not importing.done()
    arrive(src, pkg, "disk-1.vmdk")
    arrive(src, pkg, "grow.mf")
    (pkg / EXPORTING_MARKER).unlink()
    result = await asyncio.wait_for(importing, 120)
    assert not (pkg / MADE_FILE).exists()
    back = tmp_path / "back"
    await adapter.export(result.object_id, back, _ignore)
    for i, disk in enumerate(seeded.disks):
        assert (back / f"disk-{i}.vmdk").read_bytes() == disk.read_bytes()


async def test_a_package_that_ends_without_a_disk_fails_and_leaves_no_vm(
    adapter, vcsim_seeder, tmp_path: Path
):
    seeded = await asyncio.to_thread(vcsim_seeder.vm, "cut", [2 * MIB])
    src = tmp_path / "src"
    await adapter.export(seeded.ref, src, _ignore)
    pkg = tmp_path / "artifact"
    pkg.mkdir()
    (pkg / EXPORTING_MARKER).touch()
    arrive(src, pkg, "cut.ovf")
    importing = asyncio.create_task(
        adapter.import_package(pkg, Target(name="cut-copy"), _ignore, streaming=True)
    )

    async def vm_made() -> bool:
        return (pkg / MADE_FILE).exists()

    await eventually(vm_made, what="ImportVApp")
    (pkg / EXPORTING_MARKER).unlink()  # whatever wrote it stopped: the disk never comes
    with pytest.raises(InvalidPackage, match=r"ended without disk-0\.vmdk"):
        await asyncio.wait_for(importing, 60)
    assert not (pkg / MADE_FILE).exists()  # the half-made VM was destroyed
    names = {i.name for i in await adapter.inventory()}
    assert "cut-copy" not in names
