"""``POST /api/vdc/{id}/action/instantiateVAppTemplate`` (shared/vcd-api.md §7): accepts the
parameter shapes clients send (empty InstantiationParams, SourcedItems, a NetworkConfigSection
with a ParentNetwork, deploy/powerOn), answers 201 with a sparse VApp and a running task."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import structlog
from aiohttp import web

from sim.vcd import access
from sim.vcd.errors import bad_request, forbidden
from sim.vcd.model import State, Status, Task, VApp, VAppTemplate, Vdc, copy_vms
from sim.vcd.ovf import parse_xml
from sim.vcd.query_filter import normalize
from sim.vcd.render import Hrefs
from sim.vcd.render_vapp import vapp as render_vapp
from sim.vcd.store import Store
from sim.vcd.tasks import Completion
from sim.vcd.upload import MAX_PARAMS_BYTES, read_body, require_content_type
from sim.vcd.web import STORE, TASKS, Ctx, ctx, xml_response
from sim.vcd.xmlgen import MT_INSTANTIATE_PARAMS, MT_VAPP, VCLOUD_NS

log = structlog.get_logger()

INSTANTIATE_OP = "vdcInstantiateVapp"
_V = f"{{{VCLOUD_NS}}}"


@dataclass(frozen=True)
class InstantiateParams:
    name: str
    description: str
    source_href: str
    deploy: bool
    power_on: bool
    networks: list[tuple[str, str | None]]
    """(networkName, ParentNetwork href or None) per NetworkConfig."""


def _bool_attr(root: ET.Element, name: str, default: bool) -> bool:
    value = root.get(name)
    return default if value is None else value.lower() == "true"


def parse_params(data: bytes) -> InstantiateParams:
    root = parse_xml(data, "InstantiateVAppTemplateParams")
    if root.tag != _V + "InstantiateVAppTemplateParams":
        raise bad_request("Expected an InstantiateVAppTemplateParams document.")
    name = (root.get("name") or "").strip()
    source = root.find(_V + "Source")
    if not name or source is None or not source.get("href"):
        raise bad_request("InstantiateVAppTemplateParams needs a name and a Source href.")
    networks = []
    params = root.find(_V + "InstantiationParams")
    for nc in params.iter(_V + "NetworkConfig") if params is not None else []:
        parent = nc.find(f"{_V}Configuration/{_V}ParentNetwork")
        networks.append(
            (nc.get("networkName", ""), parent.get("href") if parent is not None else None)
        )
    return InstantiateParams(
        name=name,
        description=root.findtext(_V + "Description") or "",
        source_href=source.get("href", ""),
        deploy=_bool_attr(root, "deploy", True),
        power_on=_bool_attr(root, "powerOn", True),
        networks=networks,
    )


def _check(c: Ctx, state: State, vdc: Vdc, p: InstantiateParams) -> VAppTemplate:
    """The source template, after every precondition vCD checks."""
    template = state.templates.get(normalize(p.source_href))
    if template is None or not c.sees(template.org_id):
        raise forbidden("vAppTemplate", p.source_href)
    if template.status != Status.POWERED_OFF:
        raise bad_request(
            f"The vApp template {template.name} is not ready (status {template.status})."
        )
    if any(a.vdc_id == vdc.id and a.name == p.name for a in state.vapps.values()):
        raise bad_request(
            f"A vApp named {p.name!r} already exists in {vdc.name}.", minor="DUPLICATE_NAME"
        )
    for net_name, parent in p.networks:
        if parent is not None and normalize(parent) not in vdc.network_ids:
            raise bad_request(f"Network {net_name!r}: {parent} is not available in {vdc.name}.")
    quota = vdc.storage_quota_bytes
    if quota is not None and state.vdc_used_bytes(vdc.id) + template.disk_bytes > quota:
        raise bad_request(
            f"The requested operation will exceed the VDC's storage quota ({vdc.name})."
        )
    return template


async def instantiate(request: web.Request) -> web.Response:
    c = ctx(request)
    vdc = access.vdc(request)
    require_content_type(request, MT_INSTANTIATE_PARAMS)
    p = parse_params(await read_body(request, MAX_PARAMS_BYTES))
    state = request.app[STORE].state
    template = _check(c, state, vdc, p)
    vapp = VApp(
        name=p.name,
        description=p.description,
        org_id=vdc.org_id,
        vdc_id=vdc.id,
        owner_id=c.user.id,
        template_id=template.id,
        size_bytes=template.disk_bytes,
        network_names=[n for n, _ in p.networks],
        vms=copy_vms(template.vms, p.networks[0][0] if p.networks else None),
    )
    state.vapps[vapp.id] = vapp
    task = request.app[TASKS].create(
        operation_name=INSTANTIATE_OP,
        operation=f"Creating Virtual Application {p.name}({vapp.id})",
        owner_kind="vApp",
        owner_id=vapp.id,
        owner_name=p.name,
        user_id=c.user.id,
        org_id=vdc.org_id,
    )
    task.params = {
        "deploy": str(p.deploy or p.power_on).lower(),
        "powerOn": str(p.power_on).lower(),
    }
    request.app[TASKS].start(task)
    log.info("vcdsim.instantiate", vapp=vapp.id, template=template.id)
    h = Hrefs(c.base)
    return xml_response(
        request,
        render_vapp(h, vapp, state),
        MT_VAPP,
        status=201,
        headers={"Location": h.vapp(vapp.id)},
    )


def _instantiated(store: Store, task: Task) -> None:
    vapp = store.state.vapps.get(task.owner_id)
    if vapp is None:
        raise RuntimeError("The vApp was deleted while it was being created.")
    template = store.state.templates.get(vapp.template_id or "")
    if template is None:
        raise RuntimeError("The vApp template was deleted while the vApp was being created.")
    vapp.deployed = task.params.get("deploy") == "true"
    vapp.status = Status.POWERED_ON if task.params.get("powerOn") == "true" else Status.POWERED_OFF
    for vm in vapp.vms:
        vm.status = vapp.status
    vapp.files = [f.model_copy() for f in template.files]
    store.copy_files(
        store.template_dir(template.id), store.vapp_dir(vapp.id), [f.name for f in vapp.files]
    )


def _instantiate_failed(store: Store, task: Task) -> None:
    vapp = store.state.vapps.get(task.owner_id)
    if vapp is not None:
        vapp.status = Status.FAILED_CREATION


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/vdc/{id}/action/instantiateVAppTemplate", instantiate)
    app[TASKS].register(INSTANTIATE_OP, Completion(_instantiated, _instantiate_failed))
