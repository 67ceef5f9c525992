"""AMQP names and queue arguments (DESIGN.md §3). Pure: the declaring is done by bus/."""

from __future__ import annotations

from typing import Any

COMMANDS_EXCHANGE = "hcc.commands"
"""Direct exchange, server -> node; routing key = node id."""
EVENTS_EXCHANGE = "hcc.events"
"""Topic exchange, node -> world; routing key node.<id>.<event-type>."""
SERVER_EVENTS_QUEUE = "hcc.server.events"
"""The server's subscription to every event (``#``)."""
SERVER_REQUESTS_QUEUE = "hcc.server.requests"
"""AMQP RPC requests from other tools to the server."""
DEAD_EXCHANGE = "hcc.dead"
DEAD_QUEUE = "hcc.dead"
DEAD_REASON_HEADER = "x-hcc-dead-reason"
DEAD_SOURCE_HEADER = "x-hcc-dead-queue"
AUTHORIZATION_HEADER = "authorization"
"""Header of an AMQP request with ``Bearer <API token>`` (protocol/rpc.py)."""
SECRET_HEADERS = frozenset({AUTHORIZATION_HEADER})
"""Headers never copied to hcc.dead and never logged."""

DELIVERY_LIMIT = 5
"""Redeliveries before a quorum queue dead-letters a message (RabbitMQ 3.10 has no default)."""


def node_queue(node_id: str) -> str:
    return f"hcc.node.{node_id}"


def event_routing_key(node_id: str, event_type: str) -> str:
    return f"node.{node_id}.{event_type}"


def quorum_arguments(delivery_limit: int = DELIVERY_LIMIT) -> dict[str, Any]:
    """Arguments of every work queue: quorum, bounded redelivery, dead letters kept."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DEAD_EXCHANGE,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
