"""vCenter connection for the vSphere adapter: TLS policy, login, re-login, fault mapping.

Blocking (pyvmomi). :class:`VSphereSession` is used from worker threads only; a lock makes
login and re-login safe when several threads call at once.

TLS, in order of preference:

- default: the system CA store (or ``options["ca_file"]``), host name checked;
- ``thumbprint``: the peer certificate's SHA-256 (or SHA-1, as vSphere shows host thumbprints)
  must match; checked in :class:`PinnedContext` right after every handshake, before a byte
  of the request (or the session cookie) is sent;
- ``insecure``: no verification at all, logged as a warning at every connect.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import defusedxml.ElementTree as DET  # type: ignore[import-untyped]
import pyVmomi
import structlog

from workers.clouds.base import (
    CloudAuthError,
    CloudConfig,
    CloudConflict,
    CloudError,
    CloudNotFound,
    CloudUnreachable,
)

# pyvmomi's stubs are stricter than its runtime (untyped constructors): treat it as dynamic.
_vmomi: Any = pyVmomi
vim: Any = _vmomi.vim
vmodl: Any = _vmomi.vmodl

log = structlog.get_logger()
T = TypeVar("T")


def wait_task(task: Any) -> Any:
    """Wait for a vSphere task (blocking) and return its result; its fault is raised."""
    from pyVim.task import WaitForTask

    wait: Callable[[Any], Any] = WaitForTask
    wait(task)
    return task.info.result


DEFAULT_TIMEOUT_S = 30.0
FALLBACK_VERSION = "vim.version.version9"  # vSphere 5.5: understood by every current server


def normalize_thumbprint(value: str) -> tuple[str, str]:
    """``AA:BB:...`` -> (hash name, lower hex). SHA-1 (40), SHA-256 (64), SHA-512 (128)."""
    hexdigest = value.replace(":", "").replace(" ", "").lower()
    algo = {40: "sha1", 64: "sha256", 128: "sha512"}.get(len(hexdigest))
    if algo is None or any(c not in "0123456789abcdef" for c in hexdigest):
        raise CloudError(f"not a certificate thumbprint: {value!r}", code="bad-config")
    return algo, hexdigest


class PinnedContext(ssl.SSLContext):
    """A client context that accepts exactly one certificate, by fingerprint."""

    pin_algo: str
    pin_hex: str

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        sock = super().wrap_socket(*args, **kwargs)
        der = sock.getpeercert(binary_form=True) or b""
        if hashlib.new(self.pin_algo, der).hexdigest() != self.pin_hex:
            sock.close()
            raise ssl.SSLCertVerificationError(
                "peer certificate does not match the pinned thumbprint"
            )
        return sock


def pinned_context(thumbprint: str) -> ssl.SSLContext:
    algo, hexdigest = normalize_thumbprint(thumbprint)
    ctx = PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.pin_algo, ctx.pin_hex = algo, hexdigest
    return ctx


def make_ssl_context(config: CloudConfig) -> ssl.SSLContext:
    if config.thumbprint:
        return pinned_context(config.thumbprint)
    if config.insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=config.options.get("ca_file"))


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``https://vc.example/sdk``, ``vc.example:8443`` or ``vc.example`` -> (host, port)."""
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    if not parts.hostname:
        raise CloudError(f"no host in endpoint {endpoint!r}", code="bad-config")
    return parts.hostname, parts.port or 443


def choose_version(versions_xml: bytes) -> str:
    """The newest pyvmomi API version the server lists in vimServiceVersions.xml."""
    try:
        root = DET.fromstring(versions_xml, forbid_dtd=True, forbid_entities=True)
    except Exception:  # defusedxml raises several types; any of them means "don't know"
        return FALLBACK_VERSION
    offered: list[str] = []
    for ns in root.iter("namespace"):
        if (ns.findtext("name") or "").strip() == "urn:vim25":
            offered.append((ns.findtext("version") or "").strip())
            offered += [(v.text or "").strip() for v in ns.iterfind("priorVersions/version")]
    support = _vmomi.VmomiSupport
    known = {support.GetVersionNamespace(v): v for v in support.GetServiceVersions("vim25")}
    for version in offered:
        if f"vim25/{version}" in known:
            return str(known[f"vim25/{version}"])
    return FALLBACK_VERSION


def discover_version(host: str, port: int, context: ssl.SSLContext, timeout_s: float) -> str:
    """GET /sdk/vimServiceVersions.xml with a timeout (pyVim's discovery has none)."""
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=timeout_s)
    try:
        conn.request("GET", "/sdk/vimServiceVersions.xml")
        resp = conn.getresponse()
        body = resp.read(1024 * 1024)
        return choose_version(body) if resp.status == 200 else FALLBACK_VERSION
    finally:
        conn.close()


def fault_name(exc: BaseException) -> str:
    return type(exc).__name__.rsplit(".", 1)[-1]


def fault_text(fault: Any) -> str:
    """A fault from a result list (pyvmomi gives MethodFaults, ``msg`` = localizedMessage)."""
    name = fault_name(fault)
    msg = getattr(fault, "msg", None) or getattr(fault, "localizedMessage", None)
    return f"{name}: {msg}" if msg else name


def map_error(exc: BaseException, what: str) -> CloudError:
    """Translate pyvmomi faults and socket errors into CloudError subclasses."""
    if isinstance(exc, CloudError):
        return exc
    msg = getattr(exc, "msg", None) or str(exc) or fault_name(exc)
    if isinstance(
        exc, vim.fault.InvalidLogin | vim.fault.NoPermission | vim.fault.NotAuthenticated
    ):
        return CloudAuthError(f"{what}: {fault_name(exc)}: {msg}")
    if isinstance(exc, vmodl.fault.ManagedObjectNotFound):
        return CloudNotFound(f"{what}: object not found: {msg}")
    if isinstance(exc, vim.fault.DuplicateName | vim.fault.FileAlreadyExists):
        return CloudConflict(f"{what}: {msg}")
    if isinstance(exc, vim.fault.InvalidPowerState):
        return CloudError(f"{what}: {msg}", code="invalid-power-state")
    if isinstance(exc, vim.fault.InsufficientResourcesFault | vim.fault.OutOfBounds):
        return CloudError(f"{what}: {msg}", code="insufficient-resources")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return CloudError(f"{what}: TLS certificate not trusted: {exc}", code="tls-untrusted")
    if isinstance(exc, TimeoutError | socket.timeout):
        return CloudUnreachable(f"{what}: timed out")
    if isinstance(exc, OSError | http.client.HTTPException | ssl.SSLError):
        return CloudUnreachable(f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, vmodl.MethodFault):
        return CloudError(f"{what}: {fault_name(exc)}: {msg}", code="vsphere-fault")
    return CloudError(f"{what}: {type(exc).__name__}: {exc}")


class VSphereSession:
    """One logged-in pyvmomi ServiceInstance, re-created when vCenter forgets the session."""

    def __init__(self, config: CloudConfig) -> None:
        self.config = config
        self._si: Any = None
        self._lock = threading.Lock()
        self.config_error: CloudError | None = None
        """A bad endpoint, thumbprint or option: raised at the first call, not here, so
        that building an adapter never fails (the node keeps running and reports it)."""
        self.host, self.port = "", 443
        self.timeout_s = DEFAULT_TIMEOUT_S
        self.ssl_context = ssl.create_default_context()
        try:
            self.host, self.port = parse_endpoint(config.endpoint)
            self.timeout_s = float(config.options.get("timeout_s", DEFAULT_TIMEOUT_S))
            self.ssl_context = make_ssl_context(config)
        except CloudError as exc:
            self.config_error = exc
        except (ValueError, OSError) as exc:
            self.config_error = CloudError(f"bad configuration: {exc}", code="bad-config")

    def _login(self) -> Any:
        if self.config_error is not None:
            raise self.config_error
        if self.config.insecure and not self.config.thumbprint:
            log.warning("vsphere.tls_unverified", cloud_id=self.config.cloud_id, host=self.host)
        version = discover_version(self.host, self.port, self.ssl_context, self.timeout_s)
        stub: Any = _vmomi.SoapStubAdapter(
            host=self.host,
            port=self.port,
            version=version,
            sslContext=self.ssl_context,
            httpConnectionTimeout=self.timeout_s,
        )
        si = vim.ServiceInstance("ServiceInstance", stub)
        try:
            si.content.sessionManager.Login(self.config.username, self.config.password)
        except BaseException:
            stub.DropConnections()
            raise
        log.debug("vsphere.login", cloud_id=self.config.cloud_id, host=self.host, port=self.port)
        return si

    def si(self) -> Any:
        with self._lock:
            if self._si is None:
                self._si = self._login()
            return self._si

    def _forget(self, stale: Any) -> None:
        with self._lock:
            if self._si is stale:
                self._si = None
        stale._stub.DropConnections()

    def call(self, fn: Callable[[Any], T], what: str) -> T:
        """Run ``fn(si)``; log in again once if the session expired. Errors -> CloudError."""
        for attempt in (1, 2):
            try:
                si = self.si()
            except Exception as exc:
                raise map_error(exc, f"login to {self.host}:{self.port}") from exc
            try:
                return fn(si)
            except vim.fault.NotAuthenticated as exc:
                self._forget(si)
                if attempt == 2:
                    raise map_error(exc, what) from exc
                log.info("vsphere.relogin", cloud_id=self.config.cloud_id)
            except Exception as exc:
                raise map_error(exc, what) from exc
        raise AssertionError("unreachable")

    @property
    def cookie(self) -> str:
        """``vmware_soap_session=...`` for NFC requests."""
        raw: str = self.si()._stub.cookie or ""
        return raw.split(";", 1)[0]

    def close(self) -> None:
        with self._lock:
            si, self._si = self._si, None
        if si is None:
            return
        try:
            si.content.sessionManager.Logout()
        except Exception as exc:  # logout is best effort
            log.info("vsphere.logout_failed", error=type(exc).__name__)
        finally:
            si._stub.DropConnections()
