"""The generated OVF descriptors: well-formed, what vSphere needs for vApp properties, and in
agreement with first boot (every declared property is read, and changes what boot writes)."""

from __future__ import annotations

import defusedxml.ElementTree as DET  # type: ignore[import-untyped]
import pytest

from firstboot.config import Reader, build_config
from firstboot.descriptor import OVF, ApplianceSpec, DiskFile, build_descriptor
from firstboot.properties import Kind, properties_for
from firstboot.render import files_for
from tests.appliance.helpers import NODE_VALUES, SERVER_VALUES
from workers.ovf.descriptor import check_files, parse_descriptor

GIB = 1024**3
NS = f"{{{OVF}}}"


def descriptor(kind: Kind) -> bytes:
    disks = [DiskFile("hcc-x-disk1.vmdk", 1000, 8 * GIB, "System disk")]
    if kind is Kind.NODE:
        disks.append(DiskFile("hcc-x-disk2.vmdk", 2000, 200 * GIB, "Transfer storage"))
    return build_descriptor(ApplianceSpec(kind, "1.2.3", cpus=4, memory_mib=8192), disks)


def declared(kind: Kind) -> dict[str, dict[str, str]]:
    root = DET.fromstring(descriptor(kind))
    (section,) = root.iter(f"{NS}ProductSection")
    return {
        p.get(f"{NS}key"): {k.removeprefix(NS): v for k, v in p.attrib.items()}
        for p in section.iter(f"{NS}Property")
    }


@pytest.mark.parametrize("kind", list(Kind))
def test_descriptor_is_well_formed_and_consistent(kind):
    desc = parse_descriptor(descriptor(kind))  # hcc's own (defusedxml) descriptor reader
    (system,) = desc.systems
    assert (system.name, system.cpus, system.memory_mib) == (f"hcc-{kind.value}", 4, 8192)
    expected = [8 * GIB] if kind is Kind.SERVER else [8 * GIB, 200 * GIB]
    assert [d.capacity_bytes for d in desc.disks] == expected
    sizes = {"hcc-x-disk1.vmdk": 1000, "hcc-x-disk2.vmdk": 2000}
    check_files(desc, {f.href: sizes[f.href] for f in desc.files})
    assert list(desc.networks) == ["VM Network"]


@pytest.mark.parametrize("kind", list(Kind))
def test_properties_travel_by_guestinfo(kind):
    root = DET.fromstring(descriptor(kind))
    (hw,) = root.iter(f"{NS}VirtualHardwareSection")
    assert hw.get(f"{NS}transport") == "com.vmware.guestInfo"
    props = declared(kind)
    assert list(props) == [p.key for p in properties_for(kind)]
    secrets = {k for k, a in props.items() if a.get("password") == "true"}
    expected = {"admin.password"} | (
        {"hcc.admin_password"} if kind is Kind.SERVER else {"hcc.enroll_token"}
    )
    assert secrets == expected
    assert all(a["userConfigurable"] == "true" and a["type"] == "string" for a in props.values())
    assert props["net.mode"]["qualifiers"] == 'ValueMap{"dhcp","static"}'
    assert props["net.mode"]["value"] == "dhcp"
    product = root.find(f".//{NS}ProductSection/{NS}Version")
    assert product is not None
    assert product.text == "1.2.3"


STATIC = {"net.mode": "static", "net.address": "192.0.2.10/24", "net.gateway": "192.0.2.1"}
BASE = {Kind.NODE: NODE_VALUES, Kind.SERVER: {**SERVER_VALUES, **STATIC}}
VARIANTS = {
    "hostname": "other-host",
    "net.mode": "dhcp",
    "net.address": "192.0.2.11/24",
    "net.gateway": "192.0.2.2",
    "net.dns": "192.0.2.99",
    "net.domain": "example.org",
    "ntp.servers": "ntp9.example.net",
    "admin.password": "another-one",
    "admin.ssh_key": "ssh-rsa AAAAB3NzaC1yc2E other@host",
    "hcc.node_id": "n9",
    "hcc.server_url": "http://other:8080",
    "hcc.enroll_token": "tok-2",
    "hcc.receiver_url": "https://r.example.net:8443",
    "hcc.admin_password": "Adm1n-other",
    "hcc.public_url": "http://p.example.net:8080",
}


def outcome(kind: Kind, values: dict[str, str]) -> tuple[object, ...]:
    cfg = build_config(kind, Reader(values))
    return (tuple(files_for(cfg)), cfg.admin_password)


@pytest.mark.parametrize("kind", list(Kind))
def test_first_boot_reads_every_declared_property(kind):
    keys = set(declared(kind))
    reader = Reader(BASE[kind])
    build_config(kind, reader)
    assert reader.read == keys
    base = outcome(kind, BASE[kind])
    unchanged = [k for k in sorted(keys) if outcome(kind, {**BASE[kind], k: VARIANTS[k]}) == base]
    assert unchanged == []
