"""The AMQP edge shared by server and node: the only module (tests aside) that imports aio_pika.

- :func:`connect` — a robust connection, retried with capped exponential backoff and jitter
  while the broker is down at start; aio-pika reconnects it afterwards.
- :func:`declare_topology` / :func:`declare_node_queue` — idempotent declarations of
  DESIGN.md §3 (names and arguments from :mod:`protocol.topology`).
- :class:`Publisher` — a confirmed channel (``publisher_confirms=True``,
  ``on_return_raises=True``); :meth:`Publisher.publish` raises :class:`Unroutable` when no
  queue takes the message, :class:`PublishRejected` when the broker nacks it and
  :class:`BrokerUnavailable` when the link is down. Returning means the broker has it.
- :func:`consume` — parses each delivery; an invalid message is copied to ``hcc.dead`` with
  the reason in ``x-hcc-dead-reason`` and acked; a handler's :class:`Retryable` error is
  nacked with requeue (the quorum delivery limit bounds it), :class:`Permanent` is
  dead-lettered; success acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    DeliveryMode,
    ExchangeType,
)
from aio_pika.exceptions import (
    CONNECTION_EXCEPTIONS,
    AMQPError,
    ChannelInvalidStateError,
    ChannelNotFoundEntity,
    DeliveryError,
    PublishError,
)
from yarl import URL

from protocol import InvalidMessage
from protocol.messages import Envelope, dump
from protocol.topology import (
    COMMANDS_EXCHANGE,
    DEAD_EXCHANGE,
    DEAD_QUEUE,
    DEAD_REASON_HEADER,
    DEAD_SOURCE_HEADER,
    EVENTS_EXCHANGE,
    SECRET_HEADERS,
    SERVER_EVENTS_QUEUE,
    SERVER_REQUESTS_QUEUE,
    event_routing_key,
    node_queue,
    quorum_arguments,
)

log = structlog.get_logger(__name__)

M = TypeVar("M")


# --------------------------------------------------------------------------- errors


class AmqpError(Exception):
    """Root of the AMQP edge's errors."""


class BrokerUnavailable(AmqpError):
    """No connection or channel right now; try again later (the link reconnects by itself)."""


class Unroutable(AmqpError):
    """The broker returned a mandatory message: no queue is bound for it (e.g. an unknown node)."""

    def __init__(self, exchange: str, routing_key: str) -> None:
        super().__init__(f"unroutable: no queue bound to {exchange!r} for key {routing_key!r}")
        self.exchange = exchange
        self.routing_key = routing_key


class PublishRejected(AmqpError):
    """The broker nacked the message (e.g. a full queue with x-overflow=reject-publish)."""


class QueueMissing(AmqpError):
    """The queue to consume does not exist (a node the server has not added yet)."""


class HandlerError(Exception):
    """Raised by a consume handler to choose what happens to the delivery."""


class Retryable(HandlerError):
    """Transient: nack with requeue; the quorum queue's x-delivery-limit bounds the retries."""


class Permanent(HandlerError):
    """Never going to work: copy to hcc.dead with the reason, then ack."""


# --------------------------------------------------------------------------- connect


def safe_url(url: str) -> str:
    """``url`` with its password replaced, fit for a log line."""
    parsed = URL(url)
    return str(parsed.with_password("***")) if parsed.password else str(parsed)


def backoff_delays(
    *, base_s: float = 0.5, cap_s: float = 30.0, rng: Callable[[], float] = random.random
) -> Iterator[float]:
    """Capped exponential backoff with jitter: delay n is uniform in [d/2, d], d = base*2^n."""
    exponent = 0
    while True:
        delay = min(cap_s, base_s * 2**exponent)
        yield delay / 2 + rng() * delay / 2
        if delay < cap_s:
            exponent += 1


async def connect(
    url: str,
    *,
    name: str,
    max_delay_s: float = 30.0,
    attempts: int | None = None,
    timeout_s: float = 10.0,
) -> AbstractRobustConnection:
    """A robust connection named ``name``; waits (with backoff) while the broker is down.

    ``attempts`` bounds the tries (None: forever) and then raises :class:`BrokerUnavailable`.
    After the first success aio-pika's robust connection reconnects by itself; its interval is
    jittered per process so a fleet does not reconnect in lock-step.
    """
    reconnect_interval_s = round(1.0 + random.random() * 2.0, 2)
    delays = backoff_delays(cap_s=max_delay_s)
    attempt = 0
    while True:
        attempt += 1
        try:
            connection = await aio_pika.connect_robust(
                url,
                client_properties={"connection_name": name},
                reconnect_interval=reconnect_interval_s,
                timeout=timeout_s,
            )
        except CONNECTION_EXCEPTIONS as exc:
            if attempts is not None and attempt >= attempts:
                raise BrokerUnavailable(f"{safe_url(url)}: {exc!r}") from exc
            delay = next(delays)
            log.warning(
                "amqp connect failed; retrying",
                broker=safe_url(url),
                connection=name,
                attempt=attempt,
                error=repr(exc),
                retry_in_s=round(delay, 2),
            )
            await asyncio.sleep(delay)
            continue
        log.info("amqp connected", broker=safe_url(url), connection=name, attempt=attempt)
        connection.reconnect_callbacks.add(
            lambda *_: log.info("amqp reconnected", broker=safe_url(url), connection=name)
        )
        return connection


# --------------------------------------------------------------------------- topology


async def declare_topology(channel: AbstractChannel) -> None:
    """Declare every shared exchange and queue (idempotent: same names, same arguments)."""
    dead = await channel.declare_exchange(DEAD_EXCHANGE, ExchangeType.FANOUT, durable=True)
    dead_queue = await channel.declare_queue(
        DEAD_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead_queue.bind(dead)
    await channel.declare_exchange(COMMANDS_EXCHANGE, ExchangeType.DIRECT, durable=True)
    events = await channel.declare_exchange(EVENTS_EXCHANGE, ExchangeType.TOPIC, durable=True)
    server_events = await channel.declare_queue(
        SERVER_EVENTS_QUEUE, durable=True, arguments=quorum_arguments()
    )
    await server_events.bind(events, "#")
    await channel.declare_queue(SERVER_REQUESTS_QUEUE, durable=True, arguments=quorum_arguments())


async def declare_node_queue(channel: AbstractChannel, node_id: str) -> AbstractQueue:
    """Declare ``hcc.node.<id>`` (quorum) bound to hcc.commands with the node id as key."""
    commands = await channel.declare_exchange(COMMANDS_EXCHANGE, ExchangeType.DIRECT, durable=True)
    queue = await channel.declare_queue(
        node_queue(node_id), durable=True, arguments=quorum_arguments()
    )
    await queue.bind(commands, routing_key=node_id)
    return queue


# --------------------------------------------------------------------------- publish


class Publisher:
    """Publishes on a confirmed channel; each call returns once the broker has the message."""

    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel
        self._exchanges: dict[str, AbstractExchange] = {}

    @classmethod
    async def open(cls, connection: AbstractConnection) -> Publisher:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return cls(channel)

    async def close(self) -> None:
        with contextlib.suppress(*CONNECTION_EXCEPTIONS):
            await self.channel.close()

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        envelope: Envelope,
        *,
        mandatory: bool = True,
        headers: dict[str, Any] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        """Publish ``envelope`` persistently with message_id = envelope id and type = its type."""
        message = aio_pika.Message(
            dump(envelope),
            content_type="application/json",
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=str(envelope.id),
            type=str(getattr(envelope, "type", "")),
            headers=headers or {},
        )
        await self.publish_message(exchange, routing_key, message, mandatory, timeout_s)

    async def publish_command(self, command: Envelope) -> None:
        """A command to its node's queue; :class:`Unroutable` means an unknown node."""
        await self.publish(COMMANDS_EXCHANGE, command.node_id, command)

    async def publish_event(self, event: Envelope, *, mandatory: bool = False) -> None:
        """An event on hcc.events with key ``node.<id>.<type>``.

        Not mandatory by default: an event nobody subscribes to is not an error of the sender.
        """
        key = event_routing_key(event.node_id, str(getattr(event, "type", "")))
        await self.publish(EVENTS_EXCHANGE, key, event, mandatory=mandatory)

    async def publish_message(
        self,
        exchange: str,
        routing_key: str,
        message: aio_pika.Message,
        mandatory: bool = True,
        timeout_s: float = 30.0,
    ) -> None:
        try:
            target = self._exchanges.get(exchange)
            if target is None:
                target = (
                    self.channel.default_exchange
                    if exchange == ""
                    else await self.channel.get_exchange(exchange, ensure=False)
                )
                self._exchanges[exchange] = target
            await target.publish(message, routing_key, mandatory=mandatory, timeout=timeout_s)
        except PublishError as exc:
            raise Unroutable(exchange, routing_key) from exc
        except DeliveryError as exc:
            raise PublishRejected(f"{exchange!r}/{routing_key!r}: {exc}") from exc
        except (AMQPError, ChannelInvalidStateError, ConnectionError, TimeoutError) as exc:
            raise BrokerUnavailable(f"publish to {exchange!r} failed: {exc!r}") from exc


# --------------------------------------------------------------------------- consume


Handler = Callable[[M, AbstractIncomingMessage], Awaitable[None]]
Parser = Callable[[bytes], M]


class _Acks:
    """Acks of a consumer's deliveries, coalesced per turn of the event loop.

    The handlers that finish in one turn (the events worker resolves a whole batch at
    once) are acked with one ``basic.ack(multiple=True)`` when, together with deliveries
    already settled, they continue the channel's settled prefix of delivery tags; any other
    is acked alone. ``multiple`` never covers a delivery that is still being handled or
    whose nack or dead-lettering is under way: such a delivery is :meth:`passed` only once
    its own settlement has been written. A channel that closed (the connection was
    restored) is dropped: its deliveries come again on the new one, with tags from 1."""

    def __init__(self) -> None:
        self._channels: dict[int, _ChannelAcks] = {}
        self._soon = False
        self._sending: set[asyncio.Task[None]] = set()

    def _of(self, message: AbstractIncomingMessage) -> _ChannelAcks:
        key = id(message.channel)
        state = self._channels.get(key)
        if state is None or state.channel is not message.channel:
            state = self._channels[key] = _ChannelAcks(message.channel)
        return state

    def passed(self, message: AbstractIncomingMessage) -> None:
        """Its own settlement has been written: the prefix may move over it."""
        self._of(message).settled.add(message.delivery_tag or 0)

    def ack(self, message: AbstractIncomingMessage) -> None:
        self._of(message).done[message.delivery_tag or 0] = message
        if not self._soon:
            self._soon = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._soon = False
        for key, state in list(self._channels.items()):
            if state.channel.is_closed:
                del self._channels[key]  # its deliveries come again on the new channel
                continue
            last: AbstractIncomingMessage | None = None
            count = 0
            tag = state.through + 1
            while tag in state.done or tag in state.settled:
                if tag in state.done:
                    last, count = state.done.pop(tag), count + 1
                state.settled.discard(tag)
                state.through = tag
                tag += 1
            if last is not None:
                self._send(last.ack(multiple=count > 1))
            # the rest lie beyond a delivery still open: acked alone, the prefix passes over
            # them once that one is settled
            for tag, alone in sorted(state.done.items()):
                self._send(alone.ack())
                state.settled.add(tag)
            state.done.clear()

    def _send(self, ack: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(_settle(ack))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def drain(self) -> None:
        """Send what is pending now (before the channel closes)."""
        self.flush()
        if self._sending:
            await asyncio.wait(set(self._sending))


@dataclass(eq=False)
class _ChannelAcks:
    channel: Any
    through: int = 0  # every tag up to here is settled
    done: dict[int, AbstractIncomingMessage] = field(default_factory=dict)  # handled, to ack
    settled: set[int] = field(default_factory=set)  # settled above ``through``


class Consumer(Generic[M]):
    """One queue's consumer; see :func:`consume`."""

    def __init__(
        self,
        channel: AbstractChannel,
        queue: AbstractQueue,
        handler: Handler[M],
        parse: Parser[M],
        publisher: Publisher,
        coalesce_acks: bool = False,
    ) -> None:
        self._acks = _Acks() if coalesce_acks else None
        self.channel = channel
        self.queue = queue
        self._handler = handler
        self._parse = parse
        self._publisher = publisher
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._tag = await self.queue.consume(self._on_message)

    async def stop(self, *, grace_s: float = 10.0) -> None:
        """Stop taking deliveries, let in-flight handlers finish (cancel them after ``grace_s``)."""
        if self._tag is not None:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await self.queue.cancel(self._tag)
            self._tag = None
        pending = {t for t in self._in_flight if not t.done()}
        if pending:
            _done, late = await asyncio.wait(pending, timeout=grace_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        if self._acks is not None:
            await self._acks.drain()
        with contextlib.suppress(*CONNECTION_EXCEPTIONS):
            await self.channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        try:
            parsed = self._parse(message.body)
        except InvalidMessage as exc:
            await self._alone(message, self._dead_letter(message, str(exc)))
            return
        try:
            await self._handler(parsed, message)
        except Retryable as exc:
            log.warning("handler failed; requeueing", queue=self.queue.name, error=str(exc))
            await self._alone(message, _settle(message.nack(requeue=True)))
        except Permanent as exc:
            await self._alone(message, self._dead_letter(message, f"permanent: {exc}"))
        except Exception as exc:
            log.exception("handler crashed; requeueing", queue=self.queue.name, error=repr(exc))
            await self._alone(message, _settle(message.nack(requeue=True)))
        else:
            if self._acks is not None:
                self._acks.ack(message)
            else:
                await _settle(message.ack())

    async def _alone(self, message: AbstractIncomingMessage, settlement: Awaitable[None]) -> None:
        """Settle ``message`` by itself; coalesced acks may then pass over it."""
        await settlement
        if self._acks is not None:
            self._acks.passed(message)

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        """Copy ``message`` to hcc.dead with ``reason``, then ack it (nack if the copy failed)."""
        headers = {k: v for k, v in (message.headers or {}).items() if k not in SECRET_HEADERS}
        headers[DEAD_REASON_HEADER] = reason[:1000]
        headers[DEAD_SOURCE_HEADER] = self.queue.name
        copy = aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.content_type,
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            type=message.type,
        )
        log.warning(
            "dead-lettering message",
            queue=self.queue.name,
            message_id=message.message_id,
            reason=reason,
        )
        try:
            await self._publisher.publish_message(DEAD_EXCHANGE, message.routing_key or "", copy)
        except AmqpError as exc:
            log.error("dead-letter copy failed; requeueing", error=str(exc))
            await _settle(message.nack(requeue=True))
            return
        await _settle(message.ack())


async def _settle(settlement: Awaitable[Any]) -> None:
    """Ack/nack; a lost channel means the broker redelivers anyway, so that is only logged."""
    try:
        await settlement
    except CONNECTION_EXCEPTIONS as exc:
        log.warning("could not settle delivery; the broker will redeliver it", error=repr(exc))


async def consume(
    connection: AbstractConnection,
    queue_name: str,
    handler: Handler[M],
    *,
    parse: Parser[M],
    publisher: Publisher,
    prefetch: int = 8,
    coalesce_acks: bool = False,
) -> Consumer[M]:
    """Consume an existing queue on a channel of its own with ``prefetch`` unacked deliveries.

    ``parse`` is :func:`protocol.parse_command` or :func:`protocol.parse_event`; ``publisher``
    carries the dead-letter copies. Raises :class:`QueueMissing` when the queue does not exist.
    """
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=prefetch)
    try:
        queue = await channel.get_queue(queue_name, ensure=True)
    except ChannelNotFoundEntity as exc:
        with contextlib.suppress(*CONNECTION_EXCEPTIONS):
            await channel.close()
        raise QueueMissing(f"queue {queue_name!r} does not exist") from exc
    consumer = Consumer(channel, queue, handler, parse, publisher, coalesce_acks)
    await consumer.start()
    return consumer
