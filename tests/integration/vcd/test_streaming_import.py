"""The import of a package that is still arriving (a copy's send runs beside it): checked
against vCD as soon as the descriptor is there, the upload opened once the first file is,
and each file uploaded as it completes while the next ones are still on the way
(workers/ovf/package.py, ``streaming``)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from protocol.messages import Target
from tests.fixtures.transfer import arrive
from tests.integration.vcd.conftest import (
    AdapterFactory,
    ProgressLog,
    Sim,
    disk_bytes,
    make_package,
)
from tests.waiting import eventually
from workers.clouds.base import InvalidPackage
from workers.ovf.layout import EXPORTING_MARKER
from workers.ovf.manifest import write_manifest

MIB = 1024 * 1024


def _arriving(tmp_path: Path) -> Path:
    pkg = tmp_path / "artifact"
    pkg.mkdir()
    (pkg / EXPORTING_MARKER).touch()
    return pkg


async def _said(progress: ProgressLog, message: str, done: int) -> bool:
    return any(p.message == message and p.bytes_done == done for p in progress.events)


async def test_each_file_is_uploaded_as_it_arrives(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    disks = {"s-disk1.vmdk": disk_bytes(2 * MIB, 40), "s-disk2.vmdk": disk_bytes(MIB, 41)}
    src = make_package(tmp_path / "src", "s", disks)
    pkg = _arriving(tmp_path)
    importing = asyncio.create_task(
        make_adapter(sim).import_package(
            pkg, Target(catalog="Templates", name="s"), progress, streaming=True
        )
    )
    arrive(src, pkg, "s.ovf")
    # checked against vCD (catalog, name) at once; the upload is opened only once the first
    # file is here (vCD ends an upload left idle too long)
    await eventually(lambda: _said(progress, "waiting for s-disk1.vmdk", 0), what="disk 1 wait")
    assert not [t for t in sim.store.state.templates.values() if t.name == "s"]
    arrive(src, pkg, "s-disk1.vmdk")
    # disk 1 is in vCD while disk 2 has not arrived
    await eventually(
        lambda: _said(progress, "waiting for s-disk2.vmdk", 2 * MIB), what="disk 2 wait"
    )
    (tpl,) = [t for t in sim.store.state.templates.values() if t.name == "s"]
    assert tpl.descriptor_uploaded
    assert sim.store.file_path(tpl.id, "s-disk1.vmdk").read_bytes() == disks["s-disk1.vmdk"]
    assert not importing.done()
    arrive(src, pkg, "s-disk2.vmdk")
    arrive(src, pkg, "s.mf")
    (pkg / EXPORTING_MARKER).unlink()
    result = await asyncio.wait_for(importing, 60)
    assert result.object_id.endswith(tpl.id)
    for name, data in disks.items():
        assert sim.store.file_path(tpl.id, name).read_bytes() == data


async def test_a_package_that_ends_without_a_file_fails_and_leaves_no_template(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    disks = {"e-disk1.vmdk": disk_bytes(MIB, 42)}
    src = make_package(tmp_path / "src", "e", disks)
    pkg = _arriving(tmp_path)
    arrive(src, pkg, "e.ovf")
    importing = asyncio.create_task(
        make_adapter(sim).import_package(
            pkg, Target(catalog="Templates", name="e"), progress, streaming=True
        )
    )
    await eventually(lambda: _said(progress, "waiting for e-disk1.vmdk", 0), what="disk wait")
    (pkg / EXPORTING_MARKER).unlink()  # whatever wrote it stopped: the disk never comes
    with pytest.raises(InvalidPackage, match=r"ended without e-disk1\.vmdk"):
        await asyncio.wait_for(importing, 60)
    assert not [t for t in sim.store.state.templates.values() if t.name == "e"]


async def test_a_manifest_that_does_not_match_what_arrived_discards_the_template(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    disks = {"m-disk1.vmdk": disk_bytes(MIB, 43)}
    src = make_package(tmp_path / "src", "m", disks)
    ovf_sum = hashlib.sha256((src / "m.ovf").read_bytes()).hexdigest()
    write_manifest(src, "m.mf", {"m.ovf": ovf_sum, "m-disk1.vmdk": "0" * 64})
    pkg = _arriving(tmp_path)
    for name in ("m.ovf", "m-disk1.vmdk", "m.mf"):
        arrive(src, pkg, name)
    importing = asyncio.create_task(
        make_adapter(sim).import_package(
            pkg, Target(catalog="Templates", name="m"), progress, streaming=True
        )
    )
    # every file is in vCD; the import waits for the package to be whole to check it
    await eventually(lambda: _said(progress, "uploading", MIB), what="the disk uploaded")
    (pkg / EXPORTING_MARKER).unlink()
    with pytest.raises(InvalidPackage, match=r"m-disk1\.vmdk"):
        await asyncio.wait_for(importing, 60)
    assert not [t for t in sim.store.state.templates.values() if t.name == "m"]
