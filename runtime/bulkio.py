"""Process settings for the processes that move disk bytes: nodes and ``python -m
workers.transfer``. The server never carries disk bytes and keeps the defaults.

Two settings, each measured with ``bench/transfer.py`` (docs/transfer.md, "Process
settings"):

* glibc malloc keeps freed memory instead of handing it back to the kernel. TLS over
  asyncio and aiohttp allocate a new buffer of up to a few hundred KiB for every read
  from a connection and free it soon after; with glibc's defaults, freed heap above
  128 KiB is trimmed and the next buffer faults its pages in again, zeroed by the
  kernel (about 100 000 page faults per 200 MiB received, tests/unit/test_bulkio.py).
  Thresholds of a few MiB make those buffers reuse the same pages.
* uvloop runs the event loop (libuv; TLS in Cython): fewer Python frames per
  received or sent piece than asyncio's own loop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD_BYTES = 64 << 20
"""Free memory at the top of a heap kept for reuse before any is handed back."""
MMAP_THRESHOLD_BYTES = 4 << 20
"""Blocks this large and larger get their own mapping (chunk buffers, allocated once);
smaller ones come from the heap. Setting it also stops glibc from moving it around."""


def tune_malloc() -> bool:
    """Apply the malloc thresholds to this process; False where the C library is not
    glibc (nothing changed)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    trimmed: bool = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    mapped: bool = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    return trimmed and mapped


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` for a bulk-data process: tuned malloc, uvloop's event loop."""
    tune_malloc()
    return uvloop.run(main)
