"""The transfer manifest: what a package is made of, and the arithmetic of chunks.

A package is a set of files. Each file is cut into fixed chunks of ``chunk_bytes``
(default 8 MiB; the last one may be shorter); each chunk has a BLAKE3 hash, or is the
marker ``"zero"`` when all its bytes are zero (never sent as bytes).

The manifest is built progressively, which is how a file that is still being exported
is sent (docs/transfer.md, "Growing files"):

* :class:`ManifestDecl` (``PUT .../manifest``) names the files and, when known, their
  sizes. ``size`` is ``None`` while a file is still being written. The sender may
  declare again at any time; the receiver merges (:func:`merge_decl`): new files are
  appended, a size may go from unknown to known, anything else that differs is a
  conflict (409).
* Each chunk's hash travels with the chunk (``PUT .../{file}/{index}``); the receiver
  verifies the bytes against it before it records the chunk.
* :class:`FinalManifest` (``POST .../commit``) gives, for every file, the final size,
  the whole-file SHA-256 and the full chunk list (hashes and zero markers). A partial
  one (``partial: true``) does so for the files that are complete so far: the receiver
  checks and publishes them at once, so the import can start on them.

Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workers.transfer.errors import BadRequest, ManifestConflict

DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024
ZERO = "zero"
HASH_ALG: Literal["blake3"] = "blake3"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MAX_PATH = 1024
_MAX_COMPONENT = 255


def check_relpath(path: str) -> str:
    """Return ``path`` if it is a safe relative file name inside an artifact, else raise.

    Refused: empty, absolute, backslashes, NUL or other control characters, ``.`` or
    ``..`` components, empty components (``a//b``), over-long names, names starting
    with ``.hcc`` (reserved).
    """
    if not path or len(path) > _MAX_PATH:
        raise BadRequest("bad-path", "file name empty or too long")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise BadRequest("bad-path", "file name contains control characters or NUL")
    if path.startswith("/") or "\\" in path or re.match(r"^[A-Za-z]:", path):
        raise BadRequest("bad-path", "file name must be relative, with forward slashes")
    for part in path.split("/"):
        if part in ("", ".", "..") or len(part) > _MAX_COMPONENT:
            raise BadRequest("bad-path", "file name has an empty, '.' or '..' component")
    if path.startswith(".hcc"):
        raise BadRequest("bad-path", "file names starting with .hcc are reserved")
    return path


def _validated_path(value: str) -> str:
    try:
        return check_relpath(value)
    except BadRequest as exc:
        raise ValueError(str(exc)) from exc


def chunk_count(size: int, chunk_bytes: int) -> int:
    """Number of chunks of a file of ``size`` bytes (an empty file has none)."""
    return (size + chunk_bytes - 1) // chunk_bytes


def chunk_length(size: int | None, chunk_bytes: int, index: int) -> int:
    """Bytes in chunk ``index``; a file of unknown size only has full chunks so far."""
    if index < 0:
        raise ValueError("negative chunk index")
    if size is None:
        return chunk_bytes
    start = index * chunk_bytes
    if start >= size:
        raise ValueError(f"chunk {index} is past the end of a {size}-byte file")
    return min(chunk_bytes, size - start)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FileDecl(_Model):
    path: str
    size: int | None = Field(None, ge=0, le=1 << 50)

    @field_validator("path")
    @classmethod
    def _safe(cls, value: str) -> str:
        return _validated_path(value)


class ManifestDecl(_Model):
    """What ``PUT /transfer/v1/{artifact}/manifest`` carries."""

    version: Literal[1] = 1
    chunk_bytes: int = Field(DEFAULT_CHUNK_BYTES, ge=64 * 1024, le=256 * 1024 * 1024)
    hash: Literal["blake3"] = HASH_ALG
    files: tuple[FileDecl, ...] = Field(max_length=10_000)

    def index_of(self, path: str) -> int | None:
        for i, f in enumerate(self.files):
            if f.path == path:
                return i
        return None

    def known_bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)


def merge_decl(stored: ManifestDecl | None, new: ManifestDecl) -> ManifestDecl:
    """The receiver's view after ``new`` arrives; raise ManifestConflict if incompatible.

    File order is kept (journal records refer to files by position): known files stay
    where they are, new ones are appended in the order given.
    """
    paths = [f.path for f in new.files]
    if len(set(paths)) != len(paths):
        raise BadRequest("bad-manifest", "a file is listed twice")
    _check_no_file_is_a_folder(paths + [f.path for f in stored.files] if stored else paths)
    if stored is None:
        return new
    if (stored.chunk_bytes, stored.hash) != (new.chunk_bytes, new.hash):
        raise ManifestConflict("chunk size or hash differs from the artifact's manifest")
    incoming = {f.path: f for f in new.files}
    merged: list[FileDecl] = []
    for old in stored.files:
        got = incoming.pop(old.path, None)
        if got is None or got.size is None or got.size == old.size:
            merged.append(old)
        elif old.size is None:
            merged.append(got)
        else:
            raise ManifestConflict(f"{old.path}: size {got.size} differs from {old.size}")
    merged.extend(f for f in new.files if f.path in incoming)
    return stored.model_copy(update={"files": tuple(merged)})


def _check_no_file_is_a_folder(paths: list[str]) -> None:
    files = set(paths)
    for p in paths:
        parts = p.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder in files:
                raise BadRequest("bad-manifest", f"{p!r} would be inside the file {folder!r}")


class FinalFile(_Model):
    path: str
    size: int = Field(ge=0, le=1 << 50)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    chunks: tuple[str, ...]

    @field_validator("path")
    @classmethod
    def _safe(cls, value: str) -> str:
        return _validated_path(value)

    @field_validator("chunks")
    @classmethod
    def _hashes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for c in value:
            if c != ZERO and not _HEX64.match(c):
                raise ValueError("a chunk is a 64-hex BLAKE3 digest or 'zero'")
        return value


class FinalManifest(_Model):
    """What ``POST /transfer/v1/{artifact}/commit`` carries: the whole truth.

    ``partial``: the files listed are complete, the package is not (other files, or
    other files' chunks, are still to come). The receiver publishes those files into
    the package, where an import may take them before the rest arrives.
    """

    version: Literal[1] = 1
    chunk_bytes: int = Field(ge=64 * 1024, le=256 * 1024 * 1024)
    hash: Literal["blake3"] = HASH_ALG
    files: tuple[FinalFile, ...] = Field(max_length=10_000)
    partial: bool = False

    def check_shape(self) -> None:
        """Chunk lists must match the sizes."""
        for f in self.files:
            if len(f.chunks) != chunk_count(f.size, self.chunk_bytes):
                raise BadRequest("bad-manifest", f"{f.path}: chunk list does not match size")

    def as_decl(self) -> ManifestDecl:
        return ManifestDecl(
            chunk_bytes=self.chunk_bytes,
            files=tuple(FileDecl(path=f.path, size=f.size) for f in self.files),
        )
