"""The copy task: export → send → import → deploy → cleanup, as a graph of steps.

The stages overlap. The send needs the export only *started*: the source node streams
each file while the export is still writing it (files grow as ``<name>.part``; the
package is final when the export removes its marker). The import needs the send only
*started* too: the receiver publishes each file into the destination's package as soon as
it is complete, and the import (``streaming``) starts on the descriptor and uploads each
file as it arrives (workers/ovf/package.py). How much that overlaps depends on the
source: a vCD export writes the descriptor first, so the import runs beside the send; a
vSphere export writes it last (it declares the disks' final sizes), so the import starts
once the send is nearly done. When source and destination are served by the same node
there is no send: the import reads the export's package as the export writes it.

Pure: plain values in, StepPlans and command bodies out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.tasks.saga import Need, StepPlan, StepRecord
from protocol.messages import DeploySpec, Target

TokenSigner = Callable[[str, str, str], str]
"""(artifact_id, source_node, destination_node) -> capability token."""


@dataclass(frozen=True)
class Side:
    cloud_id: str
    node_id: str


@dataclass(frozen=True)
class Receiver:
    url: str
    fingerprint: str


@dataclass(frozen=True)
class TransferOptions:
    streams: int = 4
    chunk_bytes: int = 8 * 1024 * 1024
    compress: bool = False
    bandwidth_bytes_per_s: int | None = None
    keep_artifacts: bool = False


def plan_copy(
    *,
    artifact_id: str,
    source: Side,
    ref: str,
    destination: Side,
    receiver: Receiver | None,
    target: Target,
    deploy: DeploySpec | None,
    options: TransferOptions,
) -> list[StepPlan]:
    same_node = source.node_id == destination.node_id
    if not same_node and receiver is None:
        raise ValueError("a copy between two nodes needs the destination's receiver")
    steps = [
        StepPlan("export", source.node_id, _cmd("export", cloud_id=source.cloud_id, ref=ref,
                                                artifact_id=artifact_id)),
    ]  # fmt: skip
    package_arriving: dict[str, Need] = {"export": "started"}
    if not same_node:
        assert receiver is not None
        steps.append(
            StepPlan(
                "send", source.node_id,
                _cmd("send", artifact_id=artifact_id, destination_node=destination.node_id,
                     destination_url=receiver.url, destination_fingerprint=receiver.fingerprint,
                     token="", streams=options.streams, chunk_bytes=options.chunk_bytes,
                     compress=options.compress,
                     bandwidth_bytes_per_s=options.bandwidth_bytes_per_s),
                {"export": "started"},
            )
        )  # fmt: skip
        package_arriving = {"send": "started"}
    steps.append(
        StepPlan("import", destination.node_id,
                 _cmd("import", cloud_id=destination.cloud_id, artifact_id=artifact_id,
                      target=target.model_dump(mode="json"), streaming=True), package_arriving)
    )  # fmt: skip
    last = "import"
    if deploy is not None:
        steps.append(
            StepPlan("deploy", destination.node_id,
                     _cmd("deploy", cloud_id=destination.cloud_id, template_ref="",
                          spec=deploy.model_dump(mode="json")), {"import": "succeeded"})
        )  # fmt: skip
        last = "deploy"
    # the operator finds the new template (and vApp) in the destination's inventory
    steps.append(StepPlan("refresh", destination.node_id,
                          _cmd("inventory.refresh", cloud_id=destination.cloud_id),
                          {last: "succeeded"}))  # fmt: skip
    if not options.keep_artifacts:
        steps += _cleanups(artifact_id, source, destination, same_node, last)
    return steps


def _cleanups(
    artifact_id: str, source: Side, destination: Side, same_node: bool, last: str
) -> list[StepPlan]:
    body = _cmd("cleanup", artifact_id=artifact_id)
    if same_node:
        return [StepPlan("cleanup", source.node_id, body, {last: "succeeded"})]
    return [
        StepPlan("cleanup-source", source.node_id, body, {"send": "succeeded"}),
        StepPlan("cleanup-destination", destination.node_id, body, {last: "succeeded"}),
    ]


def _cmd(kind: str, **body: Any) -> dict[str, Any]:
    return {"type": kind, "body": body}


class CopyBinder:
    """Completes copy commands at dispatch: a fresh token for the send, the imported
    template for the deploy."""

    def __init__(self, sign: TokenSigner) -> None:
        self._sign = sign

    def __call__(self, step: StepRecord, steps: Sequence[StepRecord]) -> dict[str, Any]:
        body = dict(step.command["body"])
        if step.command["type"] == "send":
            body["token"] = self._sign(body["artifact_id"], step.node_id, body["destination_node"])
        elif step.command["type"] == "deploy":
            imported = next(s for s in steps if s.name == "import")
            if not imported.result or "object_id" not in imported.result:
                raise ValueError("the import step did not report the template it made")
            body["template_ref"] = imported.result["object_id"]
        return body
