"""captureVApp: a vApp back into a catalog as a new vApp template (the export path for
vApps: capture, then enableDownload on the template).

``POST /api/catalog/{id}/action/captureVApp`` with CaptureVAppParams (``name``,
``Description``, ``Source href=<vApp>``) → 201 VAppTemplate (status 0) holding a running
``vdcCaptureTemplate`` task; the catalog item exists at once. The template gets a copy of
the vApp's disks and descriptor and resolves (status 8) when the task succeeds.
Powered-on vApps are accepted [UNVERIFIED whether real vCD requires power-off].
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import structlog
from aiohttp import web

from sim.vcd import access
from sim.vcd.errors import bad_request, forbidden
from sim.vcd.model import CatalogItem, State, Status, Task, VApp, VAppTemplate, copy_vms
from sim.vcd.ovf import parse_xml
from sim.vcd.query_filter import normalize
from sim.vcd.render import Hrefs
from sim.vcd.render_vapp import template as render_template
from sim.vcd.store import Store
from sim.vcd.tasks import Completion
from sim.vcd.upload import MAX_PARAMS_BYTES, check_unique_item, read_body, require_content_type
from sim.vcd.web import STORE, TASKS, Ctx, ctx, xml_response
from sim.vcd.xmlgen import MT_CAPTURE_PARAMS, MT_TEMPLATE, VCLOUD_NS

log = structlog.get_logger()

CAPTURE_OP = "vdcCaptureTemplate"
_V = f"{{{VCLOUD_NS}}}"


def _source_vapp(c: Ctx, state: State, root: ET.Element) -> tuple[str, VApp]:
    """(new template name, the vApp to capture) from CaptureVAppParams."""
    source = root.find(_V + "Source")
    name = (root.get("name") or "").strip()
    if root.tag != _V + "CaptureVAppParams" or not name or source is None:
        raise bad_request("Expected CaptureVAppParams with a name and a Source href.")
    vapp = state.vapps.get(normalize(source.get("href", "")))
    if vapp is None or not c.sees(vapp.org_id):
        raise forbidden("vApp", source.get("href", ""))
    if vapp.status not in (Status.POWERED_ON, Status.POWERED_OFF) or state.running_tasks(vapp.id):
        raise bad_request(f"The vApp {vapp.name} is busy or not resolved (status {vapp.status}).")
    return name, vapp


async def capture_vapp(request: web.Request) -> web.Response:
    c = ctx(request)
    catalog = access.catalog(request)
    require_content_type(request, MT_CAPTURE_PARAMS)
    root = parse_xml(await read_body(request, MAX_PARAMS_BYTES), "CaptureVAppParams")
    state = request.app[STORE].state
    name, vapp = _source_vapp(c, state, root)
    check_unique_item(state, catalog.id, name)
    vdc = state.vdcs[catalog.vdc_id]
    needed = state.vdc_used_bytes(vdc.id) + vapp.size_bytes
    if vdc.storage_quota_bytes is not None and needed > vdc.storage_quota_bytes:
        raise bad_request(
            f"The requested operation will exceed the VDC's storage quota ({vdc.name})."
        )
    template = VAppTemplate(
        name=name,
        description=root.findtext(_V + "Description") or "",
        org_id=catalog.org_id,
        vdc_id=catalog.vdc_id,
        owner_id=c.user.id,
        descriptor_uploaded=True,
        files=[f.model_copy() for f in vapp.files],
        vms=copy_vms(vapp.vms),
        network_names=list(vapp.network_names),
    )
    item = CatalogItem(
        name=name, catalog_id=catalog.id, template_id=template.id, description=template.description
    )
    template.catalog_item_id = item.id
    state.templates[template.id] = template
    state.items[item.id] = item
    catalog.version += 1
    task = request.app[TASKS].create(
        operation_name=CAPTURE_OP,
        operation=f"Capturing Virtual Application {vapp.name}({vapp.id}) as {name}",
        owner_kind="vAppTemplate",
        owner_id=template.id,
        owner_name=name,
        user_id=c.user.id,
        org_id=catalog.org_id,
    )
    task.params = {"vapp": vapp.id}
    request.app[TASKS].start(task)
    log.info("vcdsim.capture", vapp=vapp.id, template=template.id)
    h = Hrefs(c.base)
    return xml_response(
        request,
        render_template(h, template, state),
        MT_TEMPLATE,
        status=201,
        headers={"Location": h.template(template.id)},
    )


def _captured(store: Store, task: Task) -> None:
    template = store.state.templates.get(task.owner_id)
    vapp = store.state.vapps.get(task.params.get("vapp", ""))
    if template is None or vapp is None:
        raise RuntimeError("The vApp or the new template was deleted during capture.")
    store.copy_files(
        store.vapp_dir(vapp.id), store.template_dir(template.id), [f.name for f in template.files]
    )
    template.status = Status.POWERED_OFF
    for vm in template.vms:
        vm.status = Status.POWERED_OFF


def _capture_failed(store: Store, task: Task) -> None:
    template = store.state.templates.get(task.owner_id)
    if template is not None:
        template.status = Status.FAILED_CREATION


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/catalog/{id}/action/captureVApp", capture_vapp)
    app[TASKS].register(CAPTURE_OP, Completion(_captured, _capture_failed))
