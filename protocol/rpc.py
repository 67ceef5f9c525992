"""AMQP RPC to the server: other tools send REST calls as messages (DESIGN.md §3).

A request is published to the queue ``hcc.server.requests`` (through the default exchange,
routing key = the queue's name) with ``reply_to`` (a queue of the caller's, or RabbitMQ's
direct reply-to ``amq.rabbitmq.reply-to``), a ``correlation_id`` of the caller's choosing,
a ``message_id`` (also the idempotency key of a POST: a redelivered or repeated request
does not start a second task) and the header ``authorization: Bearer <API token>``. The
server runs it exactly like the same REST call — the same validation, roles and audit —
and replies to ``reply_to`` with the same ``correlation_id`` and an :class:`ApiReply`.

Requests that cannot be run at all (not JSON, not an :class:`ApiRequest`, no
``reply_to``) are copied to ``hcc.dead`` with the reason in a header; the caller also gets
a 400 reply when it named a ``reply_to``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.topology import AUTHORIZATION_HEADER

__all__ = ["AUTHORIZATION_HEADER", "ApiReply", "ApiRequest", "InvalidRequest", "parse_request"]

API_PREFIX = "/api/v1/"


class ApiRequest(BaseModel):
    """The body of a request message: one call of the REST API (/api/v1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = Field(1, description="Version of this format")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str = Field(
        pattern=r"^/api/v1/[A-Za-z0-9._~/:@-]*$",
        max_length=2000,
        description="Path of the REST call, e.g. /api/v1/tasks (no query string)",
        examples=["/api/v1/tasks"],
    )
    query: dict[str, str] = Field(default_factory=dict, description="Query parameters")
    body: Any = Field(None, description="JSON body of the call (POST, PUT, PATCH)")


class ApiReply(BaseModel):
    """The body of a reply: the REST API's status and JSON body (problem+json on errors)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    status: int = Field(ge=100, le=599, description="HTTP status of the call")
    body: Any = Field(None, description="JSON body of the response; null when it had none")


class InvalidRequest(Exception):
    """A message on hcc.server.requests that is not a request."""


def parse_request(data: bytes) -> ApiRequest | InvalidRequest:
    """Never raises: what is wrong is returned, so the server can still answer the caller."""
    try:
        request = ApiRequest.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        return InvalidRequest(f"not an API request: {where}: {first['msg']}")
    if any(part in (".", "..") for part in request.path.split("/")):
        return InvalidRequest("not an API request: path: '.' and '..' segments are not allowed")
    if request.path.startswith(f"{API_PREFIX}events/stream"):
        return InvalidRequest(
            "the event stream is not available over AMQP: bind a queue to hcc.events"
        )
    return request
