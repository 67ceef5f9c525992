"""The OVF descriptor of an hcc appliance (build time): hardware, disks, and the vApp
properties of :mod:`firstboot.properties` in a ProductSection, delivered to the guest by the
``com.vmware.guestInfo`` transport (declared on the VirtualHardwareSection, where DSP0243
puts ``ovf:transport``).

OVF 1.0 envelope, the version vSphere and vCD both import; streamOptimized VMDKs; one
paravirtual SCSI controller, one VMXNET3 adapter on the network ``VM Network``. The node has a
second disk: its transfer storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree as ET

from firstboot.properties import Kind, properties_for

OVF = "http://schemas.dmtf.org/ovf/envelope/1"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
VMW = "http://www.vmware.com/schema/ovf"
STREAM_OPTIMIZED = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
NETWORK = "VM Network"
DEBIAN_64 = "96"  # CIM OperatingSystem type "Debian 64-Bit"
for _prefix, _uri in (("ovf", OVF), ("rasd", RASD), ("vssd", VSSD), ("vmw", VMW)):
    ET.register_namespace(_prefix, _uri)


@dataclass(frozen=True)
class DiskFile:
    """One disk of the package: its VMDK file and the disk's capacity."""

    href: str
    size_bytes: int
    capacity_bytes: int
    label: str


@dataclass(frozen=True)
class ApplianceSpec:
    kind: Kind
    version: str
    cpus: int = 2
    memory_mib: int = 4096
    os_type: str = "debian11_64Guest"
    """vmw:osType; debian12_64Guest needs ESXi 8, debian11 runs Debian 12 just as well."""
    hardware_version: str = "vmx-14"

    @property
    def name(self) -> str:
        return f"hcc-{self.kind.value}"


def _o(name: str) -> str:
    return f"{{{OVF}}}{name}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {(_o(k) if ":" not in k else k): v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def _item(parent: ET.Element, fields: dict[str, str]) -> None:
    item = ET.SubElement(parent, _o("Item"))
    for key in sorted(fields):  # CIM RASD elements are an alphabetical xs:sequence
        ET.SubElement(item, f"{{{RASD}}}{key}").text = fields[key]


def _hardware(vs: ET.Element, spec: ApplianceSpec, disks: list[DiskFile]) -> None:
    hw = _sub(vs, _o("VirtualHardwareSection"), transport="com.vmware.guestInfo")
    _sub(hw, _o("Info"), "Virtual hardware requirements")
    system = _sub(hw, _o("System"))
    for key, value in (
        ("ElementName", "Virtual Hardware Family"),
        ("InstanceID", "0"),
        ("VirtualSystemIdentifier", spec.name),
        ("VirtualSystemType", spec.hardware_version),
    ):
        ET.SubElement(system, f"{{{VSSD}}}{key}").text = value
    _item(
        hw,
        {
            "AllocationUnits": "hertz * 10^6",
            "Description": "Number of virtual CPUs",
            "ElementName": f"{spec.cpus} virtual CPU(s)",
            "InstanceID": "1",
            "ResourceType": "3",
            "VirtualQuantity": str(spec.cpus),
        },
    )
    _item(
        hw,
        {
            "AllocationUnits": "byte * 2^20",
            "Description": "Memory Size",
            "ElementName": f"{spec.memory_mib}MB of memory",
            "InstanceID": "2",
            "ResourceType": "4",
            "VirtualQuantity": str(spec.memory_mib),
        },
    )
    _item(
        hw,
        {
            "Address": "0",
            "Description": "SCSI Controller",
            "ElementName": "SCSI Controller 0",
            "InstanceID": "3",
            "ResourceSubType": "VirtualSCSI",
            "ResourceType": "6",
        },
    )
    for unit, disk in enumerate(disks):
        _item(
            hw,
            {
                "AddressOnParent": str(unit),
                "Description": disk.label,
                "ElementName": f"Hard Disk {unit + 1}",
                "HostResource": f"ovf:/disk/vmdisk{unit + 1}",
                "InstanceID": str(10 + unit),
                "Parent": "3",
                "ResourceType": "17",
            },
        )
    _item(
        hw,
        {
            "AddressOnParent": "7",
            "AutomaticAllocation": "true",
            "Connection": NETWORK,
            "Description": "VmxNet3 ethernet adapter",
            "ElementName": "Network adapter 1",
            "InstanceID": "20",
            "ResourceSubType": "VmxNet3",
            "ResourceType": "10",
        },
    )
    ET.SubElement(
        hw,
        f"{{{VMW}}}Config",
        {
            _o("required"): "false",
            f"{{{VMW}}}key": "tools.syncTimeWithHost",
            f"{{{VMW}}}value": "false",
        },
    )


def _product(vs: ET.Element, spec: ApplianceSpec) -> None:
    ps = _sub(vs, _o("ProductSection"), required="false")
    _sub(ps, _o("Info"), f"hcc {spec.kind.value} settings, read at every boot")
    _sub(ps, _o("Product"), f"hcc {spec.kind.value} (Hybrid Cloud Connector)")
    _sub(ps, _o("Vendor"), "hcc project")
    _sub(ps, _o("Version"), spec.version)
    _sub(ps, _o("FullVersion"), spec.version)
    category = None
    for prop in properties_for(spec.kind):
        if prop.category != category:
            category = prop.category
            _sub(ps, _o("Category"), category)
        attrs = {
            "key": prop.key,
            "type": "string",
            "userConfigurable": "true",
            "value": prop.default,
        }
        if prop.qualifiers:
            attrs["qualifiers"] = prop.qualifiers
        if prop.password:
            attrs["password"] = "true"
        el = _sub(ps, _o("Property"), **attrs)
        _sub(el, _o("Label"), prop.label)
        _sub(el, _o("Description"), prop.description)


def build_descriptor(spec: ApplianceSpec, disks: list[DiskFile]) -> bytes:
    env = ET.Element(_o("Envelope"))
    refs = _sub(env, _o("References"))
    for i, disk in enumerate(disks, start=1):
        _sub(refs, _o("File"), href=disk.href, id=f"file{i}", size=str(disk.size_bytes))
    ds = _sub(env, _o("DiskSection"))
    _sub(ds, _o("Info"), "Virtual disk information")
    for i, disk in enumerate(disks, start=1):
        _sub(
            ds,
            _o("Disk"),
            capacity=str(disk.capacity_bytes),
            capacityAllocationUnits="byte",
            diskId=f"vmdisk{i}",
            fileRef=f"file{i}",
            format=STREAM_OPTIMIZED,
        )
    ns = _sub(env, _o("NetworkSection"))
    _sub(ns, _o("Info"), "The list of logical networks")
    net = _sub(ns, _o("Network"), name=NETWORK)
    _sub(net, _o("Description"), f"The network {spec.name} is reached on")
    vs = _sub(env, _o("VirtualSystem"), id=spec.name)
    _sub(vs, _o("Info"), f"The hcc {spec.kind.value} appliance")
    _sub(vs, _o("Name"), spec.name)
    os_section = ET.SubElement(
        vs, _o("OperatingSystemSection"), {_o("id"): DEBIAN_64, f"{{{VMW}}}osType": spec.os_type}
    )
    _sub(os_section, _o("Info"), "The guest operating system")
    _sub(os_section, _o("Description"), "Debian GNU/Linux 12 (64-bit)")
    _hardware(vs, spec, disks)
    _product(vs, spec)
    ET.indent(env)
    text: bytes = ET.tostring(env, encoding="utf-8", xml_declaration=True)
    return text + b"\n"
