"""OVA files: an OVF package as one USTAR archive, descriptor first, then the manifest.

Writing: :class:`OvaLayout` computes where every member's header and data go, so an OVA can
be written member by member from any source (a local file, an HTTP download that resumes
at an offset) and the result is byte-identical to :func:`pack_ova` of the same files.
Reading: :func:`check_members` refuses hostile archives before a byte is extracted (names
with ``..``, absolute paths, links, devices, directories, sparse members, duplicates, a
descriptor that is not first, no manifest); :func:`extract_ova` then extracts into a fresh
directory, checking every file against the manifest and the descriptor.

The manifest is the OVF 1.x format (:mod:`workers.ovf.manifest`): every member except the
manifest itself must be listed, and everything it lists must be in the archive. A ``.cert``
member (an OVF signature, never listed in the manifest) is skipped, not extracted.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from workers.ovf.descriptor import DescriptorError, check_files, parse_descriptor
from workers.ovf.manifest import ManifestError, check_file_name, parse_manifest

BLOCK = 512
RECORD = 20 * BLOCK
"""tarfile's record size: an archive's length is a multiple of it."""
COPY_BYTES = 1024 * 1024
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_DESCRIPTOR_BYTES = 16 * 1024 * 1024
OVA_MEMBER_MODE = 0o644


class OvaError(ValueError):
    """An archive that is not a well-formed, self-consistent OVA; ``str()`` says why."""


# --------------------------------------------------------------------------- writing


def ova_order(names: Iterable[str]) -> list[str]:
    """Archive order: the descriptor, then the manifest, then the other files as given."""
    names = list(names)
    ovfs = [n for n in names if n.lower().endswith(".ovf")]
    if len(ovfs) != 1:
        raise OvaError(f"a package has exactly one .ovf descriptor, not {len(ovfs)}")
    mfs = [n for n in names if n.lower().endswith(".mf")]
    if len(mfs) > 1:
        raise OvaError("a package has at most one .mf manifest")
    return ovfs + mfs + [n for n in names if n not in ovfs and n not in mfs]


def member_header(name: str, size: int, mtime: int) -> bytes:
    """The 512-byte USTAR header of a regular file member (owner root, mode 0644)."""
    check_file_name(name)
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, OVA_MEMBER_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    try:
        return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    except ValueError as exc:
        raise OvaError(f"{name!r} cannot be a USTAR member: {exc}") from None


def padding(size: int) -> int:
    """Zero bytes after ``size`` data bytes to the next block."""
    return -size % BLOCK


@dataclass(frozen=True)
class Slot:
    name: str
    size: int
    header_offset: int

    @property
    def data_offset(self) -> int:
        return self.header_offset + BLOCK

    @property
    def end(self) -> int:
        """Where the next member's header starts."""
        return self.data_offset + self.size + padding(self.size)


@dataclass(frozen=True)
class OvaLayout:
    """Where everything of an OVA goes, from its members' names and sizes (archive order)."""

    slots: tuple[Slot, ...]
    mtime: int

    @classmethod
    def plan(cls, members: Sequence[tuple[str, int]], mtime: int) -> OvaLayout:
        slots, offset = [], 0
        for name, size in members:
            slot = Slot(name, size, offset)
            slots.append(slot)
            offset = slot.end
        return cls(tuple(slots), mtime)

    def header(self, slot: Slot) -> bytes:
        return member_header(slot.name, slot.size, self.mtime)

    @property
    def data_end(self) -> int:
        return self.slots[-1].end if self.slots else 0

    @property
    def total_bytes(self) -> int:
        end = self.data_end + 2 * BLOCK
        return end + (-end % RECORD)

    def trailer(self) -> bytes:
        """The end-of-archive blocks, padded to a whole record (as tarfile writes it)."""
        return bytes(self.total_bytes - self.data_end)


def write_member(out: BinaryIO, layout: OvaLayout, slot: Slot, source: BinaryIO) -> str:
    """Header, data from ``source`` (exactly ``slot.size`` bytes) and padding; the SHA-256."""
    out.write(layout.header(slot))
    h, left = hashlib.sha256(), slot.size
    while left:
        block = source.read(min(COPY_BYTES, left))
        if not block:
            raise OvaError(f"{slot.name} is shorter than {slot.size} bytes")
        h.update(block)
        out.write(block)
        left -= len(block)
    out.write(bytes(padding(slot.size)))
    return h.hexdigest()


def pack_ova(files: Sequence[Path], out: Path, mtime: int | None = None) -> Path:
    """Write ``files`` (in this order; put the descriptor first) as the OVA ``out``, atomically."""
    when = int(mtime if mtime is not None else max((f.stat().st_mtime for f in files), default=0))
    layout = OvaLayout.plan([(f.name, f.stat().st_size) for f in files], when)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with tmp.open("wb") as fh:
        for path, slot in zip(files, layout.slots, strict=True):
            with path.open("rb") as src:
                write_member(fh, layout, slot, src)
        fh.write(layout.trailer())
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(out)
    return out


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class OvaMembers:
    """What an archive holds, once its headers passed :func:`check_members`."""

    descriptor: str
    manifest: str
    files: tuple[tuple[str, int], ...]
    """(name, size) of every member to extract, in archive order (manifest included)."""
    skipped: tuple[str, ...] = ()


def _kind(info: tarfile.TarInfo) -> str | None:
    """Why a member is not a plain regular file, or None."""
    if info.issym() or info.islnk():
        return "a link"
    if info.ischr() or info.isblk() or info.isfifo():
        return "a device or fifo"
    if info.isdir():
        return "a directory"
    if info.issparse():
        return "a sparse member"
    if not info.isreg():
        return "not a regular file"
    return None


def check_member_name(name: str) -> str:
    """A member name an OVA may hold: one plain file name, nothing that could escape."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise OvaError(f"member {name!r} has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise OvaError(f"member {name!r} refers to a parent directory ('..')")
    try:
        return check_file_name(name)
    except ManifestError:
        raise OvaError(f"member {name!r} is not a plain file name") from None


def check_members(members: Sequence[tarfile.TarInfo]) -> OvaMembers:
    """Refuse hostile or malformed archives from their headers alone (nothing extracted)."""
    if not members:
        raise OvaError("the archive is empty")
    seen: set[str] = set()
    for info in members:
        name = check_member_name(info.name)
        why = _kind(info)
        if why is not None:
            raise OvaError(f"member {name!r} is {why}; an OVA holds regular files only")
        if name in seen:
            raise OvaError(f"member {name!r} appears twice")
        seen.add(name)
    first = members[0].name
    if not first.lower().endswith(".ovf"):
        raise OvaError(f"the first member is {first!r}; an OVA starts with its .ovf descriptor")
    ovfs = [m.name for m in members if m.name.lower().endswith(".ovf")]
    if len(ovfs) != 1:
        raise OvaError(f"the archive holds {len(ovfs)} .ovf descriptors; an OVA holds one")
    mfs = [m.name for m in members if m.name.lower().endswith(".mf")]
    if len(mfs) != 1:
        raise OvaError(f"the archive holds {len(mfs)} .mf manifests; an OVA here needs one")
    skipped = tuple(m.name for m in members if m.name.lower().endswith(".cert"))
    files = tuple((m.name, m.size) for m in members if m.name not in skipped)
    return OvaMembers(first, mfs[0], files, skipped)


def check_coverage(members: OvaMembers, listed: Iterable[str]) -> None:
    """Every member but the manifest is listed, and everything listed is a member."""
    listed = set(listed)
    names = {n for n, _ in members.files if n != members.manifest}
    extra = sorted(names - listed)
    if extra:
        raise OvaError(f"not in the manifest: {', '.join(extra)}")
    missing = sorted(listed - names)
    if missing:
        raise OvaError(f"the manifest lists files the archive does not hold: {', '.join(missing)}")


ProgressFn = Callable[[int], None]
"""Called with the number of bytes just extracted."""


@dataclass(frozen=True)
class ExtractedOva:
    directory: Path
    descriptor: str
    manifest: str
    sizes: dict[str, int]
    sha256: dict[str, str]
    """SHA-256 of every extracted file (what the manifest says, now verified)."""


def _read_small(tar: tarfile.TarFile, info: tarfile.TarInfo, limit: int, what: str) -> bytes:
    if info.size > limit:
        raise OvaError(f"the {what} {info.name!r} is larger than {limit} bytes")
    fh = tar.extractfile(info)
    assert fh is not None  # a regular file, checked
    return fh.read()


def _extract_one(
    tar: tarfile.TarFile, info: tarfile.TarInfo, dest: Path, algo: str, progress: ProgressFn
) -> tuple[str, str]:
    """Copy one member to ``dest/name`` (never through a link); (manifest digest, SHA-256)."""
    src = tar.extractfile(info)
    assert src is not None
    digest, sha = hashlib.new(algo), hashlib.sha256()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with os.fdopen(os.open(dest / info.name, flags, 0o644), "wb") as out:
        while block := src.read(COPY_BYTES):
            digest.update(block)
            sha.update(block)
            out.write(block)
            progress(len(block))
    return digest.hexdigest(), sha.hexdigest()


def open_ova(path: Path) -> tuple[tarfile.TarFile, OvaMembers]:
    """Open ``path`` (a plain, uncompressed tar) and check its members' headers."""
    try:
        tar = tarfile.open(path, "r:")  # noqa: SIM115 (returned open)
        members = tar.getmembers()
    except (tarfile.TarError, OSError) as exc:
        raise OvaError(f"{path.name} is not a readable tar archive: {exc}") from None
    try:
        return tar, check_members(members)
    except OvaError:
        tar.close()
        raise


def extract_ova(path: Path, dest: Path, progress: ProgressFn = lambda n: None) -> ExtractedOva:
    """Check and extract the OVA ``path`` into the empty directory ``dest``.

    Raises :class:`OvaError` before writing anything when the headers, the manifest or the
    descriptor are wrong, and while extracting when a file fails its manifest digest.
    """
    tar, members = open_ova(path)
    with tar:
        infos = {m.name: m for m in tar.getmembers()}
        try:
            entries = parse_manifest(
                _read_small(tar, infos[members.manifest], MAX_MANIFEST_BYTES, "manifest")
                .decode("ascii")
            )  # fmt: skip
        except (ManifestError, UnicodeDecodeError) as exc:
            raise OvaError(f"the manifest is not valid: {exc}") from None
        check_coverage(members, entries)
        sizes = dict(members.files)
        try:
            raw = _read_small(tar, infos[members.descriptor], MAX_DESCRIPTOR_BYTES, "descriptor")
            check_files(parse_descriptor(raw), sizes)
        except DescriptorError as exc:
            raise OvaError(f"the descriptor is not valid: {exc}") from None
        dest.mkdir(parents=True, exist_ok=True)
        sha: dict[str, str] = {}
        for name, _size in members.files:
            algo = "sha256" if name == members.manifest else entries[name][0].lower()
            got, sha[name] = _extract_one(tar, infos[name], dest, algo, progress)
            if name != members.manifest and got != entries[name][1]:
                raise OvaError(f"{name} does not match its {entries[name][0]} in the manifest")
    return ExtractedOva(dest, members.descriptor, members.manifest, sizes, sha)
