"""Import an OVF package into vSphere (blocking parts; the adapter runs them in threads).

Checks first, before anything is created: the descriptor parses safely (defusedxml), every
referenced file is present with its declared size, the manifest (if any) verifies, the
target folder, pool, datastore and networks exist, the name is free (or a suffix is chosen),
and the datastore has room. Then CreateImportSpec (errors refuse the import, warnings are
logged), ImportVApp, one upload per file item (disks POSTed as streamVmdk, other files PUT
with ``Overwrite: t``), complete. On failure the lease is aborted and the half-created VM is
destroyed (vCenter does that itself on abort; vcsim does not).

A VirtualSystemCollection becomes a vApp (CreateImportSpec answers a VirtualAppImportSpec).

Resume granularity: an import cannot resume (a new lease creates a new VM), so a retried
import uploads every disk again after removing the previous attempt's VM. A failure the
process lives through destroys that VM at once; for one it does not (a SIGKILL, a power
cut), the VM's id is written to ``.hcc-import.json`` in the package as soon as ImportVApp
has made it, and the next attempt destroys it first, so its name is free again and no
half-imported VM is left behind.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from protocol.messages import Target
from workers.clouds._vsphere_export import datacenter_of
from workers.clouds._vsphere_inventory import retrieve
from workers.clouds._vsphere_session import fault_text, vim, vmodl, wait_task
from workers.clouds.base import (
    CloudConflict,
    CloudError,
    CloudNotFound,
    CloudQuotaExceeded,
    ImportPackage,
    InvalidPackage,
    invalid_package,
    open_local_package,
)
from workers.ovf import package as ovf_package
from workers.ovf.descriptor import Descriptor

log = structlog.get_logger()
SPACE_MARGIN_BYTES = 64 * 1024 * 1024
MADE_FILE = ".hcc-import.json"
"""In the package: what an unfinished import attempt created (kind, moref id, name)."""


@dataclass(frozen=True)
class Package(ImportPackage):
    cloud = "vsphere"
    descriptor_text: str

    def wait_file(self, name: str, cancel: threading.Event) -> Path | None:
        """The complete file ``name`` once it is there (blocking); None if cancelled."""
        with invalid_package():
            return ovf_package.wait_file_blocking(self.local, name, cancel)


async def open_package(package_dir: Path, *, streaming: bool = False) -> Package:
    """Find, parse and check the descriptor; with ``streaming``, as soon as the descriptor
    is there, the files following (each upload waits for its file)."""
    pkg = await open_local_package(package_dir, streaming=streaming)
    try:
        text = pkg.descriptor.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPackage("descriptor is not UTF-8") from exc
    return Package(pkg, text)


def required_bytes(pkg: Package, provisioning: str) -> int:
    """Thin: the files' sizes; thick: the disks' capacities (the larger of the two)."""
    files = sum(pkg.sizes[f.href] for f in pkg.desc.files)
    if provisioning == "thin":
        return files
    return max(files, sum(d.capacity_bytes for d in pkg.desc.disks))


@dataclass
class Placement:
    datacenter: Any
    folder: Any
    pool: Any
    datastore: Any
    networks: dict[str, Any]
    name: str
    datastore_name: str = ""
    warnings: list[str] = field(default_factory=list)


def _find(si: Any, path: str, kind: Any, what: str) -> Any:
    obj = si.content.searchIndex.FindByInventoryPath(path)
    if obj is None or not isinstance(obj, kind):
        raise CloudNotFound(f"{what} {path!r} not found")
    return obj


def _first(folder: Any, kinds: tuple[Any, ...]) -> Any:
    """The first entity of one of ``kinds`` (in that order of preference) under ``folder``,
    looking into sub-folders breadth first: vCenters nest datacenters and clusters in them."""
    found: list[Any] = []
    level = [folder]
    while level and not found:
        nxt = []
        for f in level:
            for child in f.childEntity:
                if isinstance(child, kinds):
                    found.append(child)
                elif isinstance(child, vim.Folder):
                    nxt.append(child)
        level = nxt
    found.sort(key=lambda c: next(i for i, k in enumerate(kinds) if isinstance(c, k)))
    return found[0] if found else None


def _datacenter(si: Any) -> Any:
    dc = _first(si.content.rootFolder, (vim.Datacenter,))
    if dc is None:
        raise CloudNotFound("no datacenter in this vCenter")
    return dc


def default_pool(dc: Any) -> Any:
    """The root pool of the datacenter's first cluster, else of a standalone host."""
    compute = _first(dc.hostFolder, (vim.ClusterComputeResource, vim.ComputeResource))
    if compute is None:
        raise CloudNotFound(f"no cluster or host in datacenter {dc.name}")
    return compute.resourcePool


def _datastore(si: Any, dc: Any, name: str | None) -> tuple[Any, str, int]:
    """(datastore, its name, its free bytes): the named one, or the one with most room."""
    stores = list(dc.datastore)
    props = retrieve(si, stores, vim.Datastore, ["name", "summary.freeSpace"])
    found = [
        (d, str(p.get("name")), int(p.get("summary.freeSpace") or 0))
        for d, p in zip(stores, props, strict=True)
    ]
    if name:
        found = [f for f in found if f[1] == name]
        if not found:
            raise CloudNotFound(f"datastore {name!r} not found in {dc.name}")
    if not found:
        raise CloudNotFound(f"no datastore in {dc.name}")
    return max(found, key=lambda f: f[2])


def _networks(
    si: Any, dc: Any, desc: Descriptor, wanted: str | None, warnings: list[str]
) -> dict[str, Any]:
    nets = list(dc.network)
    names = retrieve(si, nets, vim.Network, ["name"])
    by_name = {str(p.get("name")): n for n, p in zip(nets, names, strict=True)}
    if wanted is not None and wanted not in by_name:
        raise CloudNotFound(f"network {wanted!r} not found in {dc.name}")
    mapping = {}
    for net in desc.networks:
        chosen = wanted or (net if net in by_name else None)
        if chosen is None and by_name:
            chosen = sorted(by_name)[0]
            log.warning("vsphere.network_defaulted", ovf_network=net, network=chosen)
            warnings.append(f"network {net!r} not found; connected to {chosen!r}")
        if chosen is not None:
            mapping[net] = by_name[chosen]
    return mapping


def _free_name(si: Any, folder: Any, target: Target) -> str:
    index = si.content.searchIndex
    if index.FindChild(folder, target.name) is None:
        return target.name
    if target.on_conflict == "fail":
        raise CloudConflict(f"{target.name!r} already exists in {folder.name}")
    for n in range(2, 1000):
        name = f"{target.name}-{n}"
        if index.FindChild(folder, name) is None:
            return name
    raise CloudConflict(f"no free name for {target.name!r}")


def place(si: Any, pkg: Package, target: Target, provisioning: str) -> Placement:
    if target.folder:
        folder = _find(si, target.folder, vim.Folder, "folder")
        dc = datacenter_of(folder)
    else:
        dc = _datacenter(si)
        folder = dc.vmFolder
    if target.resource_pool:
        pool = _find(si, target.resource_pool, vim.ResourcePool, "resource pool")
    else:
        pool = default_pool(dc)
    ds, ds_name, free = _datastore(si, dc, target.datastore)
    need = required_bytes(pkg, provisioning)
    if need + SPACE_MARGIN_BYTES > free:
        raise CloudQuotaExceeded(
            f"datastore {ds_name} has {free} bytes free; the package needs {need} ({provisioning})"
        )
    warnings: list[str] = []
    networks = _networks(si, dc, pkg.desc, target.network, warnings)
    name = _free_name(si, folder, target)
    return Placement(dc, folder, pool, ds, networks, name, ds_name, warnings)


def import_spec(si: Any, pkg: Package, where: Placement, provisioning: str) -> Any:
    params = vim.OvfManager.CreateImportSpecParams(
        entityName=where.name,
        diskProvisioning=provisioning,
        networkMapping=[
            vim.OvfManager.NetworkMapping(name=k, network=v) for k, v in where.networks.items()
        ],
    )
    result = si.content.ovfManager.CreateImportSpec(
        ovfDescriptor=pkg.descriptor_text,
        resourcePool=where.pool,
        datastore=where.datastore,
        cisp=params,
    )
    if result.error:
        msgs = "; ".join(fault_text(e) for e in result.error)
        raise InvalidPackage(f"vCenter refused the descriptor: {msgs}")
    for w in result.warning or ():
        log.warning("vsphere.import_warning", message=fault_text(w))
        where.warnings.append(fault_text(w))
    return result


@dataclass(frozen=True)
class Upload:
    name: str
    url: str
    thumbprint: str | None
    disk: bool


def uploads(pkg: Package, spec_result: Any, lease: Any) -> list[Upload]:
    by_key = {du.importKey: du for du in lease.info.deviceUrl or ()}
    out = []
    for item in spec_result.fileItem or ():
        du = by_key.get(item.deviceId)
        if du is None:
            raise CloudError(f"lease has no device for {item.deviceId}", code="lease-error")
        href = item.path
        if href not in pkg.sizes:
            raise InvalidPackage(f"vCenter asks for {href!r}, which is not in the package")
        disk = bool(du.disk) if du.disk is not None else href.endswith(".vmdk")
        out.append(Upload(href, du.url, du.sslThumbprint or None, disk))
    return out


def discard(lease: Any, entity: Any) -> bool:
    """Abort the lease and destroy what it created (best effort, blocking). False when the
    entity may still be there (the next attempt then tries again)."""
    try:
        lease.HttpNfcLeaseAbort()
    except Exception as exc:
        log.info("vsphere.lease_abort_failed", error=type(exc).__name__)
    if entity is None:
        return True
    try:
        wait_task(entity.Destroy_Task())
    except vmodl.fault.ManagedObjectNotFound:
        pass  # vCenter removed it on abort
    except Exception as exc:
        log.warning("vsphere.import_cleanup_failed", error=type(exc).__name__)
        return False
    return True


def remember_made(package_dir: Path, entity: Any, name: str) -> None:
    """Record, durably, the VM or vApp this attempt created, before any byte is uploaded."""
    made = {"kind": "vapp" if isinstance(entity, vim.VirtualApp) else "vm",
            "id": str(entity._moId), "name": name}  # fmt: skip
    tmp = package_dir / (MADE_FILE + ".tmp")
    with tmp.open("w") as f:
        json.dump(made, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(package_dir / MADE_FILE)


def forget_made(package_dir: Path) -> None:
    (package_dir / MADE_FILE).unlink(missing_ok=True)


def destroy_leftover(si: Any, package_dir: Path) -> None:
    """Destroy what an earlier attempt created and never finished (its process died before
    it could clean up); the moref's name must still be the one recorded."""
    try:
        made = json.loads((package_dir / MADE_FILE).read_text())
        kind, moid, name = made["kind"], made["id"], made["name"]
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("vsphere.import_marker_unreadable", error=repr(exc))
        forget_made(package_dir)
        return
    cls = vim.VirtualApp if kind == "vapp" else vim.VirtualMachine
    entity = cls(moid, si._stub)
    try:
        if entity.name != name:  # not ours any more: leave it alone
            log.warning("vsphere.import_leftover_renamed", id=moid, name=name)
            forget_made(package_dir)
            return
        if kind == "vm" and entity.runtime.powerState != vim.VirtualMachinePowerState.poweredOff:
            wait_task(entity.PowerOffVM_Task())
        wait_task(entity.Destroy_Task())
    except vmodl.fault.ManagedObjectNotFound:
        pass  # gone already (vCenter removes an aborted import's VM itself)
    log.info("vsphere.import_leftover_destroyed", id=moid, name=name)
    forget_made(package_dir)
