"""Enrollment with the server and cloud-config refresh (HTTP, aiohttp client).

``POST /api/v1/enroll`` with ``{"token", "node_id", "fingerprint", "receiver_url", "version"}``
answers ``{"node_token", "amqp_url", "server_public_key", "clouds": [...]}``.
``GET /api/v1/node/config`` (``Authorization: Bearer <node_token>``) answers ``{"clouds": [...]}``.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workers.runtime.config import CloudEntry, NodeConfig

ENROLL_PATH = "/api/v1/enroll"
CONFIG_PATH = "/api/v1/node/config"
TRANSFER_TOKEN_PATH = "/api/v1/node/transfer-token"


class EnrollmentError(Exception):
    """The server refused or could not be reached. ``status`` is the HTTP status if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _EnrollAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    node_token: str = Field(repr=False)
    amqp_url: str = Field(repr=False)
    server_public_key: str
    clouds: list[CloudEntry] = Field(default_factory=list)


class _ConfigAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    clouds: list[CloudEntry] = Field(default_factory=list)


def hcc_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hcc")
    except PackageNotFoundError:
        return "0+unknown"


async def _request(
    method: str, url: str, *, json: Any = None, token: str | None = None, timeout_s: float = 30
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url, json=json, headers=headers) as response,
        ):
            if response.status >= 400:
                detail = (await response.text())[:500]
                raise EnrollmentError(
                    f"{method} {url}: HTTP {response.status}: {detail}", response.status
                )
            return await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise EnrollmentError(f"{method} {url}: {exc!r}") from exc


async def enroll(
    server_url: str, token: str, node_id: str, fingerprint: str, receiver_url: str
) -> NodeConfig:
    """Trade the one-time ``token`` for this node's broker user, server key and clouds."""
    payload = {
        "token": token,
        "node_id": node_id,
        "fingerprint": fingerprint,
        "receiver_url": receiver_url,
        "version": hcc_version(),
    }
    data = await _request("POST", server_url.rstrip("/") + ENROLL_PATH, json=payload)
    try:
        answer = _EnrollAnswer.model_validate(data)
    except ValidationError as exc:
        raise EnrollmentError(f"unexpected enrollment answer: {exc.errors()[0]['loc']}") from exc
    return NodeConfig(
        node_id=node_id,
        server_url=server_url,
        node_token=answer.node_token,
        amqp_url=answer.amqp_url,
        server_public_key=answer.server_public_key,
        clouds=answer.clouds,
    )


async def renew_transfer_token(
    server_url: str, node_token: str, artifact_id: str, destination_node: str
) -> str:
    """A fresh capability token for a send this node is running (the old one expired)."""
    data = await _request(
        "POST", server_url.rstrip("/") + TRANSFER_TOKEN_PATH, token=node_token,
        json={"artifact_id": artifact_id, "destination_node": destination_node},
    )  # fmt: skip
    token = data.get("token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise EnrollmentError("the server answered no transfer token")
    return token


async def fetch_clouds(server_url: str, node_token: str) -> list[CloudEntry]:
    """The clouds this node serves, with credentials, as the server has them now."""
    data = await _request("GET", server_url.rstrip("/") + CONFIG_PATH, token=node_token)
    try:
        return _ConfigAnswer.model_validate(data).clouds
    except ValidationError as exc:
        raise EnrollmentError(f"unexpected node config answer: {exc.errors()[0]['loc']}") from exc
