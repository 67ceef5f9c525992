"""A copy survives crashes without losing or corrupting data (real processes).

* ``test_node_kills``: the source node is SIGKILLed during the export, the destination node
  during the send. vSphere NFC resumes per disk (a disk finished before the kill is not read
  again), the transfer resumes per chunk (at most one chunk per stream sent again).
* ``test_broker_restart_and_server_kill``: a private RabbitMQ is restarted during the send,
  then the server is SIGKILLed during the vCD import. Nothing is sent or uploaded twice.

The clouds are reached through :class:`Throttle`, a TCP proxy with a rate limit that counts
the bytes it carries, so an export or an upload lasts long enough to be interrupted and the
bytes read from / written to the cloud can be counted (TLS passes through untouched; vcsim's
NFC device URLs say ``*``, "the host you called", so disks come through the proxy too).
"""

from __future__ import annotations

import asyncio
import collections
import json
from pathlib import Path

import pytest
from yarl import URL

from sim.vcsim.process import VcsimProcess
from tests.e2e.fleet import Fleet
from tests.e2e.test_copy import add_vcd_cloud
from tests.e2e.test_copy_directions import (
    MIB,
    NO_BROKER_USERS,
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
from tests.fixtures.rabbit import PrivateRabbit
from tests.fixtures.vcdsim import VcdSimProcess
from tests.waiting import eventually

pytestmark = pytest.mark.slow
STREAMS = 4
SLACK = 2 * MIB
"""API traffic beside the disk bytes (logins, SOAP, XML, health checks) through a proxy."""


def put_attempts(log: Path, side: str) -> collections.Counter[tuple[str, str]]:
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    if log.exists():
        for line in log.read_text().splitlines():
            who, path, index = line.split(" ")
            if who == side:
                counts[(path, index)] += 1
    return counts


def repeated(counts: collections.Counter[tuple[str, str]]) -> int:
    return sum(counts.values()) - len(counts)


def export_state(fleet: Fleet, node: str) -> dict[str, object]:
    """The export's record of finished disks (``.hcc-export.json``), when there is one."""
    for path in (fleet.root / node).rglob(".hcc-export.json"):
        try:
            state: dict[str, object] = json.loads(path.read_text())
            return state
        except (OSError, ValueError):
            return {}
    return {}


async def test_node_kills(fleet: Fleet, vcsim: VcsimProcess, vcsim_seeder, vcd_sim, tmp_path: Path):
    vm = vcsim_seeder.vm("web", [4 * MIB, 10 * MIB], zero_fraction=0.0)
    sizes = [d.stat().st_size for d in vm.disks]
    proxy = Throttle(vcsim.host, vcsim.port, 3 * MIB)
    puts = tmp_path / "puts.log"
    try:
        await server_and_nodes(fleet, "n1", "n2", HCC_TRANSFER_PUT_LOG=str(puts))
        add_vcsim_cloud(
            fleet, vcsim, "onprem", "n1", endpoint=f"https://127.0.0.1:{proxy.port}/sdk"
        )
        add_vcd_cloud(fleet, vcd_sim, "provider", "n2")
        task_id = await start_copy(
            fleet,
            {"cloud": "onprem", "ref": "DC0/vm/web"},
            {"cloud": "provider", "catalog": "Templates", "name": "web-copy"},
            options={"chunk_mib": 1, "streams": STREAMS, "bandwidth_mb_per_s": 3},
        )
        n1, n2 = fleet.procs[1], fleet.procs[2]

        # 1. the source node dies during the export, after its small disk is finished
        async def first_disk_done() -> dict[str, object]:
            state = export_state(fleet, "n1")
            return state if "disk-0.vmdk" in json.dumps(state) else {}

        state = await eventually(first_disk_done, timeout_s=60, what="disk-0 exported")
        assert "disk-1.vmdk" not in json.dumps(state), "the big disk was already done"
        read_before = proxy.down
        n1.kill()
        restart_node(fleet, "n1", HCC_TRANSFER_PUT_LOG=str(puts))
        await step_reaches(fleet, task_id, "export", lambda s: s["state"] == "succeeded")
        read_after = proxy.down - read_before
        # NFC resumes per disk: only the unfinished disk is read again
        assert read_after <= sizes[1] + SLACK, (read_after, sizes)

        # 2. the destination node dies during the send
        await step_reaches(fleet, task_id, "send", lambda s: s["bytes_done"] >= 4 * MIB)
        n2.kill()
        restart_node(fleet, "n2", HCC_TRANSFER_PUT_LOG=str(puts))
        task = await succeeded(fleet, task_id, timeout_s=180)
        assert repeated(put_attempts(puts, "sender")) <= 2 * STREAMS  # one per stream per kill
        assert repeated(put_attempts(puts, "receiver")) <= 2 * STREAMS
        assert steps_of(task)["export"]["attempt"] == 0  # resumed, not retried
        assert_disks_arrived(list(vm.disks), vcd_disks(vcd_sim))
        for node in ("n1", "n2"):
            assert transfer_files(fleet, node, "web-copy-") == []
    finally:
        proxy.close()


async def test_broker_restart_and_server_kill(
    private_rabbit: PrivateRabbit, vcsim, vcsim_seeder, vcd_sim: VcdSimProcess, tmp_path: Path
):
    vm = vcsim_seeder.vm("db", [8 * MIB], zero_fraction=0.0)
    url = URL(vcd_sim.url)
    proxy = Throttle(url.host or "127.0.0.1", url.port or 80, 2 * MIB)
    puts = tmp_path / "puts.log"
    fleet = Fleet(tmp_path / "fleet", private_rabbit.url)
    fleet.root.mkdir()
    try:
        await server_and_nodes(fleet, "n1", "n2", HCC_TRANSFER_PUT_LOG=str(puts))
        add_vcsim_cloud(fleet, vcsim, "onprem", "n1")
        add_vcd_cloud(fleet, vcd_sim, "provider", "n2", endpoint=f"http://127.0.0.1:{proxy.port}")
        task_id = await start_copy(
            fleet,
            {"cloud": "onprem", "ref": "DC0/vm/db"},
            {"cloud": "provider", "catalog": "Templates", "name": "db-copy"},
            options={"chunk_mib": 1, "streams": STREAMS, "bandwidth_mb_per_s": 2},
        )

        # 1. the broker restarts during the send; the import, which runs beside the send and
        # does not need the broker to go on, is held at the vCD meanwhile (it would finish
        # while the broker is away, and the server must die while it still runs)
        await step_reaches(fleet, task_id, "send", lambda s: s["bytes_done"] > 0)
        proxy.hold()
        await asyncio.to_thread(private_rabbit.stop)
        await asyncio.to_thread(private_rabbit.start)
        proxy.release()

        # 2. the server dies during the import (the vCD upload, slowed by the proxy)
        await step_reaches(fleet, task_id, "import", lambda s: s["bytes_done"] > 0, timeout_s=120)
        uploaded_before = proxy.up
        fleet.procs[0].kill()
        fleet.start_server(**NO_BROKER_USERS)
        await fleet.wait_ready()
        task = await succeeded(fleet, task_id, timeout_s=180)
        assert repeated(put_attempts(puts, "sender")) == 0  # the broker is not on this path
        assert steps_of(task)["import"]["attempt"] == 0
        # every disk byte went up once: the proxy carried no more than the files and the API
        assert proxy.up <= vm.disks[0].stat().st_size + SLACK, (proxy.up, uploaded_before)
        assert_disks_arrived(list(vm.disks), vcd_disks(vcd_sim))
    finally:
        fleet.close()
        proxy.close()
