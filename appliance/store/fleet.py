"""Nodes, clouds and the inventory the nodes report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from appliance.store.accounts import now
from appliance.store.models import Cloud, InventoryRow, Node
from protocol.messages import HeartbeatEvent, InventorySnapshotEvent


def aware(ts: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if ts is not None and ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts


def node_online(node: Node, timeout_s: float, at: datetime | None = None) -> bool:
    last = aware(node.last_heartbeat)
    if last is None:
        return False
    return ((at or now()) - last).total_seconds() <= timeout_s


async def offline_nodes(session: AsyncSession, timeout_s: float) -> frozenset[str]:
    nodes = await session.scalars(select(Node))
    return frozenset(n.id for n in nodes if not node_online(n, timeout_s))


async def add_node(session: AsyncSession, node_id: str, enroll_token_hash: str) -> Node:
    node = Node(id=node_id, enroll_token_hash=enroll_token_hash, created_at=now())
    session.add(node)
    await session.flush()
    return node


async def get_node(session: AsyncSession, node_id: str) -> Node | None:
    return await session.get(Node, node_id)


async def list_nodes(session: AsyncSession, offset: int, limit: int) -> tuple[Sequence[Node], int]:
    total = await session.scalar(select(func.count()).select_from(Node)) or 0
    rows = (await session.scalars(select(Node).order_by(Node.id).offset(offset).limit(limit))).all()
    return rows, total


async def node_by_token(session: AsyncSession, node_token_hash: str) -> Node | None:
    return await session.scalar(select(Node).where(Node.node_token_hash == node_token_hash))


def apply_heartbeat(node: Node, event: HeartbeatEvent) -> bool:
    """Record a heartbeat. True when the node was not online before (it came back)."""
    body = event.body
    last = aware(node.last_heartbeat)
    if last is not None and event.ts <= last:
        return False  # stale or duplicate beat
    node.last_heartbeat = event.ts
    node.started_at = body.started_at
    node.version = body.version
    node.free_bytes = body.free_bytes
    node.total_bytes = body.total_bytes
    node.running_steps = [str(s) for s in body.running_steps]
    node.clouds_reachable = dict(body.clouds)
    if body.receiver_url:
        node.receiver_url = body.receiver_url
    return True


async def add_cloud(session: AsyncSession, cloud: Cloud) -> Cloud:
    session.add(cloud)
    await session.flush()
    return cloud


async def get_cloud(session: AsyncSession, cloud_id: str) -> Cloud | None:
    return await session.get(Cloud, cloud_id)


async def list_clouds(
    session: AsyncSession, offset: int, limit: int, node_id: str | None = None
) -> tuple[Sequence[Cloud], int]:
    query = select(Cloud)
    if node_id is not None:
        query = query.where(Cloud.node_id == node_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = (await session.scalars(query.order_by(Cloud.id).offset(offset).limit(limit))).all()
    return rows, total


async def apply_inventory(session: AsyncSession, event: InventorySnapshotEvent) -> bool:
    """Replace a cloud's inventory with a node's snapshot. Only the cloud's own node counts."""
    cloud = await session.get(Cloud, event.body.cloud_id)
    if cloud is None or cloud.node_id != event.node_id:
        return False
    at = aware(cloud.inventory_at)
    if at is not None and event.ts <= at:
        return False
    cloud.inventory_at = event.ts
    if event.body.error is not None:
        cloud.inventory_error = event.body.error.model_dump()
        return True
    cloud.inventory_error = None
    await session.execute(delete(InventoryRow).where(InventoryRow.cloud_id == cloud.id))
    session.add_all(
        InventoryRow(
            cloud_id=cloud.id,
            item_id=item.id,
            kind=item.kind.value,
            name=item.name,
            path=item.path,
            data=item.model_dump(mode="json"),
        )
        for item in event.body.items
    )
    return True


async def list_inventory(
    session: AsyncSession,
    cloud_id: str,
    offset: int,
    limit: int,
    kind: str | None = None,
    name: str | None = None,
    parent: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    query = select(InventoryRow).where(InventoryRow.cloud_id == cloud_id)
    if kind:
        query = query.where(InventoryRow.kind == kind)
    if name:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(InventoryRow.name.ilike(f"%{escaped}%", escape="\\"))
    if parent:
        query = query.where(InventoryRow.data["parent_id"].as_string() == parent)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(query.order_by(InventoryRow.path).offset(offset).limit(limit))
    return [row.data for row in rows], total


async def find_inventory_item(
    session: AsyncSession, cloud_id: str, ref: str
) -> dict[str, Any] | None:
    """An item by id or by path."""
    row = await session.get(InventoryRow, (cloud_id, ref))
    if row is None:
        row = await session.scalar(
            select(InventoryRow).where(InventoryRow.cloud_id == cloud_id, InventoryRow.path == ref)
        )
    return None if row is None else row.data
