"""The one interface every cloud adapter implements (DESIGN.md §5).

A *package* is a directory in transfer storage holding an OVF package: the descriptor
(``<name>.ovf``), its disk and other files, and a SHA-256 manifest (``<name>.mf``, the
OVF 1.x format ``SHA256(file)= hex``). Export writes one; import reads one.

Errors: adapters raise :class:`CloudError` subclasses; ``code`` becomes the step's
error code and ``retryable`` tells the saga whether a retry may help.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, TypeVar

import structlog

from protocol.messages import CloudKind, DeploySpec, InventoryItem, Target
from workers.ovf import package as ovf_package
from workers.ovf.descriptor import Descriptor

log = structlog.get_logger(__name__)

OPERATOR_CANCEL = "hcc: step cancelled by the operator"
"""The message of the CancelledError a step gets when the operator cancels its task (the node
runner cancels with it); any other cancellation is a shutdown, after which the step resumes.
An adapter may clean up what a cancelled step half made (a shutdown keeps it for the resume)."""


class CloudError(Exception):
    """Root of adapter errors. ``code`` is stable and machine-readable."""

    code = "cloud-error"
    retryable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class CloudUnreachable(CloudError):
    code = "cloud-unreachable"
    retryable = True


class CloudAuthError(CloudError):
    code = "cloud-auth"


class CloudNotFound(CloudError):
    code = "not-found"


class CloudConflict(CloudError):
    code = "name-conflict"


class CloudQuotaExceeded(CloudError):
    code = "quota-exceeded"


class InvalidPackage(CloudError):
    code = "invalid-package"


T = TypeVar("T")


async def unless_retryable(call: Awaitable[T], what: str) -> T | None:
    """``call``'s result; None (logged) when it fails with an error a retry may cure.

    For a check made early, before a long wait (the import of a package that is still
    on its way): what cannot cure itself (wrong credentials, a missing catalog) fails the
    copy at once, not hours later; an outage does not fail it, the real call decides."""
    try:
        return await call
    except CloudError as exc:
        if not exc.retryable:
            raise
        log.warning("cloud.early_check_failed", what=what, code=exc.code, error=str(exc))
        return None


@contextlib.contextmanager
def invalid_package() -> Iterator[None]:
    """A PackageError of workers/ovf (a package that is not what it should be) as the
    import's InvalidPackage."""
    try:
        yield
    except ovf_package.PackageError as exc:
        raise InvalidPackage(str(exc)) from exc


@dataclass(frozen=True)
class ImportPackage:
    """An import's view of a package: the LocalPackage it reads, and its commonest parts."""

    local: ovf_package.LocalPackage
    """The package's descriptor and files (they may still be arriving: ``streaming``)."""
    cloud: ClassVar[str] = "cloud"
    """The adapter's log prefix."""

    @property
    def dir(self) -> Path:
        return self.local.dir

    @property
    def desc(self) -> Descriptor:
        return self.local.desc

    @property
    def sizes(self) -> dict[str, int]:
        return self.local.sizes

    @property
    def descriptor_name(self) -> str:
        return self.local.descriptor_name

    @property
    def descriptor(self) -> bytes:
        return self.local.descriptor

    @property
    def total_bytes(self) -> int:
        return self.local.total_bytes

    async def verify(self) -> None:
        """Once the package is whole: every check of a complete one (manifest included)."""
        await check_whole_package(self.local, self.cloud)


async def open_local_package(package_dir: Path, *, streaming: bool) -> ovf_package.LocalPackage:
    """An import's package (workers/ovf/package.py ``open_package``)."""
    with invalid_package():
        return await ovf_package.open_package(package_dir, streaming=streaming)


async def check_whole_package(local: ovf_package.LocalPackage, cloud: str) -> None:
    """Once the package is whole: every check of a complete one (manifest included)."""
    with invalid_package():
        whole = await ovf_package.wait_complete(local)
    if whole.manifest is None:
        log.warning(f"{cloud}.import_without_manifest", package=local.dir.name)


@dataclass(frozen=True)
class CloudConfig:
    """How a node reaches its cloud. Comes from the server at enrollment; never logged whole."""

    cloud_id: str
    kind: CloudKind
    endpoint: str
    """vSphere: https://vcenter/sdk (or host[:port]); vCD: https://vcd (the API root)."""
    username: str
    password: str = field(repr=False)
    org: str | None = None
    """vCD: the organization to log in to (System for a provider login)."""
    insecure: bool = False
    """Skip TLS verification (logged as a warning at every connect)."""
    thumbprint: str | None = None
    """Pin the endpoint's certificate by SHA-256 (or SHA-1 for vSphere hosts) fingerprint."""
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Progress:
    bytes_done: int
    bytes_total: int | None
    message: str | None = None


ProgressFn = Callable[[Progress], Awaitable[None]]
"""Adapters call it as bytes move; the runtime throttles what it publishes."""


@dataclass(frozen=True)
class ExportResult:
    package_dir: Path
    descriptor: str
    files: dict[str, int] = field(default_factory=dict)
    """File name -> size in bytes, descriptor and manifest included."""


@dataclass(frozen=True)
class ImportResult:
    object_id: str
    name: str
    kind: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeployResult:
    object_id: str
    name: str
    power_state: str | None = None


class CloudAdapter(Protocol):
    """What the node runtime needs from a cloud."""

    async def check(self) -> None:
        """Log in and make one cheap call; raise CloudError when that fails."""

    async def inventory(self) -> list[InventoryItem]: ...

    async def export(self, ref: str, dest: Path, progress: ProgressFn) -> ExportResult:
        """Export the VM, template or vApp ``ref`` as an OVF package into ``dest``."""

    async def import_package(
        self, package_dir: Path, target: Target, progress: ProgressFn, *, streaming: bool = False
    ) -> ImportResult:
        """Import the OVF package in ``package_dir``. ``streaming``: the package may still
        be arriving (a copy's send or export is running): start on its descriptor and take
        each file as it completes (workers/ovf/package.py), instead of refusing it."""

    async def deploy(
        self, template_ref: str, spec: DeploySpec, progress: ProgressFn
    ) -> DeployResult: ...

    async def close(self) -> None: ...
