"""Health, readiness, metrics, the OpenAPI and AsyncAPI documents, the audit log, the UI's
static files."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select

from appliance.api import openapi
from appliance.api.context import api, services_of
from appliance.api.framework import API, PAGE_PARAMS, Page, page_params, respond
from appliance.api.schemas import AuditView, Health
from appliance.services import VERSION
from appliance.store.accounts import Role
from appliance.store.fleet import aware
from appliance.store.models import AuditRow, Node, OutboxRow
from protocol import asyncapi

UI_DIR = Path(__file__).resolve().parent.parent / "ui" / "static"


@api.route("GET", "/healthz", role=None, response=Health, tag="ops")
async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return respond(Health(status="ok"))


@api.route("GET", "/readyz", role=None, response=Health, tag="ops")
async def readyz(request: web.Request) -> web.Response:
    """Readiness: the store answers, the bus is connected and node events are being consumed
    (503 otherwise)."""
    services = services_of(request)
    db = await services.db_ok()
    bus = services.bus.ready.is_set()
    events = services.events.ready.is_set()
    checks = {"store": "ok" if db else "unavailable", "bus": "ok" if bus else "connecting",
              "events": "ok" if events else "starting"}  # fmt: skip
    ready = db and bus and events
    return respond(Health(status="ok" if ready else "degraded", checks=checks),
                   200 if ready else 503)  # fmt: skip


@api.route("GET", "/metrics", role=None, tag="ops")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics (names prefixed hcc_)."""
    services = services_of(request)
    async with services.sessions() as session:
        pending = await session.scalar(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.sent_at.is_(None))
        )
        nodes = list(await session.scalars(select(Node)))
    m = services.metrics
    m.outbox_pending.set(pending or 0)
    timeout = services.settings.heartbeat_timeout_s
    from appliance.store.fleet import node_online

    m.nodes_online.set(sum(1 for n in nodes if node_online(n, timeout)))
    body = generate_latest(m.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@api.route("GET", f"{API}/openapi.json", role=None, tag="ops")
async def openapi_json(request: web.Request) -> web.Response:
    """This API's OpenAPI 3.1 document."""
    return respond(openapi.build(api, version=VERSION))


@api.route("GET", f"{API}/asyncapi.json", role=None, tag="ops")
async def asyncapi_json(request: web.Request) -> web.Response:
    """The AsyncAPI 3.0 document of the AMQP interface (events, RPC; docs/amqp.md)."""
    return respond(asyncapi.build(version=VERSION))


@api.route("GET", f"{API}/audit", role=Role.ADMIN, response=Page[AuditView], params=PAGE_PARAMS,
           tag="ops")  # fmt: skip
async def audit(request: web.Request) -> web.Response:
    """Every mutating call: who, what, when, outcome. Newest first."""
    offset, limit = page_params(request)
    async with services_of(request).sessions() as session:
        total = await session.scalar(select(func.count()).select_from(AuditRow)) or 0
        rows = await session.scalars(
            select(AuditRow).order_by(AuditRow.id.desc()).offset(offset).limit(limit)
        )
        items = [
            AuditView(ts=aware(r.ts) or r.ts, actor=r.actor, role=r.role, method=r.method,
                      path=r.path, status=r.status, remote=r.remote)
            for r in rows
        ]  # fmt: skip
    return respond(Page[AuditView](items=items, total=total, offset=offset, limit=limit))


UI_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
}
"""The UI's page loads nothing from elsewhere and runs no inline script (appliance/ui/)."""


def mount_ui(app: web.Application) -> None:
    """Serve the web UI's static files at / when they are there."""
    index = UI_DIR / "index.html"
    if not index.exists():
        return

    async def root(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(index, headers=UI_HEADERS)

    app.router.add_get("/", root)
    app.router.add_static("/ui/", UI_DIR)
