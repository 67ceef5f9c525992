"""Export of templates, catalog items and vApps; the vCD → package → vCD round trip."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from protocol.messages import DeploySpec, Target
from sim.vcd.web import STORE
from tests.fixtures.vcdsim import make_vmdk
from tests.integration.vcd.conftest import (
    AdapterFactory,
    ProgressLog,
    Sim,
    disk_bytes,
    make_package,
    start_sim,
)
from workers.clouds.base import CloudError, CloudNotFound, InvalidPackage, Progress
from workers.clouds.vcd import VcdAdapter
from workers.ovf.descriptor import parse_descriptor
from workers.ovf.manifest import verify_manifest

MARKER = ".hcc-exporting"


async def imported(adapter: VcdAdapter, tmp_path: Path, name: str, disks: dict[str, bytes]) -> str:
    pkg = make_package(tmp_path / "in", name, disks)
    result = await adapter.import_package(
        pkg, Target(catalog="Templates", name=name), ProgressLog()
    )
    return result.object_id


def check_streaming(dest: Path, progress: ProgressLog) -> None:
    """While bytes move the marker exists and every file is either final or ``.part``."""

    def check(p: Progress) -> None:
        assert (dest / MARKER).exists()
        names = [f.name for f in dest.iterdir()]
        assert all(n == MARKER or n.endswith((".part", ".ovf", ".vmdk")) for n in names), names
        assert not any(n.endswith(".mf") for n in names)  # the manifest comes last

    progress.checks.append(check)


async def test_export_template(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    adapter = make_adapter(sim)
    disks = {"web-disk1.vmdk": disk_bytes(3_000_000, 1), "web-disk2.vmdk": disk_bytes(10, 2)}
    urn = await imported(adapter, tmp_path, "web", disks)
    dest = tmp_path / "out"
    check_streaming(dest, progress)
    result = await adapter.export(urn, dest, progress)

    assert progress.events  # the streaming checks ran
    assert sorted(p.name for p in dest.iterdir()) == [
        "web-disk1.vmdk",
        "web-disk2.vmdk",
        "web.mf",
        "web.ovf",
    ]  # fmt: skip  (no marker, no .part left)
    assert result.descriptor == "web.ovf"
    assert result.files == {n: (dest / n).stat().st_size for n in result.files}
    assert set(result.files) == {"web-disk1.vmdk", "web-disk2.vmdk", "web.mf", "web.ovf"}
    for name, data in disks.items():
        assert (dest / name).read_bytes() == data
    verify_manifest(dest, "web.mf", required=["web.ovf", *disks])
    desc = parse_descriptor((dest / "web.ovf").read_bytes())
    assert [f.href for f in desc.files] == list(disks)
    assert progress.events[-1].bytes_done == progress.events[-1].bytes_total == 3_000_010


async def test_export_by_catalog_item_path_after_the_links_expired(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    adapter = make_adapter(sim)
    await imported(adapter, tmp_path, "db", {"db.vmdk": disk_bytes(1000, 3)})
    await adapter.export("acme/Templates/db", tmp_path / "one", progress)
    # the first export's links have been idle for longer than vCD keeps them
    sim.faults.update({"download_idle_timeout_s": 3600.0})
    template = next(t for t in sim.store.state.templates.values() if t.name == "db")
    assert template.download_id is not None
    template.download_last_access = 0.0
    await adapter.export("acme/Templates/db/db", tmp_path / "two", progress)
    assert (tmp_path / "two" / "db.vmdk").read_bytes() == disk_bytes(1000, 3)
    assert template.download_last_access > 0.0  # enabled again and used
    enables = [t for t in sim.store.state.tasks.values() if t.operation_name == "vdcEnableDownload"]
    assert len(enables) == 2


async def test_export_a_vapp_through_capture(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    adapter = make_adapter(sim)
    urn = await imported(adapter, tmp_path, "app", {"app.vmdk": disk_bytes(50_000, 4)})
    await adapter.deploy(urn, DeploySpec(name="app-01"), progress)
    result = await adapter.export("acme/acme-vdc/app-01", tmp_path / "out", progress)
    assert (tmp_path / "out" / "app.vmdk").read_bytes() == disk_bytes(50_000, 4)
    assert result.descriptor.startswith("app-01")
    # the temporary capture is gone again
    assert sorted(t.name for t in sim.store.state.templates.values()) == ["app"]
    assert sorted(i.name for i in sim.store.state.items.values()) == ["app"]


async def test_export_errors(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    adapter = make_adapter(sim)
    with pytest.raises(CloudNotFound, match="acme/Templates/nope"):
        await adapter.export("acme/Templates/nope", tmp_path / "x", progress)
    urn = await imported(adapter, tmp_path, "t", {"t.vmdk": disk_bytes(1000, 5)})
    sim.faults.update({"fail_operations": ["vdcEnableDownload"], "fail_count": 1,
                       "fail_message": "Transfer server unavailable."})  # fmt: skip
    with pytest.raises(CloudError, match="Transfer server unavailable"):
        await adapter.export(urn, tmp_path / "y", progress)


async def test_hostile_descriptor_from_vcd_is_refused(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    adapter = make_adapter(sim)
    urn = await imported(adapter, tmp_path, "h", {"h.vmdk": disk_bytes(100, 6)})
    tid = urn.rsplit(":", 1)[1]
    # a vCD that answers a descriptor pointing outside the package (state tampered with)
    stored = sim.store.file_path(tid, "descriptor.ovf")
    stored.write_bytes(stored.read_bytes().replace(b'ovf:href="h.vmdk"', b'ovf:href="../h"'))
    dest = tmp_path / "out"
    with pytest.raises(InvalidPackage, match="not a plain name"):
        await adapter.export(urn, dest, progress)
    assert sorted(p.name for p in dest.iterdir()) == [MARKER]  # incomplete: marker stays
    assert not (tmp_path / "h").exists()


async def test_round_trip_is_byte_identical(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    """vCD → package → vCD: real streamOptimized VMDKs, chunked uploads, two generations."""
    adapter = make_adapter(sim, upload_chunk_mib="0.25")
    src = tmp_path / "vmdk"
    src.mkdir()
    disks = {
        "rt-disk1.vmdk": make_vmdk(src / "rt-disk1.vmdk", size_mib=2, seed=7).read_bytes(),
        "rt-disk2.vmdk": make_vmdk(src / "rt-disk2.vmdk", size_mib=1, seed=8).read_bytes(),
    }
    first = await imported(adapter, tmp_path, "rt", disks)
    gen1 = await adapter.export(first, tmp_path / "gen1", progress)
    again = await adapter.import_package(
        gen1.package_dir, Target(catalog="Templates", name="rt-copy"), progress
    )
    gen2 = await adapter.export(again.object_id, tmp_path / "gen2", progress)
    for name, data in disks.items():
        assert (gen2.package_dir / name).read_bytes() == data
    tid = again.object_id.rsplit(":", 1)[1]
    assert sim.store.file_path(tid, "rt-disk1.vmdk").read_bytes() == disks["rt-disk1.vmdk"]
    deployed = await adapter.deploy(again.object_id, DeploySpec(name="rt-01"), progress)
    assert deployed.power_state == "poweredOn"


async def test_multi_part_files_are_joined(
    tmp_path: Path, make_adapter: AdapterFactory, progress: ProgressLog
) -> None:
    """A vCD that exports with ``ovf:chunkSize`` (the simulator serves files whole, so a test
    middleware in front of it re-declares the chunk size and serves ``<href>.00000000N``
    parts cut from the simulator's stored file)."""
    chunk = 100_000

    @web.middleware
    async def multipart(request: web.Request, handler: Any) -> web.StreamResponse:
        xid, _, name = request.path.removeprefix("/transfer/").partition("/")
        if request.method != "GET" or not request.path.startswith("/transfer/"):
            return await handler(request)
        if name == "descriptor.ovf":
            resp = await handler(request)
            assert isinstance(resp, web.Response)
            assert resp.body is not None
            body = bytes(resp.body)  # type: ignore[arg-type]
            body = body.replace(b'ovf:size="', f'ovf:chunkSize="{chunk}" ovf:size="'.encode())
            return web.Response(body=body, content_type="text/xml")
        m = re.fullmatch(r"(.+)\.(\d{9})", name)
        assert m, f"the adapter asked for {name}, not a part"
        store = request.app[STORE]
        t = next(t for t in store.state.templates.values() if t.download_id == xid)
        data = store.file_path(t.id, m[1]).read_bytes()
        part = int(m[2])
        return web.Response(body=data[part * chunk : (part + 1) * chunk])

    sim = await start_sim(tmp_path / "sim", middlewares=[multipart])
    try:
        adapter = make_adapter(sim)
        disks = {"m.vmdk": disk_bytes(250_001, 16), "n.vmdk": disk_bytes(chunk, 17)}
        urn = await imported(adapter, tmp_path, "m", disks)
        result = await adapter.export(urn, tmp_path / "out", progress)
        for name, data in disks.items():
            assert (tmp_path / "out" / name).read_bytes() == data
        ovf = (tmp_path / "out" / result.descriptor).read_bytes()
        assert b"chunkSize" not in ovf
        assert [f.size for f in parse_descriptor(ovf).files] == [250_001, chunk]
        verify_manifest(tmp_path / "out", "m.mf", required=["m.ovf", *disks])
    finally:
        await sim.runner.cleanup()


async def test_a_retried_export_appends_to_the_earlier_part_files(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    """An earlier attempt left ``.part`` files (one right, one with wrong bytes) that a
    sender may hold open: the right one is extended in place, the wrong one is corrected."""
    adapter = make_adapter(sim)
    disks = {"p1.vmdk": disk_bytes(200_000, 40), "p2.vmdk": disk_bytes(100_000, 41)}
    urn = await imported(adapter, tmp_path, "p", disks)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / ".hcc-exporting").touch()
    (dest / "p1.vmdk.part").write_bytes(disks["p1.vmdk"][:123_456])
    (dest / "p2.vmdk.part").write_bytes(b"garbage" * 1000)
    inode = (dest / "p1.vmdk.part").stat().st_ino
    result = await adapter.export(urn, dest, progress)
    assert (dest / "p1.vmdk").stat().st_ino == inode
    for name, data in disks.items():
        assert (dest / name).read_bytes() == data
    assert sorted(p.name for p in dest.iterdir()) == sorted(result.files)
    verify_manifest(dest, "p.mf", required=["p.ovf", *disks])
