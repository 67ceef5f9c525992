"""Reading a package that is still being written (workers/ovf/package.py): what a
streaming import may take, and when it must give up."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from tests.fixtures.vcdsim import make_ovf
from workers.ovf.layout import EXPORTING_MARKER
from workers.ovf.manifest import write_manifest
from workers.ovf.package import (
    PackageError,
    open_package,
    read_head,
    wait_complete,
    wait_file,
    wait_file_blocking,
)

SIZES = {"d1.vmdk": 1000, "d2.vmdk": 500}


def _arriving(tmp_path: Path, descriptor: bytes | None = None) -> Path:
    pkg = tmp_path / "art"
    pkg.mkdir()
    (pkg / EXPORTING_MARKER).touch()
    (pkg / "p.ovf").write_bytes(descriptor or make_ovf(SIZES))
    return pkg


def test_the_head_is_known_once_the_descriptor_is_there(tmp_path: Path):
    assert read_head(tmp_path / "art") is None  # the package has not started arriving
    pkg = tmp_path / "art"
    pkg.mkdir()
    (pkg / EXPORTING_MARKER).touch()
    (pkg / "p.ovf.part").write_bytes(b"<Envel")
    assert read_head(pkg) is None  # the descriptor is still being written
    (pkg / "p.ovf.part").rename(pkg / "p.ovf")
    (pkg / "p.ovf").write_bytes(make_ovf(SIZES))
    (pkg / "d1.vmdk").write_bytes(b"x" * 1000)
    head = read_head(pkg)
    assert head is not None
    assert not head.complete
    assert head.sizes["d1.vmdk"] == 1000
    assert head.sizes["d2.vmdk"] == 500
    (pkg / "d1.vmdk").write_bytes(b"x" * 999)
    with pytest.raises(PackageError, match="999 bytes"):
        read_head(pkg)


def test_a_file_to_come_without_a_declared_size_waits_for_the_whole_package(tmp_path: Path):
    ovf = make_ovf(SIZES).replace(b' ovf:size="500"', b"")
    pkg = _arriving(tmp_path, ovf)
    assert read_head(pkg) is None
    (pkg / "d1.vmdk").write_bytes(b"x" * 1000)
    (pkg / "d2.vmdk").write_bytes(b"y" * 7)
    (pkg / EXPORTING_MARKER).unlink()
    head = read_head(pkg)
    assert head is not None
    assert head.complete
    assert head.sizes["d2.vmdk"] == 7


async def test_files_are_taken_as_they_arrive_and_the_end_is_checked(tmp_path: Path):
    pkg = _arriving(tmp_path)
    head = await open_package(pkg, streaming=True)
    waiting = asyncio.create_task(wait_file(head, "d2.vmdk"))
    (pkg / "d1.vmdk").write_bytes(b"x" * 1000)
    assert await wait_file(head, "d1.vmdk") == pkg / "d1.vmdk"
    assert not waiting.done()
    (pkg / "d2.vmdk").write_bytes(b"y" * 500)
    assert await asyncio.wait_for(waiting, 10) == pkg / "d2.vmdk"
    write_manifest(pkg, "p.mf", {n: "0" * 64 for n in ("p.ovf", *SIZES)})
    (pkg / EXPORTING_MARKER).unlink()
    with pytest.raises(PackageError, match=r"p\.ovf"):  # the manifest is checked at the end
        await wait_complete(head)


async def test_a_package_that_ends_without_a_file_or_changes_its_descriptor_fails(
    tmp_path: Path,
):
    pkg = _arriving(tmp_path)
    head = await open_package(pkg, streaming=True)
    (pkg / "d1.vmdk").write_bytes(b"x" * 3)
    with pytest.raises(PackageError, match="3 bytes"):  # a file not as declared
        await wait_file(head, "d1.vmdk")
    (pkg / EXPORTING_MARKER).unlink()
    with pytest.raises(PackageError, match=r"ended without d2\.vmdk"):
        await wait_file(head, "d2.vmdk")
    (pkg / "d1.vmdk").write_bytes(b"x" * 1000)
    (pkg / "d2.vmdk").write_bytes(b"y" * 500)
    (pkg / "p.ovf").write_bytes(make_ovf(SIZES, vm="other"))
    with pytest.raises(PackageError, match="descriptor changed"):
        await wait_complete(head)


def test_a_waiting_thread_stops_when_cancelled(tmp_path: Path):
    pkg = _arriving(tmp_path)
    head = read_head(pkg)
    assert head is not None
    cancel = threading.Event()
    got: list[Path | None] = []
    waiter = threading.Thread(
        target=lambda: got.append(wait_file_blocking(head, "d1.vmdk", cancel))
    )
    waiter.start()
    cancel.set()
    waiter.join(10)
    assert got == [None]


async def test_without_streaming_an_unfinished_package_is_refused(tmp_path: Path):
    pkg = _arriving(tmp_path)
    with pytest.raises(PackageError, match="still being written"):
        await open_package(pkg, streaming=False)
