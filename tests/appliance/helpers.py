"""Appliance test helpers: tiny appliance OVAs, OVF environment documents."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

from firstboot.descriptor import ApplianceSpec
from firstboot.ova import build_ova
from firstboot.properties import Kind

MIB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]
TINY_DISKS = {Kind.SERVER: [8 * MIB], Kind.NODE: [8 * MIB, 24 * MIB]}


def tiny_ova(kind: Kind, work: Path, version: str = "0.1.0") -> Path:
    """The appliance's OVA exactly as `make appliance` packs it, with tiny blank disks."""
    images = []
    for i, size in enumerate(TINY_DISKS[kind], start=1):
        image = work / f"{kind.value}-{i}.qcow2"
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", str(image), str(size)], check=True
        )
        images.append(image)
    spec = ApplianceSpec(kind, version, cpus=1, memory_mib=64)
    return build_ova(spec, images, work / "out")


def extract_ova(ova: Path, dest: Path) -> Path:
    """An OVA is a tar; a node works on the unpacked package directory."""
    dest.mkdir(parents=True)
    with tarfile.open(ova) as tar:
        tar.extractall(dest, filter="data")
    return dest


def environment(values: dict[str, str], *, vmware: bool = True) -> bytes:
    """An OVF environment document shaped like the one vSphere puts in guestinfo.ovfEnv."""
    props = "\n".join(
        f"      <Property oe:key={quoteattr(k)} oe:value={quoteattr(v)}/>"
        for k, v in values.items()
    )
    platform = (
        "   <PlatformSection>\n      <Kind>VMware ESXi</Kind>\n      <Version>8.0.2</Version>\n"
        "      <Vendor>VMware, Inc.</Vendor>\n      <Locale>en</Locale>\n   </PlatformSection>\n"
    )
    adapters = (
        "   <ve:EthernetAdapterSection>\n"
        '      <ve:Adapter ve:mac="00:50:56:aa:bb:cc" ve:network="VM Network" ve:unitNumber="7"/>\n'
        "   </ve:EthernetAdapterSection>\n"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1"\n'
        '     xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
        '     xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"\n'
        '     xmlns:ve="http://www.vmware.com/schema/ovfenv"\n'
        '     oe:id="" ve:vCenterId="vm-42">\n'
        + (platform if vmware else "")
        + "   <PropertySection>\n"
        + props
        + "\n   </PropertySection>\n"
        + (adapters if vmware else "")
        + "</Environment>\n"
    ).encode()


NODE_VALUES = {
    "hostname": "node-a.example.net",
    "net.mode": "static",
    "net.address": "192.0.2.10/24",
    "net.gateway": "192.0.2.1",
    "net.dns": "192.0.2.53, 192.0.2.54",
    "net.domain": "example.net",
    "ntp.servers": "ntp1.example.net,192.0.2.123",
    "admin.password": "c0nsole-Pa$$ 'x'",
    "admin.ssh_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKxy admin@laptop",
    "hcc.node_id": "n1",
    "hcc.server_url": "http://hcc.example.net:8080",
    "hcc.enroll_token": "tok-AbC_123",
    "hcc.receiver_url": "",
}

SERVER_VALUES = {
    "hostname": "hcc",
    "net.mode": "dhcp",
    "net.address": "",
    "net.gateway": "",
    "net.dns": "",
    "net.domain": "example.net",
    "ntp.servers": "",
    "admin.password": "",
    "admin.ssh_key": "",
    "hcc.admin_password": "Adm1n-secret",
    "hcc.public_url": "https://hcc.example.net:8080/",
}
