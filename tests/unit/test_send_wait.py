"""The send step waits for the export that writes its package (they overlap)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from workers.ovf.package import EXPORTING_MARKER
from workers.runtime.send import wait_for_package
from workers.runtime.steps import StepFailure


async def test_waits_until_the_export_marks_the_package(tmp_path: Path):
    package = tmp_path / "art"
    waiter = asyncio.create_task(wait_for_package(package, "art", timeout_s=30, poll_s=0.01))
    await asyncio.sleep(0.05)
    assert not waiter.done()  # nothing there yet
    package.mkdir()
    await asyncio.sleep(0.05)
    assert not waiter.done()  # an empty directory is not a package
    (package / EXPORTING_MARKER).touch()
    await asyncio.wait_for(waiter, 5)


async def test_a_finished_package_needs_no_marker(tmp_path: Path):
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "vm.ovf").write_text("<Envelope/>")
    await asyncio.wait_for(wait_for_package(tmp_path / "art", "art", timeout_s=1), 5)


async def test_no_export_at_all_fails_clearly(tmp_path: Path):
    with pytest.raises(StepFailure, match="no export is writing it") as info:
        await wait_for_package(tmp_path / "ghost", "ghost", timeout_s=0.05, poll_s=0.01)
    assert info.value.code == "not-found"
