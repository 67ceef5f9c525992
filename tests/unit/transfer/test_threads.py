"""workers/transfer/threads.py: background work runs below the event loop's priority."""

from __future__ import annotations

import os
import threading

from workers.transfer.threads import NICENESS, background_executor


def _priority() -> tuple[str, int, int]:
    tid = threading.get_native_id()
    return (
        threading.current_thread().name,
        os.getpriority(os.PRIO_PROCESS, tid),
        os.sched_getscheduler(0),
    )


def test_background_thread_runs_at_lower_priority_than_its_caller():
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    pool = background_executor("hcc-test")
    try:
        name, nice, policy = pool.submit(_priority).result()
        again = pool.submit(_priority).result()
    finally:
        pool.shutdown()
    assert name.startswith("hcc-test")
    assert nice == min(19, mine + NICENESS)
    assert policy == os.sched_getscheduler(0)  # the caller's policy: only the nice value
    assert again == (name, nice, policy)  # one thread, reused: work runs in the order given


def test_idle_background_thread_runs_only_on_an_idle_core():
    pool = background_executor("hcc-idle", idle=True)
    try:
        _, _, policy = pool.submit(_priority).result()
    finally:
        pool.shutdown()
    assert policy == os.SCHED_IDLE
    assert os.sched_getscheduler(0) != os.SCHED_IDLE  # the caller's own is untouched
