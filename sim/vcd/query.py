"""The query service: ``GET /api/query`` (QueryList) and typed queries with formats
records / idrecords / references, filters, paging and sorting (shared/vcd-api.md §4c).
"""

from __future__ import annotations

import math
import urllib.parse
import xml.etree.ElementTree as ET

from aiohttp import web

from sim.vcd.errors import bad_request, forbidden
from sim.vcd.query_filter import matches, parse_filter, raw_params
from sim.vcd.query_records import ADMIN_TYPES, TYPES
from sim.vcd.render import Hrefs
from sim.vcd.web import STORE, Ctx, ctx, xml_response
from sim.vcd.xmlgen import MT_IDRECORDS, MT_QUERY_LIST, MT_RECORDS, MT_REFERENCES, el, link

FORMATS = {"records": MT_RECORDS, "idrecords": MT_IDRECORDS, "references": MT_REFERENCES}
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 128


def _types_for(c: Ctx) -> list[str]:
    return list(TYPES) + (list(ADMIN_TYPES) if c.sysadmin else [])


def query_list(c: Ctx) -> ET.Element:
    root = el("QueryList", {"href": f"{c.api}/query", "type": MT_QUERY_LIST})
    for qtype in _types_for(c):
        for fmt, media in FORMATS.items():
            root.append(link("down", f"{c.api}/query?type={qtype}&format={fmt}", media, qtype))
    return root


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    try:
        value = int(params.get(name, default))
    except ValueError as exc:
        raise bad_request(f"Query parameter {name} must be an integer.") from exc
    if value < 1:
        raise bad_request(f"Query parameter {name} must be positive.")
    return value


def _sorted(rows: list[dict[str, str]], params: dict[str, str]) -> list[dict[str, str]]:
    asc, desc = params.get("sortAsc"), params.get("sortDesc")
    key, reverse = (asc, False) if asc else (desc, True) if desc else ("name", False)
    return sorted(rows, key=lambda r: r.get(key or "name", ""), reverse=reverse)


def run_query(
    c: Ctx, state_rows: list[tuple[str, dict[str, str]]], params: dict[str, str]
) -> tuple[list[dict[str, str]], int]:
    """Visible, filtered, sorted rows of one page, plus the total before paging."""
    flt = parse_filter(params.get("filter"), params.get("filterEncoded", "").lower() == "true")
    rows = [r for org_id, r in state_rows if c.sees(org_id) and matches(flt, r)]
    return _sorted(rows, params), len(rows)


def _page_href(c: Ctx, raw: str, page: int) -> str:
    kept = [p for p in raw.split("&") if p and not p.startswith("page=")]
    return f"{c.api}/query?{'&'.join([*kept, f'page={page}'])}"


async def get_query(request: web.Request) -> web.Response:
    c = ctx(request)
    raw = request.rel_url.raw_query_string
    if not raw:
        return xml_response(request, query_list(c), MT_QUERY_LIST)
    params = raw_params(raw)
    qtype = urllib.parse.unquote(params.get("type", ""))
    fmt = params.get("format", "records")
    if qtype not in _types_for(c):
        if qtype in ADMIN_TYPES:
            raise forbidden("query", qtype)
        raise bad_request(f"Unknown query type {qtype!r}.")
    if fmt not in FORMATS:
        raise bad_request(f"Unknown query format {fmt!r}.")
    base_type = ADMIN_TYPES.get(qtype, qtype)
    name, builder = TYPES[base_type]
    if qtype in ADMIN_TYPES:
        name = "Admin" + name
    page = _int_param(params, "page", 1)
    page_size = min(_int_param(params, "pageSize", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
    rows, total = run_query(c, list(builder(Hrefs(c.base), request.app[STORE].state)), params)
    last = max(1, math.ceil(total / page_size))
    if page > last and total:
        raise bad_request(f"Page {page} is past the last page ({last}).")
    shown = rows[(page - 1) * page_size : page * page_size]
    root = _result_root(c, fmt, qtype, raw, page, page_size, total, name)
    for nav_rel, nav_page in (("nextPage", page + 1), ("previousPage", page - 1)):
        if 1 <= nav_page <= last and nav_page != page:
            root.append(link(nav_rel, _page_href(c, raw, nav_page), FORMATS[fmt]))
    for row in shown:
        root.append(_record(fmt, name, row))
    return xml_response(request, root, FORMATS[fmt])


def _result_root(
    c: Ctx, fmt: str, qtype: str, raw: str, page: int, page_size: int, total: int, name: str
) -> ET.Element:
    tag = f"{name}References" if fmt == "references" else "QueryResultRecords"
    root = el(
        tag,
        {
            "total": str(total),
            "pageSize": str(page_size),
            "page": str(page),
            "name": qtype,
            "type": FORMATS[fmt],
            "href": _page_href(c, raw, page),
        },
    )
    for alt_fmt, media in FORMATS.items():
        if alt_fmt != fmt:
            alt = raw.replace(f"format={fmt}", f"format={alt_fmt}")
            root.append(link("alternate", f"{c.api}/query?{alt}", media))
    return root


def _record(fmt: str, name: str, row: dict[str, str]) -> ET.Element:
    if fmt == "references":
        return el(
            f"{name}Reference",
            {"type": _ref_type(name), "name": row["name"], "href": row["href"], "id": row["id"]},
        )
    attrs = dict(row)
    if fmt == "records":
        attrs.pop("id", None)
    return el(f"{name}Record", attrs)


def _ref_type(name: str) -> str:
    base = name.removeprefix("Admin")
    kind = {
        "OrgVdc": "vdc",
        "VApp": "vApp",
        "VAppTemplate": "vAppTemplate",
        "CatalogItem": "catalogItem",
        "Catalog": "catalog",
        "Task": "task",
        "VM": "vm",
        "OrgVdcNetwork": "network",
    }[base]
    return f"application/vnd.vmware.vcloud.{kind}+xml"


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/query", get_query)
