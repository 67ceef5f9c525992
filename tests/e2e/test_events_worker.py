"""The server's events worker: a child process that lives and dies with its server."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.e2e.fleet import Fleet
from tests.e2e.test_fleet import enrolled_node
from tests.waiting import wait_until


def events_workers(server_pid: int) -> list[int]:
    """PIDs of the server's children that run appliance.bus.worker."""
    found = []
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"appliance.bus.worker" in cmdline:
                found.append(int(pid))
    return found


def gone(pid: int) -> bool:
    """No such process, or a zombie nobody reaped (a container's init may not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def test_a_killed_worker_is_replaced_and_events_flow_again(fleet: Fleet):
    server = fleet.start_server(HCC_HEARTBEAT_TIMEOUT_S="3", HCC_EVENTS_WORKER_NICE="7")
    await fleet.wait_ready()
    [first] = wait_until(lambda: events_workers(server.popen.pid), what="the events worker")
    # aggregation yields the cores to the API: the worker runs at the niceness it was given
    nice = os.getpriority(os.PRIO_PROCESS, server.popen.pid) + 7
    assert os.getpriority(os.PRIO_PROCESS, first) == min(nice, 19)
    os.kill(first, signal.SIGKILL)

    def replaced() -> list[int]:
        return [pid for pid in events_workers(server.popen.pid) if pid != first]

    [second] = wait_until(replaced, timeout_s=30, what="a new events worker")
    await fleet.wait_ready()  # /readyz is 200 again once the new worker consumes
    # node events (enrollment, heartbeats) are applied by the new worker
    await enrolled_node(fleet, "n1")
    assert events_workers(server.popen.pid) == [second]
    assert server.popen.poll() is None


async def test_the_worker_leaves_with_its_server(fleet: Fleet):
    server = fleet.start_server()
    await fleet.wait_ready()
    [worker] = events_workers(server.popen.pid)
    server.kill()  # SIGKILL: the server cannot tell the worker anything
    wait_until(lambda: gone(worker), timeout_s=30, what="the worker to exit")
    # a new server starts its own worker and picks up where the old one stopped
    fleet.procs.remove(server)
    again = fleet.start_server()
    await fleet.wait_ready()
    await enrolled_node(fleet, "n1")  # online: its heartbeats went through the new worker
    assert len(events_workers(again.popen.pid)) == 1
