"""The AsyncAPI 3.0 document (protocol/asyncapi.py) against the official JSON Schema of
AsyncAPI 3.0.0 (vendored in tests/fixtures/asyncapi/, no network), and against protocol/."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from pydantic import TypeAdapter
from typer.testing import CliRunner

from appliance.bus.brokerusers import node_permissions
from cli.main import app
from protocol import parse_message
from protocol.asyncapi import build, examples, rpc_examples
from protocol.messages import COMMAND_TYPES, EVENT_TYPES, NodeId, type_name
from protocol.rpc import ApiReply, ApiRequest, parse_request
from protocol.topology import (
    COMMANDS_EXCHANGE,
    DEAD_EXCHANGE,
    DEAD_QUEUE,
    DEAD_REASON_HEADER,
    DEAD_SOURCE_HEADER,
    EVENTS_EXCHANGE,
    SERVER_EVENTS_QUEUE,
    SERVER_REQUESTS_QUEUE,
    quorum_arguments,
)

SPEC = Path(__file__).resolve().parent.parent / "fixtures" / "asyncapi"
COMMANDS = {type_name(m) for m in COMMAND_TYPES}
EVENTS = {type_name(m) for m in EVENT_TYPES}


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = json.loads((SPEC / "asyncapi-3.0.0.schema.json").read_text())
    assert schema["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    # through JSON, as served: tuples, UUIDs or datetimes left in would show up here
    built: dict[str, Any] = json.loads(json.dumps(build(version="9.9.9")))
    return built


def errors(validator: Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in validator.iter_errors(document)
    ]


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


# --------------------------------------------------------------------------- the spec


def test_the_document_is_valid_asyncapi_3_0(validator, doc):
    assert doc["asyncapi"] == "3.0.0"
    assert errors(validator, doc) == []


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("channels", "commands", "bindings", "amqp", "exchange", "type"), "bogus"),
        (("channels", "nodeQueue", "bindings", "amqp", "queue", "name"), "q" * 256),
        (("operations", "sendCommand", "bindings", "amqp", "persistent"), True),
        (("operations", "handleRequest", "reply", "address", "location"), "reply_to"),
        (("components", "schemas", "StepError", "type"), 7),
        (("components", "messages", "ExportCommand", "examples"), [{}]),
        (("servers", "rabbitmq", "security"), [{"type": "password-please"}]),
    ],
)
def test_the_validator_catches_a_broken_document(validator, doc, where, value):
    """The check above is not vacuous: the vendored schema reaches bindings, replies and
    payload schemas."""
    broken = copy.deepcopy(doc)
    node = broken
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    found = errors(validator, broken)
    assert any(e.startswith("/".join(where[:2])) for e in found), found


def test_every_ref_resolves(doc):
    found = set(refs(doc))
    assert len(found) > 50
    for ref in found:
        assert resolve(doc, ref) is not None, ref


def test_operation_messages_belong_to_their_channel(doc):
    """AsyncAPI 3.0: an operation's (and its reply's) messages are its channel's."""
    for name, op in doc["operations"].items():
        parts = [(op["channel"], op["messages"])]
        if "reply" in op:
            parts.append((op["reply"]["channel"], op["reply"]["messages"]))
        for channel, messages in parts:
            assert messages, name
            for m in messages:
                assert m["$ref"].startswith(channel["$ref"] + "/messages/"), (name, m)


# --------------------------------------------------------------------------- against protocol/


def _names(doc: dict[str, Any], channel: str) -> set[str]:
    return {resolve(doc, r["$ref"])["name"] for r in doc["channels"][channel]["messages"].values()}


def test_every_command_and_event_and_the_rpc_messages_appear(doc):
    assert _names(doc, "commands") == _names(doc, "nodeQueue") == COMMANDS
    assert _names(doc, "events") == _names(doc, "serverEvents") == EVENTS
    assert len(COMMANDS) == 7
    assert len(EVENTS) == 6
    assert _names(doc, "serverRequests") == {"api.request"}
    assert _names(doc, "rpcReplies") == {"api.reply"}
    assert _names(doc, "dead") == _names(doc, "deadQueue") == {"dead-letter"}
    params = doc["components"]["parameters"]
    assert set(params["eventType"]["enum"]) == EVENTS
    assert params["nodeId"]["description"].endswith(TypeAdapter(NodeId).json_schema()["pattern"])
    ops = doc["operations"]
    assert {(op["action"], op["channel"]["$ref"]) for op in ops.values()} == {
        ("send", "#/channels/commands"),
        ("receive", "#/channels/nodeQueue"),
        ("send", "#/channels/events"),
        ("receive", "#/channels/serverEvents"),
        ("receive", "#/channels/serverRequests"),
        ("send", "#/channels/dead"),
    }


def test_payloads_are_the_models(doc):
    schemas = doc["components"]["schemas"]
    messages = doc["components"]["messages"]
    for model in (*COMMAND_TYPES, *EVENT_TYPES):
        message = messages[model.__name__]
        assert message["contentType"] == "application/json"
        assert message["bindings"]["amqp"]["messageType"] == type_name(model)
        payload = resolve(doc, message["payload"]["$ref"])
        assert payload["properties"]["type"]["const"] == type_name(model)
        # every field is written, so every field is required
        assert set(payload["required"]) == set(model.model_fields)
        assert payload["properties"]["node_id"]["description"].startswith("The node")
    request = resolve(doc, messages["ApiRequest"]["payload"]["$ref"])
    assert set(request["required"]) == {"method", "path"}  # what a caller may leave out
    assert set(request["properties"]) == set(ApiRequest.model_fields)
    reply = resolve(doc, messages["ApiReply"]["payload"]["$ref"])
    assert set(reply["properties"]) == set(ApiReply.model_fields)
    # no 2020-12-only keyword anywhere: nested models are components, not $defs
    assert "$defs" not in json.dumps(schemas)
    for schema in schemas.values():
        Draft7Validator.check_schema(schema)


def _payload_validator(doc: dict[str, Any], ref: str) -> Draft7Validator:
    """Draft-07 validation of a payload, its component refs resolved inside ``doc``."""
    return Draft7Validator({"allOf": [{"$ref": ref}], "components": doc["components"]})


def test_examples_are_real_messages_and_match_their_schemas(doc):
    messages = doc["components"]["messages"]
    made = examples()
    assert set(made) == COMMANDS | EVENTS
    for model in (*COMMAND_TYPES, *EVENT_TYPES):
        message = messages[model.__name__]
        (example,) = message["examples"]
        payload = example["payload"]
        assert parse_message(json.dumps(payload)) == made[type_name(model)]
        check = _payload_validator(doc, message["payload"]["$ref"])
        assert list(check.iter_errors(payload)) == [], model.__name__
        # the schemas bite: a missing field, a wrong type tag, an unknown field
        assert not check.is_valid({k: v for k, v in payload.items() if k != "seq"})
        assert not check.is_valid({**payload, "type": "nope"})
        assert not check.is_valid({**payload, "body": {**payload["body"], "extra": 1}})
    request, reply = rpc_examples()
    assert isinstance(parse_request(json.dumps(request["payload"]).encode()), ApiRequest)
    ApiReply.model_validate(reply["payload"])
    assert request["headers"]["correlation_id"] == reply["headers"]["correlation_id"]
    for name in ("ApiRequest", "ApiReply"):
        message = messages[name]
        (example,) = message["examples"]
        check = _payload_validator(doc, message["payload"]["$ref"])
        assert list(check.iter_errors(example["payload"])) == []
        assert list(Draft7Validator(message["headers"]).iter_errors(example["headers"])) == []


# --------------------------------------------------------------------------- AMQP bindings


def _binding(doc: dict[str, Any], channel: str) -> dict[str, Any]:
    binding: dict[str, Any] = doc["channels"][channel]["bindings"]["amqp"]
    assert binding["bindingVersion"] == "0.3.0"
    return binding


def test_bindings_are_the_topology(doc):
    for channel, name, kind in [
        ("commands", COMMANDS_EXCHANGE, "direct"),
        ("events", EVENTS_EXCHANGE, "topic"),
        ("dead", DEAD_EXCHANGE, "fanout"),
        ("rpcReplies", "", "default"),
    ]:
        b = _binding(doc, channel)
        assert (b["is"], b["exchange"]["name"], b["exchange"]["type"]) == ("routingKey", name, kind)
    for channel, name, arguments in [
        ("nodeQueue", "hcc.node.{nodeId}", quorum_arguments()),
        ("serverEvents", SERVER_EVENTS_QUEUE, quorum_arguments()),
        ("serverRequests", SERVER_REQUESTS_QUEUE, quorum_arguments()),
        ("deadQueue", DEAD_QUEUE, {"x-queue-type": "quorum"}),
    ]:
        b = _binding(doc, channel)
        assert (b["is"], b["queue"]["name"], b["x-arguments"]) == ("queue", name, arguments)
        assert b["queue"]["durable"] is True
    assert doc["channels"]["events"]["address"] == "node.{nodeId}.{eventType}"
    assert doc["channels"]["serverRequests"]["address"] == SERVER_REQUESTS_QUEUE
    dead_headers = doc["components"]["messages"]["DeadLetter"]["headers"]["properties"]
    assert {DEAD_REASON_HEADER, DEAD_SOURCE_HEADER} <= set(dead_headers)
    reply = doc["operations"]["handleRequest"]["reply"]
    assert reply["address"]["location"] == "$message.header#/reply_to"
    assert "reply_to" in resolve(doc, "#/components/messages/ApiRequest")["headers"]["required"]


def test_the_node_permissions_described_are_the_ones_given(doc):
    text = doc["components"]["securitySchemes"]["brokerUser"]["description"]
    configure, write, read = node_permissions("n1")
    assert f"configure `{configure}`" in text
    assert f"write `{write}`" in text
    assert f"read `{read.replace('n1', '<id>')}`" in text


def test_hcc_asyncapi_prints_the_document():
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["asyncapi"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json.loads(json.dumps(build(version=version("hcc"))))
