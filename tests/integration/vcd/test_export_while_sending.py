"""The end-to-end copy's overlap: the transfer sender streams a vCD export to a receiver while
the adapter is still writing it (``.hcc-exporting`` + ``<name>.part`` convention); the
receiver gets exactly the finished package, which imports back into vCD."""

from __future__ import annotations

import asyncio
from pathlib import Path

from protocol.messages import Target
from tests.fixtures.transfer import Receiver, sha256_file
from tests.integration.vcd.conftest import (
    AdapterFactory,
    ProgressLog,
    Sim,
    disk_bytes,
    make_package,
)
from workers.ovf.manifest import verify_manifest
from workers.transfer.sender import SendOptions, send_package

MIB = 1024 * 1024


async def _no_refresh() -> str:
    raise AssertionError("no token refresh expected")


async def test_package_sent_while_exporting_arrives_whole(
    sim: Sim,
    make_adapter: AdapterFactory,
    tmp_path: Path,
    transfer_receiver: Receiver,
    progress: ProgressLog,
) -> None:
    adapter = make_adapter(sim)
    disks = {"big-disk1.vmdk": disk_bytes(3 * MIB, 30), "big-disk2.vmdk": disk_bytes(MIB, 31)}
    pkg = make_package(tmp_path / "in", "big", disks)
    result = await adapter.import_package(pkg, Target(catalog="Templates", name="big"), progress)

    dest = tmp_path / "artifact"
    dest.mkdir()
    (dest / ".hcc-exporting").touch()  # as the node's export step does before it starts

    async def sent(done: int, total: int | None, rate: float) -> None:
        return None

    opts = SendOptions(poll_interval_s=0.01, progress_interval_s=0)
    sender = asyncio.create_task(
        send_package(dest, transfer_receiver.body("vcd-art"), sent, _no_refresh, options=opts)
    )
    exported = await adapter.export(result.object_id, dest, progress)
    sendresult = await sender

    got = transfer_receiver.root / "vcd-art"
    assert sorted(p.name for p in got.iterdir()) == sorted(exported.files)
    for name in exported.files:
        assert sha256_file(got / name) == sha256_file(dest / name)
    assert set(sendresult.files) == set(exported.files)
    verify_manifest(got, "big.mf", required=["big.ovf", *disks])
    again = await adapter.import_package(got, Target(catalog="Templates", name="big-2"), progress)
    tid = again.object_id.rsplit(":", 1)[1]
    assert sim.store.file_path(tid, "big-disk1.vmdk").read_bytes() == disks["big-disk1.vmdk"]
