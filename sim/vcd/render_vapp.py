"""XML for VAppTemplate, VApp and their Vm children (shared/vcd-api.md §5, §5d, §7, §8)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sim.vcd.model import State, Status, TransferFile, VApp, VAppTemplate, Vm
from sim.vcd.render import Hrefs, tasks_in_progress, urn
from sim.vcd.xmlgen import (
    MT_CATALOG_ITEM,
    MT_CUSTOMIZATION,
    MT_DEPLOY_PARAMS,
    MT_HARDWARE,
    MT_LEASE,
    MT_NETWORK_CONFIG,
    MT_OWNER,
    MT_TEMPLATE,
    MT_TEXT_XML,
    MT_UNDEPLOY_PARAMS,
    MT_USER,
    MT_VAPP,
    MT_VDC,
    MT_VM,
    OVF_NS,
    RASD_NS,
    el,
    link,
    ref,
    text_el,
)

DOWNLOAD_RELS = (
    ("download:default", "descriptor.ovf"),
    ("download:identity", "descriptor-with-id.ovf"),
    ("download:ovaDefault", "descriptor.ova"),
    ("download:ovaIdentity", "descriptor-with-id.ova"),
)


def _owner(h: Hrefs, state: State, user_id: str) -> ET.Element:
    user = state.users.get(user_id)
    return el(
        "Owner",
        {"type": MT_OWNER},
        ref("User", h.user(user_id), MT_USER, user.name if user else None),
    )


def _files(h: Hrefs, t: VAppTemplate) -> ET.Element:
    files = el("Files")
    for f in t.files:
        files.append(_file(h, t, f))
    return files


def _file(h: Hrefs, t: VAppTemplate, f: TransferFile) -> ET.Element:
    attrs = {
        "size": str(f.size),
        "bytesTransferred": str(f.bytes_transferred),
        "checksum": f.checksum,
        "name": f.name,
    }
    return el("File", attrs, link("upload:default", h.transfer(t.transfer_id, f.name)))


def _network_config(href: str, names: list[str]) -> ET.Element:
    section = el(
        "NetworkConfigSection",
        {
            "href": f"{href}/networkConfigSection/",
            "type": MT_NETWORK_CONFIG,
            f"{{{OVF_NS}}}required": "false",
        },
        el("Info", text="The configuration parameters for logical networks", ns=OVF_NS),
    )
    for name in names or ["none"]:
        config = el(
            "Configuration", None, text_el("FenceMode", "isolated" if name == "none" else "bridged")
        )
        section.append(
            el("NetworkConfig", {"networkName": name}, config, text_el("IsDeployed", False))
        )
    return section


def _lease_and_customization(href: str) -> list[ET.Element]:
    lease = el(
        "LeaseSettingsSection",
        {
            "href": f"{href}/leaseSettingsSection/",
            "type": MT_LEASE,
            f"{{{OVF_NS}}}required": "false",
        },
        el("Info", text="Lease settings section", ns=OVF_NS),
        text_el("StorageLeaseInSeconds", 0),
    )
    custom = el(
        "CustomizationSection",
        {
            "href": f"{href}/customizationSection/",
            "type": MT_CUSTOMIZATION,
            f"{{{OVF_NS}}}required": "false",
        },
        el("Info", text="VApp template customization section", ns=OVF_NS),
        text_el("CustomizeOnInstantiate", False),
    )
    return [lease, custom]


def template(h: Hrefs, t: VAppTemplate, state: State) -> ET.Element:
    href = h.template(t.id)
    root = el(
        "VAppTemplate",
        {
            "ovfDescriptorUploaded": "true" if t.descriptor_uploaded else "false",
            "goldMaster": "false",
            "status": str(t.status),
            "name": t.name,
            "id": urn("vapptemplate", t.id),
            "href": href,
            "type": MT_TEMPLATE,
        },
        link("up", h.vdc(t.vdc_id), MT_VDC),
    )
    if t.catalog_item_id:
        root.append(link("catalogItem", h.item(t.catalog_item_id), MT_CATALOG_ITEM))
    root.append(link("remove", href))
    if t.descriptor_uploaded:
        root.append(link("ovf", f"{href}/ovf", MT_TEXT_XML))
    if t.status == Status.POWERED_OFF:
        root.append(link("enable", f"{href}/action/enableDownload"))
        root.append(link("disable", f"{href}/action/disableDownload"))
        if t.download_id is not None:
            for rel, name in DOWNLOAD_RELS:
                root.append(link(rel, h.transfer(t.download_id, name), MT_TEXT_XML))
    root.append(text_el("Description", t.description))
    tasks = tasks_in_progress(h, state, t.id)
    if tasks is not None:
        root.append(tasks)
    if t.status not in (Status.POWERED_OFF, Status.FAILED_CREATION):
        root.append(_files(h, t))
    root.append(_owner(h, state, t.owner_id))
    children = el("Children")
    for vm in t.vms:
        children.append(template_vm(h, t, vm))
    root.append(children)
    if t.descriptor_uploaded:
        root.append(_network_config(href, t.network_names))
    root.extend(_lease_and_customization(href))
    root.append(text_el("DateCreated", t.created))
    return root


def _vm_common(vm: Vm, href: str, parent_href: str, parent_type: str) -> ET.Element:
    return el(
        "Vm",
        {
            "goldMaster": "false",
            "status": str(vm.status),
            "name": vm.name,
            "id": urn("vm", vm.id),
            "href": href,
            "type": MT_VM,
        },
        link("up", parent_href, parent_type),
        text_el("Description", vm.description),
    )


def _hardware(vm: Vm, href: str) -> ET.Element:
    """``ovf:VirtualHardwareSection`` with the CPU and memory items (rasd)."""

    def item(instance: int, rtype: int, name: str, quantity: int, units: str) -> ET.Element:
        return el(
            "Item",
            None,
            el("AllocationUnits", text=units, ns=RASD_NS),
            el("ElementName", text=name, ns=RASD_NS),
            el("InstanceID", text=str(instance), ns=RASD_NS),
            el("ResourceType", text=str(rtype), ns=RASD_NS),
            el("VirtualQuantity", text=str(quantity), ns=RASD_NS),
            ns=OVF_NS,
        )

    return el(
        "VirtualHardwareSection",
        {"href": f"{href}/virtualHardwareSection/", "type": MT_HARDWARE},
        el("Info", text="Virtual hardware requirements", ns=OVF_NS),
        item(1, 3, f"{vm.cpus} virtual CPU(s)", vm.cpus, "hertz * 10^6"),
        item(2, 4, f"{vm.memory_mb} MB of memory", vm.memory_mb, "byte * 2^20"),
        ns=OVF_NS,
    )


def _vm_sections(vm: Vm, href: str) -> list[ET.Element]:
    net = el(
        "NetworkConnectionSection",
        {
            "href": f"{href}/networkConnectionSection/",
            "type": "application/vnd.vmware.vcloud.networkConnectionSection+xml",
            f"{{{OVF_NS}}}required": "false",
        },
        el("Info", text="Specifies the available VM network connections", ns=OVF_NS),
        text_el("PrimaryNetworkConnectionIndex", 0),
    )
    if vm.network:
        net.append(
            el(
                "NetworkConnection",
                {"network": vm.network},
                text_el("NetworkConnectionIndex", 0),
                text_el("IsConnected", True),
                text_el("IpAddressAllocationMode", "DHCP"),
            )
        )
    return [_hardware(vm, href), net, text_el("VAppScopedLocalId", vm.local_id)]


def template_vm(h: Hrefs, t: VAppTemplate, vm: Vm) -> ET.Element:
    href = h.template_vm(vm.id)
    root = _vm_common(vm, href, h.template(t.id), MT_TEMPLATE)
    root.extend(_vm_sections(vm, href))
    return root


def vapp_vm(h: Hrefs, a: VApp, vm: Vm) -> ET.Element:
    href = h.vapp_vm(vm.id)
    root = _vm_common(vm, href, h.vapp(a.id), MT_VAPP)
    root.set("deployed", "true" if a.deployed else "false")
    root.extend(_vm_sections(vm, href))
    return root


def vapp(h: Hrefs, a: VApp, state: State) -> ET.Element:
    href = h.vapp(a.id)
    root = el(
        "VApp",
        {
            "ovfDescriptorUploaded": "true",
            "deployed": "true" if a.deployed else "false",
            "status": str(a.status),
            "name": a.name,
            "id": urn("vapp", a.id),
            "href": href,
            "type": MT_VAPP,
        },
        link("up", h.vdc(a.vdc_id), MT_VDC),
    )
    if a.status not in (Status.UNRESOLVED, Status.FAILED_CREATION):
        root.append(link("remove", href))
        if a.status == Status.POWERED_ON:
            root.append(link("power:powerOff", f"{href}/power/action/powerOff"))
        else:
            root.append(link("power:powerOn", f"{href}/power/action/powerOn"))
        if a.deployed:
            root.append(link("undeploy", f"{href}/action/undeploy", MT_UNDEPLOY_PARAMS))
        else:
            root.append(link("deploy", f"{href}/action/deploy", MT_DEPLOY_PARAMS))
    root.append(text_el("Description", a.description))
    tasks = tasks_in_progress(h, state, a.id)
    if tasks is not None:
        root.append(tasks)
    root.append(_owner(h, state, a.owner_id))
    root.append(text_el("InMaintenanceMode", False))
    if a.status != Status.UNRESOLVED:
        children = el("Children")
        for vm in a.vms:
            children.append(vapp_vm(h, a, vm))
        root.append(children)
        root.append(_network_config(href, a.network_names))
    root.append(text_el("DateCreated", a.created))
    return root
