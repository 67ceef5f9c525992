"""Byte counts as the CLI and the web UI show them: binary units (KiB, MiB, GiB)."""

from __future__ import annotations

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def _unit(n: float) -> tuple[int, str]:
    """The divisor and the name of the unit ``n`` is shown in."""
    div = 1
    for unit in UNITS:
        if n < div * 1024 or unit == UNITS[-1]:
            return div, unit
        div *= 1024
    raise AssertionError("unreachable")


def size(n: float | None) -> str:
    """``118.0 MiB``; ``512 B``; empty for an unknown size."""
    if n is None:
        return ""
    div, unit = _unit(n)
    return f"{int(n)} B" if div == 1 else f"{n / div:.1f} {unit}"


def progress(done: int, total: int) -> str:
    """``59.0/118.0 MiB``: both in the total's unit."""
    div, unit = _unit(total)
    if div == 1:
        return f"{done}/{total} B"
    return f"{done / div:.1f}/{total / div:.1f} {unit}"
