"""Catalog upload (shared/vcd-api.md §5): UploadVAppTemplateParams → CatalogItem + template
with a running ``vdcUploadOvfContents`` task; PUT descriptor.ovf, then each referenced file
(ranged PUTs); when every file is complete the import runs and the template resolves.
"""

from __future__ import annotations

import time

import structlog
from aiohttp import web

from sim.vcd import access, render
from sim.vcd.errors import VcdError, bad_request
from sim.vcd.manifest import MANIFEST, MAX_MANIFEST_BYTES, mismatches, parse_manifest
from sim.vcd.model import (
    CatalogItem,
    State,
    Status,
    Task,
    TaskError,
    TransferFile,
    VAppTemplate,
    Vm,
)
from sim.vcd.ovf import Descriptor, parse_descriptor, parse_xml
from sim.vcd.ranges import put_range
from sim.vcd.render import Hrefs
from sim.vcd.store import Store
from sim.vcd.tasks import Completion
from sim.vcd.web import FAULTS, STORE, TASKS, Ctx, ctx, xml_response
from sim.vcd.xmlgen import MT_CATALOG_ITEM, MT_MEDIA, MT_UPLOAD_PARAMS, VCLOUD_NS

log = structlog.get_logger()

DESCRIPTOR = "descriptor.ovf"
UPLOAD_OP = "vdcUploadOvfContents"
MAX_PARAMS_BYTES = 1 * 2**20
_CHUNK = 1024 * 1024


def require_content_type(request: web.Request, *media_types: str) -> None:
    got = request.headers.get("Content-Type", "").split(";")[0].strip()
    if got not in media_types:
        raise VcdError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"Content-Type {got!r} is not supported here; expected {' or '.join(media_types)}.",
        )


async def read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise bad_request("The request body is too large.")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
        if total > limit:
            raise bad_request("The request body is too large.")
        chunks.append(chunk)
    return b"".join(chunks)


def check_unique_item(state: State, catalog_id: str, name: str) -> None:
    if any(i.catalog_id == catalog_id and i.name == name for i in state.items.values()):
        raise bad_request(
            f"Catalog already contains an item named {name!r}.", minor="DUPLICATE_NAME"
        )


async def post_upload(request: web.Request) -> web.Response:
    c = ctx(request)
    catalog = access.catalog(request)
    require_content_type(request, MT_UPLOAD_PARAMS, MT_MEDIA)
    if request.headers["Content-Type"].startswith(MT_MEDIA):
        raise bad_request("Media (ISO) upload is not implemented by this simulator.")
    root = parse_xml(await read_body(request, MAX_PARAMS_BYTES), "UploadVAppTemplateParams")
    if root.tag != f"{{{VCLOUD_NS}}}UploadVAppTemplateParams":
        raise bad_request("Expected an UploadVAppTemplateParams document.")
    name = (root.get("name") or "").strip()
    if not name:
        raise bad_request("UploadVAppTemplateParams needs a name.")
    store = request.app[STORE]
    check_unique_item(store.state, catalog.id, name)
    description = root.findtext(f"{{{VCLOUD_NS}}}Description") or ""
    template = VAppTemplate(
        name=name,
        description=description,
        org_id=catalog.org_id,
        vdc_id=catalog.vdc_id,
        owner_id=c.user.id,
        manifest_required=root.get("manifestRequired") == "true",
        files=[TransferFile(name=DESCRIPTOR)],
    )
    item = CatalogItem(
        name=name, catalog_id=catalog.id, template_id=template.id, description=description
    )
    template.catalog_item_id = item.id
    store.state.templates[template.id] = template
    store.state.items[item.id] = item
    catalog.version += 1
    request.app[TASKS].create(
        operation_name=UPLOAD_OP,
        operation=f"Uploading Virtual Application Template {name}({template.id})",
        status="running",
        owner_kind="vAppTemplate",
        owner_id=template.id,
        owner_name=name,
        user_id=c.user.id,
        org_id=catalog.org_id,
    )
    log.info("vcdsim.upload_started", template=template.id, name=name)
    h = Hrefs(c.base)
    return xml_response(
        request,
        render.catalog_item(h, item, store.state),
        MT_CATALOG_ITEM,
        status=201,
        headers={"Location": h.item(item.id)},
    )


def _upload_task(state: State, template: VAppTemplate) -> Task | None:
    return next(
        (t for t in state.running_tasks(template.id) if t.operation_name == UPLOAD_OP), None
    )


def _transfer_target(request: web.Request) -> tuple[VAppTemplate, Task]:
    state = request.app[STORE].state
    xid = request.match_info["xid"]
    template = next((t for t in state.templates.values() if t.transfer_id == xid), None)
    c: Ctx = ctx(request)
    if template is None or not c.sees(template.org_id):
        raise VcdError(404, "RESOURCE_NOT_FOUND", "No such transfer session.")
    task = _upload_task(state, template)
    if task is None:
        raise VcdError(404, "RESOURCE_NOT_FOUND", "The transfer session is closed.")
    return template, task


def _check_quota(state: State, template: VAppTemplate, desc: Descriptor) -> None:
    vdc = state.vdcs[template.vdc_id]
    if vdc.storage_quota_bytes is None:
        return
    needed = state.vdc_used_bytes(vdc.id) + desc.total_bytes
    if needed > vdc.storage_quota_bytes:
        raise bad_request(
            f"The requested operation will exceed the VDC's storage quota: {vdc.name} allows "
            f"{vdc.storage_quota_bytes} bytes, {needed} would be used."
        )


def _validated(state: State, template: VAppTemplate, data: bytes) -> Descriptor:
    desc = parse_descriptor(data)
    reserved = {DESCRIPTOR, MANIFEST}
    if any(f.href in reserved for f in desc.files):
        raise bad_request(f"A referenced file may not be named {' or '.join(sorted(reserved))}.")
    _check_quota(state, template, desc)
    return desc


async def _put_manifest(request: web.Request, template: VAppTemplate, task: Task) -> None:
    f = template.file(MANIFEST)
    if f is None:
        raise VcdError(404, "RESOURCE_NOT_FOUND", "This upload has no manifest.")
    data = await read_body(request, MAX_MANIFEST_BYTES)
    parse_manifest(data)
    request.app[STORE].file_path(template.id, MANIFEST).write_bytes(data)
    f.size = f.bytes_transferred = len(data)
    _after_bytes(request, template, task)


async def _put_descriptor(request: web.Request, template: VAppTemplate, task: Task) -> None:
    store = request.app[STORE]
    if template.descriptor_uploaded:
        raise bad_request("The OVF descriptor was already uploaded.")
    data = await read_body(request, 16 * 2**20)
    try:
        desc = _validated(store.state, template, data)
    except VcdError as exc:  # the guide: status -1, and the task's Error says why
        error = TaskError(major=exc.status, minor=exc.minor, message=exc.message)
        request.app[TASKS].fail(task, error)
        raise
    path = store.file_path(template.id, DESCRIPTOR)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    template.files = [TransferFile(name=DESCRIPTOR, size=len(data), bytes_transferred=len(data))]
    template.files += [TransferFile(name=f.href, size=f.size) for f in desc.files]
    if template.manifest_required:
        template.files.append(TransferFile(name=MANIFEST))
    template.vms = [
        Vm(
            name=s.name,
            local_id=s.ovf_id,
            cpus=s.cpus,
            memory_mb=s.memory_mb,
            network=s.network,
            status=Status.UNRESOLVED,
        )
        for s in desc.systems
    ]
    template.network_names = desc.networks
    template.descriptor_uploaded = True
    _after_bytes(request, template, task)


def _after_bytes(request: web.Request, template: VAppTemplate, task: Task) -> None:
    """Progress from bytes; start the import once every file is complete."""
    total = sum(max(f.size, 0) for f in template.files) or 1
    done = sum(f.bytes_transferred for f in template.files)
    task.progress = min(90, int(90 * done / total))
    request.app[STORE].save()
    if template.descriptor_uploaded and all(f.complete for f in template.files):
        log.info("vcdsim.upload_complete", template=template.id)
        request.app[TASKS].start(task)


async def _put_file(request: web.Request, template: VAppTemplate, task: Task, name: str) -> None:
    store = request.app[STORE]
    f = template.file(name)
    if f is None or not template.descriptor_uploaded:
        raise VcdError(404, "RESOURCE_NOT_FOUND", f"File {name!r} is not part of this upload.")
    _expire_if_idle(request, template, f)
    rng = put_range(
        request.headers.get("Content-Range"), request.content_length, f.size, f.bytes_transferred
    )
    path = store.file_path(template.id, name)
    path.touch()
    drop_after = request.app[FAULTS].take_drop()
    received = 0
    with path.open("r+b") as fh:
        fh.seek(rng.start)
        async for chunk in request.content.iter_chunked(_CHUNK):
            if received + len(chunk) > rng.length:
                raise bad_request("The body is longer than the Content-Range.")
            if drop_after is not None and received + len(chunk) >= drop_after:
                fh.write(chunk[: drop_after - received])
                received = drop_after
                break
            fh.write(chunk)
            received += len(chunk)
    f.bytes_transferred = max(f.bytes_transferred, rng.start + received)
    f.last_put = time.time()
    if drop_after is not None and received == drop_after and received < rng.length:
        store.save()
        log.info("vcdsim.fault_drop_upload", file=name, after_bytes=received)
        if request.transport is not None:
            request.transport.abort()  # the client sees a reset; nothing more is sent
        return
    if received != rng.length:
        store.save()
        raise bad_request(f"The body has {received} bytes, the range needs {rng.length}.")
    _after_bytes(request, template, task)


def _expire_if_idle(request: web.Request, template: VAppTemplate, f: TransferFile) -> None:
    timeout = request.app[FAULTS].upload_idle_timeout_s
    if timeout is None or f.complete or f.last_put is None:
        return
    if time.time() - f.last_put > timeout:
        log.info("vcdsim.upload_expired", template=template.id, file=f.name)
        f.bytes_transferred = 0
        f.last_put = None
        request.app[STORE].file_path(template.id, f.name).unlink(missing_ok=True)


async def put_transfer(request: web.Request) -> web.Response:
    template, task = _transfer_target(request)
    name = request.match_info["name"]
    if name == DESCRIPTOR:
        await _put_descriptor(request, template, task)
    elif name == MANIFEST:
        await _put_manifest(request, template, task)
    else:
        await _put_file(request, template, task, name)
    return web.Response(status=200)


def _import_done(store: Store, task: Task) -> None:
    template = store.state.templates.get(task.owner_id)
    if template is None:
        raise RuntimeError("The template was deleted during import.")
    if template.file(MANIFEST) is not None:
        entries = parse_manifest(store.file_path(template.id, MANIFEST).read_bytes())
        disks = {f.name: store.file_path(template.id, f.name) for f in template.files}
        disks.pop(DESCRIPTOR)
        bad = mismatches(entries, disks)
        if bad:
            raise RuntimeError(f"Checksum mismatch against the manifest for: {', '.join(bad)}.")
    template.status = Status.POWERED_OFF
    for vm in template.vms:
        vm.status = Status.POWERED_OFF


def _import_failed(store: Store, task: Task) -> None:
    template = store.state.templates.get(task.owner_id)
    if template is not None:
        template.status = Status.FAILED_CREATION


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/catalog/{id}/action/upload", post_upload)
    app.router.add_put("/transfer/{xid}/{name}", put_transfer)
    app[TASKS].register(UPLOAD_OP, Completion(_import_done, _import_failed, waits_for_client=True))
