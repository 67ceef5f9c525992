"""``Content-Range`` for transfer PUTs (shared/vcd-api.md §5b). Pure.

Rules: ``bytes a-b/total`` with ``total`` equal to the file's declared size, ``b < total``,
``b-a+1`` equal to the body length, and no gap: ``a <= bytesTransferred`` (re-sending a
piece overwrites it). Anything else is 416. A PUT without Content-Range is the whole file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sim.vcd.errors import VcdError

_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


@dataclass(frozen=True)
class PutRange:
    start: int
    end: int
    """Inclusive."""

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def _bad(message: str) -> VcdError:
    return VcdError(416, "REQUESTED_RANGE_NOT_SATISFIABLE", message)


def put_range(
    header: str | None, content_length: int | None, size: int, transferred: int
) -> PutRange:
    """Validate a transfer PUT against the file's declared ``size`` and ``transferred``."""
    if header is None:
        if content_length is not None and content_length != size:
            raise VcdError(
                400,
                "BAD_REQUEST",
                f"A PUT without Content-Range must carry the whole file ({size} bytes), "
                f"not {content_length}.",
            )
        return PutRange(0, size - 1)
    match = _RANGE.match(header)
    if not match:
        raise _bad(f"Malformed Content-Range {header!r}.")
    start, end, total = int(match.group(1)), int(match.group(2)), match.group(3)
    if total != "*" and int(total) != size:
        raise _bad(f"Content-Range total {total} differs from the file's size {size}.")
    if end < start or end >= size:
        raise _bad(f"Content-Range {start}-{end} is outside the file (0-{size - 1}).")
    if start > transferred:
        raise _bad(
            f"Content-Range starts at {start} but only {transferred} bytes were received: "
            "no gaps allowed; resume at bytesTransferred."
        )
    if content_length is not None and content_length != end - start + 1:
        raise _bad(
            f"Content-Length {content_length} differs from the range length {end - start + 1}."
        )
    return PutRange(start, end)
