"""AMQP RPC: REST calls that other tools send as messages to ``hcc.server.requests``.

Each request (protocol/rpc.py) is run as the very same REST call against this server over
loopback HTTP, with the caller's token: one code path for validation, roles, audit and
errors, so the two interfaces cannot drift apart. The reply carries the REST status and
JSON body to the caller's ``reply_to`` with its ``correlation_id``. A POST carries the
message id as its Idempotency-Key, so a request the broker redelivers (say the server died
before the ack) does not start a second task.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from typing import Any

import aio_pika
import aiohttp
import structlog
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from appliance.api.framework import ProblemError
from protocol.rpc import AUTHORIZATION_HEADER, ApiReply, ApiRequest, InvalidRequest, parse_request
from protocol.topology import SERVER_REQUESTS_QUEUE
from runtime import amqp

log = structlog.get_logger(__name__)

PREFETCH = 16
"""Requests run at once; the rest wait in the queue."""


class RequestServer:
    """Consumes ``hcc.server.requests``; ``api_url`` gives this server's own base URL."""

    def __init__(
        self, api_url: Callable[[], str], *, cafile: str | None = None, timeout_s: float = 120.0
    ) -> None:
        self._api_url = api_url
        self._ssl: ssl.SSLContext | bool = True
        if cafile is not None:  # our own certificate, reached over loopback by address
            context = ssl.create_default_context(cafile=cafile)
            context.check_hostname = False
            self._ssl = context
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None
        self._publisher: amqp.Publisher | None = None
        self._consumer: amqp.Consumer[ApiRequest | InvalidRequest] | None = None

    async def start(self, connection: AbstractConnection, publisher: amqp.Publisher) -> None:
        self._publisher = publisher
        self._http = aiohttp.ClientSession(timeout=self._timeout)
        self._consumer = await amqp.consume(
            connection,
            SERVER_REQUESTS_QUEUE,
            self.handle,
            parse=parse_request,
            publisher=publisher,
            prefetch=PREFETCH,
        )

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop(grace_s=5)
            self._consumer = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def handle(
        self, request: ApiRequest | InvalidRequest, message: AbstractIncomingMessage
    ) -> None:
        if isinstance(request, InvalidRequest):
            if message.reply_to:
                await self._reply(message, 400, ProblemError(400, str(request)).body())
            raise amqp.Permanent(str(request))
        if not message.reply_to:
            raise amqp.Permanent("no reply_to: an API request needs an address for its reply")
        status, body = await self._call(request, message)
        log.info("amqp request", method=request.method, path=request.path, status=status,
                 correlation_id=message.correlation_id)  # fmt: skip
        await self._reply(message, status, body)

    async def _call(self, request: ApiRequest, message: AbstractIncomingMessage) -> tuple[int, Any]:
        assert self._http is not None
        headers: dict[str, str] = {}
        token = (message.headers or {}).get(AUTHORIZATION_HEADER)
        if isinstance(token, bytes):
            token = token.decode("utf-8", "replace")
        if isinstance(token, str):
            headers["Authorization"] = token
        if request.method == "POST" and message.message_id:
            headers["Idempotency-Key"] = message.message_id[:200]
        try:
            async with self._http.request(
                request.method,
                self._api_url().rstrip("/") + request.path,
                params=request.query,
                json=request.body if request.method in ("POST", "PUT", "PATCH") else None,
                headers=headers,
                ssl=self._ssl,
                allow_redirects=False,
            ) as response:
                data = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            # the API of this very process did not answer: tell the caller, who may retry
            # (redelivering instead could loop, and the broker's own dead-lettering would
            # copy the token in the headers)
            log.error("amqp request: the API did not answer", error=repr(exc))
            return 503, ProblemError(503, "the server's API did not answer; try again later").body()
        if not data:
            return status, None
        try:
            return status, json.loads(data)
        except ValueError:
            return status, data.decode("utf-8", "replace")

    async def _reply(self, message: AbstractIncomingMessage, status: int, body: Any) -> None:
        assert self._publisher is not None
        assert message.reply_to
        reply = aio_pika.Message(
            ApiReply(status=status, body=body).model_dump_json().encode(),
            content_type="application/json",
            correlation_id=message.correlation_id,
            type="api.reply",
        )
        try:
            await self._publisher.publish_message("", message.reply_to, reply)
        except amqp.Unroutable:
            log.warning(
                "amqp request: the caller's reply queue is gone; reply dropped",
                reply_to=message.reply_to,
                correlation_id=message.correlation_id,
            )
