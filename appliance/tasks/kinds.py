"""Task kinds: how a request becomes a plan of steps, and how steps get their commands."""

from __future__ import annotations

from appliance.tasks import offline
from appliance.tasks.copy import CopyBinder, TokenSigner
from appliance.tasks.saga import Binder, StepPlan

INVENTORY_REFRESH = "inventory-refresh"
COPY = "copy"
IMPORT = offline.IMPORT
EXPORT = offline.EXPORT
DELETE_ARTIFACT = offline.DELETE_ARTIFACT


def plan_inventory_refresh(cloud_id: str, node_id: str) -> list[StepPlan]:
    """One step: the cloud's node reads the inventory and reports a snapshot."""
    command = {"type": "inventory.refresh", "body": {"cloud_id": cloud_id}}
    return [StepPlan("refresh", node_id, command, {})]


class Kinds:
    """The binders of every task kind; built once by the server with its token signer."""

    def __init__(self, sign: TokenSigner) -> None:
        # an import's deploy gets the imported template like a copy's
        self._binders: dict[str, Binder] = {COPY: CopyBinder(sign), IMPORT: CopyBinder(sign)}

    def binder_for(self, kind: str) -> Binder | None:
        return self._binders.get(kind)
