"""Chunk bookkeeping, pure: which chunks a receiver holds, and its journal's byte format.

The receiver keeps one append-only journal per artifact. Each verified chunk adds one
fixed-size record *after* the chunk's bytes are durable; a record that is torn by a crash
fails its CRC and is dropped on replay together with anything after it. Replaying the
journal rebuilds a :class:`Ledger`.

Record (48 bytes, little-endian): file index u32, chunk index u32, flags u8, 3 bytes
padding, BLAKE3 digest 32 bytes, CRC-32 of the preceding 44 bytes u32.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass, field

from workers.transfer.errors import ManifestConflict
from workers.transfer.manifest import ZERO, FinalManifest, ManifestDecl

_RECORD = struct.Struct("<IIB3x32s")
RECORD_BYTES = _RECORD.size + 4


@dataclass(frozen=True)
class ChunkRecord:
    file_index: int
    chunk_index: int
    digest: bytes
    flags: int = 0


def encode_record(rec: ChunkRecord) -> bytes:
    head = _RECORD.pack(rec.file_index, rec.chunk_index, rec.flags, rec.digest)
    return head + struct.pack("<I", zlib.crc32(head))


def decode_records(data: bytes) -> tuple[list[ChunkRecord], int]:
    """Records from a journal's bytes, and how many bytes of it are valid.

    Stops at the first short or corrupt record (a crash while appending).
    """
    out: list[ChunkRecord] = []
    pos = 0
    while pos + RECORD_BYTES <= len(data):
        head = data[pos : pos + _RECORD.size]
        (crc,) = struct.unpack_from("<I", data, pos + _RECORD.size)
        if zlib.crc32(head) != crc:
            break
        f, c, flags, digest = _RECORD.unpack(head)
        out.append(ChunkRecord(f, c, digest, flags))
        pos += RECORD_BYTES
    return out, pos


def encode_bitmap(indices: set[int] | dict[int, bytes], n_bits: int) -> str:
    """Base64 bitmap: bit i (byte i // 8, bit i % 8, LSB first) set when chunk i is held."""
    buf = bytearray((n_bits + 7) // 8)
    for i in indices:
        if i < n_bits:
            buf[i >> 3] |= 1 << (i & 7)
    return base64.b64encode(bytes(buf)).decode("ascii")


def decode_bitmap(text: str) -> set[int]:
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    return {i * 8 + b for i, byte in enumerate(raw) for b in range(8) if byte >> b & 1}


@dataclass
class Ledger:
    """Held chunks per file index, with their digests."""

    held: dict[int, dict[int, bytes]] = field(default_factory=dict)

    @classmethod
    def replay(cls, records: list[ChunkRecord]) -> Ledger:
        ledger = cls()
        for r in records:
            ledger.held.setdefault(r.file_index, {})[r.chunk_index] = r.digest
        return ledger

    def record(self, rec: ChunkRecord) -> None:
        self.held.setdefault(rec.file_index, {})[rec.chunk_index] = rec.digest

    def digest(self, file_index: int, chunk_index: int) -> bytes | None:
        return self.held.get(file_index, {}).get(chunk_index)

    def held_bytes(self, decl: ManifestDecl) -> int:
        """Bytes already on disk for this artifact (quota arithmetic)."""
        total = 0
        cb = decl.chunk_bytes
        for i, f in enumerate(decl.files):
            for c in self.held.get(i, {}):
                total += cb if f.size is None else max(0, min(cb, f.size - c * cb))
        return total

    def bitmaps(self, decl: ManifestDecl) -> dict[str, str]:
        """Per file path, the base64 bitmap of held chunks (what a manifest PUT answers)."""
        out: dict[str, str] = {}
        for i, f in enumerate(decl.files):
            held = self.held.get(i, {})
            n_bits = max(held, default=-1) + 1
            out[f.path] = encode_bitmap(held, n_bits)
        return out

    def check_final(
        self, decl: ManifestDecl, final: FinalManifest, *, partial: bool = False
    ) -> None:
        """Raise ManifestConflict unless every data chunk is held with the final hash;
        ``partial``: ``final`` may leave out declared files (they are not complete yet)."""
        final.check_shape()
        if final.chunk_bytes != decl.chunk_bytes:
            raise ManifestConflict("chunk size differs from the artifact's manifest")
        declared = {f.path for f in decl.files}
        missing = declared - {f.path for f in final.files}
        if missing and not partial:
            raise ManifestConflict(f"commit leaves out declared files: {sorted(missing)[:5]}")
        problems: list[str] = []
        for f in final.files:
            idx = decl.index_of(f.path)
            held = self.held.get(idx, {}) if idx is not None else {}
            for c, want in enumerate(f.chunks):
                have = held.get(c)
                if want == ZERO:
                    if have is not None:
                        problems.append(f"{f.path}#{c}: held as data, declared zero")
                elif have is None:
                    problems.append(f"{f.path}#{c}: missing")
                elif have.hex() != want:
                    problems.append(f"{f.path}#{c}: hash differs")
            extra = [c for c in held if c >= len(f.chunks)]
            if extra:
                problems.append(f"{f.path}: chunks past the end: {sorted(extra)[:3]}")
        if problems:
            raise ManifestConflict(
                f"{len(problems)} chunk problem(s): " + "; ".join(problems[:5]),
                code="chunks-missing",
            )
