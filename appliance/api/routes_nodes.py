"""Nodes: add (one-time enrollment token), list, remove; enrollment and node config."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from sqlalchemy import select

from appliance.api.context import api, services_of
from appliance.api.framework import (
    API,
    AUDIT_ACTOR,
    PAGE_PARAMS,
    Page,
    ProblemError,
    bearer_token,
    page_params,
    read_body,
    respond,
)
from appliance.api.schemas import (
    CloudCredentials,
    EnrollRequest,
    EnrollResponse,
    NodeConfigResponse,
    NodeCreate,
    NodeCreated,
    NodeView,
    TransferToken,
    TransferTokenRequest,
)
from appliance.bus.brokerusers import BrokerUserError
from appliance.security import new_token, public_pem, same_hash, token_hash, transfer_signer
from appliance.services import Services
from appliance.store import fleet
from appliance.store.accounts import Role, now
from appliance.store.models import Cloud, Node, Step
from appliance.tasks.saga import ACTIVE_STEP_STATES
from protocol.messages import CloudKind


def node_view(node: Node, timeout_s: float) -> NodeView:
    status: Literal["pending", "online", "offline"] = "offline"
    if fleet.node_online(node, timeout_s):
        status = "online"
    elif node.enrolled_at is None and node.last_heartbeat is None:
        status = "pending"
    return NodeView(
        id=node.id,
        status=status,
        enrolled_at=fleet.aware(node.enrolled_at),
        version=node.version,
        last_heartbeat=fleet.aware(node.last_heartbeat),
        receiver_url=node.receiver_url,
        fingerprint=node.fingerprint,
        free_bytes=node.free_bytes,
        total_bytes=node.total_bytes,
        running_steps=list(node.running_steps or []),
        clouds_reachable=dict(node.clouds_reachable or {}),
    )


@api.route("GET", f"{API}/nodes", response=Page[NodeView], params=PAGE_PARAMS, tag="nodes")
async def list_nodes(request: web.Request) -> web.Response:
    """Nodes with their status, version, last heartbeat and free transfer storage."""
    offset, limit = page_params(request)
    services = services_of(request)
    async with services.sessions() as session:
        nodes, total = await fleet.list_nodes(session, offset, limit)
    timeout = services.settings.heartbeat_timeout_s
    return respond(
        Page[NodeView](items=[node_view(n, timeout) for n in nodes], total=total, offset=offset,
                       limit=limit)
    )  # fmt: skip


async def _node(services: Services, node_id: str) -> Node:
    async with services.sessions() as session:
        node = await fleet.get_node(session, node_id)
    if node is None:
        raise ProblemError(404, f"no node {node_id!r}")
    return node


@api.route("GET", f"{API}/nodes/{{node_id}}", response=NodeView, tag="nodes")
async def get_node(request: web.Request) -> web.Response:
    """One node."""
    services = services_of(request)
    node = await _node(services, request.match_info["node_id"])
    return respond(node_view(node, services.settings.heartbeat_timeout_s))


@api.route("POST", f"{API}/nodes", role=Role.ADMIN, body=NodeCreate, response=NodeCreated,
           status=201, tag="nodes")  # fmt: skip
async def add_node(request: web.Request) -> web.Response:
    """Add a node: declares its command queue and returns its one-time enrollment token."""
    body = await read_body(request, NodeCreate)
    services = services_of(request)
    token = new_token()
    async with services.sessions.begin() as session:
        if await fleet.get_node(session, body.id) is not None:
            raise ProblemError(409, f"node {body.id!r} exists")
        await fleet.add_node(session, body.id, token_hash(token))
    await services.declare_node_queue(body.id)
    services.hub.publish({"type": "node", "id": body.id})
    return respond(NodeCreated(id=body.id, enroll_token=token), 201)


@api.route("DELETE", f"{API}/nodes/{{node_id}}", role=Role.ADMIN, status=204, tag="nodes")
async def remove_node(request: web.Request) -> web.Response:
    """Remove a node that serves no cloud; its broker user is deleted."""
    services = services_of(request)
    node_id = request.match_info["node_id"]
    async with services.sessions.begin() as session:
        node = await fleet.get_node(session, node_id)
        if node is None:
            raise ProblemError(404, f"no node {node_id!r}")
        if await session.scalar(select(Cloud.id).where(Cloud.node_id == node_id).limit(1)):
            raise ProblemError(409, f"node {node_id!r} still serves clouds; move them first")
        await session.delete(node)
    await services.broker_users.remove(node_id)
    services.hub.publish({"type": "node", "id": node_id})
    return web.Response(status=204)


async def _clouds_for(services: Services, node_id: str) -> list[CloudCredentials]:
    async with services.sessions() as session:
        clouds = list(await session.scalars(select(Cloud).where(Cloud.node_id == node_id)))
    return [
        CloudCredentials(
            cloud_id=c.id, kind=CloudKind(c.kind), endpoint=c.endpoint, username=c.username,
            password=services.box.open(c.password_enc), org=c.org, insecure=c.insecure,
            thumbprint=c.thumbprint,
        )
        for c in clouds
    ]  # fmt: skip


@api.route("POST", f"{API}/enroll", role=None, body=EnrollRequest, response=EnrollResponse,
           tag="nodes")  # fmt: skip
async def enroll(request: web.Request) -> web.Response:
    """A node presents its one-time token and gets its broker user, keys and clouds."""
    body = await read_body(request, EnrollRequest)
    request[AUDIT_ACTOR] = f"node:{body.node_id}"
    services = services_of(request)
    node_token = new_token()
    async with services.sessions.begin() as session:
        node = await fleet.get_node(session, body.node_id)
        if node is None or not same_hash(node.enroll_token_hash, token_hash(body.token)):
            raise ProblemError(401, "unknown node or enrollment token (it works only once)")
        try:
            amqp_url = await services.broker_users.ensure(node.id)
        except BrokerUserError as exc:
            raise ProblemError(503, f"cannot create the node's broker user: {exc}") from exc
        node.enroll_token_hash = None
        node.node_token_hash = token_hash(node_token)
        node.enrolled_at = now()
        node.fingerprint = body.fingerprint.replace(":", "").lower()
        node.receiver_url = body.receiver_url
        node.version = body.version
    await services.declare_node_queue(body.node_id)
    response = EnrollResponse(
        node_id=body.node_id,
        node_token=node_token,
        amqp_url=amqp_url,
        server_public_key=public_pem(services.signing_key),
        clouds=await _clouds_for(services, body.node_id),
    )
    return respond(response)


async def _calling_node(request: web.Request) -> Node:
    """The node whose node token authenticates this request."""
    token = bearer_token(request)
    async with services_of(request).sessions() as session:
        node = await fleet.node_by_token(session, token_hash(token)) if token else None
    if node is None:
        raise ProblemError(401, "a node token is required", headers={"WWW-Authenticate": "Bearer"})
    request[AUDIT_ACTOR] = f"node:{node.id}"
    return node


@api.route("GET", f"{API}/node/config", role=None, response=NodeConfigResponse, tag="nodes")
async def node_config(request: web.Request) -> web.Response:
    """A node (bearer: its node token) reads its clouds and credentials again."""
    services = services_of(request)
    node = await _calling_node(request)
    return respond(
        NodeConfigResponse(
            node_id=node.id,
            amqp_url="",  # unchanged since enrollment; the node keeps its own
            server_public_key=public_pem(services.signing_key),
            clouds=await _clouds_for(services, node.id),
        )
    )


@api.route("POST", f"{API}/node/transfer-token", role=None, body=TransferTokenRequest,
           response=TransferToken, tag="nodes")  # fmt: skip
async def transfer_token(request: web.Request) -> web.Response:
    """A node renews the capability token of a send it is running (bearer: node token)."""
    services = services_of(request)
    node = await _calling_node(request)
    body = await read_body(request, TransferTokenRequest)
    async with services.sessions() as session:
        steps = await session.scalars(
            select(Step).where(
                Step.node_id == node.id,
                Step.name == "send",
                Step.state.in_([s.value for s in ACTIVE_STEP_STATES]),
            )
        )
        ok = any(
            s.command["body"]["artifact_id"] == body.artifact_id
            and s.command["body"]["destination_node"] == body.destination_node
            for s in steps
        )
    if not ok:
        raise ProblemError(403, "no running send of this artifact to that node on this node")
    sign = transfer_signer(services.signing_key, services.settings.transfer_token_ttl_s)
    return respond(TransferToken(token=sign(body.artifact_id, node.id, body.destination_node)))
