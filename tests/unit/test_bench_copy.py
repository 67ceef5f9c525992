"""The arithmetic of bench/copy.py: a copy's figures from its steps' timestamps."""

from __future__ import annotations

from typing import Any

import pytest

from bench.copy import copy_figures, stage_ratio, task_seconds

T0 = "2026-01-01T10:00:00+00:00"


def at(seconds: float) -> str:
    return f"2026-01-01T10:00:{seconds:06.3f}+00:00"


def step(name: str, start: float | None, end: float | None) -> dict[str, Any]:
    return {"name": name, "started_at": at(start) if start is not None else None,
            "finished_at": at(end) if end is not None else None}  # fmt: skip


def test_ratio_counts_export_and_send_once_when_they_overlap() -> None:
    # export 10 s, send 8 s (overlapping), import 5 s: a perfect copy takes 15 s
    assert stage_ratio(15.0, 10.0, 8.0, 5.0) == pytest.approx(1.0)
    assert stage_ratio(18.0, 8.0, 10.0, 5.0) == pytest.approx(1.2)


def test_copy_figures_say_where_the_time_went() -> None:
    task = {
        "created_at": T0,
        "finished_at": at(30.0),
        "steps": [
            step("export", 1.0, 11.0),
            step("send", 1.5, 12.0),
            step("import", 12.5, 28.0),
            step("refresh", 28.1, 29.0),
            step("cleanup-source", 12.2, 12.4),
            step("deploy", None, None),  # not started: left out
        ],
    }
    assert task_seconds(task) == pytest.approx(30.0)
    f = copy_figures(task)
    assert f["copy_steps"] == {"export": 10.0, "send": 10.5, "import": 15.5, "refresh": 0.9,
                               "cleanup-source": 0.2}  # fmt: skip
    assert f["export_send_overlap_s"] == 9.5
    assert f["send_start_after_export_start_s"] == 0.5
    assert f["send_end_after_export_end_s"] == 1.0
    assert f["import_start_after_send_end_s"] == 0.5
    assert f["import_end_after_send_end_s"] == 16.0
    assert f["head_s"] == 1.0
    assert f["tail_s"] == 2.0


def test_no_overlap_when_the_send_waits_for_the_whole_export() -> None:
    steps = [step("export", 0.0, 10.0), step("send", 10.0, 18.0), step("import", 18.0, 25.0)]
    task = {"created_at": T0, "finished_at": at(25.0), "steps": steps}
    assert copy_figures(task)["export_send_overlap_s"] == 0.0
