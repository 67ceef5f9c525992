"""Seed a running vcsim (or any vCenter, carefully) with VMs whose disks hold real content.

- :func:`make_disk_image` writes a raw image of a chosen size (random 1 MiB blocks with a
  chosen fraction of all-zero blocks, holes left sparse) and converts it with ``qemu-img``
  into a streamOptimized VMDK, the format vSphere exports and imports.
- :func:`create_vm` creates a powered-off VM with a paravirtual SCSI controller, one disk per
  requested capacity, and a NIC on "VM Network".
- :func:`upload_datastore_file` PUTs a file to the datastore file URL
  (``/folder/<path>?dcPath=<dc>&dsName=<ds>``) with the session cookie.
- :func:`seed_vm` does all three: a VM whose disk files are the given VMDKs.

Blocking (pyvmomi, http.client): call from threads or from test set-up.
"""

from __future__ import annotations

import http.client
import json
import random
import ssl
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pyVim.connect
import pyVmomi

# pyvmomi's stubs are stricter than its runtime (untyped constructors): treat it as dynamic.
vim: Any = pyVmomi.vim
_connect: Any = pyVim.connect

MIB = 1024 * 1024
STREAM_OPTIMIZED = "streamOptimized"


def connect(host: str, port: int, username: str, password: str) -> Any:
    """An unverified pyvmomi connection: test simulators only. Closes its sockets on failure."""
    stub = _connect.SmartStubAdapter(host=host, port=port, disableSslCertValidation=True)
    si = vim.ServiceInstance("ServiceInstance", stub)
    try:
        si.content.sessionManager.Login(username, password)
    except BaseException:
        stub.DropConnections()
        raise
    return si


def disconnect(si: Any) -> None:
    """Log out and close the pooled connections (pyvmomi's Disconnect leaves them open)."""
    try:
        _connect.Disconnect(si)
    finally:
        si._stub.DropConnections()


def make_disk_image(
    path: Path, size_bytes: int, *, seed: int, zero_fraction: float = 0.5, block: int = MIB
) -> Path:
    """Write a streamOptimized VMDK of virtual size ``size_bytes`` to ``path``.

    Each ``block`` is random (from ``seed``) or, with probability ``zero_fraction``, all
    zeros; the first block is always random so no image is empty.
    """
    if size_bytes <= 0 or size_bytes % 512:
        raise ValueError("size_bytes must be a positive multiple of 512")
    rng = random.Random(seed)
    raw = path.with_name(path.name + ".raw")
    with open(raw, "wb") as f:
        f.truncate(size_bytes)  # sparse: zero blocks stay holes
        for offset in range(0, size_bytes, block):
            n = min(block, size_bytes - offset)
            if offset and rng.random() < zero_fraction:
                continue
            f.seek(offset)
            f.write(rng.randbytes(n))
    try:
        subprocess.run(
            [
                *("qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk"),
                *("-o", f"subformat={STREAM_OPTIMIZED}", str(raw), str(path)),
            ],
            check=True,
        )
    finally:
        raw.unlink(missing_ok=True)
    return path


def virtual_size(vmdk: Path) -> int:
    """The disk's capacity in bytes, as ``qemu-img info`` reports it."""
    out = subprocess.run(
        ["qemu-img", "info", "--output=json", str(vmdk)], check=True, capture_output=True
    ).stdout
    size = json.loads(out)["virtual-size"]
    assert isinstance(size, int)
    return size


def _find_child(folder: Any, name: str) -> Any:
    for child in folder.childEntity:
        if child.name == name:
            return child
    raise LookupError(name)


def create_vm(
    si: Any,
    name: str,
    disk_capacities: Sequence[int],
    *,
    cpus: int = 1,
    memory_mib: int = 64,
    datacenter: str = "DC0",
    datastore: str = "LocalDS_0",
) -> Any:
    """Create a powered-off VM with one thin disk per capacity (bytes)."""
    dc = _find_child(si.content.rootFolder, datacenter)
    host = next(iter(dc.hostFolder.childEntity))
    pool = host.resourcePool
    scsi = vim.vm.device.VirtualDeviceSpec(
        operation="add",
        device=vim.vm.device.ParaVirtualSCSIController(
            key=-100, busNumber=0, sharedBus="noSharing"
        ),
    )
    changes = [scsi]
    for i, capacity in enumerate(disk_capacities):
        backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=f"[{datastore}]", diskMode="persistent", thinProvisioned=True
        )
        disk = vim.vm.device.VirtualDisk(
            key=-200 - i,
            controllerKey=-100,
            unitNumber=i,
            capacityInBytes=capacity,
            capacityInKB=capacity // 1024,
            backing=backing,
        )
        changes.append(
            vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)
        )
    nic = vim.vm.device.VirtualE1000(
        key=-300,
        backing=vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName="VM Network"),
    )
    changes.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=nic))
    spec = vim.vm.ConfigSpec(
        name=name,
        numCPUs=cpus,
        memoryMB=memory_mib,
        guestId="otherGuest64",
        files=vim.vm.FileInfo(vmPathName=f"[{datastore}]"),
        deviceChange=changes,
    )
    task = dc.vmFolder.CreateVM_Task(config=spec, pool=pool)
    _wait(task)
    vm = task.info.result
    assert isinstance(vm, vim.VirtualMachine)
    return vm


def _wait(task: Any) -> None:
    from pyVim.task import WaitForTask

    WaitForTask(task)  # type: ignore[no-untyped-call]


def disk_files(vm: Any) -> list[tuple[str, str]]:
    """(datastore name, path in datastore) of each virtual disk, in device order."""
    out = []
    for dev in vm.config.hardware.device:
        if isinstance(dev, vim.vm.device.VirtualDisk):
            ds_part, _, rel = dev.backing.fileName.partition("] ")
            out.append((ds_part.lstrip("["), rel))
    return out


def upload_datastore_file(
    si: Any,
    host: str,
    port: int,
    datastore: str,
    ds_path: str,
    source: Path,
    *,
    datacenter: str = "DC0",
) -> None:
    """PUT ``source`` to ``[datastore] ds_path`` through the /folder URL (unverified TLS)."""
    query = urlencode({"dcPath": datacenter, "dsName": datastore})
    target = f"/folder/{quote(ds_path)}?{query}"
    cookie = si._stub.cookie  # "vmware_soap_session=...; Path=/; ..."
    conn = http.client.HTTPSConnection(host, port, context=ssl._create_unverified_context())
    try:
        with open(source, "rb") as body:
            conn.request(
                "PUT",
                target,
                body=body,
                headers={
                    "Content-Length": str(source.stat().st_size),
                    "Content-Type": "application/octet-stream",
                    "Cookie": cookie.split(";")[0],
                },
            )
            resp = conn.getresponse()
            resp.read()
        if resp.status not in (200, 201, 204):
            raise RuntimeError(f"PUT {target}: HTTP {resp.status}")
    finally:
        conn.close()


def seed_vm(
    si: Any,
    host: str,
    port: int,
    name: str,
    disks: Sequence[Path],
    *,
    cpus: int = 1,
    memory_mib: int = 64,
    datacenter: str = "DC0",
    datastore: str = "LocalDS_0",
) -> Any:
    """Create VM ``name`` whose disks are the given VMDKs (capacity = their virtual size)."""
    vm = create_vm(
        si,
        name,
        [virtual_size(d) for d in disks],
        cpus=cpus,
        memory_mib=memory_mib,
        datacenter=datacenter,
        datastore=datastore,
    )
    for (ds, rel), src in zip(disk_files(vm), disks, strict=True):
        upload_datastore_file(si, host, port, ds, rel, src, datacenter=datacenter)
    return vm


def power_off(vm: Any) -> None:
    if vm.runtime.powerState != vim.VirtualMachinePowerState.poweredOff:
        _wait(vm.PowerOffVM_Task())
