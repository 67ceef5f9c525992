"""RabbitMQ users for nodes: each node reads only its own queue and publishes only events.

Made with ``rabbitmqctl`` on the server appliance, which runs the broker. Permissions
(regexes over resource names, RabbitMQ access control):

- configure ``^$`` — a node declares nothing (its queue is declared by the server);
- write ``^hcc\\.(events|dead)$`` — publish events, and copies of poison messages;
- read ``^hcc\\.node\\.<id>$`` — consume its own queue.

``NoBrokerUsers`` hands nodes the server's own URL: the all-in-one demo on loopback only.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
from typing import Protocol

import structlog
from yarl import URL

log = structlog.get_logger(__name__)


class BrokerUserError(Exception):
    pass


class BrokerUsers(Protocol):
    async def ensure(self, node_id: str) -> str:
        """Create (or reset) the node's broker user; return the AMQP URL the node uses."""

    async def remove(self, node_id: str) -> None: ...


def node_user(node_id: str, vhost: str = "/") -> str:
    """The node's broker user; users are global to a broker, so the vhost is in the name."""
    if vhost in ("", "/"):
        return f"hcc-node-{node_id}"
    return f"hcc-node-{vhost}-{node_id}"


def node_permissions(node_id: str) -> tuple[str, str, str]:
    return "^$", r"^hcc\.(events|dead)$", rf"^hcc\.node\.{re.escape(node_id)}$"


class NoBrokerUsers:
    def __init__(self, node_amqp_url: str) -> None:
        self._url = node_amqp_url

    async def ensure(self, node_id: str) -> str:
        log.warning("node gets the server's broker credentials (broker_users=none)",
                    node_id=node_id)  # fmt: skip
        return self._url

    async def remove(self, node_id: str) -> None:
        return None


class RabbitmqctlUsers:
    def __init__(self, node_amqp_url: str, program: str = "rabbitmqctl") -> None:
        self._base = URL(node_amqp_url)
        self._program = program
        self._vhost = self._base.path.removeprefix("/") or "/"

    async def _ctl(self, *args: str, stdin: str | None = None) -> str:
        proc = await asyncio.create_subprocess_exec(
            self._program,
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        if proc.returncode != 0:
            raise BrokerUserError(f"rabbitmqctl {args[0]} failed: {err.decode().strip()[:300]}")
        return out.decode()

    async def ensure(self, node_id: str) -> str:
        user = node_user(node_id, self._vhost)
        password = secrets.token_urlsafe(24)
        users = await self._ctl("list_users", "--quiet", "--no-table-headers")
        if any(line.split("\t")[0] == user for line in users.splitlines()):
            # the password goes through stdin, never on a command line others can read
            await self._ctl("change_password", user, stdin=password)
        else:
            await self._ctl("add_user", user, stdin=password)
        await self._ctl("set_permissions", "-p", self._vhost, user, *node_permissions(node_id))
        log.info("broker user ready", node_id=node_id, user=user, vhost=self._vhost)
        return str(self._base.with_user(user).with_password(password))

    async def remove(self, node_id: str) -> None:
        try:
            await self._ctl("delete_user", node_user(node_id, self._vhost))
        except BrokerUserError as exc:
            log.warning("could not delete broker user", node_id=node_id, error=str(exc))


def broker_users(mode: str, node_amqp_url: str) -> BrokerUsers:
    if mode == "rabbitmqctl" or (mode == "auto" and shutil.which("rabbitmqctl")):
        return RabbitmqctlUsers(node_amqp_url)
    return NoBrokerUsers(node_amqp_url)
