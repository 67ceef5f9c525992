"""Cloud adapters: one interface (base.py), one module per cloud kind, and this factory."""

from __future__ import annotations

import importlib
from pathlib import Path

from protocol.messages import CloudKind, DeploySpec, InventoryItem, Target
from workers.clouds.base import (
    CloudAdapter,
    CloudConfig,
    CloudError,
    DeployResult,
    ExportResult,
    ImportResult,
    ProgressFn,
)

_ADAPTERS: dict[CloudKind, tuple[str, str]] = {
    CloudKind.VSPHERE: ("workers.clouds.vsphere", "VSphereAdapter"),
    CloudKind.VCD: ("workers.clouds.vcd", "VcdAdapter"),
}


class NoAdapter:
    """Stands in while a cloud kind's adapter module does not exist: empty inventory, and
    every other call fails with ``not-implemented`` (the cloud shows as unreachable)."""

    def __init__(self, config: CloudConfig) -> None:
        self.config = config

    def _error(self) -> CloudError:
        return CloudError(
            f"no adapter for {self.config.kind.value} clouds in this build", code="not-implemented"
        )

    async def check(self) -> None:
        raise self._error()

    async def inventory(self) -> list[InventoryItem]:
        return []

    async def export(self, ref: str, dest: Path, progress: ProgressFn) -> ExportResult:
        raise self._error()

    async def import_package(
        self, package_dir: Path, target: Target, progress: ProgressFn, *, streaming: bool = False
    ) -> ImportResult:
        raise self._error()

    async def deploy(
        self, template_ref: str, spec: DeploySpec, progress: ProgressFn
    ) -> DeployResult:
        raise self._error()

    async def close(self) -> None:
        return None


ADAPTER_OPTION = "adapter"
"""``options["adapter"] = "package.module:Class"`` names the adapter class explicitly: an
out-of-tree adapter, or a test double that is a real class with the same interface."""


def make_adapter(config: CloudConfig) -> CloudAdapter:
    """The adapter for ``config.kind`` (vSphere: VSphereAdapter, vCD: VcdAdapter)."""
    module_name, class_name = _ADAPTERS[config.kind]
    if ADAPTER_OPTION in config.options:
        module_name, _, class_name = config.options[ADAPTER_OPTION].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name or ADAPTER_OPTION in config.options:
            raise
        return NoAdapter(config)
    adapter: CloudAdapter = getattr(module, class_name)(config)
    return adapter


__all__ = ["CloudAdapter", "CloudConfig", "CloudError", "NoAdapter", "make_adapter"]
