"""Pack an appliance OVA (build time): disk images → streamOptimized VMDKs, the descriptor of
:mod:`firstboot.descriptor`, a SHA-256 manifest, and a USTAR archive with the descriptor
first (what vSphere, vCD and ovftool expect).

``python -m firstboot.ova --kind node --version 0.1.0 --out build/appliance system.qcow2
transfer.qcow2`` is what packer's post-processor runs. Needs ``qemu-img``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from firstboot.descriptor import ApplianceSpec, DiskFile, build_descriptor
from firstboot.properties import Kind
from workers.ovf.manifest import format_manifest, sha256_file
from workers.ovf.ova import pack_ova  # the one OVA writer (also `hcc export`)

DISK_LABELS = ("System disk", "Transfer storage")


def virtual_size(image: Path) -> int:
    out = subprocess.run(
        ["qemu-img", "info", "--output=json", str(image)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(json.loads(out)["virtual-size"])


def to_stream_vmdk(image: Path, dest: Path) -> Path:
    subprocess.run(
        [
            "qemu-img",
            "convert",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            *(str(image), str(dest)),
        ],
        check=True,
        capture_output=True,
    )
    return dest


def write_package(spec: ApplianceSpec, images: list[Path], work: Path) -> list[Path]:
    """The package's files in ``work`` (descriptor, manifest, disks), in archive order."""
    work.mkdir(parents=True, exist_ok=True)
    disks: list[DiskFile] = []
    vmdks: list[Path] = []
    for i, image in enumerate(images, start=1):
        vmdk = to_stream_vmdk(image, work / f"{spec.name}-disk{i}.vmdk")
        label = DISK_LABELS[min(i - 1, len(DISK_LABELS) - 1)]
        disks.append(DiskFile(vmdk.name, vmdk.stat().st_size, virtual_size(image), label))
        vmdks.append(vmdk)
    ovf = work / f"{spec.name}.ovf"
    ovf.write_bytes(build_descriptor(spec, disks))
    mf = work / f"{spec.name}.mf"
    mf.write_text(format_manifest({p.name: sha256_file(p) for p in [ovf, *vmdks]}))
    return [ovf, mf, *vmdks]


def build_ova(spec: ApplianceSpec, images: list[Path], out_dir: Path) -> Path:
    files = write_package(spec, images, out_dir / f"{spec.name}-{spec.version}")
    return pack_ova(files, out_dir / f"{spec.name}-{spec.version}.ova")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m firstboot.ova", description=__doc__)
    p.add_argument("--kind", type=Kind, choices=list(Kind), required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--memory-mib", type=int, default=4096)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("images", type=Path, nargs="+", help="system disk, then (node) transfer disk")
    a = p.parse_args(argv)
    expected = 2 if a.kind is Kind.NODE else 1
    if len(a.images) != expected:
        p.error(f"hcc-{a.kind.value} has {expected} disk(s), got {len(a.images)}")
    spec = ApplianceSpec(a.kind, a.version, cpus=a.cpus, memory_mib=a.memory_mib)
    print(build_ova(spec, a.images, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
