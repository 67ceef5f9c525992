"""The events worker: a child process of the server that applies node events.

Aggregating events is CPU work (AMQP frames, JSON, pydantic, SQL). On the API's event loop
it held the p99 of GET /api/v1/tasks at 160-220 ms while 2,000 events/s came in
(bench/events.py); on a thread of its own it still shared the interpreter lock
(docs/architecture.md). In its own process it has its own interpreter and core, and the
API answers as if idle.

The worker consumes hcc.server.events, applies each batch in one transaction and sweeps
nodes whose heartbeats stopped. Everything else (API, SSE, outbox relay, AMQP requests)
stays in the server process, which talks to the worker over two pipes:

- the worker's stdin: the server writes the settings as one JSON line and keeps the pipe
  open. End of file (the server stopped, or died: the kernel closes its end) stops the
  worker, so a worker never outlives its server.
- the worker's stdout: one JSON object per line — ``{"ready": true}`` once it consumes,
  ``{"note": {...}}`` for each change (the server's hub passes it on to SSE clients),
  ``{"applied": n}`` (counted in the server's hcc_events_applied_total) and
  ``{"commands": true}`` when a batch queued commands (the server wakes its relay). The
  worker's own prints and logs go to stderr, where the server's go.

The server restarts a worker that exits, with backoff; /readyz is not ready meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

import structlog

from appliance.bus.aggregator import EventAggregator
from appliance.bus.hub import Notification
from appliance.security import load_signing_key, transfer_signer
from appliance.settings import ServerSettings
from appliance.store.db import create_engine, sessionmaker
from appliance.tasks.kinds import Kinds
from protocol import parse_event
from protocol.topology import SERVER_EVENTS_QUEUE
from runtime import amqp

log = structlog.get_logger(__name__)

STOP_GRACE_S = 10.0


class EventsWorker:
    """The server's side: starts the worker, relays what it says, restarts it if it dies."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        notify: Callable[[Notification], None],
        on_applied: Callable[[int], None],
        on_commands: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._notify = notify
        self._on_applied = on_applied
        self._on_commands = on_commands
        self.ready = asyncio.Event()
        self.pid: int | None = None
        self._proc: asyncio.subprocess.Process | None = None

    async def spawn(self) -> None:
        """Start the worker's interpreter now: it imports while the server migrates the store
        and bootstraps; it waits for its settings, which :meth:`run` sends."""
        if self._proc is None:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "appliance.bus.worker",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20,
            )  # fmt: skip
            self.pid = self._proc.pid

    async def run(self) -> None:
        """Keep a worker running until cancelled; then stop it."""
        delays = amqp.backoff_delays(cap_s=30.0)
        try:
            while True:
                code = await self._run_once()
                self.ready.clear()
                delay = next(delays)
                # 0: it was told to stop (SIGTERM); anything else is a crash
                (log.info if code == 0 else log.error)(
                    "events worker exited; starting another", exit_code=code,
                    retry_in_s=round(delay, 1))  # fmt: skip
                await asyncio.sleep(delay)
        finally:
            await self.close()

    async def _run_once(self) -> int:
        await self.spawn()
        proc = self._proc
        assert proc is not None
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            proc.stdin.write(settings_line(self._settings))
            await proc.stdin.drain()
            async for line in proc.stdout:
                self._dispatch(line)
            return await proc.wait()
        except (BrokenPipeError, ConnectionResetError):
            return await proc.wait()  # it died before it read its settings
        finally:
            if proc.returncode is not None:
                self._proc = None

    async def close(self) -> None:
        """Stop the worker: its stdin closes, it finishes the batch in hand and leaves; one
        that lingers past the grace is killed."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        self.ready.clear()
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            log.warning("events worker did not stop; killing it", pid=proc.pid)
            proc.kill()
            await proc.wait()

    def _dispatch(self, line: bytes) -> None:
        try:
            said: dict[str, Any] = json.loads(line)
        except ValueError:
            log.warning("events worker said something unreadable", line=line[:200])
            return
        if "note" in said:
            self._notify(said["note"])
        elif "applied" in said:
            self._on_applied(int(said["applied"]))
        elif said.get("commands"):
            self._on_commands()
        elif said.get("ready"):
            self.ready.set()
            log.info("events worker ready", pid=self.pid)


def settings_line(settings: ServerSettings) -> bytes:
    """The settings the worker needs, as one JSON line (the admin password it does not)."""
    return settings.model_dump_json(exclude={"admin_password"}).encode() + b"\n"


class _Out:
    """JSON lines on the pipe to the server; a server gone is the worker's end too."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._flush_soon = False

    def say(self, message: dict[str, Any]) -> None:
        """Queue one line; what a batch says leaves in one write, at the loop's next turn."""
        self._stream.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        if not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_soon = False
        self._stream.flush()


async def serve(settings: ServerSettings, out: _Out, stop: asyncio.Event) -> None:
    """Consume and aggregate until ``stop`` is set."""
    engine = create_engine(settings.database_url)  # migrated by the server before it starts us
    signer = transfer_signer(load_signing_key(settings.data_dir), settings.transfer_token_ttl_s)
    aggregator = EventAggregator(
        sessionmaker(engine),
        lambda note: out.say({"note": note}),
        binder_for=Kinds(signer).binder_for,
        on_commands=lambda: out.say({"commands": True}),
        on_applied=lambda n: out.say({"applied": n}),
    )
    timeout_s = settings.heartbeat_timeout_s
    loops = [
        asyncio.create_task(aggregator.run()),
        asyncio.create_task(aggregator.run_sweeper(timeout_s, timeout_s / 6)),
    ]
    connection = None
    consumer = None
    try:
        connecting = asyncio.create_task(amqp.connect(settings.amqp_url, name="hcc-server-events"))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not connecting.done():
            # told to stop before the broker answered. aio-pika's robust connection cannot be
            # cancelled while it connects (its reconnect task swallows the cancellation and
            # would keep this process alive): nothing is consumed yet, so leave at once.
            await engine.dispose()
            os._exit(0)
        connection = connecting.result()
        channel = await connection.channel()
        await amqp.declare_topology(channel)
        await channel.close()
        publisher = await amqp.Publisher.open(connection)  # dead letters
        consumer = await amqp.consume(
            connection, SERVER_EVENTS_QUEUE, aggregator.handle, parse=parse_event,
            publisher=publisher, prefetch=settings.events_prefetch, coalesce_acks=True,
        )  # fmt: skip
        out.say({"ready": True})
        log.info("events worker consuming", queue=SERVER_EVENTS_QUEUE, pid=os.getpid())
        await stopping
    finally:
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop(grace_s=2)
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()
        await engine.dispose()


async def _serve_until_told(settings: ServerSettings, out: _Out, stdin: IO[bytes]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # Ctrl-C on a terminal reaches the whole process group: the server asks us to stop
    # (end of file) once it has finished its own requests
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def wait_for_eof() -> None:  # the server is gone or wants us gone
        stdin.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_eof, name="stdin-eof", daemon=True).start()
    try:
        await serve(settings, out, stop)
    finally:
        out.flush()


def main() -> None:
    # fd 1 is the pipe to the server: keep it for messages, send every print to stderr
    pipe = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    line = sys.stdin.buffer.readline()
    if not line:
        return  # the server went away before it said anything
    try:
        settings = ServerSettings.model_validate_json(line)
    except ValueError as exc:
        print(f"hcc events worker: unreadable settings from the server: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    # the API is interactive, aggregation is throughput: when the cores are busy (the broker,
    # the worker and the API share them on the appliance) requests are served first
    os.nice(settings.events_worker_nice)
    from runtime.logging import configure_logging

    configure_logging(settings.log_level)
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        asyncio.run(_serve_until_told(settings, _Out(pipe), sys.stdin.buffer))


if __name__ == "__main__":
    main()
