"""OVA files (``hcc export`` / ``hcc import``): upload and download grants, the import and
export task plans, and the clean-up of an exported package (appliance/tasks/offline.py).

The server signs the capability tokens and names the node's receiver and certificate; the
CLI moves the bytes straight to or from the node. Routes:

* ``POST /api/v1/uploads`` {cloud, name, key} → a grant to push one package to the cloud's
  node (asked again, the same artifact and a fresh token: the upload resumes)
* ``POST /api/v1/tasks/{id}/download`` → a read grant for the package of a succeeded export
* ``DELETE /api/v1/tasks/{id}/artifact`` → a ``delete-artifact`` task removing that package
"""

from __future__ import annotations

import time
from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from appliance.api.context import api, services_of
from appliance.api.copying import (
    artifact_name,
    check_destination,
    check_source,
    cloud_or_422,
    deploy_of,
    enrolled_node,
    target_of,
    unprocessable,
)
from appliance.api.framework import API, ProblemError, principal, read_body, respond
from appliance.api.schemas import (
    ExportTask,
    ImportTask,
    TaskView,
    TransferGrant,
    UploadRequest,
)
from appliance.api.views import task_view
from appliance.services import Services
from appliance.store import tasks as store_tasks
from appliance.store.accounts import Role
from appliance.store.models import Node
from appliance.tasks import offline
from appliance.tasks.copy import Side
from appliance.tasks.saga import StepPlan
from protocol.tokens import issue_token


def _grant(services: Services, artifact_id: str, node: Node, source: str, destination: str,
           access: Literal["read"] | None) -> TransferGrant:  # fmt: skip
    ttl = services.settings.transfer_token_ttl_s
    token = issue_token(services.signing_key, artifact_id=artifact_id, source_node=source,
                        destination_node=destination, now=int(time.time()), ttl_s=ttl,
                        access=access)  # fmt: skip
    assert node.receiver_url is not None
    assert node.fingerprint is not None
    return TransferGrant(artifact_id=artifact_id, node_id=node.id, receiver_url=node.receiver_url,
                         fingerprint=node.fingerprint, token=token, expires_in_s=ttl)  # fmt: skip


async def plan_import_request(
    session: AsyncSession, req: ImportTask
) -> tuple[list[StepPlan], dict[str, Any]]:
    """The destination checks of a copy (cloud, catalog or folder, name), then the plan."""
    dst = await cloud_or_422(session, req.destination.cloud, "destination.cloud")
    name = await check_destination(session, dst, req.destination)
    plans = offline.plan_import(
        artifact_id=req.artifact_id, destination=Side(dst.id, dst.node_id),
        target=target_of(req.destination, name), deploy=deploy_of(req.deploy, req.destination),
        keep_artifacts=req.options.keep_artifacts,
    )  # fmt: skip
    spec = req.model_dump(mode="json")
    spec["destination"].update(name=name, kind=dst.kind)
    return plans, spec


async def plan_export_request(
    session: AsyncSession, req: ExportTask
) -> tuple[list[StepPlan], dict[str, Any]]:
    src = await cloud_or_422(session, req.source.cloud, "source.cloud")
    await check_source(session, src, req.source.ref)
    await enrolled_node(session, src.node_id, "source.cloud")
    artifact_id = artifact_name("export-" + req.source.ref.rstrip("/").rpartition("/")[2])
    plans = offline.plan_export(artifact_id=artifact_id, source=Side(src.id, src.node_id),
                                ref=req.source.ref)  # fmt: skip
    spec = req.model_dump(mode="json")
    spec["source"]["kind"] = src.kind
    spec["artifact_id"] = artifact_id
    return plans, spec


@api.route("POST", f"{API}/uploads", role=Role.OPERATOR, body=UploadRequest,
           response=TransferGrant, tag="tasks")  # fmt: skip
async def create_upload(request: web.Request) -> web.Response:
    """A grant to upload a package (an OVA's files) to a cloud's node; then start an import."""
    body = await read_body(request, UploadRequest)
    services = services_of(request)
    async with services.sessions() as session:
        cloud = await cloud_or_422(session, body.cloud, "cloud")
        node = await enrolled_node(session, cloud.node_id, "cloud")
        if body.destination is not None:  # refuse now, not after gigabytes moved
            if body.destination.cloud != cloud.id:
                raise unprocessable("destination.cloud", "not the cloud of the upload")
            await check_destination(session, cloud, body.destination)
    artifact_id = offline.upload_artifact_id(cloud.id, body.name, body.key)
    return respond(_grant(services, artifact_id, node, offline.OPERATOR, node.id, None))


async def _export_task(services: Services, request: web.Request) -> tuple[str, str, str]:
    """(artifact id, node id, state) of the export task named in the path."""
    try:
        task_id = UUID(request.match_info["task_id"])
    except ValueError as exc:
        raise ProblemError(404, "no such task") from exc
    async with services.sessions() as session:
        loaded = await store_tasks.load_task(session, task_id)
    if loaded is None:
        raise ProblemError(404, f"no task {task_id}")
    task, steps = loaded
    if task.kind != offline.EXPORT:
        raise ProblemError(409, f"task {task_id} is a {task.kind} task, not an export")
    step = steps[0]
    return str(step.command["body"]["artifact_id"]), step.node_id, task.state


@api.route("POST", f"{API}/tasks/{{task_id}}/download", role=Role.OPERATOR,
           response=TransferGrant, tag="tasks")  # fmt: skip
async def create_download(request: web.Request) -> web.Response:
    """A read grant for the package a succeeded export task left on its node."""
    services = services_of(request)
    artifact_id, node_id, state = await _export_task(services, request)
    if state != "succeeded":
        raise ProblemError(409, f"the export is {state}; its package can be read once it succeeded")
    async with services.sessions() as session:
        node = await enrolled_node(session, node_id, "task")
    return respond(_grant(services, artifact_id, node, node.id, offline.OPERATOR, "read"))


@api.route("DELETE", f"{API}/tasks/{{task_id}}/artifact", role=Role.OPERATOR,
           response=TaskView, status=202, tag="tasks")  # fmt: skip
async def delete_artifact(request: web.Request) -> web.Response:
    """Remove an export's package from its node's storage (a `delete-artifact` task)."""
    services = services_of(request)
    artifact_id, node_id, state = await _export_task(services, request)
    if state in ("running", "cancelling"):
        raise ProblemError(409, "the export is still running; cancel it first")
    spec = {"task": request.match_info["task_id"], "artifact_id": artifact_id, "node": node_id}
    plans = offline.plan_delete_artifact(artifact_id=artifact_id, node_id=node_id)
    async with services.sessions.begin() as session:
        task = await store_tasks.create_task(session, offline.DELETE_ARTIFACT, spec,
                                             principal(request).name, plans, None)  # fmt: skip
        loaded = await store_tasks.load_task(session, task.id)
    services.wake_relay()
    services.hub.publish({"type": "task", "id": str(task.id)})
    assert loaded is not None
    return respond(task_view(*loaded), 202)
