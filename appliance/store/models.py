"""The server's tables (SQLAlchemy 2, typed). Migrations in appliance/store/migrations/."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class ApiToken(Base):
    """Bearer tokens. Only the SHA-256 of a token is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class Node(Base):
    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    enroll_token_hash: Mapped[str | None] = mapped_column(String(64))
    node_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    enrolled_at: Mapped[datetime | None]
    fingerprint: Mapped[str | None] = mapped_column(String(128))
    receiver_url: Mapped[str | None] = mapped_column(String(512))
    version: Mapped[str | None] = mapped_column(String(64))
    amqp_user: Mapped[str | None] = mapped_column(String(128))
    last_heartbeat: Mapped[datetime | None]
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime | None]
    free_bytes: Mapped[int | None] = mapped_column(BigInteger)
    total_bytes: Mapped[int | None] = mapped_column(BigInteger)
    running_steps: Mapped[list[Any]] = mapped_column(default=list)
    clouds_reachable: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class Cloud(Base):
    __tablename__ = "clouds"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    endpoint: Mapped[str] = mapped_column(String(512))
    username: Mapped[str] = mapped_column(String(255))
    password_enc: Mapped[bytes] = mapped_column(LargeBinary)
    org: Mapped[str | None] = mapped_column(String(255))
    insecure: Mapped[bool] = mapped_column(Boolean, default=False)
    thumbprint: Mapped[str | None] = mapped_column(String(128))
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    inventory_at: Mapped[datetime | None]
    inventory_error: Mapped[dict[str, Any] | None]


class InventoryRow(Base):
    __tablename__ = "inventory"

    cloud_id: Mapped[str] = mapped_column(
        ForeignKey("clouds.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]]


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("created_by", "idempotency_key"),)

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(24), index=True)
    spec: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    error: Mapped[dict[str, Any] | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    """The Idempotency-Key of the request that made the task: a repeat returns this task."""


class Step(Base):
    __tablename__ = "steps"
    __table_args__ = (Index("ix_steps_task_position", "task_id", "position"),)

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    task_id: Mapped[UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(32))
    node_id: Mapped[str] = mapped_column(String(63))
    command: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(24))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=-1)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int | None] = mapped_column(BigInteger)
    rate_bytes_per_s: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[dict[str, Any] | None]
    result: Mapped[dict[str, Any] | None]


class OutboxRow(Base):
    """Commands written in the same transaction as the state change that caused them."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[UUID] = mapped_column(Uuid, unique=True)
    exchange: Mapped[str] = mapped_column(String(128))
    routing_key: Mapped[str] = mapped_column(String(255))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class AuditRow(Base):
    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    remote: Mapped[str | None] = mapped_column(String(64))


class TaskEvent(Base):
    """What happened to a task, for its detail view (progress events are not kept)."""

    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    step_id: Mapped[UUID | None] = mapped_column(Uuid)
    ts: Mapped[datetime]
    type: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
