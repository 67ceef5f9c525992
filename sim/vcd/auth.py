"""Version list, both login styles, the session resource (shared/vcd-api.md §1, §2).

* ``GET /api/versions``: no auth; LoginUrl is /api/sessions up to 35.0, then /cloudapi.
* ``POST /cloudapi/1.0.0/sessions`` (org users) and ``…/sessions/provider`` (System):
  Basic ``user@org:password`` → 200 JSON plus ``X-VMWARE-VCLOUD-ACCESS-TOKEN``; the token
  is then sent as ``Authorization: Bearer`` on /api and /transfer.
* ``POST /api/sessions`` (legacy, any org): → 200 ``<Session>`` plus ``x-vcloud-authorization``.
* ``GET /api/session`` → ``<Session>``; ``DELETE /api/session`` and
  ``DELETE /cloudapi/1.0.0/sessions/current`` → 204.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape as xml_escape

import structlog
from aiohttp import web

from sim.vcd import render
from sim.vcd.errors import VcdError, unauthorized
from sim.vcd.model import Org, Session, User
from sim.vcd.render import Hrefs
from sim.vcd.web import STORE, SUPPORTED_VERSIONS, VERSION, base_url, ctx, xml_response
from sim.vcd.xmlgen import MT_SESSION, MT_VERSIONS, VERSIONS_NS

log = structlog.get_logger()


async def get_versions(request: web.Request) -> web.Response:
    """``<SupportedVersions>`` in the versions namespace (real vCD 10.x shape, §1)."""
    base = xml_escape(base_url(request))
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<SupportedVersions xmlns="{VERSIONS_NS}">']
    for version in SUPPORTED_VERSIONS:
        deprecated = "true" if float(version) < 33 else "false"
        login = "/api/sessions" if float(version) <= 35 else "/cloudapi/1.0.0/sessions"
        provider = (
            f"<ProviderLoginUrl>{base}/cloudapi/1.0.0/sessions/provider</ProviderLoginUrl>"
            if float(version) >= 36
            else ""
        )
        parts.append(
            f'<VersionInfo deprecated="{deprecated}"><Version>{version}</Version>'
            f"<LoginUrl>{base}{login}</LoginUrl>{provider}</VersionInfo>"
        )
    parts.append("</SupportedVersions>")
    return web.Response(text="".join(parts), content_type=MT_VERSIONS)


def _credentials(request: web.Request) -> tuple[str, str, str]:
    """``Authorization: Basic base64(user@org:password)`` → (user, org, password)."""
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        raise unauthorized("Basic authentication with user@org:password is required.")
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise unauthorized("Malformed Basic credentials.") from exc
    who, sep, password = decoded.partition(":")
    user, at, org = who.rpartition("@")
    if not sep or not at or not user or not org:
        raise unauthorized("Credentials must have the form user@org:password.")
    return user, org, password


def _authenticate(request: web.Request, provider: bool | None) -> tuple[User, Org]:
    """Check credentials; provider=True only System, False only tenants, None either."""
    name, org_name, password = _credentials(request)
    state = request.app[STORE].state
    org = state.org_by_name(org_name)
    user = state.user_in_org(name, org.id) if org else None
    if org is None or user is None or not secrets.compare_digest(user.password, password):
        log.info("vcdsim.login_failed", user=name, org=org_name)
        raise unauthorized("Invalid credentials.")
    if provider is True and not org.is_system:
        raise unauthorized("Only System administrators may use the provider login.")
    if provider is False and org.is_system:
        raise unauthorized(
            "System administrators must log in at /cloudapi/1.0.0/sessions/provider."
        )
    return user, org


def _new_session(request: web.Request, user: User, org: Org, jwt: bool) -> Session:
    store = request.app[STORE]
    token = _jwt_like(user, org) if jwt else secrets.token_hex(16)
    session = Session(token=token, user_id=user.id, org_id=org.id)
    store.state.sessions[token] = session
    store.save()
    log.info("vcdsim.login", user=user.name, org=org.name, style="cloudapi" if jwt else "legacy")
    return session


def _jwt_like(user: User, org: Org) -> str:
    """An opaque bearer token with the shape of a JWT (header.payload.signature)."""

    def b64(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    header = b64({"alg": "none", "typ": "JWT"})
    payload = b64({"sub": user.name, "org": org.name, "jti": secrets.token_hex(8)})
    return f"{header}.{payload}.{secrets.token_urlsafe(24)}"


def _session_xml(request: web.Request, user: User, org: Org) -> ET.Element:
    return render.session(Hrefs(base_url(request)), org, user.name, user.id, user.role)


async def _cloudapi_login(request: web.Request, provider: bool) -> web.Response:
    user, org = _authenticate(request, provider)
    session = _new_session(request, user, org, jwt=True)
    version = request[VERSION]
    body = {
        "id": f"urn:vcloud:session:{session.token[-12:]}",
        "user": {"name": user.name, "id": f"urn:vcloud:user:{user.id}"},
        "org": {"name": org.name, "id": f"urn:vcloud:org:{org.id}"},
        "location": f"{org.id}@sim",
        "roles": [user.role],
        "sessionIdleTimeoutMinutes": 30,
    }
    return web.Response(
        text=json.dumps(body),
        headers={
            "Content-Type": f"application/json;version={version}",
            "X-VMWARE-VCLOUD-ACCESS-TOKEN": session.token,
            "X-VMWARE-VCLOUD-TOKEN-TYPE": "Bearer",
        },
    )


async def cloudapi_login(request: web.Request) -> web.Response:
    return await _cloudapi_login(request, provider=False)


async def cloudapi_provider_login(request: web.Request) -> web.Response:
    return await _cloudapi_login(request, provider=True)


async def legacy_login(request: web.Request) -> web.Response:
    user, org = _authenticate(request, provider=None)
    session = _new_session(request, user, org, jwt=False)
    return xml_response(
        request,
        _session_xml(request, user, org),
        MT_SESSION,
        headers={"x-vcloud-authorization": session.token},
    )


async def get_session(request: web.Request) -> web.Response:
    c = ctx(request)
    return xml_response(
        request,
        _session_xml(request, c.user, c.org),
        MT_SESSION,
        headers={"x-vcloud-authorization": c.session.token},
    )


async def delete_session(request: web.Request) -> web.Response:
    store = request.app[STORE]
    store.state.sessions.pop(ctx(request).session.token, None)
    store.save()
    return web.Response(status=204)


async def not_acceptable_login(request: web.Request) -> web.Response:
    raise VcdError(405, "METHOD_NOT_ALLOWED", "Use POST to log in.")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/versions", get_versions)
    app.router.add_post("/api/sessions", legacy_login)
    app.router.add_post("/cloudapi/1.0.0/sessions", cloudapi_login)
    app.router.add_post("/cloudapi/1.0.0/sessions/provider", cloudapi_provider_login)
    app.router.add_get("/api/session", get_session)
    app.router.add_delete("/api/session", delete_session)
    app.router.add_delete("/cloudapi/1.0.0/sessions/current", delete_session)
