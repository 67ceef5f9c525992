"""Read-only navigation: OrgList, Org, Vdc, Catalog, CatalogItem (GET and DELETE)."""

from __future__ import annotations

from aiohttp import web

from sim.vcd import access, render
from sim.vcd.errors import VcdError
from sim.vcd.model import TaskError, TaskStatus
from sim.vcd.render import Hrefs
from sim.vcd.web import STORE, TASKS, ctx, xml_response
from sim.vcd.xmlgen import MT_CATALOG, MT_CATALOG_ITEM, MT_ORG, MT_ORG_LIST, MT_VDC


def _h(request: web.Request) -> Hrefs:
    return Hrefs(ctx(request).base)


async def get_org_list(request: web.Request) -> web.Response:
    c = ctx(request)
    orgs = sorted(
        (o for o in request.app[STORE].state.orgs.values() if c.sees(o.id)), key=lambda o: o.name
    )
    return xml_response(request, render.org_list(_h(request), orgs), MT_ORG_LIST)


async def get_org(request: web.Request) -> web.Response:
    o = access.org(request)
    version = float(ctx(request).version)
    elem = render.org(_h(request), o, request.app[STORE].state, version)
    return xml_response(request, elem, MT_ORG)


async def get_vdc(request: web.Request) -> web.Response:
    v = access.vdc(request)
    return xml_response(request, render.vdc(_h(request), v, request.app[STORE].state), MT_VDC)


async def get_catalog(request: web.Request) -> web.Response:
    cat = access.catalog(request)
    elem = render.catalog(_h(request), cat, request.app[STORE].state)
    return xml_response(request, elem, MT_CATALOG)


async def get_catalog_item(request: web.Request) -> web.Response:
    item = access.catalog_item(request)
    elem = render.catalog_item(_h(request), item, request.app[STORE].state)
    return xml_response(request, elem, MT_CATALOG_ITEM)


async def delete_catalog_item(request: web.Request) -> web.Response:
    """Deletes the item and its template (files included) → 204. Refused while the
    template has a task running (an upload in progress counts) unless ``force=true``."""
    item = access.catalog_item(request)
    store = request.app[STORE]
    state = store.state
    template = state.templates.get(item.template_id)
    force = request.query.get("force", "false").lower() == "true"
    if template is not None and state.running_tasks(template.id) and not force:
        raise VcdError(
            400, "BUSY_ENTITY", f"The entity {template.name} is busy completing an operation."
        )
    if template is not None:
        for t in state.running_tasks(template.id):
            error = TaskError(major=400, minor="BAD_REQUEST", message="The entity was deleted.")
            request.app[TASKS].fail(t, error, TaskStatus.ABORTED)
        state.templates.pop(template.id, None)
        store.remove_template_files(template.id)
    state.items.pop(item.id, None)
    state.catalogs[item.catalog_id].version += 1
    store.save()
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/org/", get_org_list)
    app.router.add_get("/api/org", get_org_list)
    app.router.add_get("/api/org/{id}", get_org)
    app.router.add_get("/api/vdc/{id}", get_vdc)
    app.router.add_get("/api/catalog/{id}", get_catalog)
    app.router.add_get("/api/catalogItem/{id}", get_catalog_item)
    app.router.add_delete("/api/catalogItem/{id}", delete_catalog_item)
