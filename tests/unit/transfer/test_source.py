"""PackageSource: reading a package that an export is still writing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workers.transfer.source import PackageSource


def test_a_part_file_renamed_between_listing_and_opening_is_taken_at_its_final_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The exporter renames X.part to X when X is complete, at any moment: also between
    the sender's listing of the directory and its opening of the file. The race is forced
    here (a real exporter hits it only by timing; a send failed with source-changed in CI)."""
    (tmp_path / ".hcc-exporting").touch()
    (tmp_path / "disk.vmdk.part").write_bytes(b"x" * 1000)
    source = PackageSource(tmp_path, 4096, ".part", ".hcc-exporting")
    real_open = os.open

    def exporter_finishes_first(path: str | os.PathLike[str], flags: int, *rest: int) -> int:
        path = Path(path)
        if path.name == "disk.vmdk.part":
            path.rename(path.with_name("disk.vmdk"))
        return real_open(path, flags, *rest)

    with monkeypatch.context() as m:
        m.setattr(os, "open", exporter_finishes_first)
        source.rescan()  # raised FileNotFoundError (the send failed) before the fix
    assert source.files == []
    source.rescan()
    (only,) = source.files
    assert (only.path, only.final_size) == ("disk.vmdk", 1000)
    source.close()
