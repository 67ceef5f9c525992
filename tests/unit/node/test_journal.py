"""The job journal: idempotent record, seq across reopen, atomic final state, cancel tombstones."""

from __future__ import annotations

import uuid
from pathlib import Path

from protocol.messages import (
    CleanupBody,
    CleanupCommand,
    StepStartedBody,
    StepStartedEvent,
    StepSucceededBody,
    StepSucceededEvent,
)
from workers.runtime.journal import (
    CANCELLED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    AsyncJournal,
    Journal,
    job_key,
)


def cleanup(step_id: uuid.UUID | None = None, attempt: int = 0) -> CleanupCommand:
    return CleanupCommand(
        node_id="n1",
        step_id=step_id or uuid.uuid4(),
        attempt=attempt,
        body=CleanupBody(artifact_id="a1"),
    )


def started(command: CleanupCommand):
    return lambda seq: StepStartedEvent(
        node_id="n1", step_id=command.step_id, attempt=command.attempt, seq=seq,
        body=StepStartedBody(kind="cleanup"),
    )  # fmt: skip


def test_record_is_idempotent_by_step_and_attempt(tmp_path: Path):
    journal = Journal(tmp_path / "j.db")
    command = cleanup()
    assert journal.record(command) == (True, PENDING)
    duplicate = command.model_copy(update={"id": uuid.uuid4()})
    assert journal.record(duplicate) == (False, PENDING)
    assert journal.record(command.model_copy(update={"attempt": 1})) == (True, PENDING)
    assert [row.command for row in journal.unfinished()] == [
        command,
        command.model_copy(update={"attempt": 1}),
    ]


def test_seq_survives_reopen_and_final_state_is_atomic_with_its_event(tmp_path: Path):
    path = tmp_path / "j.db"
    journal = Journal(path)
    command = cleanup()
    key = job_key(command)
    journal.record(command)
    journal.set_state(key, RUNNING)
    assert journal.append_event(key, started(command)).seq == 1
    assert journal.append_event(key, started(command)).seq == 2
    journal.close()

    journal = Journal(path)
    assert [row.state for row in journal.unfinished()] == [RUNNING]
    final = journal.append_event(
        key,
        lambda seq: StepSucceededEvent(
            node_id="n1", step_id=command.step_id, seq=seq, body=StepSucceededBody()
        ),
        state=SUCCEEDED,
    )
    assert final.seq == 3
    assert journal.unfinished() == []
    job = journal.job(key)
    assert job is not None
    assert (job.state, job.last_seq) == (SUCCEEDED, 3)
    assert [row.type for row in journal.pending_events()] == [
        "step.started", "step.started", "step.succeeded",
    ]  # fmt: skip


def test_outbox_keeps_order_until_deleted(tmp_path: Path):
    journal = Journal(tmp_path / "j.db")
    commands = [cleanup() for _ in range(3)]
    for command in commands:
        journal.record(command)
        journal.append_event(job_key(command), started(command))
    rows = journal.pending_events(limit=2)
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    journal.delete_event(rows[0].id)
    assert journal.count_pending_events() == 2
    assert journal.pending_events()[0].id == rows[1].id


def test_cancel_marks_known_jobs_and_later_arrivals(tmp_path: Path):
    journal = Journal(tmp_path / "j.db")
    running = cleanup()
    journal.record(running)
    assert journal.cancel(running.step_id, "operator") == [job_key(running)]  # type: ignore[arg-type]
    later = cleanup()
    journal.cancel(later.step_id, "operator")  # type: ignore[arg-type]
    assert journal.record(later) == (True, CANCELLED)
    assert journal.record(cleanup()) == (True, PENDING)


async def test_async_journal_runs_on_its_thread(tmp_path: Path):
    journal = AsyncJournal.open(tmp_path / "j.db")
    command = cleanup()
    assert await journal.call(journal.sync.record, command) == (True, PENDING)
    assert await journal.call(journal.sync.record, command) == (False, PENDING)
    await journal.close()


def test_cancel_of_an_attempt_lets_a_later_attempt_run(tmp_path: Path):
    journal = Journal(tmp_path / "j.db")
    first = cleanup()
    journal.record(first)
    assert journal.cancel(first.step_id, "operator", 0) == [job_key(first)]  # type: ignore[arg-type]
    late_duplicate = cleanup(step_id=first.step_id, attempt=0)
    assert journal.is_cancelled(late_duplicate.step_id, 0)
    retry = cleanup(step_id=first.step_id, attempt=1)
    assert journal.record(retry) == (True, PENDING)
    assert not journal.is_cancelled(retry.step_id, 1)


def test_a_journal_from_before_per_attempt_cancels_keeps_stopping_every_attempt(tmp_path: Path):
    import sqlite3

    step = uuid.uuid4()
    with sqlite3.connect(tmp_path / "j.db") as db:
        db.execute(
            "CREATE TABLE cancelled"
            " (step_id TEXT PRIMARY KEY, reason TEXT NOT NULL, at REAL NOT NULL)"
        )
        db.execute("INSERT INTO cancelled VALUES (?, 'operator', 0)", (str(step),))
    journal = Journal(tmp_path / "j.db")
    assert journal.record(cleanup(step_id=step, attempt=7)) == (True, CANCELLED)
