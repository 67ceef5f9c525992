"""Every message that crosses the bus: one versioned envelope, tagged by ``type``.

A message is an envelope (``v``, ``id``, ``type``, ``task_id``, ``step_id``, ``attempt``,
``node_id``, ``ts``, ``seq``) with a typed ``body``. Commands go from the server to one
node; events go from a node (or the server) to the world. ``Command`` and ``Event`` are
pydantic discriminated unions on ``type``; :func:`parse_message` turns raw bytes into one
of them or raises :class:`~protocol.errors.InvalidMessage` with a reason fit for a
dead-letter header.

Pure: no I/O, no clock except the default timestamp.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from protocol.errors import InvalidMessage

PROTOCOL_VERSION: Literal[1] = 1

NodeId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
"""Node ids are DNS-label-like: they become queue names, routing keys and user names."""


def _now() -> datetime:
    return datetime.now(UTC)


class Model(BaseModel):
    """Base for every protocol value: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- values


class CloudKind(StrEnum):
    VSPHERE = "vsphere"
    VCD = "vcd"


class ObjectKind(StrEnum):
    """Inventory object kinds of both clouds."""

    DATACENTER = "datacenter"
    CLUSTER = "cluster"
    HOST = "host"
    RESOURCE_POOL = "resource_pool"
    DATASTORE = "datastore"
    NETWORK = "network"
    FOLDER = "folder"
    VM = "vm"
    TEMPLATE = "template"
    VAPP = "vapp"
    ORG = "org"
    VDC = "vdc"
    CATALOG = "catalog"
    CATALOG_ITEM = "catalog_item"
    VAPP_TEMPLATE = "vapp_template"


class DiskInfo(Model):
    label: str
    capacity_bytes: int = Field(ge=0)


class InventoryItem(Model):
    """One object of a cloud. ``id`` is the cloud's own stable id (moref value, vCD urn)."""

    id: str
    kind: ObjectKind
    name: str
    parent_id: str | None = None
    path: str = Field(description="Slash-separated path from the cloud root, e.g. DC0/vm/web-01")
    power_state: str | None = None
    cpus: int | None = None
    memory_mib: int | None = None
    disks: tuple[DiskInfo, ...] = ()
    capacity_bytes: int | None = None
    free_bytes: int | None = None
    attributes: dict[str, str] = Field(default_factory=dict)


class Target(Model):
    """Where an import lands: a vCD catalog or a vSphere folder, and the new object's name."""

    catalog: str | None = Field(
        None, description="vCD: org/catalog (or catalog in the cloud's org)"
    )
    vdc: str | None = Field(None, description="vCD: org/vdc that stores the template")
    folder: str | None = Field(None, description="vSphere: datacenter/folder path")
    datastore: str | None = None
    resource_pool: str | None = None
    network: str | None = None
    name: str = Field(min_length=1, max_length=128)
    on_conflict: Literal["fail", "suffix"] = "fail"


class DeploySpec(Model):
    """What the deploy step makes from an imported template."""

    name: str = Field(min_length=1, max_length=128)
    vdc: str | None = None
    network: str | None = None
    power_on: bool = True


class StepError(Model):
    code: str = Field(description="Stable machine-readable code, e.g. storage-full, not-found")
    message: str
    retryable: bool = False


# --------------------------------------------------------------------------- envelope


class Envelope(Model):
    """Fields every message has. Subclasses pin ``type`` and ``body``."""

    v: Literal[1] = PROTOCOL_VERSION
    id: UUID = Field(default_factory=uuid4)
    task_id: UUID | None = None
    step_id: UUID | None = None
    attempt: int = Field(0, ge=0)
    node_id: NodeId
    ts: datetime = Field(default_factory=_now)
    seq: int = Field(0, ge=0, description="Monotonic per (step_id, attempt), kept across restarts")


# --------------------------------------------------------------------------- command bodies


class ExportBody(Model):
    cloud_id: str
    ref: str = Field(description="Inventory id or path of the VM, template or vApp")
    artifact_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class SendBody(Model):
    artifact_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    destination_node: NodeId
    destination_url: str = Field(description="Base URL of the destination node's receiver")
    destination_fingerprint: str = Field(description="SHA-256 of the receiver's certificate (hex)")
    token: str = Field(description="Capability token signed by the server (Ed25519)")
    streams: int = Field(4, ge=1, le=64)
    chunk_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024)
    compress: bool = False
    bandwidth_bytes_per_s: int | None = Field(None, gt=0)


class ImportBody(Model):
    cloud_id: str
    artifact_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    target: Target
    streaming: bool = False
    """The package may still be arriving (a copy's send or export runs beside the import):
    wait for it and for each file, instead of refusing an incomplete package."""


class DeployBody(Model):
    cloud_id: str
    template_ref: str
    spec: DeploySpec


class CancelBody(Model):
    target_step_id: UUID
    reason: str = "cancelled by operator"


class CleanupBody(Model):
    artifact_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class InventoryRefreshBody(Model):
    cloud_id: str


# --------------------------------------------------------------------------- commands


class ExportCommand(Envelope):
    type: Literal["export"] = "export"
    body: ExportBody


class SendCommand(Envelope):
    type: Literal["send"] = "send"
    body: SendBody


class ImportCommand(Envelope):
    type: Literal["import"] = "import"
    body: ImportBody


class DeployCommand(Envelope):
    type: Literal["deploy"] = "deploy"
    body: DeployBody


class CancelCommand(Envelope):
    type: Literal["cancel"] = "cancel"
    body: CancelBody


class CleanupCommand(Envelope):
    type: Literal["cleanup"] = "cleanup"
    body: CleanupBody


class InventoryRefreshCommand(Envelope):
    type: Literal["inventory.refresh"] = "inventory.refresh"
    body: InventoryRefreshBody


Command = Annotated[
    ExportCommand
    | SendCommand
    | ImportCommand
    | DeployCommand
    | CancelCommand
    | CleanupCommand
    | InventoryRefreshCommand,
    Field(discriminator="type"),
]

# --------------------------------------------------------------------------- event bodies


class HeartbeatBody(Model):
    version: str
    started_at: datetime
    free_bytes: int = Field(ge=0)
    total_bytes: int = Field(ge=0)
    running_steps: tuple[UUID, ...] = ()
    clouds: dict[str, bool] = Field(
        default_factory=dict, description="cloud id -> reachable at the last check"
    )
    receiver_url: str | None = None


class StepStartedBody(Model):
    kind: str = Field(description="Command type that started: export, send, ...")


class StepProgressBody(Model):
    bytes_done: int = Field(ge=0)
    bytes_total: int | None = Field(None, ge=0)
    rate_bytes_per_s: float = Field(0.0, ge=0)
    message: str | None = None


class StepSucceededBody(Model):
    bytes_done: int = Field(0, ge=0)
    result: dict[str, Any] = Field(default_factory=dict)


class StepFailedBody(Model):
    error: StepError


class InventorySnapshotBody(Model):
    cloud_id: str
    items: tuple[InventoryItem, ...] = ()
    error: StepError | None = None


# --------------------------------------------------------------------------- events


class HeartbeatEvent(Envelope):
    type: Literal["node.heartbeat"] = "node.heartbeat"
    body: HeartbeatBody


class StepStartedEvent(Envelope):
    type: Literal["step.started"] = "step.started"
    body: StepStartedBody


class StepProgressEvent(Envelope):
    type: Literal["step.progress"] = "step.progress"
    body: StepProgressBody


class StepSucceededEvent(Envelope):
    type: Literal["step.succeeded"] = "step.succeeded"
    body: StepSucceededBody


class StepFailedEvent(Envelope):
    type: Literal["step.failed"] = "step.failed"
    body: StepFailedBody


class InventorySnapshotEvent(Envelope):
    type: Literal["inventory.snapshot"] = "inventory.snapshot"
    body: InventorySnapshotBody


Event = Annotated[
    HeartbeatEvent
    | StepStartedEvent
    | StepProgressEvent
    | StepSucceededEvent
    | StepFailedEvent
    | InventorySnapshotEvent,
    Field(discriminator="type"),
]

Message = Annotated[Command | Event, Field(discriminator="type")]

COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
MESSAGE_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message)

COMMAND_TYPES: tuple[type[Envelope], ...] = (
    ExportCommand,
    SendCommand,
    ImportCommand,
    DeployCommand,
    CancelCommand,
    CleanupCommand,
    InventoryRefreshCommand,
)
EVENT_TYPES: tuple[type[Envelope], ...] = (
    HeartbeatEvent,
    StepStartedEvent,
    StepProgressEvent,
    StepSucceededEvent,
    StepFailedEvent,
    InventorySnapshotEvent,
)
FINAL_EVENT_TYPES = frozenset({"step.succeeded", "step.failed"})


def type_name(model: type[Envelope]) -> str:
    """The ``type`` tag of a message class."""
    default = model.model_fields["type"].default
    assert isinstance(default, str)
    return default


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "<root>"
    return f"{where}: {first['msg']}"


def _parse(adapter: TypeAdapter[Any], raw: bytes | str, what: str) -> Any:
    import json

    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidMessage(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidMessage("not a JSON object")
    if data.get("v") != PROTOCOL_VERSION:
        raise InvalidMessage(f"unsupported envelope version {data.get('v')!r}")
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        if any(e["type"] == "union_tag_invalid" for e in exc.errors()):
            raise InvalidMessage(f"unknown {what} type {data.get('type')!r}") from exc
        raise InvalidMessage(_reason(exc)) from exc


def parse_command(raw: bytes | str) -> Command:
    """Parse a command or raise InvalidMessage (bad JSON, unknown v or type, invalid body)."""
    result: Command = _parse(COMMAND_ADAPTER, raw, "command")
    return result


def parse_event(raw: bytes | str) -> Event:
    result: Event = _parse(EVENT_ADAPTER, raw, "event")
    return result


def parse_message(raw: bytes | str) -> Message:
    result: Message = _parse(MESSAGE_ADAPTER, raw, "message")
    return result


def dump(message: Envelope) -> bytes:
    """Wire form: compact JSON, UTF-8."""
    return message.model_dump_json().encode()
