"""Read what an OVF descriptor declares, without trusting it.

Parsing goes through defusedxml with DTDs, entities and external references forbidden, so
XXE and entity-expansion ("billion laughs") descriptors are rejected, not expanded. The
result is a plain summary (files, disks, networks, virtual systems) that the adapters use to
check a package before they hand the descriptor to a cloud, e.g. with :func:`check_files`.

Pure: bytes in, values out. Works for OVF 1.x and 2.0 namespaces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DET  # type: ignore[import-untyped]
from defusedxml import DefusedXmlException

from workers.ovf.manifest import ManifestError, check_file_name

OVF_NAMESPACES = (
    "http://schemas.dmtf.org/ovf/envelope/1",
    "http://schemas.dmtf.org/ovf/envelope/2",
)
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
MAX_DESCRIPTOR_BYTES = 16 * 1024 * 1024
_UNITS = re.compile(r"^byte(?:\s*\*\s*(\d+)(?:\s*\^\s*(\d+))?)?$")
_NAMED_UNITS = {"kilobytes": 1024, "megabytes": 1024**2, "gigabytes": 1024**3, "bytes": 1}


class DescriptorError(ValueError):
    """The descriptor is not well-formed, hostile, or inconsistent with its package."""


@dataclass(frozen=True)
class FileRef:
    id: str
    href: str
    size: int | None
    compression: str | None = None


@dataclass(frozen=True)
class Disk:
    disk_id: str
    file_ref: str | None
    capacity_bytes: int
    populated_bytes: int | None
    format: str | None


@dataclass(frozen=True)
class VirtualSystem:
    id: str
    name: str
    cpus: int | None
    memory_mib: int | None
    disk_ids: tuple[str, ...]


@dataclass(frozen=True)
class Descriptor:
    files: tuple[FileRef, ...]
    disks: tuple[Disk, ...]
    networks: tuple[str, ...]
    systems: tuple[VirtualSystem, ...]
    collection: bool
    namespace: str

    @property
    def name(self) -> str:
        return self.systems[0].name if len(self.systems) == 1 else "vapp"

    def file_by_id(self, file_id: str) -> FileRef | None:
        return next((f for f in self.files if f.id == file_id), None)


def allocation_multiplier(units: str | None) -> int:
    """``None`` / ``byte`` -> 1, ``byte * 2^20`` -> 1048576, ``byte * 1024`` -> 1024."""
    if units is None:
        return 1
    text = units.strip()
    if text.lower() in _NAMED_UNITS:
        return _NAMED_UNITS[text.lower()]
    m = _UNITS.match(text)
    if m is None:
        raise DescriptorError(f"unsupported allocation units {units!r}")
    base, exp = m.group(1), m.group(2)
    if base is None:
        return 1
    if exp is not None and int(exp) > 64:
        raise DescriptorError(f"allocation units too large: {units!r}")
    return int(base) ** int(exp) if exp is not None else int(base)


def _int(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        raise DescriptorError(f"{what} is not an integer: {value[:40]!r}") from None
    if n < 0:
        raise DescriptorError(f"{what} is negative")
    return n


class _Reader:
    def __init__(self, root: Element, ns: str) -> None:
        self.root, self.ns = root, ns

    def q(self, tag: str) -> str:
        return f"{{{self.ns}}}{tag}"

    def attr(self, el: Element, name: str) -> str | None:
        return el.get(self.q(name), el.get(name))

    def files(self) -> tuple[FileRef, ...]:
        out = []
        for el in self.root.iterfind(f"{self.q('References')}/{self.q('File')}"):
            file_id, href = self.attr(el, "id"), self.attr(el, "href")
            if not file_id or not href:
                raise DescriptorError("a References/File has no id or href")
            try:
                check_file_name(href)
            except ManifestError:
                raise DescriptorError(f"file href is not a plain name: {href[:80]!r}") from None
            size = _int(self.attr(el, "size"), f"size of {href}")
            out.append(FileRef(file_id, href, size, self.attr(el, "compression")))
        return tuple(out)

    def disks(self) -> tuple[Disk, ...]:
        out = []
        for el in self.root.iterfind(f"{self.q('DiskSection')}/{self.q('Disk')}"):
            disk_id = self.attr(el, "diskId")
            capacity = _int(self.attr(el, "capacity"), "disk capacity")
            if not disk_id or capacity is None:
                raise DescriptorError("a Disk has no diskId or capacity")
            mult = allocation_multiplier(self.attr(el, "capacityAllocationUnits"))
            populated = _int(self.attr(el, "populatedSize"), "disk populatedSize")
            out.append(
                Disk(
                    disk_id,
                    self.attr(el, "fileRef"),
                    capacity * mult,
                    populated,
                    self.attr(el, "format"),
                )
            )
        return tuple(out)

    def networks(self) -> tuple[str, ...]:
        path = f"{self.q('NetworkSection')}/{self.q('Network')}"
        return tuple(n for el in self.root.iterfind(path) if (n := self.attr(el, "name")))

    def system(self, el: Element) -> VirtualSystem:
        cpus = memory = None
        disk_ids = []
        for item in el.iter(self.q("Item")):
            kind = item.findtext(f"{{{RASD}}}ResourceType")
            quantity = _int(item.findtext(f"{{{RASD}}}VirtualQuantity"), "VirtualQuantity")
            if kind == "3":
                cpus = quantity
            elif kind == "4" and quantity is not None:
                units = item.findtext(f"{{{RASD}}}AllocationUnits") or "byte * 2^20"
                memory = quantity * allocation_multiplier(units) // (1024 * 1024)
            elif kind == "17":
                for res in item.iterfind(f"{{{RASD}}}HostResource"):
                    disk_ids.append((res.text or "").rsplit("/", 1)[-1])
        name = el.findtext(self.q("Name")) or self.attr(el, "id") or ""
        return VirtualSystem(self.attr(el, "id") or "", name, cpus, memory, tuple(disk_ids))


def parse_descriptor(data: bytes, *, max_bytes: int = MAX_DESCRIPTOR_BYTES) -> Descriptor:
    """Parse and summarise a descriptor; raise DescriptorError on anything suspicious."""
    if len(data) > max_bytes:
        raise DescriptorError(f"descriptor larger than {max_bytes} bytes")
    try:
        root = DET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise DescriptorError(f"descriptor refused: {type(exc).__name__}") from None
    except DET.ParseError as exc:
        raise DescriptorError(f"descriptor is not well-formed XML: {exc}") from None
    ns = next((n for n in OVF_NAMESPACES if root.tag == f"{{{n}}}Envelope"), None)
    if ns is None:
        raise DescriptorError(f"root element is not an OVF Envelope: {root.tag[:100]}")
    r = _Reader(root, ns)
    collection = root.find(r.q("VirtualSystemCollection")) is not None
    systems = tuple(r.system(el) for el in root.iter(r.q("VirtualSystem")))
    if not systems:
        raise DescriptorError("descriptor has no VirtualSystem")
    return Descriptor(r.files(), r.disks(), r.networks(), systems, collection, ns)


def check_consistency(desc: Descriptor) -> None:
    """Ids are unique, every disk's fileRef and every HostResource point at something."""
    ids = [f.id for f in desc.files]
    hrefs = [f.href for f in desc.files]
    if len(set(ids)) != len(ids) or len(set(hrefs)) != len(hrefs):
        raise DescriptorError("duplicate file id or href in References")
    disk_ids = {d.disk_id for d in desc.disks}
    if len(disk_ids) != len(desc.disks):
        raise DescriptorError("duplicate diskId in DiskSection")
    for disk in desc.disks:
        if disk.file_ref is not None and desc.file_by_id(disk.file_ref) is None:
            raise DescriptorError(f"disk {disk.disk_id} refers to missing file {disk.file_ref}")
    for system in desc.systems:
        for disk_id in system.disk_ids:
            if disk_id not in disk_ids:
                raise DescriptorError(f"{system.name} uses disk {disk_id}, not in DiskSection")


def check_files(desc: Descriptor, sizes: Mapping[str, int]) -> None:
    """Every referenced file is present (``sizes``: name -> bytes) with its declared size."""
    check_consistency(desc)
    for ref in desc.files:
        if ref.href not in sizes:
            raise DescriptorError(f"descriptor references {ref.href}, which is not in the package")
        if ref.size is not None and ref.compression is None and sizes[ref.href] != ref.size:
            raise DescriptorError(
                f"{ref.href} has {sizes[ref.href]} bytes, the descriptor says {ref.size}"
            )
