"""OVA files (workers/ovf/ova.py): the layout, the writer, and every hostile archive refused."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.vcdsim import make_ovf
from workers.ovf.manifest import format_manifest
from workers.ovf.ova import (
    OvaError,
    OvaLayout,
    check_member_name,
    check_members,
    extract_ova,
    ova_order,
    pack_ova,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def package(tmp: Path, disk: bytes = b"disk-bytes" * 1000) -> list[Path]:
    """vm.ovf, vm.mf, disk1.vmdk in ``tmp`` (archive order)."""
    tmp.mkdir(parents=True, exist_ok=True)
    ovf = make_ovf({"disk1.vmdk": len(disk)})
    (tmp / "vm.ovf").write_bytes(ovf)
    (tmp / "disk1.vmdk").write_bytes(disk)
    (tmp / "vm.mf").write_text(format_manifest({"vm.ovf": sha(ovf), "disk1.vmdk": sha(disk)}))
    return [tmp / "vm.ovf", tmp / "vm.mf", tmp / "disk1.vmdk"]


def raw_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, **kw: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for k, v in kw.items():
        setattr(info, k, v)
    return info


# --------------------------------------------------------------------------- writing


def test_pack_puts_the_descriptor_first_and_tarfile_reads_it_back(tmp_path: Path):
    files = package(tmp_path / "pkg")
    ova = pack_ova(files, tmp_path / "vm.ova", mtime=1_700_000_000)
    with tarfile.open(ova) as tar:
        infos = tar.getmembers()
        assert [m.name for m in infos] == ["vm.ovf", "vm.mf", "disk1.vmdk"]
        assert all(m.isreg() and m.mode == 0o644 and m.uid == 0 for m in infos)
        for f in files:
            fh = tar.extractfile(f.name)
            assert fh is not None
            assert fh.read() == f.read_bytes()
    assert ova.stat().st_size % 10240 == 0


def test_layout_matches_what_tarfile_writes(tmp_path: Path):
    files = package(tmp_path / "pkg")
    mtime = 1_700_000_000
    with tarfile.open(tmp_path / "ref.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        for f in files:
            info = tar.gettarinfo(str(f), arcname=f.name)
            info.mtime, info.mode, info.uid, info.gid = mtime, 0o644, 0, 0
            info.uname = info.gname = "root"
            with f.open("rb") as fh:
                tar.addfile(info, fh)
    ours = pack_ova(files, tmp_path / "ours.ova", mtime=mtime)
    assert ours.read_bytes() == (tmp_path / "ref.tar").read_bytes()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=6))
def test_layout_offsets_are_where_the_data_is(sizes: list[int]):
    names = [f"f{i}.bin" for i in range(len(sizes))]
    layout = OvaLayout.plan(list(zip(names, sizes, strict=True)), 0)
    buf = io.BytesIO()
    for slot in layout.slots:
        assert buf.tell() == slot.header_offset
        buf.write(layout.header(slot))
        buf.write(bytes([len(slot.name)]) * slot.size + bytes(-slot.size % 512))
    buf.write(layout.trailer())
    assert buf.tell() == layout.total_bytes
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        for slot, info in zip(layout.slots, tar.getmembers(), strict=True):
            assert (info.name, info.size, info.offset_data) == (slot.name, slot.size,
                                                               slot.data_offset)  # fmt: skip


def test_order_puts_descriptor_then_manifest_first():
    assert ova_order(["a.vmdk", "x.mf", "x.ovf", "b.iso"]) == ["x.ovf", "x.mf", "a.vmdk", "b.iso"]
    with pytest.raises(OvaError, match="exactly one"):
        ova_order(["a.ovf", "b.ovf"])


# --------------------------------------------------------------------------- reading


def test_extract_verifies_and_returns_digests(tmp_path: Path):
    files = package(tmp_path / "pkg")
    ova = pack_ova(files, tmp_path / "vm.ova")
    seen: list[int] = []
    got = extract_ova(ova, tmp_path / "out", seen.append)
    assert (got.descriptor, got.manifest) == ("vm.ovf", "vm.mf")
    for f in files:
        assert (tmp_path / "out" / f.name).read_bytes() == f.read_bytes()
        assert got.sha256[f.name] == sha(f.read_bytes())
    assert sum(seen) == sum(f.stat().st_size for f in files)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../evil.vmdk", "parent directory"),
        ("a/../../evil", "parent directory"),
        ("/etc/passwd", "absolute path"),
        ("C:evil", "absolute path"),
        ("sub/disk.vmdk", "not a plain file name"),
        (".hidden", "not a plain file name"),
        ("", "not a plain file name"),
    ],
)
def test_member_names_that_could_escape_are_refused(name: str, why: str):
    with pytest.raises(OvaError, match=why):
        check_member_name(name)


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        (tarfile.SYMTYPE, "a link"),
        (tarfile.LNKTYPE, "a link"),
        (tarfile.CHRTYPE, "device"),
        (tarfile.BLKTYPE, "device"),
        (tarfile.FIFOTYPE, "fifo"),
        (tarfile.DIRTYPE, "a directory"),
    ],
)
def test_links_devices_and_directories_are_refused(kind: bytes, why: str):
    evil = member("disk1.vmdk", kind, linkname="/etc/shadow")
    with pytest.raises(OvaError, match=why):
        check_members([member("vm.ovf"), member("vm.mf"), evil])


def test_descriptor_must_come_first_and_be_alone():
    with pytest.raises(OvaError, match=r"starts with its \.ovf"):
        check_members([member("vm.mf"), member("vm.ovf")])
    with pytest.raises(OvaError, match=r"2 \.ovf"):
        check_members([member("vm.ovf"), member("b.ovf"), member("vm.mf")])
    with pytest.raises(OvaError, match=r"0 \.mf"):
        check_members([member("vm.ovf"), member("disk.vmdk")])
    with pytest.raises(OvaError, match="twice"):
        check_members([member("vm.ovf"), member("vm.mf"), member("vm.mf")])
    with pytest.raises(OvaError, match="empty"):
        check_members([])


def test_a_cert_is_skipped_not_extracted():
    got = check_members([member("vm.ovf"), member("vm.mf"), member("vm.cert")])
    assert got.skipped == ("vm.cert",)
    assert [n for n, _ in got.files] == ["vm.ovf", "vm.mf"]


def _hostile(tmp_path: Path, tweak: str) -> Path:
    disk = b"x" * 3000
    ovf = make_ovf({"disk1.vmdk": len(disk)})
    digests = {"vm.ovf": sha(ovf), "disk1.vmdk": sha(disk)}
    extra: list[tuple[tarfile.TarInfo, bytes]] = []
    if tweak == "unlisted":
        extra = [(member("notes.txt"), b"hello")]
    elif tweak == "missing":
        digests["other.vmdk"] = sha(b"")
    elif tweak == "wrong-digest":
        digests["disk1.vmdk"] = sha(b"something else")
    elif tweak == "bad-manifest":
        pass
    mf = format_manifest(digests).encode()
    if tweak == "bad-manifest":
        mf = b"MD5(disk1.vmdk)= 00\n"
    members = [(member("vm.ovf"), ovf), (member("vm.mf"), mf), (member("disk1.vmdk"), disk)]
    if tweak == "descriptor-size":
        members[0] = (member("vm.ovf"), make_ovf({"disk1.vmdk": 1}))
        digests["vm.ovf"] = sha(members[0][1])
        members[1] = (member("vm.mf"), format_manifest(digests).encode())
    return raw_tar(tmp_path / f"{tweak}.ova", members + extra)


@pytest.mark.parametrize(
    ("tweak", "why"),
    [
        ("unlisted", "not in the manifest: notes.txt"),
        ("missing", "does not hold: other.vmdk"),
        ("wrong-digest", "disk1.vmdk does not match its SHA256"),
        ("bad-manifest", "manifest is not valid"),
        ("descriptor-size", "descriptor is not valid"),
    ],
)
def test_files_not_in_the_manifest_or_failing_it_are_refused(tmp_path: Path, tweak: str,
                                                             why: str):  # fmt: skip
    with pytest.raises(OvaError, match=why):
        extract_ova(_hostile(tmp_path, tweak), tmp_path / "out")


def test_hostile_names_are_refused_before_anything_is_written(tmp_path: Path):
    ova = raw_tar(tmp_path / "evil.ova", [(member("vm.ovf"), b"<x/>"), (member("vm.mf"), b""),
                                          (member("../../escape"), b"boom")])  # fmt: skip
    with pytest.raises(OvaError, match="parent directory"):
        extract_ova(ova, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path.parent / "escape").exists()


def test_not_a_tar_is_refused(tmp_path: Path):
    junk = tmp_path / "junk.ova"
    junk.write_bytes(b"\x1f\x8b" + bytes(2000))
    with pytest.raises(OvaError, match="not a readable tar"):
        extract_ova(junk, tmp_path / "out")


# --------------------------------------------------------------------------- read tokens


def test_push_tokens_are_unchanged_and_read_tokens_say_so():
    import base64
    import json

    from protocol.tokens import generate_private_key, issue_token, verify_token

    key = generate_private_key()
    push = issue_token(key, artifact_id="a1", source_node="n1", destination_node="n2", now=10,
                       ttl_s=5)  # fmt: skip
    claims = json.loads(base64.urlsafe_b64decode(push.split(".")[0] + "=="))
    assert "access" not in claims  # byte for byte what nodes before the field accept
    assert verify_token(key.public_key(), push, now=11).access is None
    read = issue_token(key, artifact_id="a1", source_node="n1", destination_node="operator",
                       now=10, ttl_s=5, access="read")  # fmt: skip
    assert verify_token(key.public_key(), read, now=11).access == "read"


# --------------------------------------------------------------------------- server plans


def test_upload_artifact_ids_are_stable_and_never_a_copy_artifact():
    from appliance.api.copying import artifact_name
    from appliance.tasks.offline import UPLOAD_ARTIFACT, upload_artifact_id

    a = upload_artifact_id("provider", "web", "ab" * 32)
    assert a == upload_artifact_id("provider", "web", "ab" * 32)  # a rerun resumes
    assert a != upload_artifact_id("provider", "web2", "ab" * 32)
    assert a != upload_artifact_id("onprem", "web", "ab" * 32)
    assert UPLOAD_ARTIFACT.match(a)
    assert not UPLOAD_ARTIFACT.match(artifact_name("ova"))


def test_import_plan_is_the_tail_of_a_copy():
    from appliance.tasks.copy import Side
    from appliance.tasks.offline import plan_delete_artifact, plan_export, plan_import
    from protocol.messages import DeploySpec, Target

    plans = plan_import(artifact_id="ova-" + "0" * 24, destination=Side("provider", "n2"),
                        target=Target(catalog="Templates", name="web"),
                        deploy=DeploySpec(name="web-app"))  # fmt: skip
    assert [(p.name, p.node_id, dict(p.needs)) for p in plans] == [
        ("import", "n2", {}),
        ("deploy", "n2", {"import": "succeeded"}),
        ("refresh", "n2", {"deploy": "succeeded"}),
        ("cleanup", "n2", {"deploy": "succeeded"}),
    ]
    assert plans[0].command["body"]["artifact_id"] == "ova-" + "0" * 24
    kept = plan_import(artifact_id="ova-" + "0" * 24, destination=Side("c", "n1"),
                       target=Target(folder="DC0/vm", name="web"), deploy=None,
                       keep_artifacts=True)  # fmt: skip
    assert [p.name for p in kept] == ["import", "refresh"]
    export = plan_export(artifact_id="x-1", source=Side("onprem", "n1"), ref="DC0/vm/web")
    assert [(p.name, p.command["type"], p.needs) for p in export] == [("export", "export", {})]
    cleanup = plan_delete_artifact(artifact_id="x-1", node_id="n1")
    assert cleanup[0].command == {"type": "cleanup", "body": {"artifact_id": "x-1"}}
