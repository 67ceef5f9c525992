"""vApp templates and vApps: GET, DELETE, instantiateVAppTemplate, power actions
(shared/vcd-api.md §5d, §7)."""

from __future__ import annotations

import structlog
from aiohttp import web

from sim.vcd import access
from sim.vcd.errors import VcdError, bad_request, forbidden
from sim.vcd.model import Status, Task, Vm
from sim.vcd.ovf import parse_xml
from sim.vcd.render import Hrefs
from sim.vcd.render import task as render_task
from sim.vcd.render_vapp import template as render_template
from sim.vcd.render_vapp import template_vm, vapp_vm
from sim.vcd.render_vapp import vapp as render_vapp
from sim.vcd.store import Store
from sim.vcd.tasks import Completion
from sim.vcd.upload import MAX_PARAMS_BYTES, read_body, require_content_type
from sim.vcd.web import STORE, TASKS, ctx, xml_response
from sim.vcd.xmlgen import (
    MT_DEPLOY_PARAMS,
    MT_TASK,
    MT_TEMPLATE,
    MT_UNDEPLOY_PARAMS,
    MT_VAPP,
    MT_VM,
    VCLOUD_NS,
)

log = structlog.get_logger()

_V = f"{{{VCLOUD_NS}}}"
DELETE_VAPP_OP = "vdcDeleteVapp"
DELETE_TEMPLATE_OP = "vdcDeleteTemplate"
POWER_ON_OP = "vappPowerOn"
POWER_OFF_OP = "vappPowerOff"
DEPLOY_OP = "vappDeploy"
UNDEPLOY_OP = "vappUndeployPowerOff"


def _h(request: web.Request) -> Hrefs:
    return Hrefs(ctx(request).base)


def _busy(name: str) -> VcdError:
    return VcdError(400, "BUSY_ENTITY", f"The entity {name} is busy completing an operation.")


def _task_response(request: web.Request, t: Task) -> web.Response:
    elem = render_task(_h(request), t, request.app[STORE].state)
    return xml_response(
        request, elem, MT_TASK, status=202, headers={"Location": _h(request).task(t.id)}
    )


async def get_template(request: web.Request) -> web.Response:
    t = access.template(request)
    return xml_response(
        request, render_template(_h(request), t, request.app[STORE].state), MT_TEMPLATE
    )


def _find_vm(request: web.Request, in_vapps: bool) -> tuple[str, Vm]:
    state = request.app[STORE].state
    mid = request.match_info["id"]
    parents = state.vapps.values() if in_vapps else state.templates.values()
    for parent in parents:
        for vm in parent.vms:
            if vm.id == mid and ctx(request).sees(parent.org_id):
                return parent.id, vm
    raise forbidden("vm", mid)


async def get_template_vm(request: web.Request) -> web.Response:
    parent_id, vm = _find_vm(request, in_vapps=False)
    t = request.app[STORE].state.templates[parent_id]
    return xml_response(request, template_vm(_h(request), t, vm), MT_VM)


async def get_vapp_vm(request: web.Request) -> web.Response:
    parent_id, vm = _find_vm(request, in_vapps=True)
    a = request.app[STORE].state.vapps[parent_id]
    return xml_response(request, vapp_vm(_h(request), a, vm), MT_VM)


async def delete_template(request: web.Request) -> web.Response:
    t = access.template(request)
    state = request.app[STORE].state
    if state.running_tasks(t.id):
        raise _busy(t.name)
    c = ctx(request)
    task = request.app[TASKS].create(
        operation_name=DELETE_TEMPLATE_OP,
        operation=f"Deleting Virtual Application Template {t.name}({t.id})",
        owner_kind="vAppTemplate",
        owner_id=t.id,
        owner_name=t.name,
        user_id=c.user.id,
        org_id=t.org_id,
    )
    request.app[TASKS].start(task)
    return _task_response(request, task)


def _template_deleted(store: Store, task: Task) -> None:
    t = store.state.templates.pop(task.owner_id, None)
    if t is not None and t.catalog_item_id:
        store.state.items.pop(t.catalog_item_id, None)
    store.remove_template_files(task.owner_id)


async def get_vapp(request: web.Request) -> web.Response:
    a = access.vapp(request)
    return xml_response(request, render_vapp(_h(request), a, request.app[STORE].state), MT_VAPP)


async def delete_vapp(request: web.Request) -> web.Response:
    """Refused while a task runs on the vApp, or while it is powered on unless force=true."""
    a = access.vapp(request)
    state = request.app[STORE].state
    if state.running_tasks(a.id):
        raise _busy(a.name)
    force = request.query.get("force", "false").lower() == "true"
    if a.status == Status.POWERED_ON and not force:
        raise bad_request(f"The vApp {a.name} is powered on; power it off first or use force=true.")
    c = ctx(request)
    task = request.app[TASKS].create(
        operation_name=DELETE_VAPP_OP,
        operation=f"Deleting Virtual Application {a.name}({a.id})",
        owner_kind="vApp",
        owner_id=a.id,
        owner_name=a.name,
        user_id=c.user.id,
        org_id=a.org_id,
    )
    request.app[TASKS].start(task)
    return _task_response(request, task)


def _vapp_deleted(store: Store, task: Task) -> None:
    store.state.vapps.pop(task.owner_id, None)
    store.remove_vapp_files(task.owner_id)


async def _power(
    request: web.Request, op: str, label: str, params: dict[str, str] | None = None
) -> web.Response:
    a = access.vapp(request)
    if request.app[STORE].state.running_tasks(a.id):
        raise _busy(a.name)
    if a.status not in (Status.POWERED_ON, Status.POWERED_OFF):
        raise bad_request(f"The vApp {a.name} cannot change power state in status {a.status}.")
    c = ctx(request)
    task = request.app[TASKS].create(
        operation_name=op,
        operation=f"{label} Virtual Application {a.name}({a.id})",
        owner_kind="vApp",
        owner_id=a.id,
        owner_name=a.name,
        user_id=c.user.id,
        org_id=a.org_id,
    )
    task.params = params or {}
    request.app[TASKS].start(task)
    return _task_response(request, task)


async def power_on(request: web.Request) -> web.Response:
    return await _power(request, POWER_ON_OP, "Starting")


async def power_off(request: web.Request) -> web.Response:
    return await _power(request, POWER_OFF_OP, "Stopping")


async def deploy(request: web.Request) -> web.Response:
    """DeployVAppParams ``powerOn`` (default true)."""
    require_content_type(request, MT_DEPLOY_PARAMS)
    root = parse_xml(await read_body(request, MAX_PARAMS_BYTES), "DeployVAppParams")
    if root.tag != _V + "DeployVAppParams":
        raise bad_request("Expected a DeployVAppParams document.")
    power_on = (root.get("powerOn") or "true").lower() == "true"
    return await _power(request, DEPLOY_OP, "Deploying", {"powerOn": str(power_on).lower()})


async def undeploy(request: web.Request) -> web.Response:
    """UndeployVAppParams; every UndeployPowerAction ends powered off here."""
    require_content_type(request, MT_UNDEPLOY_PARAMS)
    root = parse_xml(await read_body(request, MAX_PARAMS_BYTES), "UndeployVAppParams")
    if root.tag != _V + "UndeployVAppParams":
        raise bad_request("Expected an UndeployVAppParams document.")
    return await _power(request, UNDEPLOY_OP, "Undeploying")


def _power_state(store: Store, task: Task) -> None:
    vapp = store.state.vapps[task.owner_id]
    op = task.operation_name
    if op == POWER_ON_OP or (op == DEPLOY_OP and task.params.get("powerOn") == "true"):
        vapp.status, vapp.deployed = Status.POWERED_ON, True
    elif op == DEPLOY_OP:
        vapp.deployed = True
    else:  # power off keeps the deployment; undeploy ends it
        vapp.status = Status.POWERED_OFF
        vapp.deployed = vapp.deployed and op == POWER_OFF_OP
    for vm in vapp.vms:
        vm.status = vapp.status


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/vAppTemplate/vappTemplate-{id}", get_template)
    r.add_delete("/api/vAppTemplate/vappTemplate-{id}", delete_template)
    r.add_get("/api/vAppTemplate/vm-{id}", get_template_vm)
    r.add_get("/api/vApp/vapp-{id}", get_vapp)
    r.add_delete("/api/vApp/vapp-{id}", delete_vapp)
    r.add_get("/api/vApp/vm-{id}", get_vapp_vm)
    r.add_post("/api/vApp/vapp-{id}/power/action/powerOn", power_on)
    r.add_post("/api/vApp/vapp-{id}/power/action/powerOff", power_off)
    r.add_post("/api/vApp/vapp-{id}/action/deploy", deploy)
    r.add_post("/api/vApp/vapp-{id}/action/undeploy", undeploy)
    tasks = app[TASKS]
    tasks.register(DELETE_VAPP_OP, Completion(_vapp_deleted, lambda _s, _t: None))
    tasks.register(DELETE_TEMPLATE_OP, Completion(_template_deleted, lambda _s, _t: None))
    for op in (POWER_ON_OP, POWER_OFF_OP, DEPLOY_OP, UNDEPLOY_OP):
        tasks.register(op, Completion(_power_state, lambda _s, _t: None))
