"""A small client of the server's REST API for the CLI (aiohttp, problem+json aware)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp

DEFAULT_SERVER = "http://127.0.0.1:8080"


class ApiError(Exception):
    """The server answered with a problem; ``str()`` is the operator-facing message."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or "error"
        fields = [f"{e.get('field')}: {e.get('msg')}" for e in problem.get("errors") or []]
        super().__init__(f"{status} {detail}" + ("\n  " + "\n  ".join(fields) if fields else ""))


@dataclass
class Credentials:
    server: str
    token: str | None = None
    user: str | None = None
    password: str | None = None

    @classmethod
    def from_env(cls, server: str | None) -> Credentials:
        return cls(
            server=(server or os.environ.get("HCC_SERVER") or DEFAULT_SERVER).rstrip("/"),
            token=os.environ.get("HCC_TOKEN"),
            user=os.environ.get("HCC_USER"),
            password=os.environ.get("HCC_PASSWORD"),
        )


class Client:
    def __init__(self, creds: Credentials) -> None:
        self.creds = creds
        self._session: aiohttp.ClientSession | None = None
        self._token = creds.token

    async def __aenter__(self) -> Client:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(sock_connect=10, sock_read=60)
        )
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._session is not None
        await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use the client in `async with`"
        return self._session

    async def _auth_headers(self) -> dict[str, str]:
        if self._token is None and self.creds.user and self.creds.password:
            data = await self.request(
                "POST", "/api/v1/auth/login",
                {"username": self.creds.user, "password": self.creds.password}, auth=False,
            )  # fmt: skip
            self._token = data["token"]
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def request(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        headers = await self._auth_headers() if auth else {}
        url = self.creds.server + path
        try:
            async with self.session.request(method, url, json=body, headers=headers) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    try:
                        problem = json.loads(text)
                    except ValueError:
                        problem = {"detail": text[:200] or resp.reason}
                    raise ApiError(resp.status, problem)
                return json.loads(text) if text else None
        except aiohttp.ClientConnectionError as exc:
            raise ApiError(0, {"detail": f"cannot reach the server at {url}: {exc}"}) from exc

    async def get(self, path: str) -> Any:
        return await self.request("GET", path)

    async def post(self, path: str, body: Any = None) -> Any:
        return await self.request("POST", path, body)

    async def all_pages(self, path: str, limit: int = 500) -> list[Any]:
        items: list[Any] = []
        sep = "&" if "?" in path else "?"
        while True:
            page = await self.get(f"{path}{sep}offset={len(items)}&limit={limit}")
            items.extend(page["items"])
            if len(items) >= page["total"] or not page["items"]:
                return items

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The server's SSE stream, one notification at a time."""
        headers = await self._auth_headers()
        url = self.creds.server + "/api/v1/events/stream"
        timeout = aiohttp.ClientTimeout(sock_connect=10, sock_read=None)
        async with self.session.get(url, headers=headers, timeout=timeout) as resp:
            if resp.status >= 400:
                raise ApiError(resp.status, {"detail": await resp.text()})
            async for raw in resp.content:
                line = raw.decode().strip()
                if line.startswith("data: "):
                    yield json.loads(line[6:])
