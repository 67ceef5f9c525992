"""Backoff maths of runtime.amqp.connect: capped, exponential, jittered."""

from __future__ import annotations

from itertools import islice

from hypothesis import given
from hypothesis import strategies as st

from runtime.amqp import backoff_delays, safe_url


def test_backoff_doubles_until_the_cap_without_jitter_top():
    delays = list(islice(backoff_delays(base_s=0.5, cap_s=4.0, rng=lambda: 1.0), 7))
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


def test_backoff_jitter_bottom_is_half():
    delays = list(islice(backoff_delays(base_s=1.0, cap_s=8.0, rng=lambda: 0.0), 5))
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0]


@given(st.floats(0, 1), st.floats(0.01, 5), st.floats(5, 60))
def test_backoff_stays_within_bounds(r, base, cap):
    for n, delay in enumerate(islice(backoff_delays(base_s=base, cap_s=cap, rng=lambda: r), 30)):
        full = min(cap, base * 2**n)
        assert full / 2 <= delay <= full


def test_safe_url_hides_only_the_password():
    assert safe_url("amqp://n1:pw@h:5672/v") == "amqp://n1:***@h:5672/v"
    assert safe_url("amqp://h/") == "amqp://h/"
