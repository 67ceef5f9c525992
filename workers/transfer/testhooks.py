"""Test-only hooks, inert unless their environment variables are set.

``HCC_TRANSFER_CRASH_AT=point:n[,point:n...]`` makes the process SIGKILL itself the
n-th time it reaches ``point`` (e.g. ``receiver.before-journal:3``). The crash tests
use it to kill real processes at exact places: inside a chunk body, between the data
write and the journal fsync, after the journal.

``HCC_TRANSFER_PUT_LOG=/path`` appends one line per chunk PUT attempt
(``side path index``) to an append-only log; a SIGKILL loses nothing already written.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "HCC_TRANSFER_CRASH_AT"
PUT_LOG_ENV = "HCC_TRANSFER_PUT_LOG"


def _parse(spec: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, n = item.rpartition(":")
        points[name] = int(n)
    return points


_crash_at = _parse(os.environ.get(CRASH_ENV, ""))
_seen: dict[str, int] = {}
_log_path = os.environ.get(PUT_LOG_ENV)


def crash_armed() -> bool:
    return bool(_crash_at)


def crash_point(name: str) -> None:
    """SIGKILL this process if ``name`` is armed and reached for the n-th time."""
    if not _crash_at:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _crash_at.get(name) == _seen[name]:
        os.kill(os.getpid(), signal.SIGKILL)


def log_put_attempt(side: str, path: str, index: int) -> None:
    if _log_path is None:
        return
    fd = os.open(_log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{side} {path} {index}\n".encode())
    finally:
        os.close(fd)
