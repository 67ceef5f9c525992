"""Find an entity by the id in the URL, as the caller may see it.

Org users see their own org; System administrators see every org. An unknown id and an
id of another org look the same: 403 ACCESS_TO_RESOURCE_IS_FORBIDDEN (vCD reveals nothing).
"""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web

from sim.vcd.errors import forbidden
from sim.vcd.model import Catalog, CatalogItem, Org, State, VApp, VAppTemplate, Vdc
from sim.vcd.web import STORE, ctx

T = TypeVar("T", Org, Vdc, Catalog, CatalogItem, VAppTemplate, VApp)


def _org_of(entity: Org | Vdc | Catalog | CatalogItem | VAppTemplate | VApp, state: State) -> str:
    if isinstance(entity, Org):
        return entity.id
    if isinstance(entity, CatalogItem):
        return state.catalogs[entity.catalog_id].org_id
    return entity.org_id


def _visible(request: web.Request, table: dict[str, T], kind: str) -> T:
    ident = request.match_info["id"]
    entity = table.get(ident)
    state = request.app[STORE].state
    if entity is None or not ctx(request).sees(_org_of(entity, state)):
        raise forbidden(kind, ident)
    return entity


def org(request: web.Request) -> Org:
    return _visible(request, request.app[STORE].state.orgs, "org")


def vdc(request: web.Request) -> Vdc:
    return _visible(request, request.app[STORE].state.vdcs, "vdc")


def catalog(request: web.Request) -> Catalog:
    return _visible(request, request.app[STORE].state.catalogs, "catalog")


def catalog_item(request: web.Request) -> CatalogItem:
    return _visible(request, request.app[STORE].state.items, "catalogItem")


def template(request: web.Request) -> VAppTemplate:
    return _visible(request, request.app[STORE].state.templates, "vAppTemplate")


def vapp(request: web.Request) -> VApp:
    return _visible(request, request.app[STORE].state.vapps, "vApp")
