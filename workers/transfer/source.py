"""The sender's view of a package directory on disk: files, growth, reads. Blocking I/O.

Called from the event loop through ``asyncio.to_thread`` (``rescan``, ``read``); the
bookkeeping itself is :mod:`workers.transfer.plan`.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import blake3

from workers.transfer.errors import SourceChanged
from workers.transfer.manifest import (
    ZERO,
    FileDecl,
    FinalFile,
    FinalManifest,
    ManifestDecl,
    check_relpath,
)
from workers.transfer.plan import ChunkJob, SourceFile, all_done, next_chunk, wire_name

_MF_LINE = re.compile(r"^SHA256\((?P<name>[^)]+)\)\s*=\s*(?P<hex>[0-9a-fA-F]{64})\s*$")


def parse_ovf_manifest(text: str) -> dict[str, str]:
    """``SHA256(name)= hex`` lines of an OVF manifest (.mf); other lines are ignored."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _MF_LINE.match(line.strip())
        if m:
            out[m["name"]] = m["hex"].lower()
    return out


@dataclass(frozen=True)
class ChunkData:
    job: ChunkJob
    data: bytearray | memoryview
    """The chunk's bytes, in a buffer the caller lent to :meth:`PackageSource.read`."""
    digest: str
    """BLAKE3 hex, or "zero"."""
    zero: bool
    held: bool


class PackageSource:
    def __init__(
        self, root: Path, chunk_bytes: int, partial_suffix: str, exporting_marker: str
    ) -> None:
        self.root = root
        self.chunk_bytes = chunk_bytes
        self.partial_suffix = partial_suffix
        self.marker = exporting_marker
        self.files: list[SourceFile] = []
        self._by_path: dict[str, SourceFile] = {}
        self._fds: dict[str, int] = {}
        self._sha: dict[str, hashlib._Hash] = {}
        self._known_sha: dict[str, str] = {}
        """SHA-256 taken from the package's OVF manifest: the export computed it."""
        self._chunks: dict[str, list[str]] = {}
        self.package_final = False
        self._zeros = bytes(chunk_bytes)
        self.last_growth = time.monotonic()
        """When a file last grew, appeared or became final (an export in progress)."""

    def rescan(self) -> bool:
        """Look at the directory again. True when the manifest must be re-declared."""
        if self.package_final and all(f.final_size is not None for f in self.files):
            return False
        final = not (self.root / self.marker).exists()
        changed = False
        paths = sorted(p for p in self.root.rglob("*") if p.is_file())
        mf_sums = {
            name: digest
            for p in paths
            if p.suffix == ".mf" and p.parent == self.root
            for name, digest in parse_ovf_manifest(p.read_text(errors="replace")).items()
        }
        for disk_path in paths:
            rel = disk_path.relative_to(self.root).as_posix()
            if rel == self.marker or rel.startswith(".hcc"):
                continue
            name, growing = wire_name(rel, self.partial_suffix)
            if name not in self._by_path and not growing and name in mf_sums:
                self._known_sha[name] = mf_sums[name]
            changed |= self._observe(check_relpath(name), disk_path, growing)
        if not self.files and not self.root.is_dir():
            raise SourceChanged(f"package directory {self.root} does not exist")
        changed |= final and not self.package_final
        self.package_final = final
        if changed:
            self.last_growth = time.monotonic()
        return changed

    def _observe(self, name: str, disk_path: Path, growing: bool) -> bool:
        f = self._by_path.get(name)
        changed = False
        if f is None:
            try:
                fd = os.open(disk_path, os.O_RDONLY)
            except FileNotFoundError:
                if growing:  # renamed to its final name since the listing: the next scan
                    return False  # finds it there (the same file on the wire)
                raise
            f = SourceFile(path=name)
            self.files.append(f)
            self._by_path[name] = f
            self._fds[name] = fd
            self._sha[name] = hashlib.sha256()
            self._chunks[name] = []
            changed = True
        if f.final_size is not None:
            return changed
        size = os.fstat(self._fds[name]).st_size
        if size < f.observed_bytes:
            raise SourceChanged(f"{name} shrank while being sent")
        if size > f.observed_bytes:
            self.last_growth = time.monotonic()
        f.observed_bytes = size
        if not growing:
            f.final_size = size
            changed = True
        return changed

    def decl(self) -> ManifestDecl:
        return ManifestDecl(
            chunk_bytes=self.chunk_bytes,
            files=tuple(FileDecl(path=f.path, size=f.final_size) for f in self.files),
        )

    def set_held(self, path: str, held: set[int]) -> None:
        f = self._by_path.get(path)
        if f is not None:
            f.held = held

    def next_job(self) -> ChunkJob | None:
        return next_chunk(self.files, self.chunk_bytes)

    def done(self) -> bool:
        return all_done(self.files, self.chunk_bytes, self.package_final)

    def total_bytes(self) -> int | None:
        if not self.package_final or any(f.final_size is None for f in self.files):
            return None
        return sum(f.final_size or 0 for f in self.files)

    def read(self, job: ChunkJob, buf: bytearray) -> ChunkData:
        """Read one chunk (in file order) into ``buf``, hash it, and advance the file."""
        path = job.file.path
        data: bytearray | memoryview = buf
        if job.length != len(buf):
            data = memoryview(buf)[: job.length]
        got = os.preadv(self._fds[path], [data], job.offset)
        if got != job.length:
            raise SourceChanged(f"{path}: short read at {job.offset}")
        if path not in self._known_sha:
            self._sha[path].update(data)
        zero = (buf == self._zeros) if data is buf else (bytes(data) == bytes(job.length))
        held = job.index in job.file.held
        digest = ZERO if zero else blake3.blake3(data).hexdigest()
        self._chunks[path].append(digest)
        job.file.next_index += 1
        return ChunkData(job, data, digest, zero, held)

    def final_file(self, f: SourceFile) -> FinalFile:
        """What the commit says of ``f``, once it is final and read to its end."""
        return FinalFile(
            path=f.path,
            size=f.final_size or 0,
            sha256=self._known_sha.get(f.path) or self._sha[f.path].hexdigest(),
            chunks=tuple(self._chunks[f.path]),
        )

    def final_manifest(self) -> FinalManifest:
        return FinalManifest(
            chunk_bytes=self.chunk_bytes, files=tuple(self.final_file(f) for f in self.files)
        )

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
