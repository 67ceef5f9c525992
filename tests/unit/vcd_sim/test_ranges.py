"""Content-Range rules for transfer PUTs (table-driven)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.vcd.errors import VcdError
from sim.vcd.ranges import PutRange, put_range

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "length", "transferred", "expected"),
    [
        ("bytes 0-99/1000", 100, 0, PutRange(0, 99)),
        ("bytes 100-999/1000", 900, 100, PutRange(100, 999)),
        ("bytes 50-149/1000", 100, 100, PutRange(50, 149)),  # overlap: re-send allowed
        ("bytes 0-999/*", None, 0, PutRange(0, 999)),
        (None, 1000, 0, PutRange(0, 999)),  # whole file without a range
        (" bytes 0-0/1000 ", 1, 0, PutRange(0, 0)),
    ],
)
def test_accepted(
    header: str | None, length: int | None, transferred: int, expected: PutRange
) -> None:
    assert put_range(header, length, SIZE, transferred) == expected


@pytest.mark.parametrize(
    ("header", "length", "transferred"),
    [
        ("bytes 200-299/1000", 100, 100),  # gap
        ("bytes 0-99/999", 100, 0),  # wrong total
        ("bytes 900-1000/1000", 101, 900),  # past the end
        ("bytes 10-5/1000", None, 20),  # reversed
        ("bytes 0-99/1000", 99, 0),  # Content-Length differs from the range
        ("bytes=0-99/1000", 100, 0),  # malformed
        ("items 0-99/1000", 100, 0),
        ("bytes -5-99/1000", 100, 0),
    ],
)
def test_416(header: str, length: int | None, transferred: int) -> None:
    with pytest.raises(VcdError) as err:
        put_range(header, length, SIZE, transferred)
    assert err.value.status == 416


def test_whole_file_of_wrong_length_is_400() -> None:
    with pytest.raises(VcdError) as err:
        put_range(None, 999, SIZE, 0)
    assert err.value.status == 400


def test_length_property() -> None:
    assert PutRange(10, 19).length == 10


@given(
    size=st.integers(min_value=1, max_value=5000),
    pieces=st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 5000)), max_size=30),
)
def test_accepted_ranges_never_leave_a_gap(size: int, pieces: list[tuple[int, int]]) -> None:
    """Model: the file is the contiguous prefix [0, transferred). A PUT that would leave a
    gap, overrun the size or run backwards is refused with 416; every other one is accepted
    and keeps the prefix contiguous and within the size."""
    transferred = 0
    for a, b in pieces:
        header = f"bytes {a}-{b}/{size}"
        if a > transferred or b >= size or b < a:
            with pytest.raises(VcdError) as err:
                put_range(header, None, size, transferred)
            assert err.value.status == 416
            continue
        rng = put_range(header, b - a + 1, size, transferred)
        assert rng.start <= transferred
        assert rng.end < size
        transferred = max(transferred, rng.end + 1)
    assert 0 <= transferred <= size
