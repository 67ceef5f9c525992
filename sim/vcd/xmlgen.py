"""Namespaces, media types and small helpers for building vCD XML with ElementTree.

Only generation happens here (ElementTree is safe for writing); everything the simulator
*reads* goes through defusedxml (:mod:`sim.vcd.ovf`, :mod:`sim.vcd.params`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping

VCLOUD_NS = "http://www.vmware.com/vcloud/v1.5"
VERSIONS_NS = "http://www.vmware.com/vcloud/versions"
OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
RASD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
VMW_NS = "http://www.vmware.com/schema/ovf"

ET.register_namespace("", VCLOUD_NS)
ET.register_namespace("ovf", OVF_NS)
ET.register_namespace("xsi", XSI_NS)
ET.register_namespace("rasd", RASD_NS)
ET.register_namespace("vssd", VSSD_NS)
ET.register_namespace("vmw", VMW_NS)

_V = "application/vnd.vmware.vcloud."
MT_SESSION = _V + "session+xml"
MT_ORG_LIST = _V + "orgList+xml"
MT_ORG = _V + "org+xml"
MT_VDC = _V + "vdc+xml"
MT_CATALOG = _V + "catalog+xml"
MT_CATALOG_ITEM = _V + "catalogItem+xml"
MT_TEMPLATE = _V + "vAppTemplate+xml"
MT_VAPP = _V + "vApp+xml"
MT_VM = _V + "vm+xml"
MT_TASK = _V + "task+xml"
MT_TASKS_LIST = _V + "tasksList+xml"
MT_METADATA = _V + "metadata+xml"
MT_NETWORK = _V + "network+xml"
MT_ORG_NETWORK = _V + "orgNetwork+xml"
MT_ERROR = _V + "error+xml"
MT_UPLOAD_PARAMS = _V + "uploadVAppTemplateParams+xml"
MT_INSTANTIATE_PARAMS = _V + "instantiateVAppTemplateParams+xml"
MT_MEDIA = _V + "media+xml"
MT_CAPTURE_PARAMS = _V + "captureVAppParams+xml"
MT_DEPLOY_PARAMS = _V + "deployVAppParams+xml"
MT_UNDEPLOY_PARAMS = _V + "undeployVAppParams+xml"
MT_QUERY_LIST = _V + "query.queryList+xml"
MT_RECORDS = _V + "query.records+xml"
MT_IDRECORDS = _V + "query.idrecords+xml"
MT_REFERENCES = _V + "query.references+xml"
MT_USER = "application/vnd.vmware.admin.user+xml"
MT_OWNER = _V + "owner+xml"
MT_ADMIN = "application/vnd.vmware.admin.vcloud+xml"
MT_ENTITY = _V + "entity+xml"
MT_VDC_STORAGE_PROFILE = _V + "vdcStorageProfile+xml"
MT_LEASE = _V + "leaseSettingsSection+xml"
MT_CUSTOMIZATION = _V + "customizationSection+xml"
MT_NETWORK_CONFIG = _V + "networkConfigSection+xml"
MT_HARDWARE = _V + "virtualHardwareSection+xml"
MT_VERSIONS = "application/xml"
MT_TEXT_XML = "text/xml"


def q(tag: str, ns: str = VCLOUD_NS) -> str:
    """Clark notation: ``{ns}tag``."""
    return f"{{{ns}}}{tag}"


def el(
    tag: str,
    attrs: Mapping[str, str | None] | None = None,
    *children: ET.Element | None,
    text: str | None = None,
    ns: str = VCLOUD_NS,
) -> ET.Element:
    """An element in ``ns``; attributes whose value is None are left out."""
    elem = ET.Element(q(tag, ns), {k: v for k, v in (attrs or {}).items() if v is not None})
    for child in children:
        if child is not None:
            elem.append(child)
    if text is not None:
        elem.text = text
    return elem


def link(rel: str, href: str, media_type: str | None = None, name: str | None = None) -> ET.Element:
    """``<Link rel href [type] [name]/>``; type None leaves the attribute out (rel="enable")."""
    return el("Link", {"rel": rel, "href": href, "type": media_type, "name": name})


def ref(tag: str, href: str, media_type: str, name: str | None = None) -> ET.Element:
    """A reference element (``Entity``, ``Owner``, ``User``, ``ResourceEntity``...)."""
    return el(tag, {"href": href, "type": media_type, "name": name})


def text_el(tag: str, value: str | int | bool, ns: str = VCLOUD_NS) -> ET.Element:
    if isinstance(value, bool):
        value = "true" if value else "false"
    return el(tag, text=str(value), ns=ns)


def to_bytes(elem: ET.Element) -> bytes:
    data: bytes = ET.tostring(elem, encoding="utf-8", xml_declaration=True)
    return data
