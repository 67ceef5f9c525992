"""The destination node is SIGKILLed while the import uploads into vCD (real processes).

The upload goes through a :class:`~tests.e2e.throttle.Throttle` in front of the vCD
simulator, so it lasts long enough; the kill waits for the simulator's copy of the disk to be
partly written (not for a time). The restarted node resumes the same step (attempt 0): it
adopts its own unfinished catalog upload instead of starting a second one, and the catalog
ends with exactly one template of that name whose files are the source's, byte for byte.
"""

from __future__ import annotations

import asyncio
import collections
import json
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from tests.e2e.fleet import Fleet
from tests.e2e.test_copy import add_vcd_cloud, sha256
from tests.e2e.test_copy_directions import (
    MIB,
    assert_disks_arrived,
    restart_node,
    server_and_nodes,
    start_copy,
    step_reaches,
    steps_of,
    succeeded,
    transfer_files,
    vcd_disks,
)
from tests.e2e.test_fleet import add_vcsim_cloud
from tests.e2e.throttle import Throttle
from tests.fixtures.vcdsim import VcdSimProcess
from tests.waiting import eventually

pytestmark = pytest.mark.slow
SLACK = 2 * MIB
"""API traffic beside the disk bytes (logins, XML, polling) through the proxy."""


def stored_files(sim: VcdSimProcess, name: str) -> list[Path]:
    """The files the simulator holds under ``name`` in any template (written as PUTs land)."""
    return [p for p in (sim.data_dir / "templates").glob(f"*/{name}") if p.is_file()]


def catalog_entries(sim: VcdSimProcess, name: str) -> tuple[list[Any], list[Any]]:
    """(catalog items, vApp templates) whose name starts with ``name``, from the sim's state."""
    state = sim.state()
    items = [i for i in state["items"].values() if i["name"].startswith(name)]
    templates = [t for t in state["templates"].values() if t["name"].startswith(name)]
    return items, templates


async def kill_point_reached(sim: VcdSimProcess, when: str, size: int) -> int:
    """Wait for the moment to kill: ``uploading``, the simulator's copy of the disk is partly
    written; ``vcd-importing``, every byte arrived and vCD's upload task still runs. Returns
    the disk bytes the simulator holds then."""

    async def mid_upload() -> int:
        files = stored_files(sim, "disk-0.vmdk")
        written = files[0].stat().st_size if files else 0
        return written if MIB <= written <= size - 2 * MIB else 0

    async def vcd_importing() -> int:
        _, templates = await asyncio.to_thread(catalog_entries, sim, "app-copy")
        files = {f["name"]: f for t in templates for f in t["files"]}
        disk = files.get("disk-0.vmdk", {})
        complete = bool(files) and all(f["bytes_transferred"] == f["size"] for f in files.values())
        return disk.get("bytes_transferred", 0) if complete and templates[0]["status"] == 0 else 0

    probe = mid_upload if when == "uploading" else vcd_importing
    written: int = await eventually(probe, timeout_s=60, interval_s=0.02, what=when)
    return written


@pytest.mark.parametrize("when", ["uploading", "vcd-importing"])
async def test_destination_node_killed_during_the_vcd_import(
    fleet: Fleet, vcsim, vcsim_seeder, vcd_sim: VcdSimProcess, when: str
):
    vm = vcsim_seeder.vm("app", [6 * MIB], zero_fraction=0.0)
    size = vm.disks[0].stat().st_size
    url = URL(vcd_sim.url)
    proxy = Throttle(url.host or "127.0.0.1", url.port or 80, 4 * MIB)
    if when == "vcd-importing":
        vcd_sim.set_faults(task_delay_s=3)  # vCD takes its time over the uploaded package
    try:
        await server_and_nodes(fleet, "n1", "n2")
        add_vcsim_cloud(fleet, vcsim, "onprem", "n1")
        add_vcd_cloud(fleet, vcd_sim, "provider", "n2", endpoint=f"http://127.0.0.1:{proxy.port}")
        task_id = await start_copy(
            fleet,
            {"cloud": "onprem", "ref": "DC0/vm/app"},
            {"cloud": "provider", "catalog": "Templates", "name": "app-copy"},
        )
        await step_reaches(fleet, task_id, "import", lambda s: s["state"] == "running")
        written = await kill_point_reached(vcd_sim, when, size)
        sent_before = proxy.up
        fleet.procs[2].kill()
        items, templates = await asyncio.to_thread(catalog_entries, vcd_sim, "app-copy")
        assert [t["status"] for t in templates] == [0], templates  # unfinished, as the kill left it
        restart_node(fleet, "n2")
        task = await succeeded(fleet, task_id, timeout_s=90)

        steps = steps_of(task)
        assert steps["import"]["attempt"] == 0  # resumed, not retried
        assert steps["import"]["result"]["name"] == "app-copy"
        items, templates = await asyncio.to_thread(catalog_entries, vcd_sim, "app-copy")
        assert [i["name"] for i in items] == ["app-copy"], items  # one item: no "app-copy-2"
        assert [(t["name"], t["status"]) for t in templates] == [("app-copy", 8)], templates
        assert items[0]["template_id"] == templates[0]["id"]
        assert steps["import"]["result"]["object_id"].endswith(templates[0]["id"])
        # the stored disk is the source's, byte for byte, and there is only one copy of it
        assert_disks_arrived(list(vm.disks), vcd_disks(vcd_sim))
        stored = collections.Counter(sha256(p) for p in stored_files(vcd_sim, "disk-0.vmdk"))
        assert stored == {sha256(vm.disks[0]): 1}
        held = {f["name"]: f for f in templates[0]["files"]}
        assert held["disk-0.vmdk"]["bytes_transferred"] == size
        assert "vcd.upload_adopted" in fleet.procs[-1].log.read_text()
        sent_after = int(steps["import"]["result"]["attributes"]["sent_bytes"])
        if when == "vcd-importing":
            assert sent_after == 0  # every byte was there: the resumed step sent none
            assert proxy.up <= size + SLACK, (proxy.up, sent_before, size)
        else:
            # the resumed attempt put the disk on the wire at most once (it may start the file
            # over: vCD counts a PUT's bytes when the PUT ends, and the killed node's PUT was
            # still draining from the proxy's socket buffers); nothing went up a third time
            assert sent_after <= size
            assert proxy.up <= 2 * size + SLACK, (proxy.up, sent_before, written, size)
        for node in ("n1", "n2"):
            assert transfer_files(fleet, node, "app-copy-") == []
        print(json.dumps({"when": when, "written_at_kill": written, "disk": size,
                          "up_before_kill": sent_before, "up": proxy.up}))  # fmt: skip
    finally:
        proxy.close()
