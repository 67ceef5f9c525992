"""The receiver's disk: incoming artifacts, the fsync'd journal, commit. Blocking I/O.

Layout under the storage root::

    <root>/<artifact>/...                 the package: files already complete (what an
                                          import reads), and ``.hcc-exporting`` until the
                                          whole package is committed
    <root>/.incoming/<artifact>/manifest.json   merged ManifestDecl
    <root>/.incoming/<artifact>/journal         48-byte records (ledger.py)
    <root>/.incoming/<artifact>/data/...        files still arriving, written in place (sparse)
    <root>/.committed/<artifact>.json           the FinalManifest of a committed package

A file is *published* when the sender says it is final (a partial commit): its chunks are
all held, its SHA-256 is checked, and it is renamed from ``data/`` into the package, where
an import may start on it while other files are still on the way (the package follows the
convention of workers/ovf/layout.py: the marker says "still being written"). The commit of
the whole package publishes what is left, records the FinalManifest, then removes the
marker.

A chunk is recorded only after its bytes are durable: pwrite (with early write-back via
sync_file_range) -> fdatasync(data) -> append record -> fdatasync(journal). A crash
anywhere loses at most the chunks in flight. Methods here block; the aiohttp edge calls
them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import structlog

from workers.ovf.layout import EXPORTING_MARKER
from workers.transfer import testhooks
from workers.transfer.errors import ManifestConflict, StorageFull
from workers.transfer.ledger import ChunkRecord, Ledger, decode_records, encode_record
from workers.transfer.manifest import (
    FinalManifest,
    ManifestDecl,
    chunk_count,
    chunk_length,
    merge_decl,
)

log = structlog.get_logger()
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_SYNC_FILE_RANGE_WRITE = 2
HASH_READ_BYTES = 1 << 20


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing this range now, so the fdatasync later is short."""
    _libc.sync_file_range(
        ctypes.c_int(fd), ctypes.c_int64(offset), ctypes.c_int64(length), ctypes.c_uint(2)
    )


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _storage_error(exc: OSError) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull("no space left in transfer storage; partial data kept for resume")
    return exc


class IncomingArtifact:
    """One artifact being received: its merged manifest, ledger, journal and open files."""

    def __init__(
        self, directory: Path, decl: ManifestDecl, ledger: Ledger, package_dir: Path
    ) -> None:
        self.dir = directory
        self.decl = decl
        self.ledger = ledger
        self.package_dir = package_dir
        ours = (package_dir / EXPORTING_MARKER).exists()
        self.published = {
            i for i, f in enumerate(decl.files) if ours and (package_dir / f.path).is_file()
        }
        """Files renamed into the package (a rename is atomic: being there is being done)."""
        self._fds: dict[int, int] = {}
        self.closed = False
        self._lock = threading.Lock()
        self._sha_lock = threading.Lock()
        self._sha: dict[int, tuple[hashlib._Hash, int]] = {}
        """Per file: SHA-256 of the held prefix, and the next chunk it needs."""
        self._journal_fd = os.open(directory / "journal", os.O_WRONLY | os.O_APPEND)

    @classmethod
    def load(cls, directory: Path, package_dir: Path) -> IncomingArtifact:
        decl = ManifestDecl.model_validate_json((directory / "manifest.json").read_bytes())
        journal = directory / "journal"
        data = journal.read_bytes()
        records, valid = decode_records(data)
        if valid != len(data):
            os.truncate(journal, valid)
        return cls(directory, decl, Ledger.replay(records), package_dir)

    @classmethod
    def create(cls, directory: Path, decl: ManifestDecl, package_dir: Path) -> IncomingArtifact:
        (directory / "data").mkdir(parents=True, exist_ok=True)
        # A new ledger is empty: so is its journal (an unreadable left-over is dropped).
        os.close(os.open(directory / "journal", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
        write_json_atomic(directory / "manifest.json", decl.model_dump_json())
        fsync_dir(directory.parent)
        return cls(directory, decl, Ledger(), package_dir)

    def update_decl(self, decl: ManifestDecl) -> None:
        if decl != self.decl:
            write_json_atomic(self.dir / "manifest.json", decl.model_dump_json())
            self.decl = decl

    def data_path(self, file_index: int) -> Path:
        if file_index in self.published:
            return self.package_dir / self.decl.files[file_index].path
        return self.dir / "data" / self.decl.files[file_index].path

    def publish(self, file_indices: Sequence[int]) -> None:
        """Rename finalized files into the package (created with its marker first, so
        that a reader never takes a package with files still to come for a whole one)."""
        todo = [i for i in file_indices if i not in self.published]
        if not todo:
            return
        if not self.package_dir.exists():
            staged = self.dir / "package"
            staged.mkdir(exist_ok=True)
            (staged / EXPORTING_MARKER).touch()
            fsync_dir(staged)
            os.rename(staged, self.package_dir)
            fsync_dir(self.package_dir.parent)
        elif not (self.package_dir / EXPORTING_MARKER).exists():
            raise ManifestConflict(f"{self.package_dir.name} already exists in transfer storage")
        parents: set[Path] = set()
        for i in todo:
            src = self.dir / "data" / self.decl.files[i].path
            dst = self.package_dir / self.decl.files[i].path
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not src.exists():  # an empty file never written
                self._fd(i)
            os.rename(src, dst)
            self.published.add(i)
            parents.add(dst.parent)
        for d in parents:
            fsync_dir(d)

    def _fd(self, file_index: int) -> int:
        with self._lock:
            if self.closed:
                raise ValueError("artifact closed")
            fd = self._fds.get(file_index)
            if fd is None:
                path = self.data_path(file_index)
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
                self._fds[file_index] = fd
            return fd

    def write(self, file_index: int, offset: int, data: bytes | memoryview) -> None:
        self.write_pieces(file_index, offset, [data])

    def write_pieces(
        self, file_index: int, offset: int, pieces: Sequence[bytes | memoryview]
    ) -> None:
        """Write consecutive ``pieces`` at ``offset`` with one ``pwritev`` (no joining
        copy), then start their write-back."""
        fd = self._fd(file_index)
        total = sum(len(p) for p in pieces)
        try:
            done = os.pwritev(fd, pieces, offset)
            if done < total:  # short write: finish piece by piece
                with memoryview(b"".join(pieces)) as rest:
                    while done < total:
                        done += os.pwrite(fd, rest[done:], offset + done)
        except OSError as exc:
            raise _storage_error(exc) from exc
        start_writeback(fd, offset, total)

    def _drop_cached(self, fd: int, index: int) -> None:
        """Chunk ``index`` is durable and in the running SHA-256: nothing reads it again
        before the commit, so its page cache goes. The next chunks then reuse the pages
        just freed instead of touching fresh memory at every MiB (on a VM each first
        touch of a guest page can cost a fault in the host), and a multi-GiB transfer
        does not push the node's other files out of the cache."""
        cb = self.decl.chunk_bytes
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, index * cb, cb, os.POSIX_FADV_DONTNEED)

    def finish_chunk(self, rec: ChunkRecord) -> None:
        """Make the chunk durable, then journal it (fsync'd). Only then is it held."""
        fd = self._fd(rec.file_index)
        try:
            os.fdatasync(fd)
            testhooks.crash_point("receiver.before-journal")
            with self._lock:
                os.write(self._journal_fd, encode_record(rec))
                testhooks.crash_point("receiver.before-journal-fsync")
                os.fdatasync(self._journal_fd)
        except OSError as exc:
            raise _storage_error(exc) from exc
        self.ledger.record(rec)

    def advance_sha(self, file_index: int) -> None:
        """Extend the file's SHA-256 over the contiguous held prefix as it grows, reading
        it back from the page cache, so a commit does not have to read whole files
        again. Called after each chunk is held, off the stream's critical path: hashing
        the bytes as they come in would make the stream wait for SHA-256 (about four times
        slower than BLAKE3) at the end of every chunk."""
        with self._sha_lock:
            if self.closed:
                return
            h, nxt = self._sha.get(file_index) or (hashlib.sha256(), 0)
            size = self.decl.files[file_index].size
            cb = self.decl.chunk_bytes
            fd = self._fd(file_index)
            while self.ledger.digest(file_index, nxt) is not None:
                _sha256_rest(h, fd, nxt * cb, nxt * cb + chunk_length(size, cb, nxt))
                self._drop_cached(fd, nxt)
                nxt += 1
            self._sha[file_index] = (h, nxt)

    def reserved_bytes(self) -> int:
        """Bytes this artifact may occupy: known sizes, or held chunks while unknown."""
        total = 0
        for i, f in enumerate(self.decl.files):
            held = len(self.ledger.held.get(i, {})) * self.decl.chunk_bytes
            total += f.size if f.size is not None else held
        return total

    def close(self) -> None:
        with self._lock:
            self.closed = True
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
            with contextlib.suppress(OSError):
                os.close(self._journal_fd)

    def finalize_files(self, final: FinalManifest) -> list[str]:
        """Truncate each file to its size, fsync it, check its SHA-256 (published files
        were checked already). Mismatching paths."""
        bad: list[str] = []
        for f in final.files:
            idx = self.decl.index_of(f.path)
            assert idx is not None
            if idx in self.published:
                continue
            fd = self._fd(idx)
            os.ftruncate(fd, f.size)
            os.fsync(fd)
            with self._sha_lock:
                h, nxt = self._sha.get(idx) or (hashlib.sha256(), 0)
                _sha256_rest(h, fd, nxt * final.chunk_bytes, f.size)
                self._sha[idx] = (h, chunk_count(f.size, final.chunk_bytes))
            if h.hexdigest() != f.sha256:
                bad.append(f.path)
        return bad


def _sha256_rest(h: hashlib._Hash, fd: int, pos: int, size: int) -> None:
    """Feed ``h`` the file's bytes from ``pos`` to ``size`` (holes read as zeros), through
    one reused 1 MiB buffer: no fresh memory per read."""
    buf = bytearray(HASH_READ_BYTES)
    with memoryview(buf) as view:
        while pos < size:
            got = os.preadv(fd, [view[: min(HASH_READ_BYTES, size - pos)]], pos)
            if not got:
                break
            h.update(view[:got])
            pos += got


class Store:
    """All artifacts under one storage root, with quota and free-space checks."""

    def __init__(self, root: Path, quota_bytes: int | None, reserve_bytes: int = 0) -> None:
        self.root = root
        self.quota_bytes = quota_bytes
        self.reserve_bytes = reserve_bytes
        self.incoming_dir = root / ".incoming"
        self.committed_dir = root / ".committed"
        for d in (root, self.incoming_dir, self.committed_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.artifacts: dict[str, IncomingArtifact] = {}

    def recover(self) -> None:
        """Load every incoming artifact, finish interrupted commits, count usage."""
        for d in sorted(self.incoming_dir.iterdir()):
            if not d.is_dir():
                continue
            if self.committed(d.name) is not None:  # cut short after its FinalManifest
                (self.root / d.name / EXPORTING_MARKER).unlink(missing_ok=True)
                shutil.rmtree(d)
                continue
            try:
                self.artifacts[d.name] = IncomingArtifact.load(d, self.root / d.name)
            except (OSError, ValueError) as exc:
                log.warning("transfer.incoming_unreadable", artifact=d.name, error=str(exc))

    def committed_bytes(self) -> int:
        """Bytes of the packages in place (walked on demand: cleanup deletes them); an
        incoming artifact's published files count in its reserved bytes."""
        return sum(
            p.stat().st_size
            for d in self.root.iterdir()
            if d.is_dir() and not d.name.startswith(".") and d.name not in self.artifacts
            for p in d.rglob("*")
            if p.is_file()
        )

    def committed(self, artifact_id: str) -> FinalManifest | None:
        marker = self.committed_dir / f"{artifact_id}.json"
        if marker.exists() and (self.root / artifact_id).is_dir():
            return FinalManifest.model_validate_json(marker.read_bytes())
        return None

    def used_bytes(self, excluding: str | None = None) -> int:
        others = sum(a.reserved_bytes() for k, a in self.artifacts.items() if k != excluding)
        return self.committed_bytes() + others

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def check_room(self, artifact_id: str, need_total: int, need_now: int) -> None:
        """Quota on the artifact's total size; free disk for what is still to come."""
        quota = self.quota_bytes
        if quota is not None and self.used_bytes(excluding=artifact_id) + need_total > quota:
            raise StorageFull("transfer storage quota exceeded")
        if self.free_bytes() < need_now + self.reserve_bytes:
            raise StorageFull("not enough free disk space in transfer storage")

    def declare(self, artifact_id: str, decl: ManifestDecl) -> IncomingArtifact:
        art = self.artifacts.get(artifact_id)
        merged = merge_decl(art.decl if art else None, decl)
        held = art.ledger.held_bytes(merged) if art else 0
        total = merged.known_bytes()
        self.check_room(artifact_id, total, max(0, total - held))
        if art is None:
            art = IncomingArtifact.create(
                self.incoming_dir / artifact_id, merged, self.root / artifact_id
            )
            self.artifacts[artifact_id] = art
        else:
            art.update_decl(merged)
        return art

    def commit_files(self, artifact_id: str, final: FinalManifest) -> IncomingArtifact:
        """Check ``final``'s files (every declared file unless it is partial), make them
        durable and publish them. Raises ManifestConflict."""
        art = self.artifacts[artifact_id]
        art.ledger.check_final(art.decl, final, partial=final.partial)
        art.update_decl(merge_decl(art.decl, final.as_decl()))
        bad = art.finalize_files(final)
        if bad:
            raise ManifestConflict(f"SHA-256 differs for {bad[:5]}", code="sha256-mismatch")
        art.publish([i for f in final.files if (i := art.decl.index_of(f.path)) is not None])
        return art

    def commit(self, artifact_id: str, final: FinalManifest) -> None:
        """Check, fsync and publish every file of a complete artifact, record its
        FinalManifest, remove the package's marker. Raises ManifestConflict."""
        assert not final.partial, "a partial manifest does not complete a package"
        art = self.commit_files(artifact_id, final)
        if not art.package_dir.exists():  # a package without files
            art.package_dir.mkdir()
        write_json_atomic(self.committed_dir / f"{artifact_id}.json", final.model_dump_json())
        art.close()
        (art.package_dir / EXPORTING_MARKER).unlink(missing_ok=True)
        fsync_dir(art.package_dir)
        shutil.rmtree(art.dir)
        del self.artifacts[artifact_id]

    def discard(self, artifact_id: str) -> None:
        """Forget an artifact: partial data, journal, commit marker and the package."""
        art = self.artifacts.pop(artifact_id, None)
        if art is not None:
            art.close()
        shutil.rmtree(self.incoming_dir / artifact_id, ignore_errors=True)
        shutil.rmtree(self.root / artifact_id, ignore_errors=True)
        (self.committed_dir / f"{artifact_id}.json").unlink(missing_ok=True)

    def close(self) -> None:
        for art in self.artifacts.values():
            art.close()
