"""The vSphere cloud adapter (pyvmomi), implementing :class:`workers.clouds.base.CloudAdapter`.

Every pyvmomi call is blocking and runs in a worker thread (``asyncio.to_thread``); disk
bytes move in threads too (see _vsphere_nfc), so the event loop never waits on vCenter.

Options (``CloudConfig.options``, all strings):

- ``timeout_s`` (30): connect/read timeout for SOAP and NFC sockets;
- ``ca_file``: a CA bundle instead of the system store;
- ``parallel_disks`` (4): NFC streams at once during export and import;
- ``lease_update_s`` (30): HttpNfcLeaseProgress period (vCenter aborts an idle lease after
  about 5 minutes);
- ``keepalive_s`` (600): session keep-alive period (vCenter's idle timeout is 30 minutes);
- ``disk_provisioning`` (thin): thin, thick, eagerZeroedThick... for imports;
- ``export_powered_on`` (fail): ``clone`` exports a running VM through a temporary clone.

``ref`` for export and deploy: a moref value (``vm-42``, ``resgroup-v7``) or an inventory path
(``DC0/vm/web-01``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import structlog

from protocol.messages import CloudKind, DeploySpec, InventoryItem, Target
from workers.clouds import _vsphere_deploy as deploy_
from workers.clouds import _vsphere_export as export_
from workers.clouds import _vsphere_import as import_
from workers.clouds import _vsphere_nfc as nfc
from workers.clouds._vsphere_inventory import collect, to_items, vapp_in
from workers.clouds._vsphere_session import VSphereSession, map_error, vim, vmodl
from workers.clouds.base import (
    CloudConfig,
    CloudError,
    CloudNotFound,
    DeployResult,
    ExportResult,
    ImportResult,
    Progress,
    ProgressFn,
)

log = structlog.get_logger()
T = TypeVar("T")
EXPORTING_MARKER = ".hcc-exporting"
"""Exists in ``dest`` while an export writes it (the transfer engine's convention,
docs/transfer.md): files appear as ``<name>.part`` and are renamed when complete. A failed
export leaves the marker (the package is incomplete)."""


def _vapp_at(si: Any, ref: str) -> Any:
    """The vApp the inventory lists at ``ref`` (``DC/vm/<folders>/<vApp>``, its parentFolder
    and name), for a FindByInventoryPath that does not look at vApps in VM folders (vcsim)."""
    folder_path, _, name = ref.rpartition("/")
    folder = si.content.searchIndex.FindByInventoryPath(folder_path)
    if not isinstance(folder, vim.Folder):
        return None
    return vapp_in(si, folder, name.replace("%2f", "/"))


def resolve(si: Any, ref: str) -> Any:
    """A VirtualMachine or VirtualApp by moref value or inventory path (blocking)."""
    if "/" in ref:
        obj = si.content.searchIndex.FindByInventoryPath(ref) or _vapp_at(si, ref)
        if isinstance(obj, vim.VirtualMachine | vim.VirtualApp):
            return obj
        raise CloudNotFound(f"no VM, template or vApp at {ref!r}")
    for kind in (vim.VirtualMachine, vim.VirtualApp):
        obj = kind(ref, si._stub)
        try:
            obj.name  # noqa: B018 - one property read proves that the object exists
        except (vmodl.fault.ManagedObjectNotFound, vmodl.fault.InvalidType):
            continue
        return obj
    raise CloudNotFound(f"no VM, template or vApp with id {ref!r}")


def _export_target(si: Any, ref: str, powered_on: str) -> tuple[Any, str, Any]:
    """(entity to export, package name, temporary clone to destroy afterwards or None)."""
    entity = resolve(si, ref)
    vms = [entity] if isinstance(entity, vim.VirtualMachine) else list(entity.vm)
    for vm in vms:
        state = vm.runtime.powerState
        if state == vim.VirtualMachinePowerState.poweredOff:
            continue
        if powered_on == "clone" and vm is entity:
            clone = export_.clone_for_export(si, vm, import_.default_pool)
            return clone, str(vm.name), clone
        raise CloudError(
            f"{vm.name} is {state}: vSphere exports only powered-off VMs; power it off, "
            'or set the cloud option export_powered_on="clone" (VMs only)',
            code="invalid-power-state",
        )
    return entity, str(entity.name), None


class VSphereAdapter:
    """One vCenter (or ESXi host) as seen by a node."""

    def __init__(self, config: CloudConfig) -> None:
        if config.kind != CloudKind.VSPHERE:
            raise CloudError(f"not a vSphere cloud: {config.kind}", code="bad-config")
        opts = config.options
        self._config = config
        self._session = VSphereSession(config)
        self._keepalive: asyncio.Task[None] | None = None
        self._parallel, self._lease_update_s, self._keepalive_s = 4, 30.0, 600.0
        self._provisioning = opts.get("disk_provisioning", "thin")
        self._powered_on = opts.get("export_powered_on", "fail")
        try:  # bad options surface at the first call (VSphereSession.config_error)
            self._parallel = int(opts.get("parallel_disks", "4"))
            self._lease_update_s = float(opts.get("lease_update_s", "30"))
            self._keepalive_s = float(opts.get("keepalive_s", "600"))
        except ValueError as exc:
            self._session.config_error = CloudError(f"bad option: {exc}", code="bad-config")
        if self._powered_on not in ("fail", "clone"):
            msg = "export_powered_on must be fail or clone"
            self._session.config_error = CloudError(msg, code="bad-config")

    async def _call(self, fn: Callable[[Any], T], what: str) -> T:
        self._start_keepalive()
        return await asyncio.to_thread(self._session.call, fn, what)

    def _start_keepalive(self) -> None:
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.create_task(self._keepalive_loop())

    async def _keepalive_loop(self) -> None:
        while True:
            await asyncio.sleep(self._keepalive_s)
            try:
                await asyncio.to_thread(self._session.call, _current_time, "keepalive")
            except CloudError as exc:
                log.warning("vsphere.keepalive_failed", code=exc.code, error=str(exc))

    async def check(self) -> None:
        await self._call(_current_time, "check")

    async def inventory(self) -> list[InventoryItem]:
        raw = await self._call(collect, "inventory")
        return to_items(raw)

    async def export(self, ref: str, dest: Path, progress: ProgressFn) -> ExportResult:
        await asyncio.to_thread(dest.mkdir, parents=True, exist_ok=True)
        mode = self._powered_on
        entity, name, clone = await self._call(
            lambda si: _export_target(si, ref, mode), f"export {ref}"
        )
        try:
            return await self._export(ref, entity, name, dest, progress)
        finally:
            if clone is not None:
                await asyncio.shield(
                    self._call(lambda si: export_.destroy_clone(clone), "remove export clone")
                )

    async def _export(
        self, ref: str, entity: Any, name: str, dest: Path, progress: ProgressFn
    ) -> ExportResult:
        ex = export_.Exporter(self._session, entity, name, dest)
        log.info("vsphere.export_start", ref=ref, name=name, dest=str(dest))
        marker = dest / EXPORTING_MARKER
        try:
            await asyncio.to_thread(marker.touch)
            devices = await self._call(lambda si: ex.start_lease(), f"export {ref}")
            done = await asyncio.to_thread(export_.finished_disks, dest, ex.moid, devices)
            todo = [d for d in devices if d.name not in done]
            jobs = await self._call(lambda si: [ex.job(d, done) for d in todo], "export")
            await progress(Progress(0, None, f"exporting {len(todo)} of {len(devices)} disks"))
            await self._transfer(jobs, progress, None, ex.keepalive, f"export {ref}")
            result = await self._call(lambda si: ex.finish(devices, done), f"export {ref}")
            await asyncio.to_thread(marker.unlink, missing_ok=True)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(ex.abort))
            raise
        log.info("vsphere.export_done", ref=ref, files=len(result.files))
        return result

    async def _transfer(
        self,
        jobs: list[nfc.Job[Any]],
        progress: ProgressFn,
        total: int | None,
        keepalive: Callable[[int], None],
        what: str,
    ) -> None:
        def lease_progress(percent: int) -> None:
            self._session.call(lambda si: keepalive(percent), "lease progress")

        try:
            await nfc.run_parallel(
                jobs,
                parallel=self._parallel,
                progress=progress,
                total=total,
                keepalive=lease_progress,
                keepalive_s=self._lease_update_s,
            )
        except Exception as exc:
            raise map_error(exc, what) from exc

    async def import_package(
        self, package_dir: Path, target: Target, progress: ProgressFn, *, streaming: bool = False
    ) -> ImportResult:
        pkg = await import_.open_package(package_dir, streaming=streaming)
        prov = self._provisioning

        def prepare(si: Any) -> tuple[import_.Placement, Any]:
            import_.destroy_leftover(si, package_dir)  # an earlier attempt's, if it died
            where = import_.place(si, pkg, target, prov)
            return where, import_.import_spec(si, pkg, where, prov)

        where, spec = await self._call(prepare, f"import {package_dir.name}")
        lease: Any = None
        entity: Any = None
        try:
            lease, entity, ups, info = await self._call(
                lambda si: self._start_import(pkg, where, spec), f"import {where.name}"
            )
            # before any byte is uploaded; here, so that a failure to write it aborts the lease
            await asyncio.to_thread(import_.remember_made, package_dir, entity, where.name)
            s = self._session
            cookie = await self._call(lambda si: s.cookie, "import")
            jobs = [self._upload_job(pkg, u, cookie) for u in ups]
            total = sum(pkg.sizes[u.name] for u in ups)
            await self._transfer(jobs, progress, total, lease.HttpNfcLeaseProgress, "import")
            await pkg.verify()
            await self._call(lambda si: _complete(lease), f"import {where.name}")
            lease = None
            await asyncio.to_thread(import_.forget_made, package_dir)
        except BaseException:
            if lease is not None:
                await asyncio.shield(asyncio.to_thread(self._discard, package_dir, lease, entity))
            raise
        log.info("vsphere.import_done", name=where.name, id=info["id"])
        kind = "vapp" if isinstance(entity, vim.VirtualApp) else "vm"
        return ImportResult(object_id=info["id"], name=where.name, kind=kind, attributes=info)

    @staticmethod
    def _discard(package_dir: Path, lease: Any, entity: Any) -> None:
        if import_.discard(lease, entity):
            import_.forget_made(package_dir)

    def _start_import(
        self, pkg: import_.Package, where: import_.Placement, spec: Any
    ) -> tuple[Any, Any, list[import_.Upload], dict[str, str]]:
        folder = None if isinstance(where.pool, vim.VirtualApp) else where.folder
        lease = where.pool.ImportVApp(spec=spec.importSpec, folder=folder)
        export_.wait_lease_ready(lease)
        entity = lease.info.entity
        info = {
            "id": str(entity._moId),
            "datastore": where.datastore_name,
            "folder": str(where.folder.name),
            "resource_pool": str(where.pool._moId),
        }
        if where.warnings:
            info["warnings"] = "; ".join(where.warnings)
        return lease, entity, import_.uploads(pkg, spec, lease), info

    def _upload_job(self, pkg: import_.Package, up: import_.Upload, cookie: str) -> nfc.Job[int]:
        s = self._session
        ep = nfc.endpoint_for(up.url, s.host, s.port, s.ssl_context, up.thumbprint)

        def run(cancel: Any, on_bytes: Callable[[int], None]) -> int:
            path = pkg.wait_file(up.name, cancel)  # the lease is kept alive meanwhile
            if path is None:
                return 0
            return nfc.upload(
                ep,
                path,
                disk=up.disk,
                cookie=cookie,
                timeout_s=s.timeout_s,
                cancel=cancel,
                on_bytes=on_bytes,
            )

        return run

    async def deploy(
        self, template_ref: str, spec: DeploySpec, progress: ProgressFn
    ) -> DeployResult:
        """Clone a VM, template or vApp to ``spec.name`` next to it; power on if asked
        (_vsphere_deploy: taken up again when a resumed step finds its own clone)."""
        await progress(Progress(0, None, f"cloning {template_ref} to {spec.name}"))
        return await self._call(
            lambda si: deploy_.deploy(si, resolve(si, template_ref), spec),
            f"deploy {template_ref}",
        )

    async def close(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
            self._keepalive = None
        await asyncio.to_thread(self._session.close)


def _current_time(si: Any) -> Any:
    return si.CurrentTime()


def _complete(lease: Any) -> None:
    lease.HttpNfcLeaseProgress(100)
    lease.HttpNfcLeaseComplete()
