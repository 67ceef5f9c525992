"""Descriptor parsing (defusedxml) and the export descriptor."""

from __future__ import annotations

import pytest

from sim.vcd.errors import VcdError
from sim.vcd.ovf import export_descriptor, parse_descriptor
from tests.fixtures.vcdsim import make_ovf

OVF = "{http://schemas.dmtf.org/ovf/envelope/1}"


def test_parse_files_systems_and_networks() -> None:
    desc = parse_descriptor(make_ovf({"a.vmdk": 10, "b.vmdk": 20}, vm="web01"))
    assert [(f.href, f.file_id, f.size, f.chunk_size) for f in desc.files] == [
        ("a.vmdk", "file0", 10, None),
        ("b.vmdk", "file1", 20, None),
    ]
    assert desc.total_bytes == 30
    [vm] = desc.systems
    assert (vm.ovf_id, vm.name, vm.cpus, vm.memory_mb, vm.network) == (
        "web01",
        "web01",
        2,
        1024,
        "VM Network",
    )
    assert desc.networks == ["VM Network"]


def test_chunk_size_is_read_and_dropped_on_export() -> None:
    data = make_ovf({"a.vmdk": 10}, chunk_size=4)
    assert parse_descriptor(data).files[0].chunk_size == 4
    exported = export_descriptor(data)
    assert b"chunkSize" not in exported
    assert parse_descriptor(exported).files[0].size == 10


def _bad(data: bytes) -> str:
    with pytest.raises(VcdError) as err:
        parse_descriptor(data)
    assert err.value.status == 400
    return err.value.message


def test_xxe_and_entity_expansion_are_refused() -> None:
    xxe = b'<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><Envelope>&x;</Envelope>'
    assert "forbidden XML construct" in _bad(xxe)
    bomb = b'<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><Envelope>&b;</Envelope>'
    assert "forbidden XML construct" in _bad(bomb)
    dtd = b'<!DOCTYPE Envelope SYSTEM "http://example.invalid/x.dtd"><Envelope/>'
    assert "forbidden XML construct" in _bad(dtd)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"<Envelope", "not well-formed"),
        (b"<html/>", "ovf:Envelope"),
        (make_ovf({"../x": 1}), "plain file name"),
        (make_ovf({"C:x": 1}), "plain file name"),
        (make_ovf({"a": 1}).replace(b'ovf:size="1"', b'ovf:size="big"'), "integer ovf:size"),
        (make_ovf({"a": 1}).replace(b'ovf:size="1"', b'ovf:size="-1"'), "negative"),
        (make_ovf({"a": 1}).replace(b"VirtualSystem", b"Other"), "no VirtualSystem"),
        (
            b"<Envelope xmlns='http://schemas.dmtf.org/ovf/envelope/1'>"
            + b"x" * (17 * 2**20)
            + b"</Envelope>",
            "too large",
        ),
    ],
)
def test_invalid_descriptors(data: bytes, fragment: str) -> None:
    assert fragment in _bad(data)


def test_duplicate_references_refused() -> None:
    data = make_ovf({"a": 1, "b": 2}).replace(b'ovf:href="b"', b'ovf:href="a"')
    assert "same file twice" in _bad(data)
