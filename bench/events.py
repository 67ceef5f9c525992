"""How fast the server aggregates node events (SQLite), against a bare consume + ack.

Runs a real server process on a private RabbitMQ vhost, makes ``--tasks`` one-step tasks,
then many concurrent simulated node publishers send ``--events`` step.progress events
for them while a client measures GET /api/v1/tasks latency. Baseline in the same run:
a bare aio-pika consumer acking the same number of messages from a quorum queue with
the same prefetch.

Prints one JSON line: events_per_s, raw_consume_ack_per_s, ratio, tasks_p99_ms ...
Targets (issue 3): events_per_s >= 2000, ratio >= 0.5, p99 < 100 ms.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ would come first on sys.path and bench/copy.py would shadow
# the standard library's copy module: the repository root goes there instead.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import aio_pika
import aiohttp

from protocol import dump
from protocol.messages import StepProgressBody, StepProgressEvent
from protocol.topology import EVENTS_EXCHANGE, event_routing_key, quorum_arguments

BROKER = os.environ.get("HCC_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
NODE = "bench"
PASSWORD = "bench-admin-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def vhost(action: str, name: str) -> None:
    subprocess.run(["rabbitmqctl", action, name], check=True, capture_output=True)
    if action == "add_vhost":
        subprocess.run(["rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
                       check=True, capture_output=True)  # fmt: skip


async def wait_ready(base: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"{base}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("server did not become ready")


async def applied(http: aiohttp.ClientSession, base: str) -> float:
    async with http.get(f"{base}/metrics") as r:
        text = await r.text()
    m = re.search(r"^hcc_events_applied_total ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def setup(base: str, tasks: int) -> list[tuple[str, str]]:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
        ) as r:
            token = (await r.json())["token"]
        h = {"Authorization": f"Bearer {token}"}
        await http.post(f"{base}/api/v1/nodes", json={"id": NODE}, headers=h)
        await http.post(f"{base}/api/v1/clouds", headers=h, json={
            "id": "bench", "kind": "vsphere", "endpoint": "https://vc/sdk", "username": "u",
            "password": "p", "node_id": NODE})  # fmt: skip
        steps = []
        for _ in range(tasks):
            async with http.post(
                f"{base}/api/v1/tasks",
                headers=h,
                json={"kind": "inventory-refresh", "cloud": "bench"},
            ) as r:
                t = await r.json()
            steps.append((t["id"], t["steps"][0]["id"]))
        return steps


async def publisher(url: str, steps: list[tuple[str, str]], per_step: int, seq0: int) -> None:
    conn = await aio_pika.connect(url)
    channel = await conn.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(EVENTS_EXCHANGE)
    key = event_routing_key(NODE, "step.progress")
    pending = []
    for i in range(per_step):
        for task_id, step_id in steps:
            ev = StepProgressEvent(
                node_id=NODE, task_id=uuid.UUID(task_id), step_id=uuid.UUID(step_id), seq=seq0 + i,
                body=StepProgressBody(bytes_done=i, bytes_total=per_step),
            )  # fmt: skip
            pending.append(exchange.publish(aio_pika.Message(dump(ev)), key))
            if len(pending) >= 200:
                await asyncio.gather(*pending)
                pending.clear()
    await asyncio.gather(*pending)
    await conn.close()


async def latency_probe(base: str, token: str, stopped: Callable[[], bool]) -> list[float]:
    samples: list[float] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        while not stopped():
            t0 = time.perf_counter()
            async with http.get(f"{base}/api/v1/tasks?limit=50") as r:
                await r.read()
            samples.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.02)
    return samples


def probe_process(base: str, token: str, stop: Any, out: Connection) -> None:
    """The latency probe in a process of its own: on the publishers' event loop it would
    time that loop's backlog as much as the server."""
    out.send(asyncio.run(latency_probe(base, token, stop.is_set)))
    out.close()


async def measure_server(url: str, base: str, steps: list[tuple[str, str]], events: int,
                         publishers: int) -> dict[str, Any]:  # fmt: skip
    per_step = max(1, events // len(steps))
    total = per_step * len(steps)
    chunks = [steps[i::publishers] for i in range(publishers)]
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
        ) as r:
            token = (await r.json())["token"]
        before = await applied(http, base)
        spawn = multiprocessing.get_context("spawn")
        stop = spawn.Event()
        receive, send = spawn.Pipe(duplex=False)
        probe = spawn.Process(target=probe_process, args=(base, token, stop, send), daemon=True)
        probe.start()
        t0 = time.perf_counter()
        await asyncio.gather(*(publisher(url, c, per_step, 1) for c in chunks if c))
        # the server is another process: its metric is polled, there is nothing to await.
        # Every 0.1 s: a /metrics page costs the server ~5 ms, and at 20 Hz this poll was a
        # load of its own (Prometheus scrapes every 15 s); the end is known to within 1 %.
        while await applied(http, base) - before < total:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - t0
        stop.set()
        samples = sorted(await asyncio.to_thread(receive.recv))
        probe.join(30)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] if samples else None
    return {
        "events": total,
        "events_per_s": round(total / elapsed, 1),
        "tasks_p99_ms": round(p99, 1) if p99 else None,
        "latency_samples": len(samples),
    }


async def measure_raw(url: str, count: int, publishers: int, prefetch: int) -> float:
    """Bare aio-pika consume + ack of ``count`` messages of the same size, same broker."""
    queue_name = f"bench.raw.{uuid.uuid4().hex[:8]}"
    conn = await aio_pika.connect(url)
    channel = await conn.channel()
    await channel.set_qos(prefetch_count=prefetch)
    queue = await channel.declare_queue(queue_name, durable=True, arguments=quorum_arguments())
    sample = dump(
        StepProgressEvent(
            node_id=NODE,
            task_id=uuid.uuid4(),
            step_id=uuid.uuid4(),
            body=StepProgressBody(bytes_done=1, bytes_total=2),
        )
    )
    done = asyncio.Event()
    got = 0

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal got
        json.loads(message.body)
        await message.ack()
        got += 1
        if got >= count:
            done.set()

    async def produce(n: int) -> None:
        c = await aio_pika.connect(url)
        ch = await c.channel(publisher_confirms=True)
        batch = []
        for _ in range(n):
            batch.append(ch.default_exchange.publish(aio_pika.Message(sample), queue_name))
            if len(batch) >= 200:
                await asyncio.gather(*batch)
                batch.clear()
        await asyncio.gather(*batch)
        await c.close()

    await queue.consume(on_message)
    t0 = time.perf_counter()
    await asyncio.gather(*(produce(count // publishers) for _ in range(publishers)))
    count = (count // publishers) * publishers
    if got < count:
        await done.wait()
    elapsed = time.perf_counter() - t0
    await queue.delete(if_unused=False, if_empty=False)
    await conn.close()
    return count / elapsed


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--publishers", type=int, default=8)
    args = ap.parse_args()
    name = f"hcc-bench-{uuid.uuid4().hex[:8]}"
    vhost("add_vhost", name)
    url = BROKER.rstrip("/") + "/" + name
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HCC_ADMIN_PASSWORD": PASSWORD, "HCC_BROKER_USERS": "none",
               "HCC_LOG_LEVEL": "warning"}  # fmt: skip
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli", "server", "--listen", f"127.0.0.1:{port}",
            "--data-dir", str(Path(tmp) / "data"), "--amqp-url", url,
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await wait_ready(base)
            steps = await setup(base, args.tasks)
            result = await measure_server(url, base, steps, args.events, args.publishers)
            raw = await measure_raw(url, result["events"], args.publishers, 1000)
        finally:
            server.terminate()
            await asyncio.wait_for(server.wait(), 30)
            vhost("delete_vhost", name)
    result["raw_consume_ack_per_s"] = round(raw, 1)
    result["ratio"] = round(result["events_per_s"] / raw, 3)
    result["targets"] = {"events_per_s": 2000, "ratio": 0.5, "tasks_p99_ms": 100}
    print(json.dumps({"bench": "events", **result}))


if __name__ == "__main__":
    asyncio.run(main())
