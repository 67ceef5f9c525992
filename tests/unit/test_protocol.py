"""Protocol: envelopes round-trip, and everything bad becomes InvalidMessage with a reason."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import InvalidMessage, dump, parse_command, parse_event, parse_message
from protocol.messages import (
    COMMAND_TYPES,
    EVENT_TYPES,
    CancelBody,
    CancelCommand,
    ExportBody,
    ExportCommand,
    StepError,
    StepFailedBody,
    StepFailedEvent,
    StepProgressBody,
    StepProgressEvent,
    type_name,
)
from protocol.schema import message_schemas
from protocol.topology import event_routing_key, node_queue, quorum_arguments

node_ids = st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,20}\Z")
names = st.text(min_size=1, max_size=40)


@given(
    node=node_ids,
    cloud=names,
    ref=names,
    artifact=st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,30}\Z"),
    attempt=st.integers(0, 1000),
    seq=st.integers(0, 2**40),
)
def test_export_command_round_trips(node, cloud, ref, artifact, attempt, seq):
    cmd = ExportCommand(
        node_id=node,
        task_id=uuid4(),
        step_id=uuid4(),
        attempt=attempt,
        seq=seq,
        body=ExportBody(cloud_id=cloud, ref=ref, artifact_id=artifact),
    )
    assert parse_command(dump(cmd)) == cmd
    assert parse_message(dump(cmd)) == cmd


@given(
    done=st.integers(0, 2**50),
    total=st.one_of(st.none(), st.integers(0, 2**50)),
    rate=st.floats(0, 1e12, allow_nan=False),
    message=st.one_of(st.none(), st.text(max_size=80)),
)
def test_progress_event_round_trips(done, total, rate, message):
    ev = StepProgressEvent(
        node_id="n1",
        step_id=uuid4(),
        body=StepProgressBody(
            bytes_done=done, bytes_total=total, rate_bytes_per_s=rate, message=message
        ),
    )
    assert parse_event(dump(ev)) == ev


def test_type_tags_are_unique_and_complete():
    tags = [type_name(m) for m in (*COMMAND_TYPES, *EVENT_TYPES)]
    assert len(tags) == len(set(tags))
    assert set(tags) == {
        "export", "send", "import", "deploy", "cancel", "cleanup", "inventory.refresh",
        "node.heartbeat", "step.started", "step.progress", "step.succeeded", "step.failed",
        "inventory.snapshot",
    }  # fmt: skip


def test_failed_event_keeps_error():
    ev = StepFailedEvent(
        node_id="n1",
        body=StepFailedBody(error=StepError(code="storage-full", message="no space")),
    )
    parsed = parse_event(dump(ev))
    assert isinstance(parsed, StepFailedEvent)
    assert parsed.body.error.code == "storage-full"


def _valid() -> dict[str, object]:
    cmd = CancelCommand(node_id="n1", body=CancelBody(target_step_id=uuid4()))
    data: dict[str, object] = json.loads(dump(cmd))
    return data


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"\xff\xfe", "not JSON"),
        (json.dumps({**_valid(), "v": 2}).encode(), "unsupported envelope version 2"),
        (json.dumps({k: v for k, v in _valid().items() if k != "v"}).encode(), "version None"),
        (json.dumps({**_valid(), "type": "explode"}).encode(), "unknown command type 'explode'"),
        (json.dumps({**_valid(), "body": {}}).encode(), "body.target_step_id"),
        (json.dumps({**_valid(), "node_id": "Bad Node"}).encode(), "node_id"),
        (json.dumps({**_valid(), "extra": 1}).encode(), "extra"),
    ],
)
def test_bad_commands_name_the_reason(raw, reason):
    with pytest.raises(InvalidMessage, match=reason):
        parse_command(raw)


def test_an_event_is_not_a_command():
    ev = StepFailedEvent(node_id="n1", body=StepFailedBody(error=StepError(code="x", message="y")))
    with pytest.raises(InvalidMessage, match=r"unknown command type 'step\.failed'"):
        parse_command(dump(ev))


def test_every_message_has_a_json_schema():
    schemas = message_schemas()
    assert len(schemas) == 13
    for tag, schema in schemas.items():
        assert schema["properties"]["type"]["const"] == tag
        assert "body" in schema["required"]


def test_topology_names():
    assert node_queue("n1") == "hcc.node.n1"
    assert event_routing_key("n1", "step.progress") == "node.n1.step.progress"
    args = quorum_arguments()
    assert args["x-queue-type"] == "quorum"
    assert args["x-delivery-limit"] > 0
    assert args["x-dead-letter-strategy"] == "at-least-once"
    assert args["x-overflow"] == "reject-publish"
