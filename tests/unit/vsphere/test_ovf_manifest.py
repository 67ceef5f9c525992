from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.ovf.manifest import (
    ManifestError,
    check_file_name,
    format_manifest,
    parse_manifest,
    sha256_file,
    verify_manifest,
    write_manifest,
)

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,40}", fullmatch=True)
digests = st.binary(min_size=32, max_size=32).map(bytes.hex)


@given(st.dictionaries(names, digests, min_size=1, max_size=8))
def test_format_then_parse_round_trips(entries):
    parsed = parse_manifest(format_manifest(entries))
    assert parsed == {n: ("SHA256", d) for n, d in entries.items()}


def test_format_is_the_ovf_line_format():
    assert format_manifest({"a.ovf": "AB" * 32}) == f"SHA256(a.ovf)= {'ab' * 32}\n"


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", "x\x00y"])
def test_file_names_must_be_plain(name):
    with pytest.raises(ManifestError):
        check_file_name(name)


@pytest.mark.parametrize(
    "text",
    [
        "SHA256(a)= xyz\n",
        "SHA256(a)= " + "ab" * 31 + "\n",
        "MD5(a)= " + "ab" * 16 + "\n",
        "SHA256(../a)= " + "ab" * 32 + "\n",
        "SHA256(a)= " + "ab" * 32 + "\nSHA256(a)= " + "ab" * 32 + "\n",
    ],
)
def test_bad_manifests_are_refused(text):
    with pytest.raises(ManifestError):
        parse_manifest(text)


def test_sha1_and_sha512_lines_are_accepted():
    text = f"SHA1(a)= {'a' * 40}\n\nSHA512(b)= {'b' * 128}\n"
    assert parse_manifest(text) == {"a": ("SHA1", "a" * 40), "b": ("SHA512", "b" * 128)}


def test_verify_detects_a_changed_file_and_a_missing_entry(tmp_path):
    (tmp_path / "x.ovf").write_bytes(b"<Envelope/>")
    (tmp_path / "disk-0.vmdk").write_bytes(b"\0" * 5000 + b"data")
    digests = {n: sha256_file(tmp_path / n) for n in ("x.ovf", "disk-0.vmdk")}
    assert digests["x.ovf"] == hashlib.sha256(b"<Envelope/>").hexdigest()
    write_manifest(tmp_path, "x.mf", digests)
    entries = verify_manifest(tmp_path, "x.mf", required=["x.ovf", "disk-0.vmdk"])
    assert set(entries) == {"x.ovf", "disk-0.vmdk"}
    with pytest.raises(ManifestError, match="does not list"):
        verify_manifest(tmp_path, "x.mf", required=["other.vmdk"])
    (tmp_path / "disk-0.vmdk").write_bytes(b"\0" * 5000 + b"DATA")
    with pytest.raises(ManifestError, match=r"disk-0\.vmdk does not match"):
        verify_manifest(tmp_path, "x.mf")
    (tmp_path / "disk-0.vmdk").unlink()
    with pytest.raises(ManifestError, match="not in the package"):
        verify_manifest(tmp_path, "x.mf")


def test_verify_uses_known_digests(tmp_path):
    (tmp_path / "a").write_bytes(b"a")
    write_manifest(tmp_path, "p.mf", {"a": sha256_file(tmp_path / "a")})
    with pytest.raises(ManifestError):
        verify_manifest(tmp_path, "p.mf", known={"a": "0" * 64})
