"""hcc-transfer-disk (the node's transfer storage on its second disk) on a loop device backed by
a sparse file: formatted once, mounted, grown after the disk grew; a disk holding a file
system is never formatted. Needs root (losetup, mkfs, mount), as the appliance has."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.appliance.helpers import REPO

SCRIPT = REPO / "packer" / "files" / "sbin" / "hcc-transfer-disk"
MIB = 1024 * 1024


def sh(*args: str | Path) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True,
                          text=True, timeout=60).stdout  # fmt: skip


class Loop:
    def __init__(self, image: Path, size_mib: int) -> None:
        self.image = image
        image.write_bytes(b"")
        os.truncate(image, size_mib * MIB)
        self.dev = sh("losetup", "--find", "--show", image).strip()

    def grow(self, size_mib: int) -> None:
        os.truncate(self.image, size_mib * MIB)
        sh("losetup", "--set-capacity", self.dev)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[tuple[Loop, Path, dict[str, str]]]:
    if os.geteuid() != 0:
        pytest.fail("needs root (losetup, mkfs, mount), like `make test` on the project machines")
    loop = Loop(tmp_path / "disk2.img", 64)
    mount = tmp_path / "transfer"
    env = {
        **os.environ,
        "HCC_TRANSFER_MOUNT": str(mount),
        "HCC_TRANSFER_CANDIDATES": loop.dev,
        "HCC_TRANSFER_LABEL": f"hcct-{uuid.uuid4().hex[:8]}",
        "HCC_TRANSFER_OWNER": "root:root",
    }
    try:
        yield loop, mount, env
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, check=False)
        subprocess.run(["losetup", "--detach", loop.dev], capture_output=True, check=False)


def run_script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip


def size_mib(mount: Path) -> float:
    st = os.statvfs(mount)
    return st.f_blocks * st.f_frsize / MIB


def test_blank_disk_is_formatted_mounted_and_grown(disk):
    loop, mount, env = disk
    first = run_script(env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"making the transfer file system on {loop.dev}" in first.stdout
    assert os.path.ismount(mount)
    assert (
        sh("blkid", "-p", "-o", "value", "-s", "LABEL", loop.dev).strip()
        == env["HCC_TRANSFER_LABEL"]
    )
    assert 50 < size_mib(mount) <= 64
    (mount / "kept").write_text("package bytes")

    sh("umount", mount)  # a reboot: the disk was enlarged meanwhile
    loop.grow(160)
    second = run_script(env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "making the transfer file system" not in second.stdout
    assert "growing the file system" in second.stdout
    assert 140 < size_mib(mount) <= 160
    assert (mount / "kept").read_text() == "package bytes"

    sh("umount", mount)  # a plain reboot changes nothing
    third = run_script(env)
    assert third.returncode == 0
    assert "growing" not in third.stdout
    assert (mount / "kept").read_text() == "package bytes"


def test_a_disk_with_a_file_system_is_not_formatted(disk):
    loop, mount, env = disk
    sh("mkfs.ext4", "-q", "-L", "someone-else", loop.dev)
    result = run_script(env)
    assert result.returncode == 0, result.stderr
    assert "transfer storage stays on the system disk" in result.stdout
    assert not os.path.ismount(mount)
    assert sh("blkid", "-p", "-o", "value", "-s", "LABEL", loop.dev).strip() == "someone-else"
