"""Request plumbing shared by every route module: app keys, the per-request context, the
error and authentication middlewares, and XML responses with vCD's headers.
"""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from sim.vcd.errors import VcdError, error_element, unauthorized
from sim.vcd.model import Org, Session, User
from sim.vcd.xmlgen import MT_ERROR, to_bytes

if TYPE_CHECKING:
    from sim.vcd.faults import Faults
    from sim.vcd.store import Store
    from sim.vcd.tasks import TaskRunner

log = structlog.get_logger()

SUPPORTED_VERSIONS = tuple(f"{v}.0" for v in range(29, 38))
"""What /api/versions lists. pyvcloud 23.0.4 picks 36.0 (the highest it knows)."""
DEFAULT_VERSION = "36.0"

STORE: web.AppKey[Store] = web.AppKey("vcdsim_store")
FAULTS: web.AppKey[Faults] = web.AppKey("vcdsim_faults")
TASKS: web.AppKey[TaskRunner] = web.AppKey("vcdsim_tasks")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PUBLIC = {("GET", "/api/versions"), ("POST", "/api/sessions")}
_VERSION_RE = re.compile(r"version\s*=\s*([0-9][0-9.]*)")


@dataclass(frozen=True)
class Ctx:
    """Who is calling (the session's user and org) and in which API version."""

    session: Session
    user: User
    org: Org
    version: str
    base: str
    """``scheme://host:port``: every href is absolute."""

    @property
    def sysadmin(self) -> bool:
        return self.org.is_system

    @property
    def api(self) -> str:
        return self.base + "/api"

    def version_at_least(self, major: int) -> bool:
        return float(self.version) >= major

    def sees(self, org_id: str) -> bool:
        return self.sysadmin or org_id == self.org.id


CTX = web.RequestKey("vcdsim_ctx", Ctx)
REQUEST_ID = web.RequestKey("vcdsim_request_id", str)
VERSION = web.RequestKey("vcdsim_version", str)


def ctx(request: web.Request) -> Ctx:
    return request[CTX]


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def accept_version(request: web.Request) -> str | None:
    match = _VERSION_RE.search(request.headers.get("Accept", ""))
    return match.group(1) if match else None


def xml_response(
    request: web.Request,
    elem: ET.Element,
    media_type: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    version = request.get(VERSION) or DEFAULT_VERSION
    return web.Response(
        body=to_bytes(elem),
        status=status,
        headers={"Content-Type": f"{media_type};version={version}", **(headers or {})},
    )


def _error_response(request: web.Request, status: int, minor: str, message: str) -> web.Response:
    request_id: str = request[REQUEST_ID]
    if request.path.startswith("/cloudapi/"):
        body = {
            "minorErrorCode": minor,
            "message": f"[ {request_id} ] {message}",
            "stackTrace": None,
        }
        return web.Response(text=json.dumps(body), status=status, content_type="application/json")
    return xml_response(
        request, error_element(status, minor, message, request_id), MT_ERROR, status
    )


_HTTP_MINOR = {404: "RESOURCE_NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "BAD_REQUEST"}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes vCD's Error XML; every answer gets a request id header."""
    request[REQUEST_ID] = str(uuid.uuid4())
    try:
        response = await handler(request)
    except VcdError as exc:
        response = _error_response(request, exc.status, exc.minor, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        minor = _HTTP_MINOR.get(exc.status, "BAD_REQUEST")
        response = _error_response(request, exc.status, minor, exc.reason)
    except ConnectionResetError:
        raise
    except Exception:
        log.exception("vcdsim.internal_error", path=request.path)
        response = _error_response(request, 500, "INTERNAL_SERVER_ERROR", "Internal Server Error.")
    if not response.prepared:
        response.headers["X-VMWARE-VCLOUD-REQUEST-ID"] = request[REQUEST_ID]
    return response


def _token(request: web.Request) -> str | None:
    token = request.headers.get("x-vcloud-authorization")
    if token:
        return token
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


def _is_public(request: web.Request) -> bool:
    path = request.path
    return (
        (request.method, path) in _PUBLIC
        or (path.startswith("/cloudapi/1.0.0/sessions") and request.method == "POST")
        or path.startswith("/_sim/")
    )


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the session token; check the API version asked for in ``Accept`` on /api."""
    version = accept_version(request)
    on_api = request.path.startswith("/api/") and request.path != "/api/versions"
    if on_api and (version is None or version not in SUPPORTED_VERSIONS):
        raise VcdError(
            406,
            "NOT_ACCEPTABLE",
            "The request has invalid accept header: invalid or missing API version "
            f"{version!r}; supported: {', '.join(SUPPORTED_VERSIONS)}.",
        )
    request[VERSION] = version if version in SUPPORTED_VERSIONS else DEFAULT_VERSION
    if _is_public(request):
        return await handler(request)
    token = _token(request)
    store = request.app[STORE]
    session = store.state.sessions.get(token) if token else None
    if session is None:
        raise unauthorized("This operation is denied: no valid session.")
    user = store.state.users.get(session.user_id)
    org = store.state.orgs.get(session.org_id)
    if user is None or org is None:
        raise unauthorized("This operation is denied: the session's user no longer exists.")
    request[CTX] = Ctx(session, user, org, request[VERSION], base_url(request))
    return await handler(request)
