"""The AsyncAPI 3.0 document of hcc's AMQP interface (DESIGN.md §3), built from protocol/.

Served at ``GET /api/v1/asyncapi.json`` and printed by ``hcc asyncapi``. It describes hcc —
the server and its nodes together — as one application: what it sends (commands, events,
RPC replies, dead letters) and what it receives (commands on a node's queue, events on the
server's queue, RPC requests). Another tool reads it the other way round: it subscribes to
``hcc.events`` with a queue of its own and sends requests to ``hcc.server.requests``.

Payload schemas come from the pydantic models in the AsyncAPI Schema format (the default,
a superset of JSON Schema draft-07): pydantic writes JSON Schema 2020-12, whose only
keyword here that draft-07 lacks is ``$defs``; every nested model therefore becomes a
shared ``components/schemas`` entry referenced with ``$ref``, which AsyncAPI tools resolve
natively (a ``schemaFormat`` of draft-07 would have needed per-payload ``definitions``
copies instead). Everything else pydantic emits (``const``, ``anyOf`` with ``null``, a
numeric ``exclusiveMinimum``, ``examples`` arrays) is draft-07 already.

Pure: no I/O. Examples carry fixed ids and times, so the document is the same every time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from protocol.messages import (
    COMMAND_TYPES,
    EVENT_TYPES,
    CancelBody,
    CancelCommand,
    CleanupBody,
    CleanupCommand,
    DeployBody,
    DeployCommand,
    DeploySpec,
    DiskInfo,
    Envelope,
    ExportBody,
    ExportCommand,
    HeartbeatBody,
    HeartbeatEvent,
    ImportBody,
    ImportCommand,
    InventoryItem,
    InventoryRefreshBody,
    InventoryRefreshCommand,
    InventorySnapshotBody,
    InventorySnapshotEvent,
    ObjectKind,
    SendBody,
    SendCommand,
    StepError,
    StepFailedBody,
    StepFailedEvent,
    StepProgressBody,
    StepProgressEvent,
    StepStartedBody,
    StepStartedEvent,
    StepSucceededBody,
    StepSucceededEvent,
    Target,
    type_name,
)
from protocol.rpc import AUTHORIZATION_HEADER, ApiReply, ApiRequest
from protocol.schema import component_schemas, describe_envelope
from protocol.topology import (
    COMMANDS_EXCHANGE,
    DEAD_EXCHANGE,
    DEAD_QUEUE,
    DEAD_REASON_HEADER,
    DEAD_SOURCE_HEADER,
    EVENTS_EXCHANGE,
    SERVER_EVENTS_QUEUE,
    SERVER_REQUESTS_QUEUE,
    event_routing_key,
    node_queue,
    quorum_arguments,
)

ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING = "0.3.0"
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
JSON = "application/json"

# --------------------------------------------------------------------------- examples

_TASK = UUID("6f1c2a4e-0b7d-4c57-9a1e-2d3f4a5b6c7d")
_STEP = UUID("1e2d3c4b-5a69-4788-97a6-b5c4d3e2f100")
_TS = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
_ARTIFACT = "web-01-6f1c2a4e"


def _envelope(n: int, node_id: str = "n1") -> dict[str, Any]:
    return {
        "id": UUID(int=0x1CC0_0000_0000_4000_8000_0000_0000_0000 + n),
        "task_id": _TASK,
        "step_id": _STEP,
        "node_id": node_id,
        "ts": _TS,
    }


def examples() -> dict[str, Envelope]:
    """One message of every command and event type, keyed by type."""
    item = InventoryItem(
        id="vm-42",
        kind=ObjectKind.VM,
        name="web-01",
        parent_id="group-v3",
        path="DC0/vm/web-01",
        power_state="poweredOn",
        cpus=2,
        memory_mib=4096,
        disks=(DiskInfo(label="Hard disk 1", capacity_bytes=16 * 2**30),),
    )
    messages: list[Envelope] = [
        ExportCommand(
            **_envelope(1),
            body=ExportBody(cloud_id="onprem", ref="DC0/vm/web-01", artifact_id=_ARTIFACT),
        ),
        SendCommand(
            **_envelope(2),
            body=SendBody(
                artifact_id=_ARTIFACT,
                destination_node="n2",
                destination_url="https://n2.example.net:8443",
                destination_fingerprint="9f" * 32,
                token="<capability token signed by the server>",
            ),
        ),
        ImportCommand(
            **_envelope(3, "n2"),
            body=ImportBody(
                cloud_id="provider",
                artifact_id=_ARTIFACT,
                target=Target(catalog="acme/Templates", name="web-01"),
            ),
        ),
        DeployCommand(
            **_envelope(4, "n2"),
            body=DeployBody(
                cloud_id="provider",
                template_ref="acme/Templates/web-01",
                spec=DeploySpec(name="web-app", vdc="acme/acme-vdc"),
            ),
        ),
        CancelCommand(**_envelope(5), body=CancelBody(target_step_id=_STEP)),
        CleanupCommand(**_envelope(6), body=CleanupBody(artifact_id=_ARTIFACT)),
        InventoryRefreshCommand(**_envelope(7), body=InventoryRefreshBody(cloud_id="onprem")),
        HeartbeatEvent(
            **{**_envelope(8), "task_id": None, "step_id": None, "seq": 120},
            body=HeartbeatBody(
                version="0.1.0",
                started_at=datetime(2026, 1, 15, 8, 0, tzinfo=UTC),
                free_bytes=400 * 2**30,
                total_bytes=500 * 2**30,
                running_steps=(_STEP,),
                clouds={"onprem": True},
                receiver_url="https://n1.example.net:8443",
            ),
        ),
        StepStartedEvent(**_envelope(9), body=StepStartedBody(kind="export")),
        StepProgressEvent(
            **_envelope(10),
            seq=1,
            body=StepProgressBody(
                bytes_done=3 * 2**30, bytes_total=16 * 2**30, rate_bytes_per_s=95e6
            ),
        ),
        StepSucceededEvent(
            **_envelope(11),
            seq=2,
            body=StepSucceededBody(bytes_done=16 * 2**30, result={"artifact_id": _ARTIFACT}),
        ),
        StepFailedEvent(
            **_envelope(12, "n2"),
            body=StepFailedBody(
                error=StepError(
                    code="storage-full", message="transfer storage is full", retryable=True
                )
            ),
        ),
        InventorySnapshotEvent(
            **_envelope(13),
            body=InventorySnapshotBody(cloud_id="onprem", items=(item,)),
        ),
    ]
    return {type_name(type(m)): m for m in messages}


def rpc_examples() -> tuple[dict[str, Any], dict[str, Any]]:
    """A request (headers, payload) and its reply."""
    request = ApiRequest(
        method="POST", path="/api/v1/tasks", body={"kind": "inventory-refresh", "cloud": "onprem"}
    )
    reply = ApiReply(
        status=401,
        body={
            "type": "about:blank",
            "title": "Unauthorized",
            "status": 401,
            "detail": "token unknown or expired",
        },
    )
    correlation = "c0ffee00-4a1b-4c2d-8e3f-0123456789ab"
    return (
        {
            "name": "start-inventory-refresh",
            "headers": {
                AUTHORIZATION_HEADER: "Bearer <API token>",
                "reply_to": DIRECT_REPLY_TO,
                "correlation_id": correlation,
                "message_id": "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a",
                "content_type": JSON,
            },
            "payload": request.model_dump(mode="json"),
        },
        {
            "name": "expired-token",
            "headers": {"correlation_id": correlation, "content_type": JSON},
            "payload": reply.model_dump(mode="json"),
        },
    )


# --------------------------------------------------------------------------- pieces


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in path)}


def _exchange(name: str, kind: str) -> dict[str, Any]:
    return {
        "amqp": {
            "is": "routingKey",
            "exchange": {
                "name": name,
                "type": kind,
                "durable": True,
                "autoDelete": False,
                "vhost": "/",
            },
            "bindingVersion": AMQP_BINDING,
        }
    }


def _queue(name: str, arguments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "amqp": {
            "is": "queue",
            "queue": {
                "name": name,
                "durable": True,
                "exclusive": False,
                "autoDelete": False,
                "vhost": "/",
            },
            "x-arguments": arguments,
            **extra,
            "bindingVersion": AMQP_BINDING,
        }
    }


def _op_binding(**fields: Any) -> dict[str, Any]:
    return {"amqp": {**fields, "bindingVersion": AMQP_BINDING}}


def _first_line(model: type[BaseModel]) -> str | None:
    doc = (model.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else None


COMMAND_SUMMARIES = {
    "export": "Export a VM, template or vApp of a cloud into the node's transfer storage.",
    "send": "Send an exported artifact to another node's receiver.",
    "import": "Import a received artifact into a cloud (vCD catalog or vSphere folder).",
    "deploy": "Deploy a vApp or VM from an imported template.",
    "cancel": "Cancel a running step of this node.",
    "cleanup": "Delete an artifact from the node's transfer storage.",
    "inventory.refresh": "Read a cloud's inventory and answer with inventory.snapshot.",
}
EVENT_SUMMARIES = {
    "node.heartbeat": "Every 10 s: version, free transfer storage, running steps, clouds.",
    "step.started": "A step started on the node.",
    "step.progress": "Bytes done of a step (about once a second or every 1%).",
    "step.succeeded": "A step ended well; never throttled.",
    "step.failed": "A step failed, with a stable error code; never throttled.",
    "inventory.snapshot": "A cloud's whole inventory, or the error that stopped reading it.",
}


def _envelope_message(
    model: type[Envelope], ref: dict[str, Any], example: Envelope, summary: str
) -> dict[str, Any]:
    tag = type_name(model)
    return {
        "name": tag,
        "title": model.__name__,
        "summary": summary,
        "contentType": JSON,
        "payload": ref,
        "bindings": {"amqp": {"messageType": tag, "bindingVersion": AMQP_BINDING}},
        "examples": [{"name": tag, "payload": example.model_dump(mode="json")}],
    }


def _rpc_headers() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["reply_to"],
        "properties": {
            AUTHORIZATION_HEADER: {
                "type": "string",
                "pattern": "^Bearer .+$",
                "description": "AMQP header (headers table): `Bearer <API token>`, the token "
                "of the REST API (POST /api/v1/auth/login). The call runs with that token's "
                "role; without it only public calls succeed (401 otherwise).",
            },
            "reply_to": {
                "type": "string",
                "description": "AMQP property reply_to: where the reply goes (through the "
                f"default exchange): `{DIRECT_REPLY_TO}` (RabbitMQ direct reply-to: consume "
                "it on the same channel before publishing) or a queue of the caller's. A "
                "request without it is dead-lettered unanswered.",
            },
            "correlation_id": {
                "type": "string",
                "description": "AMQP property correlation_id, of the caller's choosing; the "
                "reply carries the same value.",
            },
            "message_id": {
                "type": "string",
                "description": "AMQP property message_id; its first 200 characters are the "
                "Idempotency-Key of a POST (visible ASCII): a request delivered twice, or "
                "repeated by the same user with the same id, answers the task the first one "
                "made instead of starting another. Use a fresh UUID per request.",
            },
            "content_type": {"const": JSON, "description": "AMQP property content_type."},
        },
    }


def _reply_headers() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "correlation_id": {
                "type": "string",
                "description": "AMQP property correlation_id: the request's.",
            },
            "content_type": {"const": JSON, "description": "AMQP property content_type."},
        },
    }


def _dead_headers() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            DEAD_REASON_HEADER: {
                "type": "string",
                "maxLength": 1000,
                "description": "Why hcc gave the message up: not JSON, an unknown `v` or "
                "`type`, an invalid field (named), or `permanent: ...` from the handler.",
            },
            DEAD_SOURCE_HEADER: {
                "type": "string",
                "description": "The queue the message was taken from, e.g. hcc.node.n1.",
            },
            "x-death": {
                "type": "array",
                "description": "Set by RabbitMQ instead when the broker dead-lettered the "
                "message itself: a quorum queue's x-delivery-limit was exceeded.",
            },
        },
    }


def _messages(
    envelope_refs: dict[type[BaseModel], dict[str, Any]],
    rpc_refs: dict[type[BaseModel], dict[str, Any]],
) -> dict[str, Any]:
    found = examples()
    messages: dict[str, Any] = {}
    for model in COMMAND_TYPES:
        tag = type_name(model)
        messages[model.__name__] = _envelope_message(
            model, envelope_refs[model], found[tag], COMMAND_SUMMARIES[tag]
        )
    for model in EVENT_TYPES:
        tag = type_name(model)
        messages[model.__name__] = _envelope_message(
            model, envelope_refs[model], found[tag], EVENT_SUMMARIES[tag]
        )
    request_example, reply_example = rpc_examples()
    messages["ApiRequest"] = {
        "name": "api.request",
        "title": "ApiRequest",
        "summary": _first_line(ApiRequest),
        "description": "Runs exactly like the same REST call: the same validation, roles "
        "and audit. Invalid requests (not JSON, not an ApiRequest, a `..` path, the event "
        "stream) get a 400 reply and a copy in hcc.dead.",
        "contentType": JSON,
        "headers": _rpc_headers(),
        "payload": rpc_refs[ApiRequest],
        "correlationId": _ref("components", "correlationIds", "rpc"),
        "examples": [request_example],
    }
    messages["ApiReply"] = {
        "name": "api.reply",
        "title": "ApiReply",
        "summary": _first_line(ApiReply),
        "description": "The REST API's status and JSON body; errors are RFC 9457 "
        "problem+json bodies, as over HTTP.",
        "contentType": JSON,
        "headers": _reply_headers(),
        "payload": rpc_refs[ApiReply],
        "correlationId": _ref("components", "correlationIds", "rpc"),
        "bindings": {"amqp": {"messageType": "api.reply", "bindingVersion": AMQP_BINDING}},
        "examples": [reply_example],
    }
    messages["DeadLetter"] = {
        "name": "dead-letter",
        "title": "DeadLetter",
        "summary": "A message hcc could not handle, kept for an operator.",
        "description": "The original body, properties and headers (less a request's "
        "`authorization`), plus the reason. The body may be anything, not even JSON "
        "(that may be why it is here).",
        "headers": _dead_headers(),
        "payload": {"description": "The original message's body, as it was."},
    }
    return messages


def _channel_messages(names: list[str]) -> dict[str, Any]:
    return {n: _ref("components", "messages", n) for n in names}


def _channels() -> dict[str, Any]:
    commands = [m.__name__ for m in COMMAND_TYPES]
    events = [m.__name__ for m in EVENT_TYPES]
    work_queue = quorum_arguments()
    return {
        "commands": {
            "address": "{nodeId}",
            "title": COMMANDS_EXCHANGE,
            "summary": "Commands, server → one node: direct exchange, routing key = node id.",
            "description": "Only the server publishes here (persistent, mandatory, with "
            "publisher confirms): a command the broker returns as unroutable is for an "
            "unknown node, and its step fails.",
            "parameters": {"nodeId": _ref("components", "parameters", "nodeId")},
            "messages": _channel_messages(commands),
            "bindings": _exchange(COMMANDS_EXCHANGE, "direct"),
        },
        "nodeQueue": {
            "address": node_queue("{nodeId}"),
            "title": node_queue("<node-id>"),
            "summary": "A node's own queue, bound to hcc.commands with its id.",
            "description": "Declared by the server when the node is added, so commands wait "
            "there until the node starts. The node's broker user may read only this queue.",
            "parameters": {"nodeId": _ref("components", "parameters", "nodeId")},
            "messages": _channel_messages(commands),
            "bindings": _queue(
                node_queue("{nodeId}"),
                work_queue,
                **{"x-bound-to": [{"exchange": COMMANDS_EXCHANGE, "routingKey": "{nodeId}"}]},
            ),
        },
        "events": {
            "address": event_routing_key("{nodeId}", "{eventType}"),
            "title": EVENTS_EXCHANGE,
            "summary": "Events, node → world: topic exchange, routing key "
            "node.<node-id>.<event-type>.",
            "description": "What other tools subscribe to: declare a queue of your own and "
            "bind it with a pattern, e.g. `node.*.step.*` or `#` (see docs/amqp.md). Not "
            "mandatory: an event nobody subscribes to is dropped by the broker.",
            "parameters": {
                "nodeId": _ref("components", "parameters", "nodeId"),
                "eventType": _ref("components", "parameters", "eventType"),
            },
            "messages": _channel_messages(events),
            "bindings": _exchange(EVENTS_EXCHANGE, "topic"),
        },
        "serverEvents": {
            "address": SERVER_EVENTS_QUEUE,
            "title": SERVER_EVENTS_QUEUE,
            "summary": "The server's subscription to every event (`#`).",
            "messages": _channel_messages(events),
            "bindings": _queue(
                SERVER_EVENTS_QUEUE,
                work_queue,
                **{"x-bound-to": [{"exchange": EVENTS_EXCHANGE, "routingKey": "#"}]},
            ),
        },
        "serverRequests": {
            "address": SERVER_REQUESTS_QUEUE,
            "title": SERVER_REQUESTS_QUEUE,
            "summary": "AMQP RPC to the server: REST calls as messages.",
            "description": "Publish through the default exchange with routing key "
            f"`{SERVER_REQUESTS_QUEUE}`.",
            "messages": _channel_messages(["ApiRequest"]),
            "bindings": _queue(SERVER_REQUESTS_QUEUE, work_queue),
        },
        "rpcReplies": {
            "address": None,
            "title": "reply_to",
            "summary": "Replies to RPC requests: the caller's reply_to, through the default "
            "exchange.",
            "messages": _channel_messages(["ApiReply"]),
            "bindings": _exchange("", "default"),
        },
        "dead": {
            "address": None,
            "title": DEAD_EXCHANGE,
            "summary": "Dead letters: fanout exchange (the original routing key is kept).",
            "description": "hcc copies here what it cannot handle, and quorum queues "
            "dead-letter here what exceeded their delivery limit.",
            "messages": _channel_messages(["DeadLetter"]),
            "bindings": _exchange(DEAD_EXCHANGE, "fanout"),
        },
        "deadQueue": {
            "address": DEAD_QUEUE,
            "title": DEAD_QUEUE,
            "summary": "Every dead letter, kept for an operator.",
            "messages": _channel_messages(["DeadLetter"]),
            "bindings": _queue(
                DEAD_QUEUE,
                {"x-queue-type": "quorum"},
                **{"x-bound-to": [{"exchange": DEAD_EXCHANGE, "routingKey": ""}]},
            ),
        },
    }


def _operation_messages(channel: str, names: list[str]) -> list[dict[str, str]]:
    return [_ref("channels", channel, "messages", n) for n in names]


def _operations() -> dict[str, Any]:
    commands = [m.__name__ for m in COMMAND_TYPES]
    events = [m.__name__ for m in EVENT_TYPES]
    return {
        "sendCommand": {
            "action": "send",
            "channel": _ref("channels", "commands"),
            "title": "The server sends a command to a node",
            "description": "From the server's transactional outbox: a crash loses no "
            "command, and a duplicate is harmless (idempotent by step_id and attempt).",
            "messages": _operation_messages("commands", commands),
            "bindings": _op_binding(deliveryMode=2, mandatory=True),
        },
        "receiveCommand": {
            "action": "receive",
            "channel": _ref("channels", "nodeQueue"),
            "title": "A node takes its commands",
            "description": "The node writes the command to its job journal, then acks; an "
            "invalid one is copied to hcc.dead and acked.",
            "messages": _operation_messages("nodeQueue", commands),
            "bindings": _op_binding(ack=True),
        },
        "sendEvent": {
            "action": "send",
            "channel": _ref("channels", "events"),
            "title": "A node (or the server) publishes an event",
            "description": "Events carry a monotonic seq per (step_id, attempt): readers "
            "drop stale and duplicate events by (step_id, attempt, seq).",
            "messages": _operation_messages("events", events),
            "bindings": _op_binding(deliveryMode=2, mandatory=False),
        },
        "receiveEvents": {
            "action": "receive",
            "channel": _ref("channels", "serverEvents"),
            "title": "The server aggregates every event",
            "messages": _operation_messages("serverEvents", events),
            "bindings": _op_binding(ack=True),
        },
        "handleRequest": {
            "action": "receive",
            "channel": _ref("channels", "serverRequests"),
            "title": "The server runs a request and replies",
            "messages": _operation_messages("serverRequests", ["ApiRequest"]),
            "bindings": _op_binding(ack=True),
            "reply": {
                "address": {
                    "location": "$message.header#/reply_to",
                    "description": "The request's reply_to property.",
                },
                "channel": _ref("channels", "rpcReplies"),
                "messages": _operation_messages("rpcReplies", ["ApiReply"]),
            },
        },
        "deadLetter": {
            "action": "send",
            "channel": _ref("channels", "dead"),
            "title": "hcc gives up a message it cannot handle",
            "messages": _operation_messages("dead", ["DeadLetter"]),
            "bindings": _op_binding(deliveryMode=2, mandatory=True),
        },
    }


def _schemas() -> tuple[
    dict[type[BaseModel], dict[str, Any]],
    dict[type[BaseModel], dict[str, Any]],
    dict[str, dict[str, Any]],
]:
    envelope_refs, schemas = component_schemas(
        (*COMMAND_TYPES, *EVENT_TYPES), "serialization", every_field_required=True
    )
    request_refs, request_defs = component_schemas([ApiRequest], "validation")
    reply_refs, reply_defs = component_schemas([ApiReply], "serialization")
    for name, schema in (*request_defs.items(), *reply_defs.items()):
        if schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas named {name}")
    for model in (*COMMAND_TYPES, *EVENT_TYPES):
        describe_envelope(schemas[model.__name__])
    return envelope_refs, {**request_refs, **reply_refs}, schemas


def build(*, version: str) -> dict[str, Any]:
    """The document; ``version`` is hcc's (the envelope version is in the payloads: v=1)."""
    envelope_refs, rpc_refs, schemas = _schemas()
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:hcc:amqp",
        "info": {
            "title": "hcc AMQP interface",
            "version": version,
            "description": "The message bus of hcc (Hybrid Cloud Connector), RabbitMQ. The "
            "server sends commands to nodes; nodes publish events that anyone may "
            "subscribe to; other tools call the REST API as AMQP RPC. Every command and "
            "event is a versioned JSON envelope (v, id, type, task_id, step_id, attempt, "
            "node_id, ts, seq) with a typed body. See docs/amqp.md.",
            "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
        },
        "defaultContentType": JSON,
        "servers": {
            "rabbitmq": {
                "host": "{host}:{port}",
                "protocol": "amqp",
                "protocolVersion": "0-9-1",
                "title": "RabbitMQ on the hcc server appliance",
                "description": "The broker of HCC_AMQP_URL (a vhost in its path is "
                "honoured; the bindings below say `/`, the default). Every work queue is "
                "a quorum queue.",
                "variables": {
                    "host": {"default": "127.0.0.1", "description": "The server's address"},
                    "port": {"default": "5672"},
                },
                "security": [_ref("components", "securitySchemes", "brokerUser")],
            }
        },
        "channels": _channels(),
        "operations": _operations(),
        "components": {
            "schemas": schemas,
            "messages": _messages(envelope_refs, rpc_refs),
            "parameters": {
                "nodeId": {
                    "description": "A node's id: ^[a-z0-9][a-z0-9-]{0,62}$",
                    "examples": ["n1"],
                },
                "eventType": {
                    "description": "An event's type.",
                    "enum": [type_name(m) for m in EVENT_TYPES],
                },
            },
            "correlationIds": {
                "rpc": {
                    "location": "$message.header#/correlation_id",
                    "description": "The AMQP correlation_id property.",
                },
            },
            "securitySchemes": {
                "brokerUser": {
                    "type": "userPassword",
                    "description": "A RabbitMQ user. Each node has its own (configure "
                    "`^$`, write `^hcc\\.(events|dead)$`, read `^hcc\\.node\\.<id>$`); "
                    "another tool gets one from the operator (docs/amqp.md). RPC calls "
                    "also carry an API token in the `authorization` header.",
                },
            },
        },
    }
