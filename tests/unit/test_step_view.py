"""appliance/api/views.py: a step's progress, rate, ETA and average, as the API gives them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from appliance.api.views import step_view
from appliance.store.models import Step

MIB = 1024 * 1024
START = datetime(2026, 11, 26, 10, 0, 0)  # naive, as SQLite hands it back


def row(**over: Any) -> Step:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(), "task_id": uuid.uuid4(), "position": 1, "name": "send",
        "node_id": "n1", "command": {"type": "send", "body": {}}, "state": "succeeded",
        "attempt": 0, "last_seq": 3, "bytes_done": 100 * MIB, "bytes_total": 100 * MIB,
        "rate_bytes_per_s": 0.0, "message": None, "started_at": START,
        "finished_at": START + timedelta(seconds=4), "error": None, "result": None,
    }  # fmt: skip
    return Step(**(fields | over))


def test_a_step_that_succeeded_at_its_first_attempt_has_an_average() -> None:
    view = step_view(row())
    assert view.average_bytes_per_s == 25 * MIB
    assert view.percent == 100.0
    assert view.started_at == START.replace(tzinfo=UTC)


def test_no_average_where_it_would_mislead_or_is_unknown() -> None:
    # a retried step keeps its first start: the average would span the pause
    assert step_view(row(attempt=1)).average_bytes_per_s is None
    assert step_view(row(state="running", finished_at=None)).average_bytes_per_s is None
    assert step_view(row(state="failed")).average_bytes_per_s is None
    assert step_view(row(bytes_done=0, bytes_total=None)).average_bytes_per_s is None
    assert step_view(row(finished_at=START)).average_bytes_per_s is None  # no duration
