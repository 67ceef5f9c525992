"""Smaller resources that navigation links point at: metadata (always empty), org
networks, an org's task list, and the entity resolver (``/api/entity/urn:vcloud:…``)."""

from __future__ import annotations

from aiohttp import web

from sim.vcd import access
from sim.vcd.errors import forbidden
from sim.vcd.model import State
from sim.vcd.query_filter import normalize
from sim.vcd.render import Hrefs, task, urn
from sim.vcd.web import STORE, ctx, xml_response
from sim.vcd.xmlgen import (
    MT_CATALOG,
    MT_CATALOG_ITEM,
    MT_ENTITY,
    MT_METADATA,
    MT_ORG,
    MT_ORG_NETWORK,
    MT_TASKS_LIST,
    MT_TEMPLATE,
    MT_VAPP,
    MT_VDC,
    el,
    link,
    text_el,
)


async def get_metadata(request: web.Request) -> web.Response:
    """``<Metadata>`` with no entries, for any entity the caller may see."""
    kind = request.match_info["kind"]
    finders = {
        "org": access.org,
        "vdc": access.vdc,
        "catalog": access.catalog,
        "catalogItem": access.catalog_item,
    }
    finders[kind](request)
    href = f"{ctx(request).api}/{kind}/{request.match_info['id']}/metadata"
    root = el("Metadata", {"href": href, "type": MT_METADATA})
    return xml_response(request, root, MT_METADATA)


async def get_network(request: web.Request) -> web.Response:
    nid = request.match_info["id"]
    net = request.app[STORE].state.networks.get(nid)
    if net is None or not ctx(request).sees(net.org_id):
        raise forbidden("network", nid)
    h = Hrefs(ctx(request).base)
    root = el(
        "OrgVdcNetwork",
        {
            "name": net.name,
            "id": urn("network", net.id),
            "href": h.network(net.id),
            "type": MT_ORG_NETWORK,
            "status": "1",
        },
        link("up", h.org(net.org_id), MT_ORG),
        text_el("Description", ""),
        el("Configuration", None, text_el("FenceMode", net.fence_mode)),
        text_el("IsShared", False),
    )
    return xml_response(request, root, MT_ORG_NETWORK)


async def get_tasks_list(request: web.Request) -> web.Response:
    org = access.org(request)
    state = request.app[STORE].state
    h = Hrefs(ctx(request).base)
    root = el(
        "TasksList",
        {"href": f"{h.api}/tasksList/{org.id}", "type": MT_TASKS_LIST, "name": "Tasks Lists"},
    )
    for t in sorted(state.tasks.values(), key=lambda t: t.start):
        if t.org_id == org.id:
            root.append(task(h, t, state))
    return xml_response(request, root, MT_TASKS_LIST)


def _locate(state: State, h: Hrefs, kind: str, uuid_: str) -> tuple[str, str, str] | None:
    """(owning org id, href, media type) of an entity, or None."""
    if kind == "org" and uuid_ in state.orgs:
        return uuid_, h.org(uuid_), MT_ORG
    if kind == "vdc" and uuid_ in state.vdcs:
        return state.vdcs[uuid_].org_id, h.vdc(uuid_), MT_VDC
    if kind == "catalog" and uuid_ in state.catalogs:
        return state.catalogs[uuid_].org_id, h.catalog(uuid_), MT_CATALOG
    if kind == "catalogitem" and uuid_ in state.items:
        org_id = state.catalogs[state.items[uuid_].catalog_id].org_id
        return org_id, h.item(uuid_), MT_CATALOG_ITEM
    if kind == "vapptemplate" and uuid_ in state.templates:
        return state.templates[uuid_].org_id, h.template(uuid_), MT_TEMPLATE
    if kind == "vapp" and uuid_ in state.vapps:
        return state.vapps[uuid_].org_id, h.vapp(uuid_), MT_VAPP
    return None


async def resolve_entity(request: web.Request) -> web.Response:
    """``urn:vcloud:<kind>:<uuid>`` → ``<Entity>`` with an alternate link to the object."""
    ident = request.match_info["urn"]
    parts = ident.split(":")
    kind = parts[2].lower() if len(parts) == 4 and parts[:2] == ["urn", "vcloud"] else ""
    h = Hrefs(ctx(request).base)
    found = _locate(request.app[STORE].state, h, kind, normalize(ident))
    if found is None or not ctx(request).sees(found[0]):
        raise forbidden("entity", ident)
    _org_id, href, media = found
    root = el(
        "Entity",
        {"name": ident, "id": ident, "href": f"{h.api}/entity/{ident}", "type": MT_ENTITY},
        link("alternate", href, media),
    )
    return xml_response(request, root, MT_ENTITY)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/{kind:org|vdc|catalog|catalogItem}/{id}/metadata", get_metadata)
    app.router.add_get("/api/network/{id}", get_network)
    app.router.add_get("/api/tasksList/{id}", get_tasks_list)
    app.router.add_get("/api/entity/{urn}", resolve_entity)
