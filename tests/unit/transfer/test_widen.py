"""How far a send may widen on a long link: what its memory budget holds."""

from __future__ import annotations

import pytest

from workers.transfer.sender import (
    BASE_BYTES,
    BUDGET_EXTRA_BYTES,
    STREAM_BYTES,
    SendOptions,
    max_streams,
)

MiB = 1 << 20


@pytest.mark.parametrize(
    ("streams", "chunk_mib", "most"),
    [(4, 8, 9), (1, 8, 1), (2, 8, 4), (8, 8, 18), (4, 64, 9), (16, 8, 35)],
)
def test_most_streams_fit_the_memory_budget(streams: int, chunk_mib: int, most: int):
    chunk = chunk_mib * MiB
    got = max_streams(streams, chunk, SendOptions())
    assert got == most
    budget = 3 * streams * chunk + BUDGET_EXTRA_BYTES

    def holds(n: int) -> int:  # a buffer and connections per stream, two spare buffers
        return (n + 2) * chunk + n * STREAM_BYTES + BASE_BYTES

    assert holds(got) <= budget
    assert got in (streams, 3 * streams - 2) or holds(got + 1) > budget


def test_max_streams_option_wins_and_never_narrows():
    opts = SendOptions(max_streams=20)
    assert max_streams(4, 8 * MiB, opts) == 20
    assert max_streams(4, 8 * MiB, SendOptions(max_streams=2)) == 4
