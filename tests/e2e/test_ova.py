"""OVA files in real processes (server, nodes, vcsim, the vCD simulator, the ``hcc`` CLI):
``hcc export`` from vcsim, ``hcc import`` into vCD and vSphere, hostile archives refused
before anything is uploaded, and an upload killed mid-way that resumes without re-sending."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.e2e.fleet import Fleet
from tests.e2e.test_copy import add_vcd_cloud, sha256, two_clouds
from tests.e2e.test_fleet import enrolled_node
from tests.fixtures.vcdsim import VcdSimProcess, make_ovf
from tests.waiting import eventually
from workers.ovf.manifest import format_manifest, parse_manifest
from workers.ovf.ova import pack_ova

pytestmark = pytest.mark.slow
MIB = 1024 * 1024


def hcc(fleet: Fleet, *args: str, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the ``hcc`` CLI as an operator would; the result, whatever the exit code. Its
    temporary folders (a killed import leaves its extraction) go to the test's tmp dir."""
    env = {**os.environ, "HCC_SERVER": fleet.server_url, "HCC_TOKEN": fleet.token,
           "COLUMNS": "200", "TMPDIR": str(fleet.root), **(env or {})}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stdout}{result.stderr}"
    return result.stdout


def storage_files(fleet: Fleet, node_id: str) -> list[Path]:
    """Every file in a node's transfer storage (incoming and committed artifacts)."""
    root = fleet.root / node_id / "transfer"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def ova_members(ova: Path) -> dict[str, bytes]:
    with tarfile.open(ova) as tar:
        out = {}
        for info in tar.getmembers():
            assert info.isreg(), info.name
            fh = tar.extractfile(info)
            assert fh is not None
            out[info.name] = fh.read()
        return out


async def listed(fleet: Fleet, cloud: str, name: str) -> set[tuple[str, str]]:
    page = await fleet.api("GET", f"/api/v1/clouds/{cloud}/inventory?name={name}")
    return {(i["kind"], i["name"]) for i in page["items"]}


async def test_export_from_vsphere_then_import_into_vcd_and_vsphere(
    fleet: Fleet, vcsim, vcsim_seeder, vcd_sim: VcdSimProcess, tmp_path: Path
):
    vm = vcsim_seeder.vm("web", [12 * MIB], zero_fraction=0.5)
    await two_clouds(fleet, vcsim, vcd_sim)
    ova = tmp_path / "web.ova"

    # killed in the middle of the download, then run again: the same export task, resumed
    killed = hcc(fleet, "export", "onprem:DC0/vm/web", str(ova),
                 env={"HCC_TRANSFER_CRASH_AT": "export.after-block:3"})  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    task_id = killed.stdout.strip().splitlines()[0]
    assert ova.with_name("web.ova.part").stat().st_size > 0
    again = hcc(fleet, "export", "onprem:DC0/vm/web", str(ova))
    assert ok(again).strip().splitlines()[0] == task_id
    assert f"resuming export task {task_id}" in again.stderr
    # an OVA: descriptor first, then the manifest, which every other member matches
    with tarfile.open(ova) as tar:
        names = tar.getnames()
    assert names[0].endswith(".ovf")
    assert names[1].endswith(".mf")
    members = ova_members(ova)
    digests = parse_manifest(members[names[1]].decode())
    assert set(digests) == set(names) - {names[1]}
    for name, (algo, hexdigest) in digests.items():
        assert hashlib.new(algo.lower(), members[name]).hexdigest() == hexdigest
    vmdks = [n for n in names if n.endswith(".vmdk")]
    assert [hashlib.sha256(members[n]).hexdigest() for n in vmdks] == [sha256(vm.disks[0])]
    assert not ova.with_name("web.ova.part").exists()
    assert not ova.with_name("web.ova.hcc.json").exists()
    # the exported package left the node's storage (a delete-artifact task), nothing else did
    assert storage_files(fleet, "n1") == []
    tasks = (await fleet.api("GET", "/api/v1/tasks?limit=50"))["items"]
    kinds = {t["kind"]: t["state"] for t in tasks}
    assert kinds["export"] == kinds["delete-artifact"] == "succeeded"
    assert any(t["id"] == task_id for t in tasks)

    # into vCD: a catalog template whose disk is the seeded disk, byte for byte, and a vApp
    ok(hcc(fleet, "import", str(ova), "provider:Templates/web-ova", "--deploy", "web-app"))
    stored = {sha256(p) for p in (vcd_sim.data_dir / "templates").rglob("*") if p.is_file()}
    assert sha256(vm.disks[0]) in stored
    names_vcd = await listed(fleet, "provider", "web-ova")
    assert ("vapp_template", "web-ova") in names_vcd or ("catalog_item", "web-ova") in names_vcd
    assert ("vapp", "web-app") in await listed(fleet, "provider", "web-app")
    assert storage_files(fleet, "n2") == []
    # and out of vCD again: the template's disk is still the seeded disk
    page = await fleet.api("GET", "/api/v1/clouds/provider/inventory?kind=vapp_template"
                           "&name=web-ova")  # fmt: skip
    back = tmp_path / "back.ova"
    ok(hcc(fleet, "export", f"provider:{page['items'][0]['path']}", str(back)))
    back_disks = [d for n, d in ova_members(back).items() if n.endswith(".vmdk")]
    assert [hashlib.sha256(d).hexdigest() for d in back_disks] == [sha256(vm.disks[0])]
    assert storage_files(fleet, "n2") == []
    # the name is taken now: refused before a byte moves
    taken = hcc(fleet, "import", str(ova), "provider:Templates/web-ova")
    assert taken.returncode == 1
    assert "already exists" in taken.stderr
    assert storage_files(fleet, "n2") == []

    # back into vSphere as a new VM (the source disk is there already: only the new folder)
    ok(hcc(fleet, "import", str(ova), "onprem:DC0/vm/web-back"))
    assert ("vm", "web-back") in await listed(fleet, "onprem", "web-back")
    copies = [p for p in vcsim.workdir.rglob("*.vmdk") if "web-back" in str(p)]
    assert sha256(vm.disks[0]) in {sha256(p) for p in copies}
    assert storage_files(fleet, "n1") == []

    # hostile archives: refused with a clear error, before anything reaches a node or a task
    before = (await fleet.api("GET", "/api/v1/tasks?limit=1"))["total"]
    for hostile, why in hostile_ovas(tmp_path, members, names):
        result = hcc(fleet, "import", str(hostile), "provider:Templates/evil")
        assert result.returncode == 1, result.stdout + result.stderr
        assert why in result.stderr, result.stderr
    assert (await fleet.api("GET", "/api/v1/tasks?limit=1"))["total"] == before
    assert storage_files(fleet, "n2") == []


def hostile_ovas(tmp: Path, members: dict[str, bytes], names: list[str]) -> list[tuple[Path, str]]:
    """Variants of a good OVA, each with one thing an attacker (or a broken tool) would do."""
    disk = names[2]

    def build(name: str, entries: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
        path = tmp / f"{name}.ova"
        with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
            for info, data in entries:
                if info.isreg():
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                else:
                    tar.addfile(info)
        return path

    def reg(name: str) -> tarfile.TarInfo:
        return tarfile.TarInfo(name)

    def link(name: str, target: str) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        return info

    good = [(reg(n), members[n]) for n in names]
    tampered = bytearray(members[disk])
    tampered[len(tampered) // 2] ^= 0xFF
    return [
        (build("dotdot", [*good, (reg("../../escape.vmdk"), b"x")]), "parent directory"),
        (build("absolute", [*good, (reg("/tmp/evil"), b"x")]), "absolute path"),
        (build("symlink", [*good[:2], (link(disk, "/etc/passwd"), b"")]), "is a link"),
        (build("not-first", [good[2], good[0], good[1]]), "starts with its .ovf"),
        (build("unlisted", [*good, (reg("extra.iso"), b"boot")]), "not in the manifest"),
        (build("tampered", [good[0], good[1], (reg(disk), bytes(tampered))]),
         "does not match its SHA256"),
        (build("no-manifest", [good[0], good[2]]), "0 .mf manifests"),
    ]  # fmt: skip


def random_vmdk(path: Path, size_bytes: int) -> Path:
    """A streamOptimized VMDK of random data (it does not compress: one chunk per MiB)."""
    raw = path.with_suffix(".raw")
    raw.write_bytes(os.urandom(size_bytes))
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o",
                    "subformat=streamOptimized", str(raw), str(path)],
                   check=True, capture_output=True)  # fmt: skip
    raw.unlink()
    return path


def local_ova(tmp: Path, disk: Path) -> Path:
    pkg = tmp / "pkg"
    pkg.mkdir()
    target = pkg / disk.name
    disk.rename(target)
    ovf = make_ovf({target.name: target.stat().st_size}, vm="db")
    (pkg / "db.ovf").write_bytes(ovf)
    (pkg / "db.mf").write_text(format_manifest({"db.ovf": hashlib.sha256(ovf).hexdigest(),
                                                target.name: sha256(target)}))  # fmt: skip
    return pack_ova([pkg / "db.ovf", pkg / "db.mf", target], tmp / "db.ova")


def put_log(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(line.split()[1], int(line.split()[2])) for line in path.read_text().splitlines()]


async def test_an_upload_killed_midway_resumes_without_resending(
    fleet: Fleet, vcd_sim: VcdSimProcess, tmp_path: Path
):
    disk = random_vmdk(tmp_path / "db-disk1.vmdk", 6 * MIB)
    disk_sha = sha256(disk)
    ova = local_ova(tmp_path, disk)
    fleet.start_server()
    await fleet.wait_ready()
    await enrolled_node(fleet, "n2")
    add_vcd_cloud(fleet, vcd_sim, "provider", "n2")
    args = ("import", str(ova), "provider:Templates/db", "--streams", "1", "--chunk-mib", "1")

    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    killed = hcc(fleet, *args, env={"HCC_TRANSFER_CRASH_AT": "sender.after-chunk:3",
                                    "HCC_TRANSFER_PUT_LOG": str(first_log)})  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    sent_before = put_log(first_log)
    assert len(sent_before) == 3
    tasks = (await fleet.api("GET", "/api/v1/tasks"))["items"]
    assert [t for t in tasks if t["kind"] == "import"] == []  # no import started

    resumed = hcc(fleet, *args, env={"HCC_TRANSFER_PUT_LOG": str(second_log)})
    ok(resumed)
    sent_after = put_log(second_log)
    assert sent_after, "the second run sent the rest"
    assert not set(sent_before) & set(sent_after), "a chunk the node held was sent again"
    assert "3 already on the node" in resumed.stderr
    # the whole disk arrived (1 MiB chunks of random data: none is a zero chunk)
    assert len(sent_before) + len(sent_after) == sum(1 for _ in chunks_of(ova, 1 * MIB))
    stored = {sha256(p) for p in (vcd_sim.data_dir / "templates").rglob("*") if p.is_file()}
    assert disk_sha in stored

    async def clean() -> bool:
        return storage_files(fleet, "n2") == []

    await eventually(clean, timeout_s=30, what="n2's storage emptied by the import's cleanup")


def chunks_of(ova: Path, chunk: int) -> list[tuple[str, int]]:
    """(member, chunk index) of every chunk of every member of ``ova``."""
    out: list[tuple[str, int]] = []
    for name, data in ova_members(ova).items():
        out += [(name, i) for i in range(max(1, -(-len(data) // chunk)))]
    return out
