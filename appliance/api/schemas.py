"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field, SecretStr

from appliance.api.framework import ApiModel
from appliance.store.accounts import Role
from protocol.messages import CloudKind, InventoryItem, NodeId

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


class LoginRequest(ApiModel):
    username: str = Field(min_length=1, max_length=64)
    password: SecretStr = Field(min_length=1)


class LoginResponse(ApiModel):
    token: str
    expires_at: datetime
    username: str
    role: Role


class Me(ApiModel):
    username: str
    role: Role


class UserCreate(ApiModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    password: SecretStr = Field(min_length=8)
    role: Role


class UserView(ApiModel):
    username: str
    role: Role
    created_at: datetime


class NodeCreate(ApiModel):
    id: NodeId


class NodeCreated(ApiModel):
    id: str
    enroll_token: str = Field(description="One-time token; shown once")


class NodeView(ApiModel):
    id: str
    status: Literal["pending", "online", "offline"] = Field(
        description="pending: not enrolled yet; online: heartbeat within the timeout"
    )
    enrolled_at: datetime | None
    version: str | None
    last_heartbeat: datetime | None
    receiver_url: str | None
    fingerprint: str | None
    free_bytes: int | None
    total_bytes: int | None
    running_steps: list[str]
    clouds_reachable: dict[str, bool]


class EnrollRequest(ApiModel):
    token: str = Field(min_length=1)
    node_id: NodeId
    fingerprint: str = Field(pattern=r"^[0-9a-fA-F:]{40,128}$")
    receiver_url: str = Field(pattern=r"^https?://")
    version: str = "unknown"


class CloudCredentials(ApiModel):
    """What a node needs to reach a cloud: sent only over HTTPS to that node."""

    cloud_id: str
    kind: CloudKind
    endpoint: str
    username: str
    password: str
    org: str | None
    insecure: bool
    thumbprint: str | None


class NodeConfigResponse(ApiModel):
    node_id: str
    amqp_url: str
    server_public_key: str
    clouds: list[CloudCredentials]


class EnrollResponse(NodeConfigResponse):
    node_token: str


class CloudCreate(ApiModel):
    id: Slug
    kind: CloudKind
    endpoint: str = Field(min_length=1, max_length=512)
    username: str = Field(min_length=1, max_length=255)
    password: SecretStr
    org: str | None = Field(None, description="vCD: the organization to log in to")
    insecure: bool = Field(False, description="Skip TLS verification (logged as a warning)")
    thumbprint: str | None = Field(None, description="Pin the endpoint's certificate")
    node_id: NodeId = Field(description="The node that serves this cloud")


class CloudUpdate(ApiModel):
    endpoint: str | None = Field(None, min_length=1, max_length=512)
    username: str | None = Field(None, min_length=1, max_length=255)
    password: SecretStr | None = None
    org: str | None = None
    insecure: bool | None = None
    thumbprint: str | None = None
    node_id: NodeId | None = None


class CloudView(ApiModel):
    id: str
    kind: CloudKind
    endpoint: str
    username: str
    org: str | None
    insecure: bool
    thumbprint: str | None
    node_id: str
    node_online: bool
    reachable: bool | None = Field(description="As last reported by its node; null: unknown")
    inventory_at: datetime | None
    inventory_error: dict[str, Any] | None
    created_at: datetime


class InventoryRefreshTask(ApiModel):
    kind: Literal["inventory-refresh"]
    cloud: str


class CopySource(ApiModel):
    cloud: str = Field(description="Source cloud id")
    ref: str = Field(min_length=1, description="Inventory id or path of the VM, template or vApp")


class CopyDestination(ApiModel):
    cloud: str = Field(description="Destination cloud id")
    catalog: str | None = Field(None, description="vCD: catalog name (in the cloud's org)")
    vdc: str | None = Field(None, description="vCD: VDC that stores the template")
    folder: str | None = Field(None, description="vSphere: datacenter/folder path")
    datastore: str | None = None
    resource_pool: str | None = None
    network: str | None = None
    name: str = Field(min_length=1, max_length=128, pattern=r"^[^/\\\x00]+$")
    on_conflict: Literal["fail", "suffix"] = Field(
        "fail", description="When the name is taken: fail, or add -2, -3 ..."
    )


class CopyDeploy(ApiModel):
    name: str = Field(min_length=1, max_length=128)
    network: str | None = None
    vdc: str | None = None
    power_on: bool = True


class CopyOptions(ApiModel):
    streams: int = Field(4, ge=1, le=32)
    chunk_mib: int = Field(8, ge=1, le=256)
    compress: bool = False
    bandwidth_mb_per_s: float | None = Field(None, gt=0, description="Cap for the send")
    keep_artifacts: bool = Field(False, description="Keep the package in transfer storage")


class CopyTask(ApiModel):
    kind: Literal["copy"]
    source: CopySource
    destination: CopyDestination
    deploy: CopyDeploy | None = None
    options: CopyOptions = Field(default_factory=CopyOptions)


class TransferTokenRequest(ApiModel):
    artifact_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    destination_node: NodeId


class TransferToken(ApiModel):
    token: str


class ImportOptions(ApiModel):
    keep_artifacts: bool = Field(False, description="Keep the package in transfer storage")


class ImportTask(ApiModel):
    """Import a package the CLI uploaded (``hcc import FILE.ova``): import, deploy, cleanup."""

    kind: Literal["import"]
    artifact_id: str = Field(pattern=r"^ova-[0-9a-f]{24}$", description="From POST /uploads")
    destination: CopyDestination
    deploy: CopyDeploy | None = None
    options: ImportOptions = Field(default_factory=ImportOptions)


class ExportTask(ApiModel):
    """Export to the node's storage and keep it there for download (``hcc export``)."""

    kind: Literal["export"]
    source: CopySource


class UploadRequest(ApiModel):
    cloud: str = Field(description="The cloud whose node receives the package")
    name: str = Field(min_length=1, max_length=128, pattern=r"^[^/\\\x00]+$")
    key: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the package's manifest: the same package, cloud and name get "
        "the same artifact, so an interrupted upload resumes",
    )
    destination: CopyDestination | None = Field(
        None, description="Checked like an import's (catalog or folder, name) before any upload"
    )


class TransferGrant(ApiModel):
    """Where to move an artifact's bytes, and the capability token that allows it."""

    artifact_id: str
    node_id: str
    receiver_url: str
    fingerprint: str = Field(description="SHA-256 of the node's certificate: pin it")
    token: str
    expires_in_s: int


TaskCreate = Annotated[
    InventoryRefreshTask | CopyTask | ImportTask | ExportTask, Field(discriminator="kind")
]


class StepView(ApiModel):
    id: UUID
    name: str
    node_id: str
    state: str
    attempt: int
    bytes_done: int
    bytes_total: int | None
    percent: float | None
    rate_bytes_per_s: float
    eta_s: float | None
    average_bytes_per_s: float | None = Field(
        description="A step that moved bytes and succeeded at its first attempt: bytes over "
        "its duration (a retried step keeps its first start, so it has none)"
    )
    message: str | None
    started_at: datetime | None
    finished_at: datetime | None
    error: dict[str, Any] | None
    result: dict[str, Any] | None


class TaskView(ApiModel):
    id: UUID
    kind: str
    state: str
    spec: dict[str, Any]
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    error: dict[str, Any] | None
    bytes_done: int
    bytes_total: int | None
    steps: list[StepView]


class TaskEventView(ApiModel):
    ts: datetime
    type: str
    step_id: UUID | None
    message: str


class TaskDetail(TaskView):
    events: list[TaskEventView]


class AuditView(ApiModel):
    ts: datetime
    actor: str
    role: str | None
    method: str
    path: str
    status: int
    remote: str | None


class Health(ApiModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, str] = Field(default_factory=dict)


class InventoryPage(ApiModel):
    items: list[InventoryItem]
    total: int
    offset: int
    limit: int
    inventory_at: datetime | None
