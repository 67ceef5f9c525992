"""workers/transfer/threads.py: background work runs below the event loop's priority."""

from __future__ import annotations

import os
import threading

from workers.transfer.threads import NICENESS, background_executor


def _niceness() -> tuple[str, int]:
    return threading.current_thread().name, os.getpriority(
        os.PRIO_PROCESS, threading.get_native_id()
    )


def test_background_thread_runs_at_lower_priority_than_its_caller():
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    pool = background_executor("hcc-test")
    try:
        name, nice = pool.submit(_niceness).result()
        again = pool.submit(_niceness).result()
    finally:
        pool.shutdown()
    assert name.startswith("hcc-test")
    assert nice == min(19, mine + NICENESS)
    assert again == (name, nice)  # one thread, reused: work runs in the order given
