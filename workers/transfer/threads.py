"""A worker thread for work that may wait while a stream's own work runs.

Sender and receiver share the machine's cores with their event loops, which carry every
byte through TLS. Reading the next chunk ahead (sender) and extending a file's running
SHA-256 (receiver) have slack: they may run a little later. Run at a lower priority,
they stop taking a core from an event loop at the moment it has bytes to move, which is
when a chunk ends and the next begins (docs/transfer.md, "Process settings").
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

NICENESS = 10


def _lower_priority() -> None:
    # Linux: a thread's nice value is its own (setpriority on its thread id). Raising it
    # needs no privilege; where it is refused the thread runs at normal priority.
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)


def background_executor(name: str) -> ThreadPoolExecutor:
    """One thread at a lower priority, for work whose order matters and which may lag."""
    return ThreadPoolExecutor(1, thread_name_prefix=name, initializer=_lower_priority)
