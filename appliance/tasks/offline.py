"""OVA files (``hcc export`` / ``hcc import``): the tasks around bytes the CLI moves itself.

The server never carries disk bytes, so an OVA's bytes go between the CLI and the cloud's
node over the node's HTTPS transfer listener, with a capability token the server signs:

- **import**: the CLI uploads the extracted package into the node's transfer storage
  (artifact :func:`upload_artifact_id`, a push token with ``source_node`` ``operator``),
  then starts an ``import`` task: import → deploy (optional) → refresh → cleanup, the tail
  of a copy (:func:`appliance.tasks.copy.plan_copy`).
- **export**: an ``export`` task (one step, the package is kept in the node's storage); the
  CLI downloads its files with a read token and writes the OVA; then a ``delete-artifact``
  task (one cleanup step) removes the package from the node.

Pure: plain values in, StepPlans out.
"""

from __future__ import annotations

import hashlib
import re

from appliance.tasks.copy import Side, TransferOptions, plan_copy
from appliance.tasks.saga import StepPlan
from protocol.messages import DeploySpec, Target

IMPORT = "import"
EXPORT = "export"
DELETE_ARTIFACT = "delete-artifact"
OPERATOR = "operator"
"""The ``source_node`` of an upload token and the ``destination_node`` of a read token."""
UPLOAD_ARTIFACT = re.compile(r"^ova-[0-9a-f]{24}$")


def upload_artifact_id(cloud_id: str, name: str, key: str) -> str:
    """The artifact an OVA upload goes to: the same for the same package, cloud and name, so
    running ``hcc import`` again resumes the upload instead of starting another. ``ova-`` and
    24 hex digits: never the name of a copy's artifact (``<slug>-<12 hex>``)."""
    digest = hashlib.sha256(f"{cloud_id}\0{name}\0{key}".encode()).hexdigest()
    return f"ova-{digest[:24]}"


def plan_import(
    *,
    artifact_id: str,
    destination: Side,
    target: Target,
    deploy: DeploySpec | None,
    keep_artifacts: bool = False,
) -> list[StepPlan]:
    """The tail of a copy whose package is already in the destination node's storage."""
    plans = plan_copy(
        artifact_id=artifact_id, source=destination, ref="", destination=destination,
        receiver=None, target=target, deploy=deploy,
        options=TransferOptions(keep_artifacts=keep_artifacts),
    )  # fmt: skip
    # Same node, so no send; drop the export and let the import need nothing.
    out = []
    for plan in plans[1:]:
        needs = {k: v for k, v in plan.needs.items() if k != "export"}
        out.append(StepPlan(plan.name, plan.node_id, plan.command, needs))
    return out


def plan_export(*, artifact_id: str, source: Side, ref: str) -> list[StepPlan]:
    """One step: the source node exports ``ref`` into its storage, where it stays."""
    body = {"cloud_id": source.cloud_id, "ref": ref, "artifact_id": artifact_id}
    return [StepPlan("export", source.node_id, {"type": "export", "body": body})]


def plan_delete_artifact(*, artifact_id: str, node_id: str) -> list[StepPlan]:
    """One step: the node removes the artifact from its transfer storage."""
    body = {"artifact_id": artifact_id}
    return [StepPlan("cleanup", node_id, {"type": "cleanup", "body": body})]
