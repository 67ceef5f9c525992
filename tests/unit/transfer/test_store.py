"""The receiver's disk side, without HTTP: journal replay, commit, recovery, quota."""

import ctypes
import ctypes.util
import hashlib
import mmap
import os
import shutil
from pathlib import Path

import blake3
import pytest

from workers.transfer.errors import ManifestConflict, StorageFull
from workers.transfer.ledger import RECORD_BYTES, ChunkRecord
from workers.transfer.manifest import FileDecl, FinalFile, FinalManifest, ManifestDecl
from workers.transfer.store import IncomingArtifact, Store

CB = 64 * 1024


def _decl(size: int | None = 3 * CB) -> ManifestDecl:
    return ManifestDecl(chunk_bytes=CB, files=(FileDecl(path="disk", size=size),))


def _put(art: IncomingArtifact, index: int, data: bytes) -> None:
    art.write(0, index * CB, data)
    art.finish_chunk(ChunkRecord(0, index, blake3.blake3(data).digest()))
    art.advance_sha(0)


def test_replay_drops_a_torn_record_and_truncates_the_journal(tmp_path: Path):
    store = Store(tmp_path, None)
    art = store.declare("a", _decl())
    _put(art, 0, os.urandom(CB))
    _put(art, 2, os.urandom(CB - 1))
    art.close()
    journal = tmp_path / ".incoming" / "a" / "journal"
    with open(journal, "ab") as fh:
        fh.write(b"\x01" * (RECORD_BYTES - 3))
    again = Store(tmp_path, None)
    again.recover()
    ledger = again.artifacts["a"].ledger
    assert set(ledger.held[0]) == {0, 2}
    assert journal.stat().st_size == 2 * RECORD_BYTES


def test_commit_checks_hashes_and_moves_the_package_into_place(tmp_path: Path):
    store = Store(tmp_path, None)
    art = store.declare("a", _decl())
    chunks = [os.urandom(CB), bytes(CB), os.urandom(CB)]
    _put(art, 0, chunks[0])
    _put(art, 2, chunks[2])
    whole = b"".join(chunks)
    final = FinalManifest(
        chunk_bytes=CB,
        files=(
            FinalFile(
                path="disk",
                size=len(whole),
                sha256=hashlib.sha256(whole).hexdigest(),
                chunks=(blake3.blake3(chunks[0]).hexdigest(), "zero",
                        blake3.blake3(chunks[2]).hexdigest()),
            ),
        ),
    )  # fmt: skip
    bad = final.model_copy(
        update={"files": (final.files[0].model_copy(update={"sha256": "0" * 64}),)}
    )
    with pytest.raises(ManifestConflict, match="SHA-256"):
        store.commit("a", bad)
    assert not (tmp_path / "a").exists()
    store.commit("a", final)
    assert (tmp_path / "a" / "disk").read_bytes() == whole
    assert store.committed("a") == final
    assert not (tmp_path / ".incoming" / "a").exists()


def test_recover_finishes_a_commit_cut_short_after_the_rename(tmp_path: Path):
    store = Store(tmp_path, None)
    art = store.declare("a", _decl(0))
    final = FinalManifest(
        chunk_bytes=CB,
        files=(FinalFile(path="disk", size=0, sha256=hashlib.sha256().hexdigest(), chunks=()),),
    )
    store.commit("a", final)
    # Put back an incoming folder as if the crash came between the rename and the cleanup.
    shutil.copytree(tmp_path / "a", tmp_path / ".incoming" / "a" / "data")
    again = Store(tmp_path, None)
    again.recover()
    assert not (tmp_path / ".incoming" / "a").exists()
    assert "a" not in again.artifacts
    art.close()


def test_quota_counts_committed_and_incoming_artifacts(tmp_path: Path):
    store = Store(tmp_path, quota_bytes=5 * CB)
    store.declare("a", _decl(3 * CB))
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "f").write_bytes(b"x" * CB)
    store.declare("b", _decl(CB))
    with pytest.raises(StorageFull):
        store.declare("c", _decl(CB))
    store.close()


def test_reserve_keeps_free_space(tmp_path: Path):
    free = shutil.disk_usage(tmp_path).free
    store = Store(tmp_path, None, reserve_bytes=free)
    with pytest.raises(StorageFull, match="free disk"):
        store.declare("a", _decl(CB))


def _final(chunks: list[bytes]) -> FinalManifest:
    whole = b"".join(chunks)
    digests = tuple(blake3.blake3(c).hexdigest() for c in chunks)
    sha = hashlib.sha256(whole).hexdigest()
    return FinalManifest(
        chunk_bytes=CB, files=(FinalFile(path="disk", size=len(whole), sha256=sha, chunks=digests),)
    )


def test_running_sha256_follows_the_held_prefix(tmp_path: Path):
    """Chunks held out of order: the running SHA-256 stops at the first gap and picks up
    the chunks beyond it once the gap is filled; the commit then checks it."""
    store = Store(tmp_path, None)
    art = store.declare("a", _decl(3 * CB - 5))
    chunks = [os.urandom(CB), os.urandom(CB), os.urandom(CB - 5)]
    _put(art, 0, chunks[0])
    _put(art, 2, chunks[2])  # ahead of the gap: not hashed yet
    art.write_pieces(0, CB, [chunks[1][:100], memoryview(chunks[1])[100:]])
    art.finish_chunk(ChunkRecord(0, 1, blake3.blake3(chunks[1]).digest()))
    art.advance_sha(0)  # picks up chunks 1 and 2 from the page cache
    store.commit("a", _final(chunks))
    assert (tmp_path / "a" / "disk").read_bytes() == b"".join(chunks)


def test_a_running_sha256_over_other_bytes_fails_the_commit(tmp_path: Path):
    """What the commit checks is the running hash of the bytes on disk: a chunk whose
    bytes changed under the journal (say a disk that lost a write) fails it."""
    store = Store(tmp_path, None)
    art = store.declare("a", _decl(2 * CB))
    chunks = [os.urandom(CB), os.urandom(CB)]
    _put(art, 0, chunks[0])
    art.write(0, CB, b"\0" * CB)
    art.finish_chunk(ChunkRecord(0, 1, blake3.blake3(chunks[1]).digest()))
    art.advance_sha(0)
    with pytest.raises(ManifestConflict, match="SHA-256"):
        store.commit("a", _final(chunks))


def _resident_pages(path: Path, offset: int, length: int) -> int:
    """Pages of ``path`` in [offset, offset + length) that are in the page cache (mincore)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]  # fmt: skip
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    page = os.sysconf("SC_PAGE_SIZE")
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, offset)
        assert addr not in (None, ctypes.c_void_p(-1).value)
        vec = ctypes.create_string_buffer((length + page - 1) // page)
        try:
            assert libc.mincore(addr, length, vec) == 0, ctypes.get_errno()
        finally:
            libc.munmap(addr, length)
    finally:
        os.close(fd)
    return sum(b & 1 for b in vec.raw)


def test_chunks_in_the_running_sha256_leave_the_page_cache(tmp_path: Path):
    """Durable chunks that the running SHA-256 covers are not read again before the
    commit: their pages are dropped. One held ahead of a gap stays until it is hashed."""
    store = Store(tmp_path, None)
    art = store.declare("a", _decl())
    chunks = [os.urandom(CB) for _ in range(3)]
    data = tmp_path / ".incoming" / "a" / "data" / "disk"
    _put(art, 0, chunks[0])
    assert _resident_pages(data, 0, CB) == 0  # next in line: hashed and dropped at once
    art.write(0, 2 * CB, chunks[2])
    art.finish_chunk(ChunkRecord(0, 2, blake3.blake3(chunks[2]).digest()))
    art.advance_sha(0)
    assert _resident_pages(data, 2 * CB, CB) > 0  # ahead of the gap: read back later
    _put(art, 1, chunks[1])  # advance_sha reads 1 and 2 back, then drops them
    assert _resident_pages(data, 0, 3 * CB) == 0
    store.commit("a", _final(chunks))
    assert (tmp_path / "a" / "disk").read_bytes() == b"".join(chunks)


def _two_files() -> ManifestDecl:
    return ManifestDecl(
        chunk_bytes=CB, files=(FileDecl(path="d.ovf", size=None), FileDecl(path="disk", size=None))
    )


def _file_final(path: str, data: bytes) -> FinalFile:
    chunks = [data[i : i + CB] for i in range(0, len(data), CB)]
    return FinalFile(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                     chunks=tuple(blake3.blake3(c).hexdigest() for c in chunks))  # fmt: skip


def _put_file(art: IncomingArtifact, file_index: int, data: bytes) -> None:
    for i in range(0, len(data), CB):
        art.write(file_index, i, data[i : i + CB])
        art.finish_chunk(ChunkRecord(file_index, i // CB, blake3.blake3(data[i : i + CB]).digest()))


def test_a_partial_commit_publishes_complete_files_under_the_marker(tmp_path: Path):
    """A file the sender says is final is checked and renamed into the package, where an
    import may take it; the package keeps its "still being written" marker until the
    whole commit, and a restarted receiver goes on with the file where it now is."""
    store = Store(tmp_path, None)
    art = store.declare("a", _two_files())
    ovf, disk = b"<Envelope/>", os.urandom(2 * CB + 5)
    _put_file(art, 0, ovf)
    _put_file(art, 1, disk[: 2 * CB])
    with pytest.raises(ManifestConflict, match="missing"):  # its last chunk is not held
        store.commit_files(
            "a", FinalManifest(chunk_bytes=CB, files=(_file_final("disk", disk),), partial=True)
        )
    wrong = _file_final("d.ovf", ovf).model_copy(update={"sha256": "0" * 64})
    with pytest.raises(ManifestConflict, match="SHA-256"):
        store.commit_files("a", FinalManifest(chunk_bytes=CB, files=(wrong,), partial=True))
    assert not (tmp_path / "a").exists()
    store.commit_files(
        "a", FinalManifest(chunk_bytes=CB, files=(_file_final("d.ovf", ovf),), partial=True)
    )
    assert (tmp_path / "a" / "d.ovf").read_bytes() == ovf
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [".hcc-exporting", "d.ovf"]
    assert store.committed("a") is None
    store.close()

    again = Store(tmp_path, None)
    again.recover()
    art = again.artifacts["a"]
    assert art.published == {0}
    assert art.data_path(0) == tmp_path / "a" / "d.ovf"
    _put_file(art, 1, disk)
    final = FinalManifest(
        chunk_bytes=CB, files=(_file_final("d.ovf", ovf), _file_final("disk", disk))
    )
    again.commit("a", final)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["d.ovf", "disk"]
    assert (tmp_path / "a" / "disk").read_bytes() == disk
    assert again.committed("a") == final
    assert not (tmp_path / ".incoming" / "a").exists()


def test_recover_removes_the_marker_of_a_commit_cut_short_after_its_manifest(tmp_path: Path):
    store = Store(tmp_path, None)
    art = store.declare("a", _two_files())
    _put_file(art, 0, b"x")
    store.commit_files(
        "a", FinalManifest(chunk_bytes=CB, files=(_file_final("d.ovf", b"x"),), partial=True)
    )
    final = FinalManifest(
        chunk_bytes=CB, files=(_file_final("d.ovf", b"x"), _file_final("disk", b""))
    )
    (tmp_path / ".committed" / "a.json").write_text(final.model_dump_json())  # then a crash
    store.close()
    again = Store(tmp_path, None)
    again.recover()
    assert "a" not in again.artifacts
    assert not (tmp_path / "a" / ".hcc-exporting").exists()
    assert again.committed("a") == final


def test_a_package_folder_that_is_not_the_receivers_is_not_written_into(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "d.ovf").write_bytes(b"not ours")
    store = Store(tmp_path, None)
    art = store.declare("a", _two_files())
    assert art.published == set()  # a file of the same name there is not ours
    _put_file(art, 0, b"x")
    with pytest.raises(ManifestConflict, match="already exists"):
        store.commit_files(
            "a", FinalManifest(chunk_bytes=CB, files=(_file_final("d.ovf", b"x"),), partial=True)
        )
    assert [p.read_bytes() for p in (tmp_path / "a").iterdir()] == [b"not ours"]
    store.close()
