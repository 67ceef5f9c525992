"""workers/transfer/threads.py: background work runs below the event loop's priority."""

from __future__ import annotations

import os
import threading

import pytest

from workers.transfer.threads import (
    READ_AHEAD_NICENESS,
    RUNNING_HASH_NICENESS,
    background_executor,
)


def _priority() -> tuple[str, int, int]:
    return (
        threading.current_thread().name,
        os.getpriority(os.PRIO_PROCESS, threading.get_native_id()),
        os.sched_getscheduler(0),
    )


@pytest.mark.parametrize("niceness", [READ_AHEAD_NICENESS, RUNNING_HASH_NICENESS])
def test_background_thread_runs_at_lower_priority_than_its_caller(niceness: int):
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    pool = background_executor("hcc-test", niceness)
    try:
        name, nice, policy = pool.submit(_priority).result()
        again = pool.submit(_priority).result()
    finally:
        pool.shutdown()
    assert name.startswith("hcc-test")
    # its own nice value (or the caller's, if that is lower still and may not be undone)
    assert nice == niceness or (mine > niceness and nice == mine)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
    # a nice value, never SCHED_IDLE (which may starve it while the cores are busy)
    assert policy == os.sched_getscheduler(0) != os.SCHED_IDLE
    assert again == (name, nice, policy)  # one thread, reused: work runs in the order given
