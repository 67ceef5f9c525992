"""AppendOnlyFile: a restarted download never rewrites bytes a concurrent reader has seen."""

from __future__ import annotations

import os
from pathlib import Path

from workers.clouds._vcd_download import AppendOnlyFile

DATA = bytes(range(256)) * 40


def write_all(path: Path, pieces: list[bytes]) -> AppendOnlyFile:
    out = AppendOnlyFile(path)
    for piece in pieces:
        out.write(piece)
    out.close(True)
    return out


def test_fresh_file_is_written(tmp_path: Path) -> None:
    path = tmp_path / "d.vmdk.part"
    write_all(path, [DATA[:1000], DATA[1000:]])
    assert path.read_bytes() == DATA


def test_matching_prefix_is_kept_in_place(tmp_path: Path) -> None:
    path = tmp_path / "d.vmdk.part"
    path.write_bytes(DATA[:3000])  # an earlier attempt got this far
    inode = os.stat(path).st_ino
    reader = path.open("rb")  # a sender holding the file open
    first = reader.read(3000)
    write_all(path, [DATA[i : i + 777] for i in range(0, len(DATA), 777)])
    assert path.read_bytes() == DATA
    assert os.stat(path).st_ino == inode
    assert first + reader.read() == DATA  # the reader sees one consistent, growing file
    reader.close()


def test_differing_prefix_is_cut_and_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "d.vmdk.part"
    path.write_bytes(DATA[:2000] + b"X" * 1000)
    write_all(path, [DATA[:2500], DATA[2500:]])
    assert path.read_bytes() == DATA


def test_longer_leftover_is_cut_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "d.vmdk.part"
    path.write_bytes(DATA + b"extra")
    write_all(path, [DATA])
    assert path.read_bytes() == DATA


def test_incomplete_write_keeps_what_is_there(tmp_path: Path) -> None:
    path = tmp_path / "d.vmdk.part"
    path.write_bytes(DATA)
    out = AppendOnlyFile(path)
    out.write(DATA[:100])
    out.close(False)  # a failed attempt: nothing shrinks
    assert path.read_bytes() == DATA
