"""A vCD API session over aiohttp: TLS, version negotiation, login, re-login, tasks, queries.

* TLS: the system trust store (or ``options["ca_file"]``); ``thumbprint`` pins the server
  certificate by SHA-256; ``insecure`` skips verification and says so in a warning.
* Versions: ``GET /api/versions``, then the highest version in [29.0, 39.1]
  (``options["api_version"]`` forces one and skips negotiation).
* Login: API ≥ 33: ``POST /cloudapi/1.0.0/sessions`` (org users) or ``…/sessions/provider``
  (org ``System``), Bearer token, then ``GET /api/session``; below 33 the legacy
  ``POST /api/sessions`` and ``x-vcloud-authorization``. A 401 on any later call logs in
  again once and repeats the call.
* Every href vCD hands out is rebased onto the configured endpoint, so credentials never go
  to another host than the one configured.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from xml.etree.ElementTree import Element

import aiohttp
import structlog

from workers.clouds import _vcd_xml as x
from workers.clouds.base import CloudAuthError, CloudConfig, CloudError, CloudUnreachable

log = structlog.get_logger()
LOWEST = (29, 0)
HIGHEST = (39, 1)
CLOUDAPI_FROM = (33, 0)
PAGE_SIZE = 128


def tls_option(config: CloudConfig) -> ssl.SSLContext | aiohttp.Fingerprint | bool:
    if config.thumbprint:
        digest = bytes.fromhex(config.thumbprint.replace(":", "").strip())
        if len(digest) != 32:
            raise CloudError("the vCD thumbprint must be a SHA-256 digest", code="bad-config")
        return aiohttp.Fingerprint(digest)
    if config.insecure:
        log.warning("vcd.tls_unverified", cloud=config.cloud_id, endpoint=config.endpoint)
        return False
    return ssl.create_default_context(cafile=config.options.get("ca_file"))


def split_user(config: CloudConfig) -> tuple[str, str]:
    user, _, org = config.username.partition("@")
    org = config.org or org
    if not org:
        raise CloudError(
            "a vCD cloud needs an org (System for a provider login)", code="bad-config"
        )
    return user, org


def connection_error(exc: BaseException, what: str) -> CloudError:
    if isinstance(exc, aiohttp.ServerFingerprintMismatch):
        return CloudError(f"{what}: the server certificate does not match the pinned "
                          "thumbprint", code="tls-fingerprint-mismatch")  # fmt: skip
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        reason = exc.certificate_error
        return CloudError(f"{what}: the server certificate is not trusted ({reason}); pin its "
                          "thumbprint or configure a CA", code="tls-untrusted")  # fmt: skip
    return CloudUnreachable(f"{what}: {type(exc).__name__}: {exc}")


class VcdSession:
    def __init__(self, config: CloudConfig) -> None:
        self.config = config
        self.base = config.endpoint.rstrip("/").removesuffix("/api")
        self.user, self.org = split_user(config)
        self.is_system = self.org.lower() == "system"
        self.timeout_s = float(config.options.get("timeout_s", "60"))
        self.task_timeout_s = float(config.options.get("task_timeout_s", "3600"))
        self.version: str = config.options.get("api_version", "")
        self.session_xml: Element | None = None
        self._auth: dict[str, str] = {}
        self._http: aiohttp.ClientSession | None = None
        self._login_lock = asyncio.Lock()
        self._generation = 0
        self._pinned = False

    # --- plumbing ---------------------------------------------------------------------

    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            conn = aiohttp.TCPConnector(ssl=tls_option(self.config), limit=16)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=self.timeout_s)
            self._http = aiohttp.ClientSession(connector=conn, timeout=timeout)
        return self._http

    def url(self, href: str) -> str:
        """``href`` (absolute or a path) on the configured endpoint."""
        if not href.startswith(("http://", "https://")):
            return self.base + ("" if href.startswith("/") else "/") + href
        parts, base = urlsplit(href), urlsplit(self.base)
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
            log.debug("vcd.href_rebased", host=parts.netloc)
        return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))

    @property
    def accept(self) -> str:
        return f"application/*+xml;version={self.version}"

    def auth_headers(self) -> dict[str, str]:
        return dict(self._auth)

    async def close(self) -> None:
        if self._http is not None and not self._http.closed:
            if self._auth:
                try:
                    await self._raw("DELETE", self.url("/api/session"), "logout")
                except CloudError as exc:
                    log.info("vcd.logout_failed", error=str(exc))
            await self._http.close()
        self._http = None

    async def _raw(
        self,
        method: str,
        url: str,
        what: str,
        *,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, bytes]:
        h = {"Accept": self.accept, **self._auth, **(headers or {})}
        try:
            async with self.http().request(method, url, data=data, headers=h) as resp:
                return resp.status, resp.headers, await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise connection_error(exc, what) from exc

    # --- versions and login -----------------------------------------------------------

    async def negotiate(self) -> x.VersionInfo:
        url = self.url("/api/versions")
        status, _, body = await self._raw(
            "GET", url, "version list", headers={"Accept": "application/*+xml"}
        )
        if status != 200:
            raise x.map_error(status, x.parse_error_body(body), "GET /api/versions")
        chosen = x.negotiate(x.parse_versions(body), LOWEST, HIGHEST)
        log.info("vcd.version", version=chosen.version)
        return chosen

    async def check_pin(self) -> None:
        """With a pinned thumbprint: one TLS handshake of our own before any request, closed
        at once (aborted) whatever it shows, so a wrong certificate fails cleanly and before
        credentials move. aiohttp's ``Fingerprint`` still guards every later connection."""
        base = urlsplit(self.base)
        if not self.config.thumbprint or base.scheme != "https" or self._pinned:
            return
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        host, port = base.hostname or "", base.port or 443
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ctx, server_hostname=host), 30
            )
        except (OSError, TimeoutError) as exc:
            raise connection_error(exc, "TLS connect") from exc
        try:
            cert = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            writer.transport.abort()
        expected = bytes.fromhex(self.config.thumbprint.replace(":", "").strip())
        if hashlib.sha256(cert).digest() != expected:
            raise CloudError(f"{self.base}: the server certificate does not match the pinned "
                             "thumbprint", code="tls-fingerprint-mismatch")  # fmt: skip
        self._pinned = True

    async def login(self) -> None:
        """Log in (again). Concurrent callers that saw the same failure share one login."""
        seen = self._generation
        async with self._login_lock:
            if self._generation != seen and self._auth:
                return
            await self.check_pin()
            if not self.version:
                self.version = (await self.negotiate()).version
            self._auth = {}
            if x.version_key(self.version) >= CLOUDAPI_FROM:
                await self._login_cloudapi()
            else:
                await self._login_legacy()
            self._generation += 1
            log.info("vcd.login", user=self.user, org=self.org, version=self.version)

    def _basic(self) -> str:
        raw = f"{self.user}@{self.org}:{self.config.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _refused(self, status: int, body: bytes) -> CloudError:
        if status in (401, 403):
            return CloudAuthError(
                f"vCD refused the login of {self.user}@{self.org}: wrong user name, password or "
                "organization (or the user may not use this login)"
            )
        return x.map_error(status, x.parse_error_body(body), "vCD login")

    async def _login_cloudapi(self) -> None:
        path = "/cloudapi/1.0.0/sessions" + ("/provider" if self.is_system else "")
        headers = {
            "Authorization": self._basic(),
            "Accept": f"application/json;version={self.version}",
        }
        status, resp_headers, body = await self._raw(
            "POST", self.url(path), "vCD login", headers=headers
        )
        token = resp_headers.get("X-VMWARE-VCLOUD-ACCESS-TOKEN") if status == 200 else None
        if not token:
            raise self._refused(status, body)
        self._auth = {"Authorization": f"Bearer {token}"}
        self.session_xml = await self.get_xml("/api/session", "GET /api/session", relogin=False)

    async def _login_legacy(self) -> None:
        headers = {"Authorization": self._basic()}
        status, resp_headers, body = await self._raw(
            "POST", self.url("/api/sessions"), "vCD login", headers=headers
        )
        token = resp_headers.get("x-vcloud-authorization") if status == 200 else None
        if not token:
            raise self._refused(status, body)
        self._auth = {"x-vcloud-authorization": token}
        self.session_xml = x.parse(body, "session")

    async def ensure_login(self) -> None:
        if not self._auth:
            await self.login()

    # --- calls ------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        href: str,
        what: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        expect: tuple[int, ...] = (200, 201, 202, 204),
        relogin: bool = True,
    ) -> bytes:
        """One /api call; re-login once on 401; non-``expect`` statuses become CloudErrors."""
        if relogin:
            await self.ensure_login()
        headers = {"Content-Type": content_type} if content_type else None
        status, _, data = await self._raw(method, self.url(href), what, data=body, headers=headers)
        if status == 401 and relogin:
            log.info("vcd.relogin", what=what)
            self._auth = {}
            await self.login()
            status, _, data = await self._raw(
                method, self.url(href), what, data=body, headers=headers
            )
        if status not in expect:
            raise x.map_error(status, x.parse_error_body(data), what)
        return data

    async def get_xml(self, href: str, what: str, *, relogin: bool = True) -> Element:
        return x.parse(await self.call("GET", href, what, expect=(200,), relogin=relogin), what)

    async def send_xml(
        self, method: str, href: str, body: bytes, media_type: str, what: str
    ) -> Element | None:
        data = await self.call(method, href, what, body=body, content_type=media_type)
        return x.parse(data, what) if data.strip() else None

    async def query(self, qtype: str) -> list[dict[str, str]]:
        """Every record of a query type (idrecords: urn ids), all pages."""
        href: str | None = f"/api/query?type={qtype}&format=idrecords&page=1&pageSize={PAGE_SIZE}"
        rows: list[dict[str, str]] = []
        while href:
            page = await self.get_xml(href, f"query {qtype}")
            found, href = x.records(page)
            rows += found
        return rows

    async def wait_task(
        self,
        task_href: str,
        what: str,
        on_progress: Callable[[int], Awaitable[None]] | None = None,
        timeout_s: float | None = None,
    ) -> Element:
        """Poll a task with backoff (0.1 s doubling to 5 s) until it ends or the deadline."""
        deadline = time.monotonic() + (timeout_s or self.task_timeout_s)
        delay = 0.1
        while True:
            task = await self.get_xml(task_href, f"{what} (task)")
            status = task.get("status", "")
            if status == "success":
                return task
            if status in x.TASK_DONE:
                raise x.task_error(task, what)
            if on_progress is not None:
                await on_progress(int(task.findtext(x.V + "Progress") or 0))
            if time.monotonic() + delay > deadline:
                raise CloudError(f"{what}: vCD task still {status} after the deadline",
                                 code="vcd-task-timeout")  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
