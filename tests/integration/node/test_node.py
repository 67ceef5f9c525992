"""Real node processes against the real broker: commands in, events out, faults survived."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import aiohttp
import pytest
from aio_pika.abc import AbstractRobustConnection
from aiohttp import test_utils, web
from yarl import URL

from protocol.messages import (
    CancelBody,
    CancelCommand,
    Command,
    DeployBody,
    DeployCommand,
    DeploySpec,
    ExportBody,
    ExportCommand,
    ImportBody,
    ImportCommand,
    InventoryRefreshBody,
    InventoryRefreshCommand,
    Target,
)
from protocol.topology import COMMANDS_EXCHANGE, DEAD_EXCHANGE, DEAD_REASON_HEADER
from runtime import amqp
from tests.fixtures.rabbit import free_port
from tests.integration.node.harness import (
    EventTap,
    NodeProcess,
    cloud_entry,
    next_message,
    poll,
    write_node_config,
)
from workers.runtime.config import NodeConfig, save_config
from workers.runtime.journal import Journal, job_key

pytestmark = pytest.mark.rabbit


class Bus:
    def __init__(self, connection: AbstractRobustConnection, publisher: amqp.Publisher) -> None:
        self.connection = connection
        self.publisher = publisher

    async def add_node(self, node_id: str) -> EventTap:
        channel = await self.connection.channel()
        await amqp.declare_node_queue(channel, node_id)
        await channel.close()
        return await EventTap(self.connection, node_id).start()

    async def send(self, command: Command) -> None:
        await self.publisher.publish_command(command)


@pytest.fixture
async def bus(amqp_url: str) -> AsyncIterator[Bus]:
    connection = await amqp.connect(amqp_url, name="test-server", attempts=3)
    channel = await connection.channel()
    await amqp.declare_topology(channel)
    publisher = await amqp.Publisher.open(connection)
    yield Bus(connection, publisher)
    await connection.close()


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.kill()


def refresh(node_id: str) -> InventoryRefreshCommand:
    return InventoryRefreshCommand(
        node_id=node_id,
        task_id=uuid.uuid4(),
        step_id=uuid.uuid4(),
        body=InventoryRefreshBody(cloud_id="c1"),
    )


def export(node_id: str) -> ExportCommand:
    return ExportCommand(
        node_id=node_id,
        task_id=uuid.uuid4(),
        step_id=uuid.uuid4(),
        body=ExportBody(cloud_id="c1", ref="vm-1", artifact_id="art-1"),
    )


def start_node(
    nodes: list[NodeProcess],
    tmp_path: Path,
    node_id: str,
    amqp_url: str,
    adapter: str = "StaticAdapter",
) -> NodeProcess:
    data = tmp_path / node_id
    cloud = cloud_entry(
        "c1", adapter, gate=str(tmp_path / "gate"), calls=str(tmp_path / "calls"), items="3"
    )
    write_node_config(data, node_id, amqp_url, [cloud])
    node = NodeProcess(node_id, data)
    node.start()
    nodes.append(node)
    return node


async def test_command_round_trips_with_ordered_events(bus, nodes, tmp_path, amqp_url):
    tap = await bus.add_node("n1")
    node = start_node(nodes, tmp_path, "n1", amqp_url)
    command = refresh("n1")
    await bus.send(command)
    done = await tap.wait("step.succeeded", command.step_id)
    events = tap.for_step(command.step_id)
    assert [e.type for e in events] == ["step.started", "inventory.snapshot", "step.succeeded"]
    assert [e.seq for e in events] == [1, 2, 3]
    assert all(e.task_id == command.task_id and e.node_id == "n1" for e in events)
    snapshot = tap.of_type("inventory.snapshot", command.step_id)[0]
    assert [i.name for i in snapshot.body.items] == ["web-00", "web-01", "web-02"]
    assert done.body.result == {"cloud_id": "c1", "items": 3}
    # the node's heartbeat: free storage measured, the test cloud reachable
    beat = await tap.wait("node.heartbeat")
    assert beat.body.free_bytes > 0
    await poll(lambda: tap.of_type("node.heartbeat")[-1].body.clouds == {"c1": True})
    # every log line of the step carries its task and step ids
    lines = [json.loads(line) for line in node.log_text().splitlines() if line.startswith("{")]
    step_lines = [e for e in lines if e.get("event", "").startswith("step ")]
    assert {e["event"] for e in step_lines} == {"step started", "step succeeded"}
    for entry in step_lines:
        assert entry["task_id"] == str(command.task_id)
        assert entry["step_id"] == str(command.step_id)


async def test_duplicate_command_runs_once(bus, nodes, tmp_path, amqp_url):
    tap = await bus.add_node("n2")
    node = start_node(nodes, tmp_path, "n2", amqp_url)
    command = refresh("n2")
    await bus.send(command)
    await bus.send(command)  # the outbox may publish twice
    again = command.model_copy(update={"id": uuid.uuid4()})
    await bus.send(again)  # same step and attempt, new message id
    await tap.wait("step.succeeded", command.step_id)
    retry = command.model_copy(update={"id": uuid.uuid4(), "attempt": 1})
    await bus.send(retry)  # a new attempt is new work
    await poll(lambda: len(tap.of_type("step.succeeded", command.step_id)) == 2)
    await poll(lambda: node.log_text().count("duplicate command ignored") == 2)
    succeeded = tap.of_type("step.succeeded", command.step_id)
    assert sorted(e.attempt for e in succeeded) == [0, 1]


BAD = [
    (b"\xff not json", "not JSON"),
    (json.dumps({"v": 2, "type": "export", "node_id": "n3", "body": {}}).encode(), "version 2"),
    (
        json.dumps({"v": 1, "type": "format-disk", "node_id": "n3", "body": {}}).encode(),
        "format-disk",
    ),
]


async def test_bad_messages_go_to_dead_letters_and_node_keeps_running(
    bus, nodes, tmp_path, amqp_url
):
    tap = await bus.add_node("n3")
    channel = await bus.connection.channel()
    dead = await channel.declare_queue(exclusive=True)
    await dead.bind(DEAD_EXCHANGE)
    start_node(nodes, tmp_path, "n3", amqp_url)
    commands = await channel.get_exchange(COMMANDS_EXCHANGE)
    for body, _ in BAD:
        await commands.publish(aio_pika.Message(body), routing_key="n3")
    command = refresh("n3")
    await bus.send(command)
    await tap.wait("step.succeeded", command.step_id)
    reasons: dict[bytes, str] = {}
    for _ in BAD:
        message = await next_message(dead)
        reasons[message.body] = str(message.headers[DEAD_REASON_HEADER])
    assert set(reasons) == {body for body, _ in BAD}
    for body, expected in BAD:
        assert expected in reasons[body]


async def test_cancel_stops_a_running_step(bus, nodes, tmp_path, amqp_url):
    tap = await bus.add_node("n4")
    start_node(nodes, tmp_path, "n4", amqp_url, adapter="GatedAdapter")
    command = export("n4")
    await bus.send(command)
    await poll(lambda: len(tap.of_type("step.progress", command.step_id)) >= 3)
    cancel = CancelCommand(
        node_id="n4", step_id=uuid.uuid4(), body=CancelBody(target_step_id=command.step_id)
    )
    await bus.send(cancel)
    failed = await tap.wait("step.failed", command.step_id)
    assert failed.body.error.code == "cancelled"
    # a late duplicate of the cancelled command does not run it again
    await bus.send(command.model_copy(update={"id": uuid.uuid4()}))
    (tmp_path / "gate").touch()
    follow = refresh("n4")
    await bus.send(follow)
    await tap.wait("step.succeeded", follow.step_id)
    assert tap.of_type("step.succeeded", command.step_id) == []


def job_states(data_dir: Path) -> dict[str, str]:
    with sqlite3.connect(data_dir / "journal.db") as db:
        return {str(k): str(s) for k, s in db.execute("SELECT step_id, state FROM jobs")}


@pytest.mark.slow
async def test_sigkill_mid_job_resumes_from_journal_with_increasing_seq(
    bus, nodes, tmp_path, amqp_url
):
    tap = await bus.add_node("n5")
    node = start_node(nodes, tmp_path, "n5", amqp_url, adapter="GatedAdapter")
    command = export("n5")
    await bus.send(command)
    await poll(lambda: len(tap.of_type("step.progress", command.step_id)) >= 3, what="3 progress")
    node.signal(signal.SIGKILL)
    node.wait()
    assert job_states(node.data_dir) == {str(command.step_id): "running"}
    node.start()
    await poll(lambda: "step resumed" in node.log_text(), what="resume")
    (tmp_path / "gate").touch()
    done = await tap.wait("step.succeeded", command.step_id)
    events = tap.for_step(command.step_id)
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs), seqs  # published in journal order, across the restart
    # at-least-once: a kill between the broker's confirm and the outbox delete re-sends an
    # event after the restart; it is then the very same event (same id and seq)
    by_seq: dict[int, set[uuid.UUID]] = {}
    for event in events:
        by_seq.setdefault(event.seq, set()).add(event.id)
    assert all(len(ids) == 1 for ids in by_seq.values()), by_seq
    assert done.seq == max(seqs)
    assert any(getattr(e.body, "message", None) == "resumed after node restart" for e in events)
    assert (tmp_path / "calls").read_text().splitlines() == ["export vm-1", "export vm-1"]
    assert job_states(node.data_dir) == {str(command.step_id): "succeeded"}


async def test_sigterm_exits_cleanly_and_leaves_the_step_to_resume(bus, nodes, tmp_path, amqp_url):
    tap = await bus.add_node("n6")
    node = start_node(nodes, tmp_path, "n6", amqp_url, adapter="GatedAdapter")
    command = export("n6")
    await bus.send(command)
    await poll(lambda: len(tap.of_type("step.progress", command.step_id)) >= 3)
    await poll(
        lambda: any(command.step_id in e.body.running_steps for e in tap.of_type("node.heartbeat")),
        what="a heartbeat listing the running step",
    )
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"https://127.0.0.1:{node.port}/metrics", ssl=False) as response,
    ):
        metrics = await response.read()
    assert b'hcc_node_commands_total{outcome="accepted",type="export"} 1.0' in metrics
    assert b'hcc_node_bytes_moved_total{kind="export"}' in metrics
    assert b"hcc_node_steps_running 1.0" in metrics
    node.signal(signal.SIGTERM)
    assert node.wait(60) == 0
    log = node.log_text()
    assert "steps interrupted by shutdown" in log
    assert "node stopped" in log
    assert job_states(node.data_dir) == {str(command.step_id): "running"}
    assert tap.of_type("step.failed", command.step_id) == []


@pytest.fixture
def confined_url(amqp_url: str) -> Iterator[str]:
    """A broker user with exactly the permissions the server gives a node (read its queue,
    write hcc.events and hcc.dead, configure nothing) in this test's vhost."""
    url = URL(amqp_url)
    user, password = f"hcc-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    vhost = url.path.lstrip("/")
    subprocess.run(["rabbitmqctl", "add_user", user, password], check=True, capture_output=True)
    try:
        perms = ["^$", r"^hcc\.(events|dead)$", r"^hcc\.node\.n7$"]
        subprocess.run(
            ["rabbitmqctl", "set_permissions", "-p", vhost, user, *perms],
            check=True,
            capture_output=True,
        )
        yield str(url.with_user(user).with_password(password))
    finally:
        subprocess.run(["rabbitmqctl", "delete_user", user], check=True, capture_output=True)


async def test_node_works_with_its_confined_broker_user(bus, nodes, tmp_path, confined_url):
    tap = await bus.add_node("n7")
    channel = await bus.connection.channel()
    dead = await channel.declare_queue(exclusive=True)
    await dead.bind(DEAD_EXCHANGE)
    start_node(nodes, tmp_path, "n7", confined_url)
    commands = await channel.get_exchange(COMMANDS_EXCHANGE)
    await commands.publish(aio_pika.Message(b"[]"), routing_key="n7")
    command = refresh("n7")
    await bus.send(command)
    await tap.wait("step.succeeded", command.step_id)
    await tap.wait("node.heartbeat")
    message = await next_message(dead)
    assert message.headers[DEAD_REASON_HEADER] == "not a JSON object"


async def test_unknown_cloud_is_fetched_from_the_server_before_failing(
    bus, nodes, tmp_path, amqp_url
):
    tap = await bus.add_node("n8")
    added_later = cloud_entry("c2", items="1").model_dump(mode="json")
    seen_auth: list[str | None] = []

    async def node_config(request: web.Request) -> web.Response:
        seen_auth.append(request.headers.get("Authorization"))
        return web.json_response({"clouds": [added_later]})

    app = web.Application()
    app.router.add_get("/api/v1/node/config", node_config)
    server = test_utils.TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        data = tmp_path / "n8"
        save_config(
            data,
            NodeConfig(
                node_id="n8",
                amqp_url=amqp_url,
                server_url=str(server.make_url("")),
                node_token="node-secret",
            ),
        )
        node = NodeProcess("n8", data)
        node.start()
        nodes.append(node)
        command = InventoryRefreshCommand(
            node_id="n8", step_id=uuid.uuid4(), body=InventoryRefreshBody(cloud_id="c2")
        )
        await bus.send(command)
        done = await tap.wait("step.succeeded", command.step_id)
        assert done.body.result == {"cloud_id": "c2", "items": 1}
        assert "Bearer node-secret" in seen_auth
        unknown = InventoryRefreshCommand(
            node_id="n8", step_id=uuid.uuid4(), body=InventoryRefreshBody(cloud_id="nope")
        )
        await bus.send(unknown)
        failed = await tap.wait("step.failed", unknown.step_id)
        assert failed.body.error.code == "unknown-cloud"
    finally:
        await server.close()


def test_sigterm_while_waiting_for_the_broker_exits_cleanly(tmp_path):
    data = tmp_path / "n9"
    write_node_config(data, "n9", f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    node = NodeProcess("n9", data)
    node.start()
    try:
        end = time.monotonic() + 60
        while "amqp connect failed; retrying" not in node.log_text():
            assert time.monotonic() < end, node.log_text()
            time.sleep(0.05)
        node.signal(signal.SIGTERM)
        assert node.wait(60) == 0
        assert "node stopped" in node.log_text()
    finally:
        node.kill()


async def test_import_and_deploy_call_the_adapter_with_the_artifact(bus, nodes, tmp_path, amqp_url):
    tap = await bus.add_node("n10")
    node = start_node(nodes, tmp_path, "n10", amqp_url)
    package = node.data_dir / "transfer" / "art-9"
    package.mkdir(parents=True)
    (package / "vm.ovf").write_text("<Envelope/>")
    (package / "vm.mf").write_text("")
    target = Target(catalog="acme/Templates", name="web")
    imported = ImportCommand(
        node_id="n10", step_id=uuid.uuid4(),
        body=ImportBody(cloud_id="c1", artifact_id="art-9", target=target),
    )  # fmt: skip
    missing = ImportCommand(
        node_id="n10", step_id=uuid.uuid4(),
        body=ImportBody(cloud_id="c1", artifact_id="art-0", target=target),
    )  # fmt: skip
    deployed = DeployCommand(
        node_id="n10", step_id=uuid.uuid4(),
        body=DeployBody(cloud_id="c1", template_ref="vappTemplate-web", spec=DeploySpec(name="w1")),
    )  # fmt: skip
    for command in (imported, missing, deployed):
        await bus.send(command)
    done = await tap.wait("step.succeeded", imported.step_id)
    assert done.body.result["attributes"] == {"files": "vm.mf,vm.ovf"}
    failed = await tap.wait("step.failed", missing.step_id)
    assert failed.body.error.code == "not-found"
    deploy_done = await tap.wait("step.succeeded", deployed.step_id)
    assert deploy_done.body.result == {"object_id": "vapp-w1", "name": "w1", "power_state": "on"}


async def test_journal_at_start_runs_pending_jobs_and_never_resumes_cancelled_ones(
    bus, nodes, tmp_path, amqp_url
):
    """A node that died after journaling (before running), and one whose step was cancelled."""
    tap = await bus.add_node("n11")
    data = tmp_path / "n11"
    journal = Journal(data / "journal.db")
    pending = refresh("n11")
    cancelled = export("n11")
    journal.record(pending)
    journal.record(cancelled)
    journal.set_state(job_key(cancelled), "running")
    journal.cancel(cancelled.step_id, "operator")  # type: ignore[arg-type]
    journal.close()
    start_node(nodes, tmp_path, "n11", amqp_url, adapter="GatedAdapter")
    await tap.wait("step.succeeded", pending.step_id)
    failed = await tap.wait("step.failed", cancelled.step_id)
    assert failed.body.error.code == "cancelled"
    assert not (tmp_path / "calls").exists()  # the export never ran
    assert job_states(data) == {
        str(pending.step_id): "succeeded",
        str(cancelled.step_id): "cancelled",
    }
