"""send between two real node processes (transfer engine over HTTPS), then cleanup."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from protocol.messages import CleanupBody, CleanupCommand, SendBody, SendCommand
from protocol.tokens import generate_private_key, issue_token, public_key_pem
from runtime import amqp
from tests.integration.node.harness import EventTap, NodeProcess, poll, write_node_config
from workers.transfer.tls import CERT_FILE, fingerprint_of

pytestmark = pytest.mark.rabbit


@pytest.fixture
async def server(amqp_url: str) -> AsyncIterator[tuple[amqp.Publisher, dict[str, EventTap]]]:
    connection = await amqp.connect(amqp_url, name="test-server", attempts=3)
    channel = await connection.channel()
    await amqp.declare_topology(channel)
    taps = {}
    for node_id in ("src", "dst"):
        await amqp.declare_node_queue(channel, node_id)
        taps[node_id] = await EventTap(connection, node_id).start()
    yield await amqp.Publisher.open(connection), taps
    await connection.close()


@pytest.fixture
def nodes(tmp_path: Path, amqp_url: str) -> Iterator[tuple[dict[str, NodeProcess], Any]]:
    key = generate_private_key()
    pem = public_key_pem(key.public_key())
    started = {}
    for node_id in ("src", "dst"):
        write_node_config(tmp_path / node_id, node_id, amqp_url, server_public_key=pem)
        started[node_id] = NodeProcess(node_id, tmp_path / node_id)
        started[node_id].start()
    yield started, key
    for node_id in ("src", "dst"):
        started[node_id].kill()


async def healthy(node: NodeProcess) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"https://127.0.0.1:{node.port}/healthz", ssl=False) as response,
        ):
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def test_send_pushes_the_artifact_and_cleanup_removes_it(server, nodes, tmp_path):
    publisher, taps = server
    started, key = nodes
    src, dst = started["src"], started["dst"]
    package = tmp_path / "src" / "transfer" / "art-1"
    package.mkdir(parents=True)
    (package / "vm.ovf").write_text("<Envelope/>")
    disk = os.urandom(3 * 1024 * 1024) + bytes(5 * 1024 * 1024)
    (package / "disk.img").write_bytes(disk)
    for node in (src, dst):
        end = time.monotonic() + 60
        while not await healthy(node):
            assert time.monotonic() < end, node.log_text()
            await asyncio.sleep(0.05)
    fingerprint = fingerprint_of((dst.data_dir / CERT_FILE).read_bytes())
    token = issue_token(
        key,
        artifact_id="art-1", source_node="src", destination_node="dst",
        now=int(time.time()), ttl_s=600,
    )  # fmt: skip
    send = SendCommand(
        node_id="src",
        task_id=uuid.uuid4(),
        step_id=uuid.uuid4(),
        body=SendBody(
            artifact_id="art-1",
            destination_node="dst",
            destination_url=f"https://127.0.0.1:{dst.port}",
            destination_fingerprint=fingerprint,
            token=token,
            streams=2,
            chunk_bytes=1024 * 1024,
        ),
    )
    await publisher.publish_command(send)
    done = await taps["src"].wait("step.succeeded", send.step_id, timeout_s=60)
    assert done.body.bytes_done == len(disk) + len("<Envelope/>")
    assert done.body.result["zero_chunks"] == 5
    received = tmp_path / "dst" / "transfer" / "art-1"
    assert (received / "disk.img").read_bytes() == disk
    assert (received / "vm.ovf").read_text() == "<Envelope/>"

    cleanup = CleanupCommand(
        node_id="dst", step_id=uuid.uuid4(), body=CleanupBody(artifact_id="art-1")
    )
    await publisher.publish_command(cleanup)
    cleaned = await taps["dst"].wait("step.succeeded", cleanup.step_id)
    assert "art-1" in cleaned.body.result["removed"]
    await poll(lambda: not received.exists())
