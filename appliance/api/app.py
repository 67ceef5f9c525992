"""The server's aiohttp application: API, UI, health and metrics on one listener."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from appliance.api import (
    routes_auth,
    routes_clouds,
    routes_nodes,
    routes_offline,
    routes_ops,
    routes_tasks,
)
from appliance.api.context import SERVICES, api, services_of
from appliance.api.framework import (
    API,
    AUDIT_ACTOR,
    COOKIE,
    MUTATING,
    PRINCIPAL,
    Handler,
    ProblemError,
    Route,
    bearer_token,
    check_role,
)
from appliance.services import running
from appliance.settings import ServerSettings
from appliance.store import accounts

log = structlog.get_logger(__name__)

# importing the route modules registers their routes on `api`
ROUTE_MODULES = (routes_auth, routes_clouds, routes_nodes, routes_offline, routes_ops, routes_tasks)


def _token(request: web.Request) -> tuple[str | None, bool]:
    """The bearer token and whether it came from the cookie."""
    token = bearer_token(request)
    if token is not None:
        return token, False
    cookie = request.cookies.get(COOKIE)
    return cookie, cookie is not None


async def _authenticate(request: web.Request, route: Route | None) -> None:
    token, from_cookie = _token(request)
    if not token:
        return
    if from_cookie and request.method in MUTATING:
        # cookie-authenticated writes must come from our own pages (CSRF)
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            raise ProblemError(403, "cross-origin request refused")
    async with services_of(request).sessions() as session:
        request[PRINCIPAL] = await accounts.principal_for_token(session, token)
    # a stale token only matters where a user is needed: the UI's pages and the login
    # itself still load (a browser may keep an old cookie after its session ended)
    if request[PRINCIPAL] is None and route is not None and route.role is not None:
        raise ProblemError(401, "token unknown or expired", headers={"WWW-Authenticate": "Bearer"})


async def _audit(request: web.Request, status: int) -> None:
    who = request.get(PRINCIPAL)
    services = services_of(request)
    async with services.sessions.begin() as session:
        await accounts.record_audit(
            session,
            actor=who.name if who else request.get(AUDIT_ACTOR, "anonymous"),
            role=who.role.value if who and who.role else None,
            method=request.method,
            path=request.path,
            status=status,
            remote=request.remote,
        )


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authentication, roles, problem+json errors, audit of every mutating call, metrics."""
    started = time.perf_counter()
    route = api.find(request)
    status = 500
    try:
        await _authenticate(request, route)
        if route is not None:
            check_role(route, request.get(PRINCIPAL), request.method)
        response = await handler(request)
        status = response.status
        return response
    except ProblemError as exc:
        status = exc.status
        return exc.response()
    except web.HTTPException as exc:
        status = exc.status
        if not request.path.startswith(API) or exc.status < 400:
            raise
        detail = "no such resource" if exc.status == 404 else exc.reason
        return ProblemError(exc.status, detail).response()
    except Exception:
        log.exception("request failed", method=request.method, path=request.path)
        return ProblemError(500, "internal error; see the server log").response()
    finally:
        label = route.path if route else "other"
        metrics = services_of(request).metrics
        metrics.http_requests.labels(request.method, label, str(status)).inc()
        metrics.http_seconds.labels(label).observe(time.perf_counter() - started)
        if request.method in MUTATING and request.path.startswith(API):
            await _audit(request, status)


def create_app(settings: ServerSettings) -> web.Application:
    app = web.Application(middlewares=[api_middleware], client_max_size=4 * 1024 * 1024)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        async with running(settings) as services:
            app[SERVICES] = services
            yield

    app.cleanup_ctx.append(lifecycle)
    api.mount(app)
    routes_ops.mount_ui(app)
    return app
