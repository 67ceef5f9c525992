"""Turning a copy request into a plan: every check that can be made before anything moves.

Each refusal is a 4xx naming the field: unknown cloud, source object missing, destination
catalog or folder missing, name taken (or a free suffixed name when asked), destination
node never enrolled. A destination node that is merely offline is no refusal: the task
waits for it, its step shown as waiting.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from appliance.api.framework import ProblemError
from appliance.api.schemas import CopyDeploy, CopyDestination, CopyTask
from appliance.store import fleet
from appliance.store.models import Cloud, Node
from appliance.tasks.copy import Receiver, Side, TransferOptions, plan_copy
from appliance.tasks.saga import StepPlan
from protocol.messages import DeploySpec, Target

# what a copy's name must not collide with (a vSphere vApp's name is taken for a VM too)
TEMPLATE_KINDS = {"vsphere": ("vm", "template", "vapp"), "vcd": ("vapp_template", "catalog_item")}


def unprocessable(field: str, message: str) -> ProblemError:
    return ProblemError(422, message, errors=[{"loc": field.split("."), "field": field,
                                               "msg": message}])  # fmt: skip


async def cloud_or_422(session: AsyncSession, cloud_id: str, field: str) -> Cloud:
    cloud = await fleet.get_cloud(session, cloud_id)
    if cloud is None:
        raise unprocessable(field, f"no cloud {cloud_id!r}")
    return cloud


async def enrolled_node(session: AsyncSession, node_id: str, field: str) -> Node:
    """A node that has enrolled: its receiver URL and certificate fingerprint are known."""
    node = await fleet.get_node(session, node_id)
    if node is None or not node.receiver_url or not node.fingerprint:
        raise unprocessable(field, f"node {node_id!r} has not enrolled yet")
    return node


async def _has_inventory(session: AsyncSession, cloud: Cloud) -> bool:
    return cloud.inventory_at is not None


async def check_source(session: AsyncSession, cloud: Cloud, ref: str) -> None:
    if not await _has_inventory(session, cloud):
        return  # never listed: the export step reports a missing object itself
    if await fleet.find_inventory_item(session, cloud.id, ref) is None:
        raise unprocessable("source.ref", f"{ref!r} is not in the inventory of {cloud.id!r} "
                             "(refresh it if it is new)")  # fmt: skip


async def _check_container(session: AsyncSession, cloud: Cloud, dest: CopyDestination) -> None:
    if cloud.kind == "vcd" and not dest.catalog:
        raise unprocessable("destination.catalog", "a vCD destination needs a catalog")
    if not await _has_inventory(session, cloud):
        return
    if cloud.kind == "vcd":
        assert dest.catalog is not None
        items, _ = await fleet.list_inventory(session, cloud.id, 0, 1000, kind="catalog")
        if not any(i["name"] == dest.catalog or i["path"] == dest.catalog for i in items):
            raise unprocessable("destination.catalog",
                                 f"no catalog {dest.catalog!r} in {cloud.id!r}")  # fmt: skip
    elif dest.folder:
        found = await fleet.find_inventory_item(session, cloud.id, dest.folder)
        if found is None or found["kind"] not in ("folder", "datacenter"):
            raise unprocessable("destination.folder",
                                 f"no folder {dest.folder!r} in {cloud.id!r}")  # fmt: skip


async def _free_name(session: AsyncSession, cloud: Cloud, dest: CopyDestination) -> str:
    """The name to use: as asked, or with the first free -N suffix when asked to."""
    name = dest.name
    taken: set[str] = set()
    for kind in TEMPLATE_KINDS.get(cloud.kind, ()):
        items, _ = await fleet.list_inventory(session, cloud.id, 0, 1000, kind=kind, name=name)
        taken |= {i["name"] for i in items}
    if name not in taken:
        return name
    if dest.on_conflict == "fail":
        raise ProblemError(409, f"{name!r} already exists in {cloud.id!r}; choose another name "
                           "or ask for on_conflict=suffix")  # fmt: skip
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def artifact_name(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:40] or "copy"
    return f"{slug}-{uuid4().hex[:12]}"


async def check_destination(session: AsyncSession, cloud: Cloud, dest: CopyDestination) -> str:
    """The catalog or folder exists and the name is free (or suffixed): the name to use."""
    await _check_container(session, cloud, dest)
    return await _free_name(session, cloud, dest)


def target_of(dest: CopyDestination, name: str) -> Target:
    return Target(catalog=dest.catalog, vdc=dest.vdc, folder=dest.folder,
                  datastore=dest.datastore, resource_pool=dest.resource_pool,
                  network=dest.network, name=name, on_conflict=dest.on_conflict)  # fmt: skip


def deploy_of(deploy: CopyDeploy | None, dest: CopyDestination) -> DeploySpec | None:
    if deploy is None:
        return None
    return DeploySpec(name=deploy.name, vdc=deploy.vdc or dest.vdc,
                      network=deploy.network or dest.network, power_on=deploy.power_on)  # fmt: skip


async def plan_copy_request(
    session: AsyncSession, req: CopyTask
) -> tuple[list[StepPlan], dict[str, Any]]:
    """Validate ``req`` against what the store knows; the plan and the spec to record."""
    src = await cloud_or_422(session, req.source.cloud, "source.cloud")
    dst = await cloud_or_422(session, req.destination.cloud, "destination.cloud")
    await check_source(session, src, req.source.ref)
    name = await check_destination(session, dst, req.destination)
    receiver = None
    if src.node_id != dst.node_id:
        node = await enrolled_node(session, dst.node_id, "destination.cloud")
        assert node.receiver_url is not None
        assert node.fingerprint is not None
        receiver = Receiver(node.receiver_url, node.fingerprint)
    o = req.options
    options = TransferOptions(
        streams=o.streams, chunk_bytes=o.chunk_mib * 1024 * 1024, compress=o.compress,
        bandwidth_bytes_per_s=int(o.bandwidth_mb_per_s * 1e6) if o.bandwidth_mb_per_s else None,
        keep_artifacts=o.keep_artifacts,
    )  # fmt: skip
    plans = plan_copy(
        artifact_id=artifact_name(name), source=Side(src.id, src.node_id), ref=req.source.ref,
        destination=Side(dst.id, dst.node_id), receiver=receiver,
        target=target_of(req.destination, name), deploy=deploy_of(req.deploy, req.destination),
        options=options,
    )  # fmt: skip
    spec = req.model_dump(mode="json")
    spec["destination"]["name"] = name
    spec["source"]["kind"] = src.kind
    spec["destination"]["kind"] = dst.kind
    return plans, spec
