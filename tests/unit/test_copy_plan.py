"""The copy task's plan and binder (pure)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from appliance.tasks import saga
from appliance.tasks.copy import CopyBinder, Receiver, Side, TransferOptions, plan_copy
from appliance.tasks.saga import StepPlan, StepRecord
from protocol.messages import COMMAND_ADAPTER, DeploySpec, Target

SRC = Side("onprem", "n1")
DST = Side("provider", "n2")
RX = Receiver("https://10.0.0.2:8443", "ab" * 32)


def plan(**kw: Any) -> list[StepPlan]:
    args = dict(artifact_id="web-1", source=SRC, ref="vm-42", destination=DST, receiver=RX,
                target=Target(catalog="Templates", name="web"), deploy=None,
                options=TransferOptions())  # fmt: skip
    return plan_copy(**{**args, **kw})


def shape(plans: list[StepPlan]) -> list[tuple[Any, ...]]:
    return [(p.name, p.node_id, p.command["type"], dict(p.needs)) for p in plans]


def test_two_node_copy_with_deploy():
    plans = plan(deploy=DeploySpec(name="web-app"))
    assert shape(plans) == [
        ("export", "n1", "export", {}),
        ("send", "n1", "send", {"export": "started"}),
        ("import", "n2", "import", {"send": "started"}),
        ("deploy", "n2", "deploy", {"import": "succeeded"}),
        ("refresh", "n2", "inventory.refresh", {"deploy": "succeeded"}),
        ("cleanup-source", "n1", "cleanup", {"send": "succeeded"}),
        ("cleanup-destination", "n2", "cleanup", {"deploy": "succeeded"}),
    ]
    send = plans[1].command["body"]
    assert (send["destination_url"], send["destination_fingerprint"]) == (RX.url, RX.fingerprint)
    assert plans[2].command["body"]["streaming"]  # takes files as they arrive


def test_same_node_copy_has_no_send_and_one_cleanup():
    plans = plan(destination=Side("other-vc", "n1"), receiver=None)
    assert shape(plans) == [
        ("export", "n1", "export", {}),
        ("import", "n1", "import", {"export": "started"}),
        ("refresh", "n1", "inventory.refresh", {"import": "succeeded"}),
        ("cleanup", "n1", "cleanup", {"import": "succeeded"}),
    ]


def test_keep_artifacts_plans_no_cleanup_and_receiver_is_required():
    assert [p.name for p in plan(options=TransferOptions(keep_artifacts=True))] == [
        "export", "send", "import", "refresh"]  # fmt: skip
    with pytest.raises(ValueError, match="receiver"):
        plan(receiver=None)


def test_binder_signs_the_send_and_hands_the_template_to_deploy():
    plans = plan(deploy=DeploySpec(name="web-app"))
    signed = []

    def sign(artifact: str, src: str, dst: str) -> str:
        signed.append((artifact, src, dst))
        return f"token-{len(signed)}"

    binder = CopyBinder(sign)
    records = [StepRecord(p.name, p.node_id, p.command, None) for p in plans]
    body = binder(records[1], records)
    assert body["token"] == "token-1"
    assert signed == [("web-1", "n1", "n2")]
    assert binder(records[1], records)["token"] == "token-2"  # a fresh token per dispatch
    with pytest.raises(ValueError, match="template"):
        binder(records[3], records)
    records[2] = StepRecord(
        "import", "n2", plans[2].command, {"object_id": "urn:vcloud:vapptemplate:1"}
    )
    assert binder(records[3], records)["template_ref"] == "urn:vcloud:vapptemplate:1"
    # every bound body is a valid command
    for rec in records:
        bound = binder(rec, records)
        COMMAND_ADAPTER.validate_python(
            {"type": rec.command["type"], "body": bound, "node_id": rec.node_id}
        )


def test_copy_graph_runs_through_the_saga():
    plans = plan(deploy=DeploySpec(name="web-app"))
    task = saga.Task(uuid4(), saga.TaskState.RUNNING, tuple(
        saga.Step(uuid4(), p.name, p.node_id, needs=p.needs) for p in plans))  # fmt: skip
    ids = {s.name: s.id for s in task.steps}
    out = saga.start(task)
    assert [a.step_id for a in out.actions] == [ids["export"]]
    out = saga.step_started(out.task, ids["export"])
    assert [a.step_id for a in out.actions] == [ids["send"]]
    out = saga.step_started(out.task, ids["send"])
    assert [a.step_id for a in out.actions] == [ids["import"]]  # beside the send
    task = saga.step_succeeded(saga.step_started(out.task, ids["import"]).task, ids["export"]).task
    out = saga.step_succeeded(task, ids["send"])
    assert [a.step_id for a in out.actions] == [ids["cleanup-source"]]
    out = saga.step_succeeded(out.task, ids["import"])
    assert [a.step_id for a in out.actions] == [ids["deploy"]]
    for name in ("cleanup-source", "deploy", "refresh", "cleanup-destination"):
        out = saga.step_succeeded(saga.step_started(out.task, ids[name]).task, ids[name])
    assert out.task.state == saga.TaskState.SUCCEEDED
