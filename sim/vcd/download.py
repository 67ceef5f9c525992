"""Export (shared/vcd-api.md §8): enableDownload → task → ``download:*`` links; GET the
descriptor (regenerated: no ``ovf:chunkSize``), each file at the descriptor URL with the last
segment replaced by its ``ovf:href``, or the whole package as an OVA.

Files are served by aiohttp's FileResponse, which also answers ``Range`` requests with 206.
"""

from __future__ import annotations

import tarfile
import time
import uuid

from aiohttp import web

from sim.vcd import access
from sim.vcd.errors import VcdError, bad_request
from sim.vcd.model import Status, Task, VAppTemplate
from sim.vcd.ovf import export_descriptor
from sim.vcd.render import Hrefs
from sim.vcd.render import task as render_task
from sim.vcd.store import Store
from sim.vcd.tasks import Completion
from sim.vcd.upload import DESCRIPTOR
from sim.vcd.web import FAULTS, STORE, TASKS, ctx, xml_response
from sim.vcd.xmlgen import MT_TASK

ENABLE_OP = "vdcEnableDownload"
_DESCRIPTORS = {"descriptor.ovf", "descriptor-with-id.ovf"}
_OVAS = {"descriptor.ova", "descriptor-with-id.ova"}


async def enable_download(request: web.Request) -> web.Response:
    t = access.template(request)
    if t.status != Status.POWERED_OFF:
        raise bad_request(
            f"The vApp template {t.name} is not ready for download (status {t.status})."
        )
    c = ctx(request)
    task = request.app[TASKS].create(
        operation_name=ENABLE_OP,
        operation=f"Enabling download of Virtual Application Template {t.name}({t.id})",
        owner_kind="vAppTemplate",
        owner_id=t.id,
        owner_name=t.name,
        user_id=c.user.id,
        org_id=t.org_id,
    )
    request.app[TASKS].start(task)
    h = Hrefs(c.base)
    return xml_response(
        request,
        render_task(h, task, request.app[STORE].state),
        MT_TASK,
        status=202,
        headers={"Location": h.task(task.id)},
    )


async def disable_download(request: web.Request) -> web.Response:
    t = access.template(request)
    t.download_id = None
    request.app[STORE].save()
    return web.Response(status=204)


def _enabled(store: Store, task: Task) -> None:
    template = store.state.templates.get(task.owner_id)
    if template is None:
        raise RuntimeError("The template was deleted.")
    template.download_id = template.download_id or str(uuid.uuid4())
    template.download_last_access = time.time()


def _download_target(request: web.Request) -> VAppTemplate:
    xid = request.match_info["xid"]
    state = request.app[STORE].state
    t = next((t for t in state.templates.values() if t.download_id == xid), None)
    if t is None or not ctx(request).sees(t.org_id):
        raise VcdError(404, "RESOURCE_NOT_FOUND", "No such download session.")
    timeout = request.app[FAULTS].download_idle_timeout_s
    last = t.download_last_access
    if timeout is not None and last is not None and time.time() - last > timeout:
        t.download_id = None
        request.app[STORE].save()
        raise VcdError(404, "RESOURCE_NOT_FOUND", "The download session expired.")
    t.download_last_access = time.time()
    return t


_BLOCK = 512
_READ = 1024 * 1024


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(time.time())
    info.mode = 0o644
    header: bytes = info.tobuf(format=tarfile.USTAR_FORMAT)
    return header


async def _stream_ova(
    request: web.Request, store: Store, t: VAppTemplate, descriptor: bytes
) -> web.StreamResponse:
    """The package as a USTAR tar (descriptor first), streamed without building it in memory."""
    files = [(f.name, store.file_path(t.id, f.name)) for f in t.files if f.name != DESCRIPTOR]
    sizes = [len(descriptor)] + [path.stat().st_size for _name, path in files]
    length = sum(_BLOCK + size + (-size) % _BLOCK for size in sizes) + 2 * _BLOCK
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    response.content_length = length
    await response.prepare(request)
    await response.write(_tar_header(f"{t.name}.ovf", len(descriptor)) + descriptor)
    await response.write(b"\0" * ((-len(descriptor)) % _BLOCK))
    for (name, path), size in zip(files, sizes[1:], strict=True):
        await response.write(_tar_header(name, size))
        with path.open("rb") as fh:
            while chunk := fh.read(_READ):
                await response.write(chunk)
        await response.write(b"\0" * ((-size) % _BLOCK))
    await response.write(b"\0" * (2 * _BLOCK))
    await response.write_eof()
    return response


async def get_transfer(request: web.Request) -> web.StreamResponse:
    t = _download_target(request)
    store = request.app[STORE]
    name = request.match_info["name"]
    if name in _DESCRIPTORS or name in _OVAS:
        descriptor = export_descriptor(store.file_path(t.id, DESCRIPTOR).read_bytes())
        if name in _DESCRIPTORS:
            return web.Response(body=descriptor, content_type="text/xml")
        return await _stream_ova(request, store, t, descriptor)
    if name == DESCRIPTOR or t.file(name) is None:
        raise VcdError(404, "RESOURCE_NOT_FOUND", f"No file {name!r} in this download.")
    return web.FileResponse(
        store.file_path(t.id, name), headers={"Content-Type": "application/octet-stream"}
    )


async def get_template_ovf(request: web.Request) -> web.Response:
    """``GET /api/vAppTemplate/vappTemplate-{id}/ovf``: the template's OVF descriptor."""
    t = access.template(request)
    if not t.descriptor_uploaded:
        raise bad_request(f"The vApp template {t.name} has no OVF descriptor yet.")
    data = export_descriptor(request.app[STORE].file_path(t.id, DESCRIPTOR).read_bytes())
    return web.Response(body=data, content_type="text/xml")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/vAppTemplate/vappTemplate-{id}/ovf", get_template_ovf)
    app.router.add_post(
        "/api/vAppTemplate/vappTemplate-{id}/action/enableDownload", enable_download
    )
    app.router.add_post(
        "/api/vAppTemplate/vappTemplate-{id}/action/disableDownload", disable_download
    )
    app.router.add_get("/transfer/{xid}/{name}", get_transfer)
    app[TASKS].register(ENABLE_OP, Completion(_enabled, lambda _s, _t: None))
