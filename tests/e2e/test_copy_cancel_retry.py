"""Cancel and retry of a copy, in real processes (server, two nodes, vcsim, vCD simulator).

* A cancel mid-send ends the task ``cancelled`` and leaves nothing of the artifact in either
  node's transfer storage, nor anything in vCD.
* A copy that keeps its artifacts, cancelled mid-send and retried, resumes the send from the
  receiver's checkpoint: chunks already held are not sent again, at most one chunk per
  stream is re-sent.
* Wrong credentials: on the source, a clearly failed export step (``cloud-auth``); on the
  destination, a failed import as soon as it starts (it logs in before it waits for the
  package). The credentials fixed with PATCH /api/v1/clouds/{id}, a retry runs only the
  steps that did not succeed.
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
from tests.e2e.test_copy import VCD_PASSWORD, add_vcd_cloud
from tests.e2e.test_copy_directions import (
    MIB,
    assert_disks_arrived,
    finished,
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
STREAMS = 4


def vcd_objects(sim: VcdSimProcess) -> str:
    """The simulator's catalog items and templates (its tasks keep names after a delete)."""
    state = sim.state()
    return json.dumps([state["items"], state["templates"]])


def put_attempts(log: Path) -> collections.Counter[tuple[str, str]]:
    """(file, chunk index) → PUT attempts, from HCC_TRANSFER_PUT_LOG (sender side)."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    if log.exists():
        for line in log.read_text().splitlines():
            side, path, index = line.split(" ")
            if side == "sender":
                counts[(path, index)] += 1
    return counts


async def test_cancel_mid_send_cleans_up_and_a_kept_send_resumes_on_retry(
    fleet: Fleet, vcsim, vcsim_seeder, vcd_sim, tmp_path: Path
):
    vm = vcsim_seeder.vm("big", [12 * MIB], zero_fraction=0.0)
    puts = tmp_path / "puts.log"
    await server_and_nodes(fleet, "n1", "n2", HCC_TRANSFER_PUT_LOG=str(puts))
    add_vcsim_cloud(fleet, vcsim, "onprem", "n1")
    add_vcd_cloud(fleet, vcd_sim, "provider", "n2")
    slow = {"bandwidth_mb_per_s": 2, "chunk_mib": 1, "streams": STREAMS}
    source = {"cloud": "onprem", "ref": "DC0/vm/big"}

    # 1. cancelled mid-send: nothing left anywhere
    gone = await start_copy(fleet, source, {"cloud": "provider", "catalog": "Templates",
                                            "name": "gone"}, options=slow)  # fmt: skip
    await step_reaches(fleet, gone, "send", lambda s: s["bytes_done"] > 0)
    await fleet.api("POST", f"/api/v1/tasks/{gone}/cancel")
    task = await finished(fleet, gone)
    assert task["state"] == "cancelled"
    steps = steps_of(task)
    assert steps["send"]["state"] == "cancelled"
    assert steps["import"]["state"] == "cancelled"

    async def storage_empty() -> bool:
        return all(transfer_files(fleet, n, "gone-") == [] for n in ("n1", "n2"))

    await eventually(storage_empty, timeout_s=30, what="both nodes' storage emptied")
    assert "gone" not in vcd_objects(vcd_sim)  # no catalog item, no upload left in vCD

    # 2. kept artifacts: cancel mid-send, retry, the send resumes from the checkpoint
    puts.unlink(missing_ok=True)
    kept = await start_copy(fleet, source, {"cloud": "provider", "catalog": "Templates",
                                            "name": "kept"},
                            options={**slow, "keep_artifacts": True})  # fmt: skip
    await step_reaches(fleet, kept, "send", lambda s: s["bytes_done"] >= 3 * MIB)
    await asyncio.to_thread(fleet.cli, "tasks", "cancel", kept)  # as an operator would
    assert (await finished(fleet, kept))["state"] == "cancelled"
    before = put_attempts(puts)
    await asyncio.to_thread(fleet.cli, "tasks", "retry", kept)
    task = await succeeded(fleet, kept)
    steps = steps_of(task)
    assert steps["export"]["attempt"] == 0  # it had succeeded: not run again
    assert steps["send"]["attempt"] == 1
    result = steps["send"]["result"]
    assert result["chunks_held"] >= 3  # what the receiver held before the cancel
    assert (
        result["chunks_sent"] + result["chunks_held"] + result["zero_chunks"]
        == result["chunks_total"]
    )
    after = put_attempts(puts)
    resent = sum(after.values()) - len(after)
    assert len(before) >= 3
    assert resent <= STREAMS, f"{resent} chunk PUTs repeated; at most one per stream"
    assert_disks_arrived(list(vm.disks), vcd_disks(vcd_sim))


def attempts_after_retry(task: dict[str, Any]) -> dict[str, int]:
    """What a retry must make of each step's attempt: a step that succeeded is not run
    again, every other one runs with the next attempt."""
    return {s["name"]: s["attempt"] + (s["state"] != "succeeded") for s in task["steps"]}


def attempts(task: dict[str, Any]) -> dict[str, int]:
    return {s["name"]: s["attempt"] for s in task["steps"]}


async def test_wrong_credentials_fail_clearly_and_retry_resumes_at_the_failed_step(
    fleet: Fleet, vcsim, vcsim_seeder, vcd_sim
):
    vm = vcsim_seeder.vm("web", [2 * MIB])
    await server_and_nodes(fleet, "n1", "n2")
    fleet.cli("clouds", "add", "onprem", "--kind", "vsphere", "--endpoint", vcsim.sdk_url,
              "--username", vcsim.username, "--password", "not-the-password",
              "--node", "n1", "--insecure")  # fmt: skip
    fleet.cli("clouds", "add", "provider", "--kind", "vcd", "--endpoint", vcd_sim.url,
              "--username", "acme-admin", "--password", "wrong", "--org", "acme",
              "--node", "n2")  # fmt: skip
    to_vcd = {"cloud": "provider", "catalog": "Templates", "name": "web-copy"}
    copy = await start_copy(fleet, {"cloud": "onprem", "ref": "DC0/vm/web"}, to_vcd)
    task = await finished(fleet, copy)
    assert task["state"] == "failed"
    export = steps_of(task)["export"]
    assert export["state"] == "failed"
    assert export["error"]["code"] == "cloud-auth"
    assert "login" in export["error"]["message"].lower()  # names the cause
    # the source fixed: the retry gets as far as the destination, which is still wrong.
    # The import logs in before it waits for the package, so it fails while the export or
    # the send may still run: they are stopped, and run again at the next retry.
    await fleet.api("PATCH", "/api/v1/clouds/onprem", {"password": vcsim.password})
    expected = attempts_after_retry(task)
    await fleet.api("POST", f"/api/v1/tasks/{copy}/retry")
    task = await finished(fleet, copy)
    assert task["state"] == "failed"
    assert attempts(task) == expected
    steps = steps_of(task)
    assert steps["import"]["state"] == "failed"
    assert steps["import"]["error"]["code"] == "cloud-auth"
    assert "login" in steps["import"]["error"]["message"].lower()
    assert {s["state"] for s in task["steps"]} <= {"succeeded", "failed", "cancelled"}
    # the destination fixed: only what did not succeed runs again
    await fleet.api("PATCH", "/api/v1/clouds/provider", {"password": VCD_PASSWORD})
    expected = attempts_after_retry(task)
    await fleet.api("POST", f"/api/v1/tasks/{copy}/retry")
    task = await succeeded(fleet, copy)
    assert attempts(task) == expected
    assert expected["import"] == 2
    assert_disks_arrived(list(vm.disks), vcd_disks(vcd_sim))


async def test_cancel_mid_import_leaves_no_half_made_template(
    fleet: Fleet, vcsim, vcsim_seeder, vcd_sim
):
    vcsim_seeder.vm("half", [6 * MIB], zero_fraction=0.0)
    url = URL(vcd_sim.url)
    proxy = Throttle(url.host or "127.0.0.1", url.port or 80, 1 * MIB)
    try:
        await server_and_nodes(fleet, "n1", "n2")
        add_vcsim_cloud(fleet, vcsim, "onprem", "n1")
        fleet.cli("clouds", "add", "provider", "--kind", "vcd",
                  "--endpoint", f"http://127.0.0.1:{proxy.port}", "--username", "acme-admin",
                  "--password", VCD_PASSWORD, "--org", "acme", "--node", "n2")  # fmt: skip
        task_id = await start_copy(fleet, {"cloud": "onprem", "ref": "DC0/vm/half"},
                                   {"cloud": "provider", "catalog": "Templates",
                                    "name": "half-copy"})  # fmt: skip
        await step_reaches(fleet, task_id, "import", lambda s: s["bytes_done"] > 0)
        assert "half-copy" in vcd_objects(vcd_sim)  # the upload is under way
        await fleet.api("POST", f"/api/v1/tasks/{task_id}/cancel")
        task = await finished(fleet, task_id)
        assert task["state"] == "cancelled"
        assert steps_of(task)["import"]["state"] == "cancelled"

        async def gone() -> bool:
            return "half-copy" not in vcd_objects(vcd_sim)

        await eventually(gone, timeout_s=30, what="the unfinished upload deleted from vCD")
    finally:
        proxy.close()


async def test_a_failed_send_resumes_from_its_checkpoint_on_retry(
    fleet: Fleet, vcsim, vcsim_seeder, vcd_sim, tmp_path: Path
):
    """The destination's storage quota is too small: the send streams the disk while it is
    exported (slowly, through a proxy) and fails ``storage-full`` once the disk's size is
    known. With the quota raised, a retry sends only the chunks the receiver does not hold."""
    vm = vcsim_seeder.vm("grow", [10 * MIB], zero_fraction=0.0)
    proxy = Throttle(vcsim.host, vcsim.port, 3 * MIB)
    puts = tmp_path / "puts.log"
    try:
        await server_and_nodes(fleet, "n1", "n2", HCC_TRANSFER_PUT_LOG=str(puts),
                               HCC_QUOTA_BYTES=str(6 * MIB))  # fmt: skip
        fleet.cli("clouds", "add", "onprem", "--kind", "vsphere",
                  "--endpoint", f"https://127.0.0.1:{proxy.port}/sdk",
                  "--username", vcsim.username, "--password", vcsim.password,
                  "--node", "n1", "--insecure")  # fmt: skip
        add_vcd_cloud(fleet, vcd_sim, "provider", "n2")
        task_id = await start_copy(
            fleet, {"cloud": "onprem", "ref": "DC0/vm/grow"},
            {"cloud": "provider", "catalog": "Templates", "name": "grow-copy"},
            options={"chunk_mib": 1, "streams": STREAMS},
        )  # fmt: skip
        task = await finished(fleet, task_id)
        assert task["state"] == "failed"
        send = steps_of(task)["send"]
        assert send["error"]["code"] == "storage-full", send
        held_before = put_attempts(puts)
        assert len(held_before) >= 3  # chunks went over before the size was known
        fleet.procs[2].stop()  # the operator gives n2 room
        restart_node(fleet, "n2", HCC_TRANSFER_PUT_LOG=str(puts))
        await fleet.api("POST", f"/api/v1/tasks/{task_id}/retry")
        task = await succeeded(fleet, task_id)
        result = steps_of(task)["send"]["result"]
        assert result["chunks_held"] >= 3
        assert (
            result["chunks_sent"] + result["chunks_held"] + result["zero_chunks"]
            == result["chunks_total"]
        )
        after = put_attempts(puts)
        assert sum(after.values()) - len(after) <= STREAMS
        assert_disks_arrived(list(vm.disks), vcd_disks(vcd_sim))
    finally:
        proxy.close()
