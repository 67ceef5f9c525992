"""Export and send overlap: the transfer sender streams a vSphere export to a receiver while
the adapter is still writing it (``.hcc-exporting`` + ``<name>.part``); the receiver gets
exactly the finished package, which imports back into vSphere with the same disks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from protocol.messages import Target
from tests.fixtures.transfer import sha256_file
from workers.ovf.manifest import verify_manifest
from workers.transfer.sender import SendOptions, send_package

pytestmark = pytest.mark.vcsim
MIB = 2**20


async def _ignore(*_a: Any) -> None:
    return None


async def _no_refresh() -> str:
    raise AssertionError("no token refresh expected")


async def test_package_sent_while_exporting_arrives_whole(
    adapter, vcsim_seeder, tmp_path, transfer_receiver
):
    seeded = await asyncio.to_thread(vcsim_seeder.vm, "stream", [24 * MIB, 6 * MIB])
    dest = tmp_path / "artifact"
    dest.mkdir()
    (dest / ".hcc-exporting").touch()  # as the node's export step does before it starts
    opts = SendOptions(poll_interval_s=0.01, progress_interval_s=0)
    sender = asyncio.create_task(
        send_package(dest, transfer_receiver.body("vs-art"), _ignore, _no_refresh, options=opts)
    )
    exported = await adapter.export(seeded.ref, dest, _ignore)
    sent = await sender

    got = transfer_receiver.root / "vs-art"
    assert sorted(p.name for p in got.iterdir()) == sorted(exported.files)
    for name in exported.files:
        assert sha256_file(got / name) == sha256_file(dest / name)
    assert set(sent.files) == set(exported.files)
    verify_manifest(got, "stream.mf", required=["stream.ovf", "disk-0.vmdk", "disk-1.vmdk"])
    again = await adapter.import_package(got, Target(name="stream-copy"), _ignore)
    back = tmp_path / "back"
    await adapter.export(again.object_id, back, _ignore)
    for i, disk in enumerate(seeded.disks):
        assert (back / f"disk-{i}.vmdk").read_bytes() == disk.read_bytes()
