"""OVF descriptors: parse an uploaded one (defusedxml: hostile XML is refused) and
regenerate one for download. Pure functions; raise :class:`VcdError` 400 on bad input.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import defusedxml.ElementTree as DET  # type: ignore[import-untyped]
from defusedxml import DefusedXmlException

from sim.vcd.errors import bad_request
from sim.vcd.xmlgen import OVF_NS, RASD_NS

MAX_DESCRIPTOR_BYTES = 16 * 2**20

_O = f"{{{OVF_NS}}}"
_R = f"{{{RASD_NS}}}"


@dataclass(frozen=True)
class FileRef:
    href: str
    file_id: str
    size: int
    chunk_size: int | None = None


@dataclass(frozen=True)
class VirtualSystem:
    ovf_id: str
    name: str
    cpus: int = 1
    memory_mb: int = 512
    network: str | None = None


@dataclass(frozen=True)
class Descriptor:
    files: list[FileRef]
    systems: list[VirtualSystem]
    networks: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def parse_xml(data: bytes, what: str) -> ET.Element:
    """defusedxml with DTDs forbidden: XXE, entity expansion and DTD tricks → 400."""
    try:
        root: ET.Element = DET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise bad_request(
            f"The {what} was rejected: forbidden XML construct ({type(exc).__name__})."
        ) from exc
    except ET.ParseError as exc:
        raise bad_request(f"The {what} is not well-formed XML: {exc}.") from exc
    return root


def _plain_name(href: str) -> bool:
    return (
        bool(href)
        and "/" not in href
        and "\\" not in href
        and href not in (".", "..")
        and ":" not in href
    )


def _file_ref(elem: ET.Element) -> FileRef:
    href = elem.get(_O + "href", "")
    if not _plain_name(href):
        raise bad_request(f"OVF File href {href!r} must be a plain file name in the package.")
    try:
        size = int(elem.get(_O + "size", ""))
        chunk = elem.get(_O + "chunkSize")
        chunk_size = int(chunk) if chunk is not None else None
    except ValueError as exc:
        raise bad_request(f"OVF File {href!r} needs an integer ovf:size.") from exc
    if size < 0 or (chunk_size is not None and chunk_size <= 0):
        raise bad_request(f"OVF File {href!r} has a negative size or chunk size.")
    return FileRef(href=href, file_id=elem.get(_O + "id", href), size=size, chunk_size=chunk_size)


def _int_text(parent: ET.Element, resource_type: str, default: int) -> int:
    for item in parent.iter(_O + "Item"):
        rtype = item.findtext(_R + "ResourceType")
        quantity = item.findtext(_R + "VirtualQuantity")
        if rtype == resource_type and quantity and quantity.strip().isdigit():
            return int(quantity)
    return default


def _system(vs: ET.Element) -> VirtualSystem:
    ovf_id = vs.get(_O + "id") or "vm"
    name = (vs.findtext(_O + "Name") or "").strip() or ovf_id
    network = None
    for item in vs.iter(_O + "Item"):
        if item.findtext(_R + "ResourceType") == "10":
            network = (item.findtext(_R + "Connection") or "").strip() or None
            break
    return VirtualSystem(
        ovf_id=ovf_id,
        name=name,
        cpus=_int_text(vs, "3", 1),
        memory_mb=_int_text(vs, "4", 512),
        network=network,
    )


def parse_descriptor(data: bytes) -> Descriptor:
    if len(data) > MAX_DESCRIPTOR_BYTES:
        raise bad_request("The OVF descriptor is too large.")
    root = parse_xml(data, "OVF descriptor")
    if root.tag != _O + "Envelope":
        raise bad_request("The OVF descriptor's root element must be ovf:Envelope.")
    refs = root.find(_O + "References")
    files = [_file_ref(f) for f in refs.findall(_O + "File")] if refs is not None else []
    hrefs = [f.href for f in files]
    if len(set(hrefs)) != len(hrefs):
        raise bad_request("The OVF descriptor references the same file twice.")
    systems = [_system(vs) for vs in root.iter(_O + "VirtualSystem")]
    if not systems:
        raise bad_request("The OVF descriptor has no VirtualSystem.")
    section = root.find(_O + "NetworkSection")
    networks = (
        [n.get(_O + "name", "") for n in section.findall(_O + "Network")]
        if section is not None
        else []
    )
    return Descriptor(files=files, systems=systems, networks=[n for n in networks if n])


def export_descriptor(data: bytes) -> bytes:
    """The descriptor as served for download: ``ovf:chunkSize`` dropped (files are served
    whole), otherwise the uploaded envelope. Real vCD regenerates it from its inventory."""
    root = parse_xml(data, "stored OVF descriptor")
    refs = root.find(_O + "References")
    if refs is not None:
        for f in refs.findall(_O + "File"):
            f.attrib.pop(_O + "chunkSize", None)
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return out
