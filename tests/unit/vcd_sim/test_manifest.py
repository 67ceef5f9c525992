"""OVF manifest parsing and digest checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sim.vcd.errors import VcdError
from sim.vcd.manifest import mismatches, parse_manifest


def test_parse_algorithms_and_names() -> None:
    text = b"SHA1(a.ovf)= ABCDEF\n\nSHA256(disk 1.vmdk)=0123\r\nSHA512(x)= ff\n"
    assert parse_manifest(text) == {
        "a.ovf": ("sha1", "abcdef"),
        "disk 1.vmdk": ("sha256", "0123"),
        "x": ("sha512", "ff"),
    }


@pytest.mark.parametrize("data", [b"MD5(a)= 00", b"SHA256 a = 00", b"\xff\xfe"])
def test_malformed_is_400(data: bytes) -> None:
    with pytest.raises(VcdError) as err:
        parse_manifest(data)
    assert err.value.status == 400


def test_mismatches_checks_only_known_files(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_bytes(b"hello")
    bad.write_bytes(b"tampered")
    entries = {
        "good": ("sha256", hashlib.sha256(b"hello").hexdigest()),
        "bad": ("sha1", hashlib.sha1(b"original").hexdigest()),
        "client.ovf": ("sha256", "00"),
    }
    assert mismatches(entries, {"good": good, "bad": bad}) == ["bad"]
