"""The import of a package that is still arriving (a copy's send runs beside it): checked
against vCD as soon as the descriptor is there, the upload opened once the first file is,
and each file uploaded as it completes while the next ones are still on the way
(workers/ovf/package.py, ``streaming``)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from protocol.messages import CloudKind, Envelope, ImportBody, ImportCommand, Target
from tests.fixtures.transfer import arrive
from tests.integration.vcd.conftest import (
    PASSWORD,
    AdapterFactory,
    ProgressLog,
    Sim,
    disk_bytes,
    make_package,
    start_sim,
)
from tests.waiting import eventually
from workers.clouds.base import CloudAuthError, CloudConfig, CloudNotFound, InvalidPackage
from workers.clouds.vcd import VcdAdapter
from workers.ovf.layout import EXPORTING_MARKER
from workers.ovf.manifest import write_manifest
from workers.runtime import steps
from workers.runtime.steps import StepContext

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


async def test_a_missing_catalog_fails_before_the_package_arrives(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    pkg = _arriving(tmp_path)  # nothing of it ever comes
    importing = make_adapter(sim).import_package(
        pkg, Target(catalog="Nope", name="n"), progress, streaming=True
    )
    with pytest.raises(CloudNotFound, match="Nope"):
        await asyncio.wait_for(importing, 60)


def _config(sim: Sim, password: str = PASSWORD) -> CloudConfig:
    return CloudConfig(cloud_id="vcd1", kind=CloudKind.VCD, endpoint=sim.url,
                       username="acme-admin", password=password, org="acme")  # fmt: skip


def _import_step(
    tmp_path: Path, config: CloudConfig, progress: ProgressLog, name: str
) -> StepContext:
    """The node's import step of a copy, on a storage where the package has not arrived."""
    command = ImportCommand(
        node_id="n2", step_id=uuid.uuid4(),
        body=ImportBody(cloud_id=config.cloud_id, artifact_id=name,
                        target=Target(catalog="Templates", name=name), streaming=True),
    )  # fmt: skip
    storage = tmp_path / "storage"
    storage.mkdir(exist_ok=True)

    async def emit(event_type: Callable[..., Envelope], body: object) -> Envelope:
        raise AssertionError(f"an import emits no extra event, not {event_type}")

    return StepContext(command=command, storage_dir=storage, clouds={config.cloud_id: config},
                       adapter_factory=VcdAdapter, progress=progress, emit=emit)  # fmt: skip


async def test_wrong_credentials_fail_the_import_step_before_the_package_arrives(
    sim: Sim, tmp_path: Path, progress: ProgressLog
) -> None:
    config = _config(sim, password="not-the-password")
    ctx = _import_step(tmp_path, config, progress, "w")  # the package never comes
    with pytest.raises(CloudAuthError, match="refused the login"):
        await asyncio.wait_for(steps.import_package(ctx), 60)
    assert not progress.events  # it failed before it began to wait


async def test_an_unreachable_destination_does_not_fail_the_wait_for_the_package(
    tmp_path: Path, progress: ProgressLog
) -> None:
    down = True

    @web.middleware
    async def outage(request: web.Request, handler: Any) -> web.StreamResponse:
        if down:
            return web.Response(status=503, text="maintenance")
        resp: web.StreamResponse = await handler(request)
        return resp

    sim = await start_sim(tmp_path / "vcdsim", middlewares=[outage])
    try:
        config = _config(sim)
        ctx = _import_step(tmp_path, config, progress, "u")
        importing = asyncio.create_task(steps.import_package(ctx))
        # the early login got a 503: a retry may cure that, so the step waits on
        await eventually(lambda: _said(progress, "waiting for the package", 0), what="waiting")
        assert not importing.done()
        down = False
        src = make_package(tmp_path / "src", "u", {"u-disk1.vmdk": disk_bytes(MIB, 44)})
        pkg = tmp_path / "storage" / "u"  # as the receiver makes it
        pkg.mkdir()
        (pkg / EXPORTING_MARKER).touch()
        for name in ("u.ovf", "u-disk1.vmdk", "u.mf"):
            arrive(src, pkg, name)
        (pkg / EXPORTING_MARKER).unlink()
        outcome = await asyncio.wait_for(importing, 60)
        assert outcome.result["name"] == "u"
        (tpl,) = [t for t in sim.store.state.templates.values() if t.name == "u"]
        assert sim.store.file_path(tpl.id, "u-disk1.vmdk").read_bytes() == disk_bytes(MIB, 44)
    finally:
        await sim.runner.cleanup()
