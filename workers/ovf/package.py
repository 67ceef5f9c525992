"""How a package directory looks while an export is still writing it.

The end-to-end copy sends a package while it is being exported, so exporters and the
sender share one convention:

- ``EXPORTING_MARKER`` exists in the package directory while the export runs; the export
  removes it last, once every file is complete (a failed export leaves it);
- a file being written is ``<name>`` + ``PART_SUFFIX`` and is renamed to ``<name>`` when
  complete, with its final size;
- names starting with ``.hcc`` are the exporter's own bookkeeping, never package files.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path

from workers.ovf.descriptor import Descriptor, DescriptorError, check_files, parse_descriptor
from workers.ovf.layout import EXPORTING_MARKER, PART_SUFFIX, PRIVATE_PREFIX
from workers.ovf.manifest import ManifestError, verify_manifest

__all__ = [
    "EXPORTING_MARKER",
    "PART_SUFFIX",
    "PRIVATE_PREFIX",
    "LocalPackage",
    "PackageError",
    "open_package",
    "read_package",
    "wait_complete",
    "wait_file",
    "wait_file_blocking",
]
POLL_S = 0.25
"""How often a reader looks again at a package that is still being written."""


@dataclass(frozen=True)
class LocalPackage:
    """An OVF package in a directory, checked: one descriptor, its files, its manifest."""

    dir: Path
    descriptor_name: str
    descriptor: bytes
    desc: Descriptor
    sizes: dict[str, int] = field(default_factory=dict)
    """Every file's size in the directory, by name; for a file still to come, the size
    the descriptor declares."""
    manifest: bytes | None = None
    complete: bool = True
    """False: files were still being written when it was read (:func:`open_package`)."""

    @property
    def total_bytes(self) -> int:
        """What the descriptor's files weigh (the descriptor and manifest not counted)."""
        return sum(self.sizes[f.href] for f in self.desc.files)


class PackageError(ValueError):
    """The directory is not a complete, consistent OVF package; ``str()`` says why."""


def read_package(package_dir: Path) -> LocalPackage:
    """Find, parse and check the descriptor, the files and the manifest (blocking file I/O).

    Refuses a package whose export is still running (its marker is there), a directory with
    no or several descriptors, files missing or of the wrong size, and a manifest that does
    not verify. A package without a manifest is accepted (``manifest`` is None).
    """
    if not package_dir.is_dir():
        raise PackageError(f"package directory {package_dir.name} does not exist")
    if (package_dir / EXPORTING_MARKER).exists():
        raise PackageError(f"package {package_dir.name} is incomplete: still being written "
                           "(its export is running, or failed)")  # fmt: skip
    ovfs = sorted(p for p in package_dir.glob("*.ovf") if p.is_file())
    if len(ovfs) != 1:
        raise PackageError(f"expected one .ovf descriptor in the package, found {len(ovfs)}")
    data = ovfs[0].read_bytes()
    manifest = None
    try:
        desc = parse_descriptor(data)
        sizes = {p.name: p.stat().st_size for p in package_dir.iterdir() if p.is_file()}
        check_files(desc, sizes)
        mf = ovfs[0].with_suffix(".mf")
        if mf.is_file():
            manifest = mf.read_bytes()
            verify_manifest(
                package_dir, mf.name, required=[ovfs[0].name, *(f.href for f in desc.files)]
            )
    except (DescriptorError, ManifestError) as exc:
        raise PackageError(f"package {package_dir.name}: {exc}") from exc
    return LocalPackage(package_dir, ovfs[0].name, data, desc, sizes, manifest)  # fmt: skip


def read_head(package_dir: Path) -> LocalPackage | None:
    """The descriptor of a package that may still be being written, or None while it
    cannot be known yet: no package directory, no complete descriptor, or a file still to
    come whose size the descriptor does not declare. A complete package gets every check
    of :func:`read_package`; one still being written, those its files present allow."""
    if not package_dir.is_dir():
        return None
    if not (package_dir / EXPORTING_MARKER).exists():
        return read_package(package_dir)
    ovfs = sorted(p for p in package_dir.glob("*.ovf") if p.is_file())
    if not ovfs:
        return None
    if len(ovfs) > 1:
        raise PackageError(f"expected one .ovf descriptor in the package, found {len(ovfs)}")
    data = ovfs[0].read_bytes()
    try:
        desc = parse_descriptor(data)
        sizes = {p.name: p.stat().st_size for p in package_dir.iterdir() if p.is_file()}
        for ref in desc.files:
            if ref.href not in sizes:
                if ref.size is None or ref.compression is not None:
                    return None
                sizes[ref.href] = ref.size
        check_files(desc, sizes)
    except DescriptorError as exc:
        raise PackageError(f"package {package_dir.name}: {exc}") from exc
    return LocalPackage(package_dir, ovfs[0].name, data, desc, sizes, complete=False)


async def open_package(package_dir: Path, *, streaming: bool) -> LocalPackage:
    """:func:`read_package`, or with ``streaming`` (a copy's send or export still running)
    the package's descriptor as soon as it is there: the import starts on it and takes
    each file with :func:`wait_file` as it completes. It waits for as long as it takes:
    the step is cancelled if what writes the package fails."""
    if not streaming:
        return await asyncio.to_thread(read_package, package_dir)
    while True:  # written by another process (the export, the receiver): polled
        pkg = await asyncio.to_thread(read_head, package_dir)
        if pkg is not None:
            return pkg
        await asyncio.sleep(POLL_S)


def _file_state(pkg: LocalPackage, name: str) -> bool:
    """True when ``name`` is complete, False while it may still come; raises PackageError
    when it cannot come any more or is not what the descriptor said."""
    # The marker goes only after the last file is in place: looked at first, a package
    # seen ended cannot gain the file afterwards.
    ended = pkg.complete or not (pkg.dir / EXPORTING_MARKER).exists()
    path = pkg.dir / name
    if path.is_file():
        size = path.stat().st_size
        ref = next((f for f in pkg.desc.files if f.href == name), None)
        if ref is not None and ref.compression is None and size != pkg.sizes.get(name, size):
            raise PackageError(f"{name} has {size} bytes, the descriptor says {pkg.sizes[name]}")
        return True
    if ended:
        raise PackageError(f"package {pkg.dir.name} ended without {name}")
    return False


async def wait_file(pkg: LocalPackage, name: str) -> Path:
    """The complete file ``name`` of the package, once it is there."""
    while True:
        if _file_state(pkg, name):
            return pkg.dir / name
        await asyncio.sleep(POLL_S)


def wait_file_blocking(pkg: LocalPackage, name: str, cancel: threading.Event) -> Path | None:
    """:func:`wait_file` for a worker thread; None once ``cancel`` is set."""
    while not _file_state(pkg, name):
        if cancel.wait(POLL_S):
            return None
    return pkg.dir / name


async def wait_complete(pkg: LocalPackage) -> LocalPackage:
    """The whole package, with every check of :func:`read_package` (sizes, manifest),
    once it is no longer being written; refuses one whose descriptor changed meanwhile."""
    if pkg.complete:
        return pkg
    while True:
        if not (pkg.dir / EXPORTING_MARKER).exists():
            break
        await asyncio.sleep(POLL_S)
    whole = await asyncio.to_thread(read_package, pkg.dir)
    if whole.descriptor != pkg.descriptor:
        raise PackageError(f"package {pkg.dir.name}: the descriptor changed during the import")
    return whole
