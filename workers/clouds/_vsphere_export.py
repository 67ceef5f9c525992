"""Export a VM, template or vApp from vSphere as an OVF package (blocking parts in threads).

ExportVm / ExportVApp -> HttpNfcLease; every disk streams into ``dest`` in parallel (as
``<name>.part``, renamed when complete); OvfManager.CreateDescriptor writes the descriptor
from the exported files (deviceId = deviceUrl.key, with the exported sizes); a SHA-256
manifest lists descriptor and disks; the lease completes. On any error or cancellation the
lease is aborted; ``.part`` files stay for a concurrent sender and for the retry, which
appends to them (``_vsphere_nfc.AppendOnlyWriter``).

Resume granularity is one disk: NFC cannot resume inside a disk. Disks that completed in an
earlier attempt are recorded in ``.hcc-export.json`` (name, size, SHA-256, device key) and
are not transferred again when a retried export finds the same device keys; the state file
is removed when the package is complete.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from workers.clouds import _vsphere_nfc as nfc
from workers.clouds._vsphere_session import VSphereSession, fault_text, vim, vmodl, wait_task
from workers.clouds.base import CloudError, CloudNotFound, ExportResult
from workers.ovf.manifest import check_file_name, sha256_file, write_manifest
from workers.ovf.package import PART_SUFFIX

log = structlog.get_logger()
STATE_FILE = ".hcc-export.json"
LEASE_READY_TIMEOUT_S = 300.0
CLONE_FOLDER = "hcc-export-tmp"


@dataclass(frozen=True)
class DeviceFile:
    key: str
    name: str
    url: str
    thumbprint: str | None


def datacenter_of(entity: Any) -> Any:
    obj = entity
    while obj is not None and not isinstance(obj, vim.Datacenter):
        obj = obj.parent
    if obj is None:
        raise CloudNotFound(f"{entity._moId} is not in a datacenter")
    return obj


def _clone_folder(dc: Any) -> Any:
    for child in dc.vmFolder.childEntity:
        if isinstance(child, vim.Folder) and child.name == CLONE_FOLDER:
            return child
    try:
        return dc.vmFolder.CreateFolder(CLONE_FOLDER)
    except vim.fault.DuplicateName:  # another export created it just now
        return _clone_folder(dc)


def clone_for_export(si: Any, vm: Any, default_pool: Callable[[Any], Any]) -> Any:
    """A powered-off full clone of a running VM, with the VM's own name, in a folder of its
    own (so the descriptor carries the original name). The caller destroys it afterwards."""
    dc = datacenter_of(vm)
    folder = _clone_folder(dc)
    name = vm.name
    if si.content.searchIndex.FindChild(folder, name) is not None:
        name = f"{name}-{uuid.uuid4().hex[:8]}"
    pool = vm.resourcePool or default_pool(dc)
    spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=pool), powerOn=False, template=False)
    clone = wait_task(vm.CloneVM_Task(folder=folder, name=name, spec=spec))
    log.info("vsphere.export_clone", vm=vm._moId, clone=clone._moId)
    return clone


def destroy_clone(clone: Any) -> None:
    try:
        if clone.runtime.powerState != vim.VirtualMachinePowerState.poweredOff:
            wait_task(clone.PowerOffVM_Task())
        wait_task(clone.Destroy_Task())
    except vmodl.fault.ManagedObjectNotFound:
        pass


def package_name(entity_name: str) -> str:
    """A file-name-safe stem for ``<stem>.ovf`` / ``<stem>.mf``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", entity_name).strip("._-")[:100]
    return stem or "export"


def wait_lease_ready(lease: Any, timeout_s: float = LEASE_READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        state = lease.state
        if state == vim.HttpNfcLease.State.ready:
            return
        if state == vim.HttpNfcLease.State.error:
            fault = lease.error
            raise CloudError(f"lease failed: {getattr(fault, 'msg', fault)}", code="lease-error")
        if state == vim.HttpNfcLease.State.done:
            raise CloudError("lease is already done", code="lease-error")
        if time.monotonic() > deadline:
            raise CloudError("lease did not become ready in time", code="lease-timeout")
        time.sleep(0.2)  # vCenter has no wait primitive for a lease's state here


def lease_devices(lease: Any) -> list[DeviceFile]:
    out = []
    for du in lease.info.deviceUrl or ():
        if not du.disk and not du.targetId:
            continue
        name = check_file_name(du.targetId or du.url.rsplit("/", 1)[-1])
        out.append(DeviceFile(du.key, name, du.url, du.sslThumbprint or None))
    return out


def load_state(dest: Path, entity: str) -> dict[str, dict[str, Any]]:
    try:
        state = json.loads((dest / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict) or state.get("entity") != entity:
        return {}
    disks = state.get("disks")
    return disks if isinstance(disks, dict) else {}


def save_state(dest: Path, entity: str, disks: dict[str, dict[str, Any]]) -> None:
    tmp = dest / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps({"entity": entity, "disks": disks}))
    tmp.replace(dest / STATE_FILE)


def reusable(dest: Path, dev: DeviceFile, done: dict[str, dict[str, Any]]) -> bool:
    entry = done.get(dev.name)
    path = dest / dev.name
    return (
        entry is not None
        and entry.get("key") == dev.key
        and path.is_file()
        and path.stat().st_size == entry.get("size")
    )


def finished_disks(dest: Path, entity: str, devices: list[DeviceFile]) -> dict[str, dict[str, Any]]:
    """State of the disks an earlier attempt finished and that still match this lease."""
    previous = load_state(dest, entity)
    return {d.name: previous[d.name] for d in devices if reusable(dest, d, previous)}


class Exporter:
    """One export of one entity into ``dest``."""

    def __init__(self, session: VSphereSession, entity: Any, name: str, dest: Path) -> None:
        self.session, self.entity, self.name, self.dest = session, entity, name, dest
        self.moid = str(entity._moId)
        self.lease: Any = None
        self._state_lock = threading.Lock()

    def start_lease(self) -> list[DeviceFile]:
        if isinstance(self.entity, vim.VirtualApp):
            self.lease = self.entity.ExportVApp()
        else:
            self.lease = self.entity.ExportVm()
        wait_lease_ready(self.lease)
        return lease_devices(self.lease)

    def job(self, dev: DeviceFile, done: dict[str, dict[str, Any]]) -> nfc.Job[None]:
        s = self.session
        ep = nfc.endpoint_for(dev.url, s.host, s.port, s.ssl_context, dev.thumbprint)
        cookie = s.cookie

        def run(cancel: threading.Event, on_bytes: Callable[[int], None]) -> None:
            part = self.dest / f"{dev.name}.part"
            size, digest = nfc.download(
                ep, part, cookie=cookie, timeout_s=s.timeout_s, cancel=cancel, on_bytes=on_bytes
            )
            part.replace(self.dest / dev.name)
            with self._state_lock:
                done[dev.name] = {"key": dev.key, "size": size, "sha256": digest}
                save_state(self.dest, self.moid, done)

        return run

    def keepalive(self, percent: int) -> None:
        if self.lease is not None:
            self.lease.HttpNfcLeaseProgress(percent)

    def descriptor(self, devices: list[DeviceFile], done: dict[str, dict[str, Any]]) -> str:
        files = [
            vim.OvfManager.OvfFile(deviceId=d.key, path=d.name, size=done[d.name]["size"])
            for d in devices
        ]
        params = vim.OvfManager.CreateDescriptorParams(ovfFiles=files, name=self.name)
        result = self.session.si().content.ovfManager.CreateDescriptor(obj=self.entity, cdp=params)
        if result.error:
            msgs = "; ".join(fault_text(e) for e in result.error)
            raise CloudError(f"CreateDescriptor failed: {msgs}", code="descriptor-error")
        for w in result.warning or ():
            log.warning("vsphere.descriptor_warning", message=fault_text(w))
        text: str = result.ovfDescriptor
        return text

    def finish(self, devices: list[DeviceFile], done: dict[str, dict[str, Any]]) -> ExportResult:
        stem = package_name(self.name)
        ovf_name, mf_name = f"{stem}.ovf", f"{stem}.mf"
        text = self.descriptor(devices, done)
        tmp = self.dest / f"{ovf_name}{PART_SUFFIX}"  # growing, to a concurrent send
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.dest / ovf_name)
        digests = {ovf_name: sha256_file(self.dest / ovf_name)}
        digests.update({d.name: str(done[d.name]["sha256"]) for d in devices})
        write_manifest(self.dest, mf_name, digests)
        self.lease.HttpNfcLeaseProgress(100)
        self.lease.HttpNfcLeaseComplete()
        self.lease = None
        (self.dest / STATE_FILE).unlink(missing_ok=True)
        files = {n: (self.dest / n).stat().st_size for n in [*digests, mf_name]}
        return ExportResult(package_dir=self.dest, descriptor=ovf_name, files=files)

    def abort(self) -> None:
        """Abort the lease (best effort). Finished disks and ``.part`` files stay: a
        concurrent sender may be streaming them, and a retry only appends to a ``.part``
        (``AppendOnlyWriter``). The artifact's cleanup step removes what is left."""
        lease, self.lease = self.lease, None
        if lease is not None:
            try:
                lease.HttpNfcLeaseAbort()
            except Exception as exc:  # the lease may already be gone
                log.info("vsphere.lease_abort_failed", error=type(exc).__name__)
        (self.dest / (STATE_FILE + ".tmp")).unlink(missing_ok=True)
