"""Login, logout, the current user, and user management (admin)."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from appliance.api.context import api, services_of
from appliance.api.framework import (
    API,
    AUDIT_ACTOR,
    COOKIE,
    PAGE_PARAMS,
    Page,
    ProblemError,
    bearer_token,
    page_params,
    principal,
    read_body,
    respond,
)
from appliance.api.schemas import LoginRequest, LoginResponse, Me, UserCreate, UserView
from appliance.store import accounts
from appliance.store.models import User


@api.route("POST", f"{API}/auth/login", role=None, body=LoginRequest, response=LoginResponse,
           tag="auth")  # fmt: skip
async def login(request: web.Request) -> web.Response:
    """Exchange a user name and password for a bearer token."""
    body = await read_body(request, LoginRequest)
    request[AUDIT_ACTOR] = body.username
    services = services_of(request)
    ttl = timedelta(seconds=services.settings.token_ttl_s)
    async with services.sessions.begin() as session:
        got = await accounts.login(session, body.username, body.password.get_secret_value(), ttl)
    if got is None:
        raise ProblemError(401, "wrong user name or password")
    token, user, expires = got
    response = respond(
        LoginResponse(token=token, expires_at=expires, username=user.name,
                      role=accounts.Role(user.role))
    )  # fmt: skip
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="Strict", max_age=int(ttl.total_seconds()),
        secure=request.secure, path="/",
    )  # fmt: skip
    return response


@api.route("POST", f"{API}/auth/logout", status=204, tag="auth")
async def logout(request: web.Request) -> web.Response:
    """Revoke the token of this request."""
    principal(request)
    token = bearer_token(request) or request.cookies.get(COOKIE)
    if token:
        async with services_of(request).sessions.begin() as session:
            await accounts.logout(session, token)
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path="/")
    return response


@api.route("GET", f"{API}/auth/me", response=Me, tag="auth")
async def me(request: web.Request) -> web.Response:
    """Who the token belongs to."""
    who = principal(request)
    assert who.role is not None
    return respond(Me(username=who.name, role=who.role))


@api.route("GET", f"{API}/users", role=accounts.Role.ADMIN, response=Page[UserView],
           params=PAGE_PARAMS, tag="auth")  # fmt: skip
async def list_users(request: web.Request) -> web.Response:
    """Users and their roles."""
    offset, limit = page_params(request)
    async with services_of(request).sessions() as session:
        users = list(await session.scalars(select(User).order_by(User.name)))
    items = [UserView(username=u.name, role=accounts.Role(u.role), created_at=u.created_at)
             for u in users]  # fmt: skip
    return respond(
        Page[UserView](items=items[offset : offset + limit], total=len(items), offset=offset,
                       limit=limit)
    )  # fmt: skip


@api.route("POST", f"{API}/users", role=accounts.Role.ADMIN, body=UserCreate, response=UserView,
           status=201, tag="auth")  # fmt: skip
async def create_user(request: web.Request) -> web.Response:
    """Add a user with a role (admin, operator, viewer)."""
    body = await read_body(request, UserCreate)
    try:
        async with services_of(request).sessions.begin() as session:
            user = await accounts.create_user(
                session, body.username, body.password.get_secret_value(), body.role
            )
    except IntegrityError as exc:
        raise ProblemError(409, f"user {body.username!r} exists") from exc
    return respond(UserView(username=user.name, role=body.role, created_at=user.created_at), 201)
