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
    "read_package",
]


@dataclass(frozen=True)
class LocalPackage:
    """An OVF package in a directory, checked: one descriptor, its files, its manifest."""

    dir: Path
    descriptor_name: str
    descriptor: bytes
    desc: Descriptor
    sizes: dict[str, int] = field(default_factory=dict)
    """Every file's size in the directory, by name."""
    manifest: bytes | None = None

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
