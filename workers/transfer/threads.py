"""Worker threads for work that may wait while a stream's own work runs.

Sender and receiver share the machine's cores with their event loops, which carry every
byte through TLS. Reading the next chunk ahead (sender) and extending a file's running
SHA-256 (receiver) have slack: they may run a little later. Run at a lower priority,
they stop taking a core from an event loop at the moment it has bytes to move, which is
when a chunk ends and the next begins (docs/transfer.md, "Process settings").

Two levels (Linux; elsewhere, or where refused, the thread keeps normal priority):

* ``nice`` +10: about a tenth of a core's share against a busy event loop. For the
  sender's read-ahead, which the streams wait for when it falls behind: on a node whose
  cores something else keeps busy (an export), it must still get its turn.
* ``SCHED_IDLE``: runs only on a core nothing else wants, and gives it up the moment an
  event loop wakes. For the receiver's running SHA-256, which nothing waits for before
  the commit (the commit hashes whatever it has not covered yet).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

NICENESS = 10


def _lower_priority(idle: bool) -> None:
    # A thread's nice value and policy are its own on Linux (setpriority on its thread
    # id; sched_setscheduler(0) is the calling thread). Lowering needs no privilege.
    with contextlib.suppress(OSError, AttributeError):
        if idle:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        else:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)


def background_executor(name: str, *, idle: bool = False) -> ThreadPoolExecutor:
    """One thread at a lower priority (``idle``: SCHED_IDLE, else nice +10), for work
    whose order matters and which may lag."""
    return ThreadPoolExecutor(
        1, thread_name_prefix=name, initializer=functools.partial(_lower_priority, idle)
    )
