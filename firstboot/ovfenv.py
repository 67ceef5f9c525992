"""Read an OVF environment document (DMTF DSP0243 §11): the vApp property values that
vSphere hands the guest as ``guestinfo.ovfEnv`` (and vCD through the same transport).

Pure: bytes in, ``{key: value}`` out. Parsing goes through defusedxml, so a document with a
DTD, entities or external references is refused, not expanded. Only the top-level
``PropertySection`` counts (nested ``Entity`` elements describe sibling VMs of a vApp).
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DET  # type: ignore[import-untyped]
from defusedxml import DefusedXmlException

OE = "http://schemas.dmtf.org/ovf/environment/1"
MAX_ENVIRONMENT_BYTES = 1024 * 1024


class OvfEnvError(ValueError):
    """The OVF environment is missing, malformed or hostile. The message says which."""


def _attr(el: Element, name: str) -> str | None:
    value = el.get(f"{{{OE}}}{name}")
    return value if value is not None else el.get(name)


def _properties(section: Element) -> dict[str, str]:
    values: dict[str, str] = {}
    for prop in section:
        if prop.tag != f"{{{OE}}}Property":
            continue
        key = _attr(prop, "key")
        if not key:
            raise OvfEnvError("a Property in the OVF environment has no oe:key")
        if key in values:
            raise OvfEnvError(f"property {key!r} appears twice in the OVF environment")
        value = _attr(prop, "value")
        values[key] = value if value is not None else ""
    return values


def parse_environment(data: bytes) -> dict[str, str]:
    """The property values of an OVF environment document, by key."""
    if not data.strip():
        raise OvfEnvError("the OVF environment is empty")
    if len(data) > MAX_ENVIRONMENT_BYTES:
        raise OvfEnvError(f"the OVF environment is larger than {MAX_ENVIRONMENT_BYTES} bytes")
    try:
        root = DET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise OvfEnvError(f"the OVF environment uses forbidden XML ({type(exc).__name__})") from exc
    except ParseError as exc:
        raise OvfEnvError(f"the OVF environment is not well-formed XML: {exc}") from exc
    if root.tag != f"{{{OE}}}Environment":
        raise OvfEnvError(f"not an OVF environment: the root element is {root.tag!r}")
    sections = root.findall(f"{{{OE}}}PropertySection")
    if len(sections) > 1:
        raise OvfEnvError("the OVF environment has more than one PropertySection")
    return _properties(sections[0]) if sections else {}


def parse_properties_file(text: str) -> dict[str, str]:
    """The fallback format: ``key = value`` lines, ``#`` comments (no OVF transport)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise OvfEnvError(f"line {number}: expected key = value")
        if key.strip() in values:
            raise OvfEnvError(f"line {number}: {key.strip()!r} is set twice")
        values[key.strip()] = value.strip()
    return values


def parse_source(data: bytes) -> dict[str, str]:
    """An OVF environment (XML) or a properties file, told apart by the first character."""
    if data.lstrip().startswith(b"<"):
        return parse_environment(data)
    try:
        return parse_properties_file(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise OvfEnvError("the properties file is not UTF-8") from exc
