"""``hcc tasks watch`` rows: the server's bytes, rate and ETA, one line per step."""

from __future__ import annotations

import io
import uuid
from typing import Any

from rich.console import Console
from rich.progress import TaskID

from cli import units
from cli.watch import show_step, step_columns, step_progress

MIB = 1024 * 1024


def step(name: str = "send", **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": str(uuid.uuid4()), "name": name, "node_id": "n-vsphere", "state": "running",
        "attempt": 0, "bytes_done": 0, "bytes_total": None, "rate_bytes_per_s": 0.0,
        "eta_s": None, "average_bytes_per_s": None, "started_at": "2026-11-26T10:00:00+00:00",
        "finished_at": None, "error": None,
    }  # fmt: skip
    return base | over


def test_a_running_step_shows_the_servers_rate_and_eta() -> None:
    cols = step_columns(
        step(bytes_done=62 * MIB, bytes_total=124 * MIB, rate_bytes_per_s=2 * MIB, eta_s=31.0)
    )
    assert cols == {"bytes": "62.0/124.0 MiB", "rate": "2.0 MiB/s", "eta": "0:00:31"}
    assert step_columns(step(bytes_done=MIB, bytes_total=9 * MIB, eta_s=3725.0))["eta"] == "1:02:05"


def test_a_running_step_without_a_rate_yet_says_it_does_not_know() -> None:
    cols = step_columns(step(bytes_done=0, bytes_total=124 * MIB))
    assert cols == {"bytes": "0.0/124.0 MiB", "rate": "?", "eta": "-:--:--"}


def test_a_step_that_succeeded_shows_its_average_rate_and_no_eta() -> None:
    done = step(state="succeeded", bytes_done=100 * MIB, bytes_total=100 * MIB,
                rate_bytes_per_s=7 * MIB, eta_s=None, average_bytes_per_s=25 * MIB,
                finished_at="2026-11-26T10:00:04+00:00")  # fmt: skip
    assert step_columns(done) == {"bytes": "100.0/100.0 MiB", "rate": "25.0 MiB/s", "eta": ""}
    # a retried step: the server gives no average (it would span the pause)
    assert step_columns(done | {"attempt": 1, "average_bytes_per_s": None})["rate"] == ""


def test_a_step_that_failed_or_moves_no_bytes_shows_no_rate() -> None:
    failed = step(state="failed", bytes_done=5 * MIB, bytes_total=10 * MIB,
                  finished_at="2026-11-26T10:00:04+00:00")  # fmt: skip
    assert step_columns(failed) == {"bytes": "5.0/10.0 MiB", "rate": "", "eta": ""}
    assert step_columns(step("deploy", state="succeeded")) == {"bytes": "", "rate": "", "eta": ""}


def test_every_step_of_a_copy_fits_one_line_of_an_80_column_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=False, color_system=None)
    total = 123_700_000
    moved = {"bytes_done": total, "bytes_total": total, "state": "succeeded",
             "finished_at": "2026-11-26T10:00:02+00:00",
             "average_bytes_per_s": total / 2}  # fmt: skip
    steps = [step("export", **moved), step("send", **moved),
             step("import", node_id="n-vcd", bytes_done=total // 2, bytes_total=total,
                  rate_bytes_per_s=20 * MIB, eta_s=3.1),
             step("deploy", node_id="n-vcd", state="pending"),
             step("cleanup-destination", node_id="n-vcd", state="pending")]  # fmt: skip
    progress = step_progress(console)
    bars: dict[str, TaskID] = {}
    for s in steps:
        show_step(progress, bars, s)
    console.print(progress.make_tasks_table(progress.tasks))
    lines = out.getvalue().splitlines()
    assert len(lines) == len(steps), out.getvalue()
    words = [line.split() for line in lines]
    assert words[0][-5:] == ["118.0/118.0", "MiB", "59.0", "MiB/s", "succeeded"]
    assert words[2][-6:] == ["59.0/118.0", "MiB", "20.0", "MiB/s", "0:00:03", "running"]
    assert lines[4].startswith("cleanup-destination n-vcd")


def test_an_error_wraps_below_its_step_and_keeps_the_state_whole() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=False, color_system=None)
    message = "vCD refused the login of acme-admin@acme: wrong user name, password or organization"
    failed = step("import", node_id="n-vcd", state="failed", bytes_done=0, bytes_total=MIB,
                  error={"code": "cloud-auth", "message": message})  # fmt: skip
    progress = step_progress(console)
    show_step(progress, {}, failed)
    console.print(progress.make_tasks_table(progress.tasks))
    lines = out.getvalue().splitlines()
    assert len(lines) > 1  # wrapped, not cut
    assert " failed " in lines[0]
    assert message in " ".join(" ".join(lines).split())  # every word of it, in order


def test_sizes_are_in_binary_units_as_in_the_web_ui() -> None:
    assert units.size(None) == ""
    assert units.size(512) == "512 B"
    assert units.size(1536) == "1.5 KiB"
    assert units.size(118 * MIB) == "118.0 MiB"
    assert units.size(3 * 1024**5) == "3072.0 TiB"
    assert units.progress(512, 1000) == "512/1000 B"
    assert units.progress(MIB, 4 * 1024 * MIB) == "0.0/4.0 GiB"
