"""Clouds: register, edit, remove; their inventory as their nodes report it."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from appliance.api.context import api, services_of
from appliance.api.framework import (
    API,
    PAGE_PARAMS,
    Page,
    ProblemError,
    page_params,
    principal,
    read_body,
    respond,
)
from appliance.api.schemas import (
    CloudCreate,
    CloudUpdate,
    CloudView,
    InventoryPage,
    InventoryRefreshTask,
    TaskView,
)
from appliance.services import Services
from appliance.store import fleet
from appliance.store import tasks as store_tasks
from appliance.store.accounts import Role, now
from appliance.store.models import Cloud, Node
from appliance.tasks import kinds
from protocol.messages import CloudKind, InventoryItem


def cloud_view(cloud: Cloud, node: Node | None, timeout_s: float) -> CloudView:
    reachable = None
    if node is not None and cloud.id in (node.clouds_reachable or {}):
        reachable = bool(node.clouds_reachable[cloud.id])
    return CloudView(
        id=cloud.id,
        kind=CloudKind(cloud.kind),
        endpoint=cloud.endpoint,
        username=cloud.username,
        org=cloud.org,
        insecure=cloud.insecure,
        thumbprint=cloud.thumbprint,
        node_id=cloud.node_id,
        node_online=node is not None and fleet.node_online(node, timeout_s),
        reachable=reachable,
        inventory_at=fleet.aware(cloud.inventory_at),
        inventory_error=cloud.inventory_error,
        created_at=fleet.aware(cloud.created_at) or cloud.created_at,
    )


async def _view(services: Services, cloud: Cloud) -> CloudView:
    async with services.sessions() as session:
        node = await fleet.get_node(session, cloud.node_id)
    return cloud_view(cloud, node, services.settings.heartbeat_timeout_s)


async def _cloud(services: Services, cloud_id: str) -> Cloud:
    async with services.sessions() as session:
        cloud = await fleet.get_cloud(session, cloud_id)
    if cloud is None:
        raise ProblemError(404, f"no cloud {cloud_id!r}")
    return cloud


@api.route("GET", f"{API}/clouds", response=Page[CloudView], params=PAGE_PARAMS, tag="clouds")
async def list_clouds(request: web.Request) -> web.Response:
    """Every cloud with its kind, endpoint, node and health."""
    offset, limit = page_params(request)
    services = services_of(request)
    async with services.sessions() as session:
        clouds, total = await fleet.list_clouds(session, offset, limit)
        nodes = {c.node_id: await fleet.get_node(session, c.node_id) for c in clouds}
    timeout = services.settings.heartbeat_timeout_s
    items = [cloud_view(c, nodes[c.node_id], timeout) for c in clouds]
    return respond(Page[CloudView](items=items, total=total, offset=offset, limit=limit))


@api.route("GET", f"{API}/clouds/{{cloud_id}}", response=CloudView, tag="clouds")
async def get_cloud(request: web.Request) -> web.Response:
    """One cloud."""
    services = services_of(request)
    return respond(await _view(services, await _cloud(services, request.match_info["cloud_id"])))


async def _push_config(services: Services, cloud: Cloud, created_by: str) -> None:
    """A cloud changed: its node re-reads its config at the refresh this task starts."""
    async with services.sessions.begin() as session:
        await store_tasks.create_task(
            session,
            kinds.INVENTORY_REFRESH,
            {"cloud": cloud.id},
            created_by,
            kinds.plan_inventory_refresh(cloud.id, cloud.node_id),
        )
    services.wake_relay()


@api.route("POST", f"{API}/clouds", role=Role.ADMIN, body=CloudCreate, response=CloudView,
           status=201, tag="clouds")  # fmt: skip
async def add_cloud(request: web.Request) -> web.Response:
    """Register a cloud and the node that serves it; credentials are stored encrypted."""
    body = await read_body(request, CloudCreate)
    services = services_of(request)
    at = now()
    cloud = Cloud(
        id=body.id, kind=body.kind.value, endpoint=body.endpoint, username=body.username,
        password_enc=services.box.seal(body.password.get_secret_value()), org=body.org,
        insecure=body.insecure, thumbprint=body.thumbprint, node_id=body.node_id,
        created_at=at, updated_at=at,
    )  # fmt: skip
    try:
        async with services.sessions.begin() as session:
            if await fleet.get_node(session, body.node_id) is None:
                raise ProblemError(422, f"no node {body.node_id!r}",
                                   errors=[{"loc": ["node_id"], "field": "node_id",
                                            "msg": "unknown node"}])  # fmt: skip
            if await fleet.get_cloud(session, body.id) is not None:
                raise ProblemError(409, f"cloud {body.id!r} exists")
            await fleet.add_cloud(session, cloud)
    except IntegrityError as exc:
        raise ProblemError(409, f"cloud {body.id!r} exists") from exc
    await _push_config(services, cloud, principal(request).name)
    services.hub.publish({"type": "cloud", "id": cloud.id})
    return respond(await _view(services, cloud), 201)


@api.route("PATCH", f"{API}/clouds/{{cloud_id}}", role=Role.ADMIN, body=CloudUpdate,
           response=CloudView, tag="clouds")  # fmt: skip
async def update_cloud(request: web.Request) -> web.Response:
    """Change a cloud's endpoint, credentials, TLS options or node."""
    body = await read_body(request, CloudUpdate)
    services = services_of(request)
    cloud_id = request.match_info["cloud_id"]
    async with services.sessions.begin() as session:
        cloud = await fleet.get_cloud(session, cloud_id)
        if cloud is None:
            raise ProblemError(404, f"no cloud {cloud_id!r}")
        if body.node_id is not None and await fleet.get_node(session, body.node_id) is None:
            raise ProblemError(422, f"no node {body.node_id!r}")
        for name in ("endpoint", "username", "org", "insecure", "thumbprint", "node_id"):
            value = getattr(body, name)
            if value is not None:
                setattr(cloud, name, value)
        if body.password is not None:
            cloud.password_enc = services.box.seal(body.password.get_secret_value())
        cloud.updated_at = now()
    await _push_config(services, cloud, principal(request).name)
    services.hub.publish({"type": "cloud", "id": cloud.id})
    return respond(await _view(services, cloud))


@api.route("DELETE", f"{API}/clouds/{{cloud_id}}", role=Role.ADMIN, status=204, tag="clouds")
async def remove_cloud(request: web.Request) -> web.Response:
    """Forget a cloud (nothing in the cloud itself is touched)."""
    services = services_of(request)
    cloud_id = request.match_info["cloud_id"]
    async with services.sessions.begin() as session:
        cloud = await fleet.get_cloud(session, cloud_id)
        if cloud is None:
            raise ProblemError(404, f"no cloud {cloud_id!r}")
        await session.delete(cloud)
    services.hub.publish({"type": "cloud", "id": cloud_id})
    return web.Response(status=204)


@api.route("GET", f"{API}/clouds/{{cloud_id}}/inventory", response=InventoryPage, tag="clouds",
           params=(*PAGE_PARAMS, ("kind", "string", "Only this kind (vm, template, catalog...)"),
                   ("name", "string", "Name contains (case-insensitive)"),
                   ("parent", "string", "Only children of this id")))  # fmt: skip
async def inventory(request: web.Request) -> web.Response:
    """The cloud's objects as its node last reported them."""
    offset, limit = page_params(request, default=200, most=1000)
    services = services_of(request)
    cloud = await _cloud(services, request.match_info["cloud_id"])
    q = request.query
    async with services.sessions() as session:
        items, total = await fleet.list_inventory(
            session, cloud.id, offset, limit, kind=q.get("kind"), name=q.get("name"),
            parent=q.get("parent"),
        )  # fmt: skip
    return respond(
        InventoryPage(
            items=[InventoryItem.model_validate(i) for i in items], total=total, offset=offset,
            limit=limit, inventory_at=fleet.aware(cloud.inventory_at),
        )
    )  # fmt: skip


@api.route("POST", f"{API}/clouds/{{cloud_id}}/refresh", role=Role.OPERATOR, response=TaskView,
           status=202, tag="clouds")  # fmt: skip
async def refresh(request: web.Request) -> web.Response:
    """Ask the cloud's node for a fresh inventory; returns the task."""
    from appliance.api.routes_tasks import start_task

    services = services_of(request)
    cloud_id = request.match_info["cloud_id"]
    view, _ = await start_task(services, InventoryRefreshTask(kind="inventory-refresh",
                                                           cloud=cloud_id),
                            principal(request).name)  # fmt: skip
    return respond(view, 202)
