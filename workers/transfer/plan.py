"""Which chunk the sender reads next, pure.

The sender reads every file of a package sequentially, chunk by chunk (that is how it
computes each file's SHA-256 in one pass), and skips sending the chunks the receiver
already holds. A file can still be growing (an export in progress): then only whole
chunks below its current size are ready, and the tail waits until the file is final.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workers.transfer.manifest import chunk_count


@dataclass
class SourceFile:
    """The sender's view of one file."""

    path: str
    """Name on the wire (relative to the package, without a ``.part`` suffix)."""
    observed_bytes: int = 0
    """Bytes present on disk at the last look."""
    final_size: int | None = None
    """Set once the file is complete; then ``observed_bytes == final_size``."""
    next_index: int = 0
    held: set[int] = field(default_factory=set)
    """Chunks the receiver already holds (from its manifest answer)."""

    def total_chunks(self, chunk_bytes: int) -> int | None:
        return None if self.final_size is None else chunk_count(self.final_size, chunk_bytes)

    def finished(self, chunk_bytes: int) -> bool:
        total = self.total_chunks(chunk_bytes)
        return total is not None and self.next_index >= total


@dataclass(frozen=True)
class ChunkJob:
    file: SourceFile
    index: int
    offset: int
    length: int


def next_chunk(files: list[SourceFile], chunk_bytes: int) -> ChunkJob | None:
    """The next chunk that can be read now, in file order; None if none is ready yet."""
    for f in files:
        start = f.next_index * chunk_bytes
        if f.final_size is not None:
            if start < f.final_size:
                return ChunkJob(f, f.next_index, start, min(chunk_bytes, f.final_size - start))
        elif start + chunk_bytes <= f.observed_bytes:
            return ChunkJob(f, f.next_index, start, chunk_bytes)
    return None


def all_done(files: list[SourceFile], chunk_bytes: int, package_final: bool) -> bool:
    """True when the package can grow no more and every file has been read to its end."""
    return package_final and all(f.finished(chunk_bytes) for f in files)


def wire_name(name: str, partial_suffix: str) -> tuple[str, bool]:
    """Map a name on disk to its wire name, and whether it is still being written."""
    if name.endswith(partial_suffix) and len(name) > len(partial_suffix):
        return name[: -len(partial_suffix)], True
    return name, False
