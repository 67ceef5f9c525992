"""The sender's HTTP edge: one aiohttp session to a receiver, token refresh, error mapping.

aiohttp exceptions stop here: callers see :mod:`workers.transfer.errors` only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp

from workers.transfer.errors import (
    BadRequest,
    ChunkHashMismatch,
    ChunkTooLarge,
    FingerprintMismatch,
    Forbidden,
    ManifestConflict,
    NotFound,
    StorageFull,
    TransferError,
    TransferNetworkError,
    Unauthorized,
)
from workers.transfer.manifest import FinalManifest, ManifestDecl
from workers.transfer.tls import client_fingerprint

_BY_STATUS: dict[int, type[TransferError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: ManifestConflict,
    413: ChunkTooLarge,
    422: ChunkHashMismatch,
    507: StorageFull,
}
NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)
Wire = bytes | bytearray | memoryview
Body = Wire | Callable[[], AsyncIterator[Wire]]


async def _error_from(resp: aiohttp.ClientResponse) -> TransferError:
    text = await resp.text()
    try:
        problem = json.loads(text)
        code, detail = str(problem.get("code", "")), str(problem.get("detail", text))
    except ValueError:
        code, detail = "", text[:200]
    detail = f"{resp.status} {resp.method} {resp.url.path}: {detail}"
    if resp.status == 400:
        return BadRequest(code or "bad-request", detail)
    cls = _BY_STATUS.get(resp.status)
    if cls is not None:
        return cls(detail, code=code or None)
    return TransferNetworkError(detail)


class ReceiverClient:
    """Requests to one receiver for one artifact, with the current capability token."""

    def __init__(
        self,
        base_url: str,
        fingerprint: str,
        artifact_id: str,
        token: str,
        refresh_token: Callable[[], Awaitable[str]],
        streams: int,
    ) -> None:
        self.base = f"{base_url.rstrip('/')}/transfer/v1/{artifact_id}"
        self.token = token
        self._refresh = refresh_token
        self._refresh_lock = asyncio.Lock()
        self.refreshes = 0
        try:
            pin = client_fingerprint(fingerprint)
        except ValueError as exc:
            raise FingerprintMismatch(
                "destination_fingerprint is not a hex SHA-256", code="bad-fingerprint"
            ) from exc
        # Two connections per stream (a chunk's body, the next chunk's headers, see
        # workers/transfer/sender.py) and one for manifest, HEAD and commit requests.
        connector = aiohttp.TCPConnector(limit=2 * streams + 1, ssl=pin, enable_cleanup_closed=True)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def close(self) -> None:
        await self.session.close()

    async def _refresh_token(self, stale: str) -> None:
        async with self._refresh_lock:
            if self.token == stale:
                self.token = await self._refresh()
                self.refreshes += 1

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Body | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One request; on an expired token, refresh once and retry. Returns parsed JSON."""
        for _ in range(2):
            token = self.token
            hdrs = {"Authorization": f"Bearer {token}", **(headers or {})}
            data: Any = body() if callable(body) else body
            try:
                async with self.session.request(
                    method, self.base + path, data=data, headers=hdrs
                ) as resp:
                    if resp.status < 300:
                        if method == "HEAD":
                            return True
                        return await resp.json()
                    if method == "HEAD" and resp.status == 404:
                        return False
                    err = await _error_from(resp)
            except aiohttp.ServerFingerprintMismatch as exc:
                raise FingerprintMismatch(
                    "the receiver's certificate is not the one the server pinned"
                ) from exc
            except NETWORK_ERRORS as exc:
                raise TransferNetworkError(f"{method} {path}: {exc!r}") from exc
            if isinstance(err, Unauthorized) and err.code == "token-expired":
                await self._refresh_token(token)
                continue
            raise err
        raise Unauthorized("the refreshed token was refused as expired too")

    async def put_manifest(self, decl: ManifestDecl) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "PUT",
            "/manifest",
            body=decl.model_dump_json().encode(),
            headers={"Content-Type": "application/json"},
        )
        return result

    async def commit(self, final: FinalManifest) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "POST",
            "/commit",
            body=final.model_dump_json().encode(),
            headers={"Content-Type": "application/json"},
        )
        return result

    def chunk_path(self, path: str, index: int) -> str:
        return f"/{quote(path, safe='')}/{index}"

    async def chunk_held(self, path: str, index: int) -> bool:
        return bool(await self.request("HEAD", self.chunk_path(path, index)))

    async def put_chunk(
        self,
        path: str,
        index: int,
        digest: str,
        raw_length: int,
        body: Body,
        wire_length: int,
        zstd: bool,
    ) -> None:
        headers = {
            "X-Hcc-Hash": digest,
            "X-Hcc-Length": str(raw_length),
            "Content-Length": str(wire_length),
            "Content-Type": "application/octet-stream",
        }
        if zstd:
            headers["X-Hcc-Encoding"] = "zstd"
        await self.request("PUT", self.chunk_path(path, index), body=body, headers=headers)
