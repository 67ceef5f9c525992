"""Cloud adapters for node tests: real classes with the CloudAdapter interface, named through
``CloudConfig.options["adapter"]`` (workers.clouds.make_adapter honours it).

- ``StaticAdapter``: a fixed inventory of ``options["items"]`` VMs.
- ``GatedAdapter``: ``export`` writes ``disk.img`` in 4 parts, reporting progress, and blocks
  before the last part until the file ``options["gate"]`` exists; every call appends a line to
  ``options["calls"]`` so a test can see a resume.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from protocol.messages import DeploySpec, InventoryItem, ObjectKind, Target
from workers.clouds.base import (
    CloudConfig,
    DeployResult,
    ExportResult,
    ImportResult,
    Progress,
    ProgressFn,
)

PART = 64 * 1024


class StaticAdapter:
    def __init__(self, config: CloudConfig) -> None:
        self.config = config

    async def check(self) -> None:
        return None

    async def inventory(self) -> list[InventoryItem]:
        count = int(self.config.options.get("items", "2"))
        return [
            InventoryItem(
                id=f"vm-{i}", kind=ObjectKind.VM, name=f"web-{i:02d}", path=f"DC0/vm/web-{i:02d}"
            )
            for i in range(count)
        ]

    async def export(self, ref: str, dest: Path, progress: ProgressFn) -> ExportResult:
        raise NotImplementedError

    async def import_package(
        self, package_dir: Path, target: Target, progress: ProgressFn, *, streaming: bool = False
    ) -> ImportResult:
        files = sorted(await asyncio.to_thread(os.listdir, package_dir))
        await progress(Progress(1, 1))
        return ImportResult(
            object_id=f"vappTemplate-{target.name}",
            name=target.name,
            kind="vapp_template",
            attributes={"files": ",".join(files)},
        )

    async def deploy(
        self, template_ref: str, spec: DeploySpec, progress: ProgressFn
    ) -> DeployResult:
        return DeployResult(object_id=f"vapp-{spec.name}", name=spec.name, power_state="on")

    async def close(self) -> None:
        return None


def _append(path: str, line: str) -> None:
    with open(path, "a") as fh:
        fh.write(line)


def _write_part(path: Path, part: int) -> None:
    with open(path, "r+b" if part else "wb") as fh:
        fh.seek(part * PART)
        fh.write(b"x" * PART)


class GatedAdapter(StaticAdapter):
    async def export(self, ref: str, dest: Path, progress: ProgressFn) -> ExportResult:
        await asyncio.to_thread(_append, self.config.options["calls"], f"export {ref}\n")
        gate = Path(self.config.options["gate"])
        disk = dest / "disk.img"
        total = 4 * PART
        for part in range(4):
            if part == 3:
                # another process opens the gate: a file is the only signal there is
                while not await asyncio.to_thread(gate.exists):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            await asyncio.to_thread(_write_part, disk, part)
            await progress(Progress((part + 1) * PART, total))
        return ExportResult(package_dir=dest, descriptor="vm.ovf", files={"disk.img": total})
