"""A thin layer over aiohttp: declared routes, problem+json errors, bodies, pages, OpenAPI.

Each route is declared once with its request and response models and the least role it
needs; the router, the role check and the OpenAPI 3.1 document all come from that one
declaration, so they cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Generic, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from appliance.store.accounts import Principal, Role

PROBLEM = "application/problem+json"
API = "/api/v1"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ROLE_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}

PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("principal", Principal)
AUDIT_ACTOR: web.RequestKey[str] = web.RequestKey("audit_actor", str)
"""Who to name in the audit log when no user is logged in (a login attempt, a node)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(ApiModel, Generic[T]):
    items: list[T]
    total: int = Field(description="Items in the whole collection")
    offset: int
    limit: int


class Problem(ApiModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        None, description="Validation errors: one per field, with its location"
    )


class ProblemError(Exception):
    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.errors = errors
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The problem+json body."""
        return Problem(
            title=self.title, status=self.status, detail=self.detail, errors=self.errors
        ).model_dump(exclude_none=True)

    def response(self) -> web.Response:
        return web.Response(
            status=self.status,
            text=json.dumps(self.body()),
            content_type=PROBLEM,
            headers=self.headers,
        )


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    role: Role | None = Role.VIEWER
    """Least role; None: no user needed (login, enrollment, health)."""
    body: Any = None
    """A pydantic model (or an annotated union of models) for the JSON body."""
    response: Any = None
    status: int = 200
    tag: str = "api"
    params: tuple[tuple[str, str, str], ...] = ()
    """Query parameters: (name, type, description)."""


@dataclass
class Api:
    routes: list[Route] = field(default_factory=list)

    def route(self, method: str, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            summary = kwargs.pop("summary", None) or (handler.__doc__ or "").strip().split("\n")[0]
            self.routes.append(Route(method, path, handler, summary, **kwargs))
            return handler

        return register

    def mount(self, app: web.Application) -> None:
        for r in self.routes:
            app.router.add_route(r.method, r.path, r.handler)

    def find(self, request: web.Request) -> Route | None:
        handler = request.match_info.route.handler
        for r in self.routes:
            if r.handler is handler and r.method == request.method:
                return r
        return None


COOKIE = "hcc_token"
"""The UI keeps the API token in an HttpOnly, SameSite=Strict cookie."""


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if there is one."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def principal(request: web.Request) -> Principal:
    p: Principal | None = request.get(PRINCIPAL)
    if p is None:
        raise ProblemError(401, "log in first", headers={"WWW-Authenticate": "Bearer"})
    return p


def check_role(route: Route, who: Principal | None, method: str) -> None:
    if route.role is None:
        return
    if who is None or who.role is None:
        raise ProblemError(401, "a valid bearer token is required",
                           headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    if method in MUTATING and who.role == Role.VIEWER and route.role != Role.VIEWER:
        raise ProblemError(403, "viewers cannot change anything")
    if ROLE_RANK[who.role] < ROLE_RANK[route.role]:
        raise ProblemError(403, f"this needs the {route.role.value} role")


async def read_body(request: web.Request, model: type[M]) -> M:
    """Parse and validate a JSON body; 400 for bad JSON, 422 naming each invalid field."""
    if request.content_type not in ("application/json", ""):
        raise ProblemError(415, f"send application/json, not {request.content_type}")
    raw = await request.read()
    try:
        data = json.loads(raw or b"null")
    except ValueError as exc:
        raise ProblemError(400, f"body is not valid JSON: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = [
            {"loc": list(e["loc"]), "field": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        fields = ", ".join(e["field"] or "<body>" for e in errors)
        raise ProblemError(422, f"invalid fields: {fields}", errors=errors) from exc


def page_params(request: web.Request, default: int = 50, most: int = 500) -> tuple[int, int]:
    try:
        offset = int(request.query.get("offset", 0))
        limit = int(request.query.get("limit", default))
    except ValueError as exc:
        raise ProblemError(400, "offset and limit must be integers") from exc
    if offset < 0 or not 1 <= limit <= most:
        raise ProblemError(400, f"need offset >= 0 and 1 <= limit <= {most}")
    return offset, limit


def respond(model: BaseModel | list[Any] | dict[str, Any], status: int = 200) -> web.Response:
    if isinstance(model, BaseModel):
        text = model.model_dump_json()
    else:
        text = json.dumps(model, default=str)
    return web.Response(status=status, text=text, content_type="application/json")


PAGE_PARAMS = (
    ("offset", "integer", "Items to skip"),
    ("limit", "integer", "Items per page (1-500, default 50)"),
)
