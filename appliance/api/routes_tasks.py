"""Tasks: start, list, detail, cancel, retry; the live event stream (SSE)."""

from __future__ import annotations

import asyncio
import json
import re
from uuid import UUID

from aiohttp import web
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from appliance.api.context import api, services_of
from appliance.api.copying import plan_copy_request
from appliance.api.framework import (
    API,
    PAGE_PARAMS,
    Page,
    ProblemError,
    page_params,
    principal,
    respond,
)
from appliance.api.routes_offline import plan_export_request, plan_import_request
from appliance.api.schemas import (
    ExportTask,
    ImportTask,
    InventoryRefreshTask,
    TaskCreate,
    TaskDetail,
    TaskView,
)
from appliance.api.views import event_view, task_view
from appliance.services import Services
from appliance.store import fleet
from appliance.store import tasks as store_tasks
from appliance.store.accounts import Role
from appliance.tasks import kinds, saga

TASK_CREATE: TypeAdapter[TaskCreate] = TypeAdapter(TaskCreate)
SSE_KEEPALIVE_S = 15.0
TASK_KINDS = (kinds.COPY, kinds.INVENTORY_REFRESH, kinds.IMPORT, kinds.EXPORT)


async def start_task(
    services: Services, request: TaskCreate, created_by: str, idempotency_key: str | None = None
) -> tuple[TaskView, bool]:
    """Plan and store a task; returns it and whether it is new. With an ``idempotency_key``
    that this user has sent before, the task made then is returned instead of a second one."""
    if idempotency_key is not None:
        async with services.sessions() as session:
            earlier = await _task_by_key(session, created_by, idempotency_key)
        if earlier is not None:
            return earlier, False
    try:
        view = await _create_task(services, request, created_by, idempotency_key)
    except IntegrityError:
        if idempotency_key is None:
            raise
        async with services.sessions() as session:  # the same key, at the same moment
            earlier = await _task_by_key(session, created_by, idempotency_key)
        if earlier is None:
            raise
        return earlier, False
    return view, True


async def _task_by_key(session: AsyncSession, created_by: str, key: str) -> TaskView | None:
    task_id = await store_tasks.task_id_by_key(session, created_by, key)
    loaded = await store_tasks.load_task(session, task_id) if task_id is not None else None
    return task_view(*loaded) if loaded is not None else None


async def _create_task(
    services: Services, request: TaskCreate, created_by: str, idempotency_key: str | None
) -> TaskView:
    async with services.sessions.begin() as session:
        if isinstance(request, InventoryRefreshTask):
            cloud = await fleet.get_cloud(session, request.cloud)
            if cloud is None:
                raise ProblemError(422, f"no cloud {request.cloud!r}",
                                   errors=[{"loc": ["cloud"], "field": "cloud",
                                            "msg": "unknown cloud"}])  # fmt: skip
            plans = kinds.plan_inventory_refresh(cloud.id, cloud.node_id)
            spec = request.model_dump(mode="json")
        elif isinstance(request, ImportTask):
            plans, spec = await plan_import_request(session, request)
        elif isinstance(request, ExportTask):
            plans, spec = await plan_export_request(session, request)
        else:
            plans, spec = await plan_copy_request(session, request)
        task = await store_tasks.create_task(
            session, request.kind, spec, created_by, plans,
            services.kinds.binder_for(request.kind), idempotency_key=idempotency_key,
        )  # fmt: skip
        loaded = await store_tasks.load_task(session, task.id)
    services.wake_relay()
    assert loaded is not None
    services.hub.publish({"type": "task", "id": str(task.id)})
    return task_view(*loaded)


def _task_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["task_id"])
    except ValueError as exc:
        raise ProblemError(404, "no such task") from exc


@api.route("POST", f"{API}/tasks", role=Role.OPERATOR, body=TaskCreate, response=TaskView,
           status=202, tag="tasks")  # fmt: skip
async def create_task(request: web.Request) -> web.Response:
    """Start a task: `copy` (a VM, template or vApp to another cloud), `inventory-refresh`,
    `import` (a package uploaded with POST /uploads) or `export` (kept for download).
    With an `Idempotency-Key` header (1 to 200 visible ASCII characters), a repeat of the
    request by the same user answers 200 with the task the first one made."""
    raw = await request.read()
    try:
        body = TASK_CREATE.validate_json(raw or b"null")
    except ValidationError as exc:
        errors = []
        for e in exc.errors(include_url=False):
            loc = list(e["loc"])
            if loc and loc[0] in TASK_KINDS:  # the union's tag is not a field of the body
                loc = loc[1:]
            errors.append({"loc": loc, "field": ".".join(str(p) for p in loc), "msg": e["msg"]})
        status = 400 if any(e["type"] == "json_invalid" for e in exc.errors()) else 422
        raise ProblemError(status, "invalid task request", errors=errors) from exc
    key = idempotency_key(request)
    view, new = await start_task(services_of(request), body, principal(request).name, key)
    return respond(view, 202 if new else 200)


IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")


def idempotency_key(request: web.Request) -> str | None:
    """The Idempotency-Key header: 1 to 200 visible ASCII characters, or absent."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise ProblemError(400, "invalid Idempotency-Key header: 1 to 200 visible ASCII "
                                "characters")  # fmt: skip
    return key


@api.route("GET", f"{API}/tasks", response=Page[TaskView], tag="tasks",
           params=(*PAGE_PARAMS, ("state", "string", "Only tasks in this state"),
                   ("kind", "string", "Only tasks of this kind: copy, inventory-refresh")),
           )  # fmt: skip
async def list_tasks(request: web.Request) -> web.Response:
    """Tasks, newest first, with their steps and progress."""
    offset, limit = page_params(request)
    services = services_of(request)
    async with services.sessions() as session:
        rows, total = await store_tasks.list_tasks(
            session, offset, limit, state=request.query.get("state"), kind=request.query.get("kind")
        )
        offline = await fleet.offline_nodes(session, services.settings.heartbeat_timeout_s)
    items = [task_view(t, s, offline) for t, s in rows]
    return respond(Page[TaskView](items=items, total=total, offset=offset, limit=limit))


@api.route("GET", f"{API}/tasks/{{task_id}}", response=TaskDetail, tag="tasks")
async def get_task(request: web.Request) -> web.Response:
    """A task with per-step progress (bytes, rate, ETA) and what happened to it."""
    task_id = _task_id(request)
    services = services_of(request)
    async with services.sessions() as session:
        loaded = await store_tasks.load_task(session, task_id)
        if loaded is None:
            raise ProblemError(404, f"no task {task_id}")
        events = await store_tasks.task_events(session, task_id)
        offline = await fleet.offline_nodes(session, services.settings.heartbeat_timeout_s)
    view = task_view(*loaded, offline)
    detail = TaskDetail(**view.model_dump(), events=[event_view(e) for e in events])
    return respond(detail)


async def _run_op(request: web.Request, name: str) -> web.Response:
    services = services_of(request)
    task_id = _task_id(request)
    op = saga.cancel if name == "cancel" else saga.retry
    async with services.sessions.begin() as session:
        loaded = await store_tasks.load_task(session, task_id)
        kind = loaded[0].kind if loaded else ""
        try:
            task = await store_tasks.operate(session, task_id, op, services.kinds.binder_for(kind))
        except saga.IllegalTransition as exc:
            raise ProblemError(409, str(exc)) from exc
        if task is None:
            raise ProblemError(404, f"no task {task_id}")
        loaded = await store_tasks.load_task(session, task_id)
    services.wake_relay()
    services.hub.publish({"type": "task", "id": str(task_id)})
    assert loaded is not None
    return respond(task_view(*loaded), 202)


@api.route("POST", f"{API}/tasks/{{task_id}}/cancel", role=Role.OPERATOR, response=TaskView,
           status=202, tag="tasks")  # fmt: skip
async def cancel_task(request: web.Request) -> web.Response:
    """Cancel a running task: its nodes stop their steps and clean up."""
    return await _run_op(request, "cancel")


@api.route("POST", f"{API}/tasks/{{task_id}}/retry", role=Role.OPERATOR, response=TaskView,
           status=202, tag="tasks")  # fmt: skip
async def retry_task(request: web.Request) -> web.Response:
    """Resume a failed or cancelled task at the steps that did not finish."""
    return await _run_op(request, "retry")


@api.route("GET", f"{API}/events/stream", tag="tasks")
async def event_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `task`, `node` and `cloud` changes, each with the changed id."""
    services = services_of(request)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                 "X-Accel-Buffering": "no"}
    )  # fmt: skip
    await response.prepare(request)
    services.metrics.sse_clients.inc()
    try:
        async with services.hub.subscribe() as queue:
            await response.write(b": connected\n\n")
            while True:
                try:
                    note = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                data = json.dumps(note)
                await response.write(f"event: {note['type']}\ndata: {data}\n\n".encode())
    except ConnectionResetError:
        pass  # the client went away
    finally:
        services.metrics.sse_clients.dec()
    return response
