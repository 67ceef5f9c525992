"""The simulator's state: plain pydantic models, serialised whole to ``state.json``.

Ids are bare UUID strings; hrefs and ``urn:vcloud:<kind>:<id>`` are derived when rendering.
Nothing here does I/O: :mod:`sim.vcd.store` loads, saves and locates files.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import IntEnum

from pydantic import BaseModel, Field


def new_id() -> str:
    return str(uuid.uuid4())


def now_iso() -> str:
    """vCD's timestamp shape: ``2026-11-25T01:38:19.549Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Status(IntEnum):
    """The API guide's "Object Creation Status" codes (numeric in XML)."""

    FAILED_CREATION = -1
    UNRESOLVED = 0
    RESOLVED = 1
    SUSPENDED = 3
    POWERED_ON = 4
    UNKNOWN = 6
    POWERED_OFF = 8


STATUS_NAMES = {
    Status.FAILED_CREATION: "FAILED_CREATION",
    Status.UNRESOLVED: "UNRESOLVED",
    Status.RESOLVED: "RESOLVED",
    Status.SUSPENDED: "SUSPENDED",
    Status.POWERED_ON: "POWERED_ON",
    Status.UNKNOWN: "UNKNOWN",
    Status.POWERED_OFF: "POWERED_OFF",
}


class User(BaseModel):
    id: str = Field(default_factory=new_id)
    name: str
    org_id: str
    password: str
    role: str = "Organization Administrator"


class Org(BaseModel):
    id: str = Field(default_factory=new_id)
    name: str
    full_name: str = ""
    description: str = ""

    @property
    def is_system(self) -> bool:
        return self.name.lower() == "system"


class Network(BaseModel):
    id: str = Field(default_factory=new_id)
    name: str
    org_id: str
    fence_mode: str = "bridged"


class Vdc(BaseModel):
    id: str = Field(default_factory=new_id)
    name: str
    org_id: str
    storage_quota_bytes: int | None = None
    """None: unlimited. Counted against: declared sizes of template and vApp disks in the VDC."""
    network_ids: list[str] = Field(default_factory=list)


class Catalog(BaseModel):
    id: str = Field(default_factory=new_id)
    name: str
    org_id: str
    vdc_id: str
    """Where uploaded templates live (and whose quota they use)."""
    description: str = ""
    created: str = Field(default_factory=now_iso)
    version: int = 1


class CatalogItem(BaseModel):
    id: str = Field(default_factory=new_id)
    name: str
    catalog_id: str
    template_id: str
    description: str = ""
    created: str = Field(default_factory=now_iso)


class TransferFile(BaseModel):
    """One file of an upload (or of a stored template), as listed in ``<Files>``."""

    name: str
    size: int = -1
    bytes_transferred: int = 0
    checksum: str | None = None
    last_put: float | None = None
    """Epoch seconds of the last PUT (for the idle expiry)."""

    @property
    def complete(self) -> bool:
        return self.size >= 0 and self.bytes_transferred == self.size


class Vm(BaseModel):
    id: str = Field(default_factory=new_id)
    name: str
    local_id: str
    description: str = ""
    status: int = Status.POWERED_OFF
    cpus: int = 1
    memory_mb: int = 512
    network: str | None = None


def copy_vms(vms: list[Vm], network: str | None = None) -> list[Vm]:
    """New VMs (new ids, unresolved) with the same shape; ``network`` replaces each NIC's."""
    return [
        Vm(
            name=vm.name,
            local_id=vm.local_id,
            description=vm.description,
            cpus=vm.cpus,
            memory_mb=vm.memory_mb,
            network=network or vm.network,
            status=Status.UNRESOLVED,
        )
        for vm in vms
    ]


class VAppTemplate(BaseModel):
    id: str = Field(default_factory=new_id)
    name: str
    description: str = ""
    org_id: str
    vdc_id: str
    catalog_item_id: str | None = None
    owner_id: str
    status: int = Status.UNRESOLVED
    descriptor_uploaded: bool = False
    manifest_required: bool = False
    transfer_id: str = Field(default_factory=new_id)
    files: list[TransferFile] = Field(default_factory=list)
    vms: list[Vm] = Field(default_factory=list)
    network_names: list[str] = Field(default_factory=list)
    download_id: str | None = None
    download_last_access: float | None = None
    """Epoch seconds of enableDownload or the last download GET (for the idle expiry)."""
    created: str = Field(default_factory=now_iso)

    def file(self, name: str) -> TransferFile | None:
        return next((f for f in self.files if f.name == name), None)

    @property
    def disk_bytes(self) -> int:
        return sum(max(f.size, 0) for f in self.files if f.name != "descriptor.ovf")


class VApp(BaseModel):
    id: str = Field(default_factory=new_id)
    name: str
    description: str = ""
    org_id: str
    vdc_id: str
    owner_id: str
    template_id: str | None = None
    status: int = Status.UNRESOLVED
    deployed: bool = False
    vms: list[Vm] = Field(default_factory=list)
    network_names: list[str] = Field(default_factory=list)
    size_bytes: int = 0
    files: list[TransferFile] = Field(default_factory=list)
    """The vApp's own copy of its template's files (disks and descriptor), for captureVApp."""
    created: str = Field(default_factory=now_iso)


class TaskStatus:
    QUEUED = "queued"
    PRE_RUNNING = "preRunning"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    CANCELED = "canceled"
    ABORTED = "aborted"
    DONE = frozenset({"success", "error", "canceled", "aborted"})


class TaskError(BaseModel):
    major: int = 500
    minor: str = "INTERNAL_SERVER_ERROR"
    message: str = ""


class Task(BaseModel):
    id: str = Field(default_factory=new_id)
    operation_name: str
    operation: str
    status: str = TaskStatus.QUEUED
    progress: int = 0
    owner_kind: str
    """One of: vAppTemplate, vApp, catalogItem."""
    owner_id: str
    owner_name: str
    user_id: str
    org_id: str
    start: str = Field(default_factory=now_iso)
    end: str | None = None
    cancel_requested: bool = False
    error: TaskError | None = None
    params: dict[str, str] = Field(default_factory=dict)
    """What the completion needs to know (e.g. instantiate's deploy/powerOn)."""

    @property
    def done(self) -> bool:
        return self.status in TaskStatus.DONE


class Session(BaseModel):
    token: str
    user_id: str
    org_id: str
    created: str = Field(default_factory=now_iso)


class State(BaseModel):
    orgs: dict[str, Org] = Field(default_factory=dict)
    users: dict[str, User] = Field(default_factory=dict)
    networks: dict[str, Network] = Field(default_factory=dict)
    vdcs: dict[str, Vdc] = Field(default_factory=dict)
    catalogs: dict[str, Catalog] = Field(default_factory=dict)
    items: dict[str, CatalogItem] = Field(default_factory=dict)
    templates: dict[str, VAppTemplate] = Field(default_factory=dict)
    vapps: dict[str, VApp] = Field(default_factory=dict)
    tasks: dict[str, Task] = Field(default_factory=dict)
    sessions: dict[str, Session] = Field(default_factory=dict)

    def org_by_name(self, name: str) -> Org | None:
        return next((o for o in self.orgs.values() if o.name.lower() == name.lower()), None)

    def user_in_org(self, name: str, org_id: str) -> User | None:
        return next((u for u in self.users.values() if u.name == name and u.org_id == org_id), None)

    def vdc_used_bytes(self, vdc_id: str) -> int:
        templates = sum(t.disk_bytes for t in self.templates.values() if t.vdc_id == vdc_id)
        vapps = sum(a.size_bytes for a in self.vapps.values() if a.vdc_id == vdc_id)
        return templates + vapps

    def running_tasks(self, owner_id: str) -> list[Task]:
        return [t for t in self.tasks.values() if t.owner_id == owner_id and not t.done]
