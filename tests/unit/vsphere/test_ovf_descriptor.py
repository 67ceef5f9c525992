from __future__ import annotations

import pytest

from workers.ovf.descriptor import (
    DescriptorError,
    allocation_multiplier,
    check_files,
    parse_descriptor,
)

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"'
    ' xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"'
    ' xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">'
)


def envelope(
    refs='<File ovf:href="disk-0.vmdk" ovf:id="file1" ovf:size="100"/>',
    disks='<Disk ovf:capacity="8" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1"'
    ' ovf:fileRef="file1"/>',
    host="ovf:/disk/vmdisk1",
) -> bytes:
    return (
        HEAD + f"<References>{refs}</References>"
        f"<DiskSection><Info>d</Info>{disks}</DiskSection>"
        '<NetworkSection><Info>n</Info><Network ovf:name="VM Network"/></NetworkSection>'
        '<VirtualSystem ovf:id="web"><Info>vm</Info><Name>web-01</Name>'
        "<VirtualHardwareSection><Info>hw</Info>"
        "<Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType>"
        "<rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>"
        "<Item><rasd:AllocationUnits>byte * 2^30</rasd:AllocationUnits>"
        "<rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType>"
        "<rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>"
        f"<Item><rasd:HostResource>{host}</rasd:HostResource><rasd:InstanceID>3</rasd:InstanceID>"
        "<rasd:ResourceType>17</rasd:ResourceType></Item>"
        "</VirtualHardwareSection></VirtualSystem></Envelope>"
    ).encode()


def test_parse_summarises_files_disks_networks_and_hardware():
    d = parse_descriptor(envelope())
    assert [(f.id, f.href, f.size) for f in d.files] == [("file1", "disk-0.vmdk", 100)]
    assert [(x.disk_id, x.file_ref, x.capacity_bytes) for x in d.disks] == [
        ("vmdisk1", "file1", 8 * 2**20)
    ]
    assert d.networks == ("VM Network",)
    (vs,) = d.systems
    assert (vs.name, vs.cpus, vs.memory_mib, vs.disk_ids) == ("web-01", 2, 2048, ("vmdisk1",))
    assert not d.collection
    check_files(d, {"disk-0.vmdk": 100})


@pytest.mark.parametrize(
    ("units", "mult"),
    [(None, 1), ("byte", 1), ("byte * 2^20", 2**20), ("byte * 1024", 1024), ("GigaBytes", 2**30)],
)
def test_allocation_units(units, mult):
    assert allocation_multiplier(units) == mult


@pytest.mark.parametrize("units", ["furlong", "byte * 2^999", "byte ** 3"])
def test_bad_allocation_units(units):
    with pytest.raises(DescriptorError):
        allocation_multiplier(units)


XXE = (
    b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">&x;</Envelope>'
)
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;">]>'
    b'<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">&c;</Envelope>'
)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (XXE, "refused"),
        (LAUGHS, "refused"),
        (b"<Envelope", "not well-formed"),
        (b"<html/>", "not an OVF Envelope"),
        (HEAD.encode() + b"</Envelope>", "no VirtualSystem"),
        (envelope(refs='<File ovf:href="../../etc/passwd" ovf:id="file1"/>'), "plain name"),
        (envelope(refs='<File ovf:href="/etc/passwd" ovf:id="file1"/>'), "plain name"),
        (envelope(refs='<File ovf:href="d.vmdk" ovf:id="file1" ovf:size="-1"/>'), "negative"),
        (envelope(disks='<Disk ovf:diskId="vmdisk1"/>'), "capacity"),
    ],
)
def test_hostile_or_broken_descriptors_are_refused(data, match):
    with pytest.raises(DescriptorError, match=match):
        parse_descriptor(data)


def test_too_large_descriptor_is_refused():
    with pytest.raises(DescriptorError, match="larger"):
        parse_descriptor(envelope(), max_bytes=100)


@pytest.mark.parametrize(
    ("data", "sizes", "match"),
    [
        (envelope(), {}, "not in the package"),
        (envelope(), {"disk-0.vmdk": 99}, "descriptor says 100"),
        (
            envelope(disks='<Disk ovf:capacity="1" ovf:diskId="vmdisk1" ovf:fileRef="file9"/>'),
            {"disk-0.vmdk": 100},
            "missing file file9",
        ),
        (envelope(host="ovf:/disk/vmdisk7"), {"disk-0.vmdk": 100}, "vmdisk7"),
        (
            envelope(refs='<File ovf:href="a" ovf:id="file1"/><File ovf:href="a" ovf:id="file2"/>'),
            {"a": 1},
            "duplicate",
        ),
    ],
)
def test_inconsistent_packages_are_refused(data, sizes, match):
    with pytest.raises(DescriptorError, match=match):
        check_files(parse_descriptor(data), sizes)
