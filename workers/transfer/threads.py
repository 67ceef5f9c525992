"""Worker threads for work that may wait while a stream's own work runs.

Sender and receiver share the machine's cores with their event loops, which carry every
byte through TLS. Reading the next chunk ahead (sender) and extending a file's running
SHA-256 (receiver) have slack: they may run a little later. Run at a lower priority,
they stop taking a core from an event loop at the moment it has bytes to move, which is
when a chunk ends and the next begins (docs/transfer.md, "Process settings").

The priority is a nice value, never ``SCHED_IDLE``: under ``SCHED_IDLE`` a thread gets
no CPU at all while other threads keep every core busy, and a commit waits for the
running hash (it holds the artifact's hash lock), so one artifact's commit could wait for
the end of another's transfer. At nice 19 the thread still gets its small share; on this
machine one stream was as fast with nice 19 as with ``SCHED_IDLE`` (477 and 478 MB/s).
Linux only; elsewhere, or where refused, the thread keeps normal priority.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

READ_AHEAD_NICENESS = 10
"""The sender's read-ahead: the streams wait for it when it falls behind, so on a node whose
cores something else keeps busy (an export) it keeps about a tenth of a core's share."""
RUNNING_HASH_NICENESS = 19
"""The receiver's running SHA-256: nothing waits for it until the commit."""


def _lower_priority(niceness: int) -> None:
    # A thread's nice value is its own on Linux (setpriority on its thread id); raising
    # it needs no privilege.
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


def background_executor(name: str, niceness: int) -> ThreadPoolExecutor:
    """One thread at nice ``niceness``, for work whose order matters and which may lag."""
    return ThreadPoolExecutor(
        1, thread_name_prefix=name, initializer=functools.partial(_lower_priority, niceness)
    )
