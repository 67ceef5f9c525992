"""vCD XML: parsing answers (untrusted: defusedxml, no DTDs or entities), building request
bodies, and mapping vCD errors to :class:`CloudError` subclasses. Pure: bytes in, values out.

Facts followed: ../shared/vcd-api.md (§ numbers below refer to it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape, quoteattr

import defusedxml.ElementTree as DET  # type: ignore[import-untyped]
from defusedxml import DefusedXmlException

from workers.clouds.base import (
    CloudAuthError,
    CloudConflict,
    CloudError,
    CloudNotFound,
    CloudQuotaExceeded,
    CloudUnreachable,
)

VCLOUD_NS = "http://www.vmware.com/vcloud/v1.5"
VERSIONS_NS = "http://www.vmware.com/vcloud/versions"
OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1"
V = f"{{{VCLOUD_NS}}}"
MT = "application/vnd.vmware.vcloud."
MT_ORG = MT + "org+xml"
MT_QUERY_LIST = MT + "query.queryList+xml"
MT_UPLOAD_PARAMS = MT + "uploadVAppTemplateParams+xml"
MT_INSTANTIATE_PARAMS = MT + "instantiateVAppTemplateParams+xml"
MT_CAPTURE_PARAMS = MT + "captureVAppParams+xml"
MAX_ANSWER_BYTES = 64 * 1024 * 1024
_UUID = re.compile(r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})")
TASK_DONE = ("success", "error", "canceled", "aborted")

STATUS_NAMES = {
    "-1": "FAILED_CREATION",
    "0": "UNRESOLVED",
    "1": "RESOLVED",
    "3": "SUSPENDED",
    "4": "POWERED_ON",
    "8": "POWERED_OFF",
    "10": "MIXED",
}


class VcdXmlError(CloudError):
    """vCD answered something that is not the XML we asked for (or hostile XML)."""

    code = "vcd-bad-answer"


def parse(data: bytes, what: str = "answer") -> Element:
    if len(data) > MAX_ANSWER_BYTES:
        raise VcdXmlError(f"vCD {what} is larger than {MAX_ANSWER_BYTES} bytes")
    try:
        root: Element = DET.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise VcdXmlError(f"vCD {what} refused: {type(exc).__name__}") from None
    except DET.ParseError as exc:
        raise VcdXmlError(f"vCD {what} is not well-formed XML: {exc}") from None
    return root


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def links(el: Element) -> list[Element]:
    return el.findall(V + "Link")


def find_link(el: Element, rel: str, media_type: str | None = None) -> str | None:
    """The href of the first Link with this rel (and type, when given)."""
    for link in links(el):
        if link.get("rel") == rel and (media_type is None or link.get("type") == media_type):
            return link.get("href")
    return None


def uuid_of(ref: str) -> str | None:
    """The UUID inside an href (``…/vappTemplate-<uuid>``) or urn (``urn:vcloud:x:<uuid>``)."""
    m = _UUID.search(ref)
    return m.group(1).lower() if m else None


# --- versions (§1) -------------------------------------------------------------------


@dataclass(frozen=True)
class VersionInfo:
    version: str
    login_url: str | None
    provider_login_url: str | None

    @property
    def key(self) -> tuple[int, int]:
        return version_key(self.version)


def version_key(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return (0, 0)


def parse_versions(data: bytes) -> list[VersionInfo]:
    root = parse(data, "version list")
    out = []
    for info in root.iter(f"{{{VERSIONS_NS}}}VersionInfo"):
        version = (info.findtext(f"{{{VERSIONS_NS}}}Version") or "").strip()
        if version:
            out.append(
                VersionInfo(
                    version,
                    info.findtext(f"{{{VERSIONS_NS}}}LoginUrl"),
                    info.findtext(f"{{{VERSIONS_NS}}}ProviderLoginUrl"),
                )
            )
    return out


def negotiate(
    offered: list[VersionInfo], lowest: tuple[int, int], highest: tuple[int, int]
) -> VersionInfo:
    """The highest offered version inside [lowest, highest]."""
    usable = [v for v in offered if lowest <= v.key <= highest]
    if not usable:
        listed = ", ".join(v.version for v in offered) or "none"
        raise CloudError(
            f"vCD offers no API version this adapter speaks (offered: {listed}; "
            f"supported {lowest[0]}.{lowest[1]} to {highest[0]}.{highest[1]})",
            code="vcd-version",
        )
    return max(usable, key=lambda v: v.key)


# --- errors (§9) ---------------------------------------------------------------------


@dataclass(frozen=True)
class VcdErrorInfo:
    major: str
    minor: str
    message: str


def error_info(el: Element | None) -> VcdErrorInfo | None:
    if el is None:
        return None
    return VcdErrorInfo(
        el.get("majorErrorCode", ""), el.get("minorErrorCode", ""), el.get("message", "")
    )


def parse_error_body(body: bytes) -> VcdErrorInfo | None:
    """The Error XML of a failed /api call, or None when the body is not one."""
    if not body.strip():
        return None
    try:
        root = parse(body, "error")
    except VcdXmlError:
        return None
    return error_info(root) if local(root.tag) == "Error" else None


def _clean(message: str) -> str:
    """vCD messages start with ``[ <request id> ]``; keep the text."""
    return re.sub(r"^\[\s*[^\]]*\]\s*", "", message).strip()


def map_error(status: int, info: VcdErrorInfo | None, what: str) -> CloudError:
    """An HTTP error of a vCD call as the CloudError the saga understands."""
    minor = info.minor if info else ""
    text = _clean(info.message) if info and info.message else f"HTTP {status}"
    message = f"{what}: {text}" + (f" ({minor})" if minor else "")
    if status == 401:
        return CloudAuthError(f"{what}: vCD refused the credentials or the session ({text})")
    if status == 403 or status == 404:
        return CloudNotFound(message)
    if minor == "DUPLICATE_NAME":
        return CloudConflict(message)
    if "quota" in text.lower():
        return CloudQuotaExceeded(message)
    if status in (502, 503, 504):
        return CloudUnreachable(message)
    if status == 400 and minor == "BUSY_ENTITY":
        return CloudError(message, code="vcd-busy")
    return CloudError(message, code=f"vcd-http-{status}")


def task_error(task: Element, what: str) -> CloudError:
    """A task that ended in error/canceled/aborted, with vCD's own message."""
    status = task.get("status", "")
    info = error_info(task.find(V + "Error"))
    op = task.get("operationName") or task.get("operation") or "task"
    text = _clean(info.message) if info and info.message else f"ended {status}"
    message = f"{what}: vCD task {op} failed: {text}"
    if "quota" in text.lower():
        return CloudQuotaExceeded(message)
    return CloudError(
        message, code="vcd-task-failed" if status == "error" else f"vcd-task-{status}"
    )


# --- tasks, templates ----------------------------------------------------------------


def running_task(el: Element, operation: str | None = None) -> str | None:
    """The href of a task shown inline in an entity's <Tasks> (optionally by operationName)."""
    for task in el.iterfind(f"{V}Tasks/{V}Task"):
        if operation is None or task.get("operationName") == operation:
            return task.get("href")
    return None


@dataclass(frozen=True)
class UploadFile:
    name: str
    size: int
    transferred: int
    href: str | None


def template_files(template: Element) -> dict[str, UploadFile]:
    out = {}
    for f in template.iterfind(f"{V}Files/{V}File"):
        name = f.get("name", "")
        out[name] = UploadFile(
            name,
            _int(f.get("size"), -1),
            _int(f.get("bytesTransferred"), 0),
            find_link(f, "upload:default"),
        )
    return out


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def children_vms(el: Element) -> list[Element]:
    return el.findall(f"{V}Children/{V}Vm")


def chunk_sizes(descriptor: bytes) -> dict[str, int]:
    """``ovf:href -> ovf:chunkSize`` of multi-part References/File entries (§8)."""
    root = parse(descriptor, "descriptor")
    out = {}
    for ns in (OVF_NS, "http://schemas.dmtf.org/ovf/envelope/2"):
        for f in root.iterfind(f"{{{ns}}}References/{{{ns}}}File"):
            size = f.get(f"{{{ns}}}chunkSize")
            if size is not None:
                out[f.get(f"{{{ns}}}href", "")] = _int(size, 0)
    return out


def strip_chunk_size(descriptor: bytes) -> bytes:
    """The descriptor without ``ovf:chunkSize`` attributes (the files are stored whole)."""
    return re.sub(rb'\s[A-Za-z_][\w.-]*:chunkSize\s*=\s*"[^"]*"', b"", descriptor)


# --- request bodies ------------------------------------------------------------------


def upload_params(name: str, description: str, storage_profile: str | None = None) -> bytes:
    profile = f"<VdcStorageProfile href={quoteattr(storage_profile)}/>" if storage_profile else ""
    return (
        f'<UploadVAppTemplateParams xmlns="{VCLOUD_NS}" name={quoteattr(name)}>'
        f"<Description>{escape(description)}</Description>{profile}"
        "</UploadVAppTemplateParams>"
    ).encode()


def capture_params(name: str, description: str, vapp_href: str) -> bytes:
    return (
        f'<CaptureVAppParams xmlns="{VCLOUD_NS}" name={quoteattr(name)}>'
        f"<Description>{escape(description)}</Description>"
        f"<Source href={quoteattr(vapp_href)}/></CaptureVAppParams>"
    ).encode()


@dataclass(frozen=True)
class Network:
    name: str
    href: str


def instantiate_params(
    name: str,
    template_href: str,
    vms: list[tuple[str, str]],
    network: Network | None,
    power_on: bool,
    description: str = "",
) -> bytes:
    """InstantiateVAppTemplateParams (§7): the vApp network bridged to ``network`` and each
    VM's first NIC connected to it; ``vms`` are (href, name) of the template's VMs."""
    on = "true" if power_on else "false"
    net_cfg = items = ""
    if network is not None:
        net = quoteattr(network.name)
        net_cfg = (
            "<NetworkConfigSection><ovf:Info>vApp networks</ovf:Info>"
            f"<NetworkConfig networkName={net}>"
            f"<Configuration><ParentNetwork href={quoteattr(network.href)}/>"
            "<FenceMode>bridged</FenceMode></Configuration></NetworkConfig></NetworkConfigSection>"
        )
        conn = (
            "<NetworkConnectionSection><ovf:Info>NICs</ovf:Info>"
            "<PrimaryNetworkConnectionIndex>0</PrimaryNetworkConnectionIndex>"
            f"<NetworkConnection network={net}><NetworkConnectionIndex>0</NetworkConnectionIndex>"
            "<IsConnected>true</IsConnected>"
            "<IpAddressAllocationMode>DHCP</IpAddressAllocationMode></NetworkConnection>"
            "</NetworkConnectionSection>"
        )
        items = "".join(
            f"<SourcedItem><Source href={quoteattr(href)} name={quoteattr(vm_name)}/>"
            f"<InstantiationParams>{conn}</InstantiationParams></SourcedItem>"
            for href, vm_name in vms
        )
    return (
        f'<InstantiateVAppTemplateParams xmlns="{VCLOUD_NS}" xmlns:ovf="{OVF_NS}" '
        f'name={quoteattr(name)} deploy="{on}" powerOn="{on}">'
        f"<Description>{escape(description)}</Description>"
        f"<InstantiationParams>{net_cfg}</InstantiationParams>"
        f"<Source href={quoteattr(template_href)}/>{items}"
        "<AllEULAsAccepted>true</AllEULAsAccepted></InstantiateVAppTemplateParams>"
    ).encode()


# --- query results (§4c) -------------------------------------------------------------


def records(page: Element) -> tuple[list[dict[str, str]], str | None]:
    """The records of one QueryResultRecords page (attribute dicts) and the next page href."""
    rows = [dict(child.attrib) for child in page if local(child.tag) != "Link"]
    return rows, find_link(page, "nextPage")
