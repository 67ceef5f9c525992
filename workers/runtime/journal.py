"""The node's job journal: SQLite (stdlib sqlite3), written before a command is acked.

Three tables in ``<data_dir>/journal.db`` (WAL, synchronous=FULL: a commit is on disk):

- ``jobs`` — one row per (step_id, attempt): the command as received, its state
  (``pending`` → ``running`` → ``succeeded`` | ``failed`` | ``cancelled``) and ``last_seq``,
  the last event sequence number used for that (step, attempt). Unfinished rows are resumed
  at start; seq keeps increasing across restarts.
- ``outbox`` — events not yet confirmed by the broker, in order. An event gets its seq and
  its outbox row in one transaction; the relay deletes the row after the publisher confirm.
- ``cancelled`` — step ids cancelled by the operator, so a command that arrives after its
  cancel (or a resume after a restart) does not run.

:class:`Journal` is blocking; :class:`AsyncJournal` runs it on one dedicated thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar
from uuid import UUID

from protocol import parse_command
from protocol.messages import Command, Envelope, dump

P = ParamSpec("P")
T = TypeVar("T")

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "pending",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
FINISHED = frozenset({SUCCEEDED, FAILED, CANCELLED})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_key TEXT PRIMARY KEY,
    step_id TEXT,
    attempt INTEGER NOT NULL,
    type TEXT NOT NULL,
    command TEXT NOT NULL,
    state TEXT NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    received_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_key TEXT,
    type TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cancelled (
    step_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
"""
EVERY_ATTEMPT = 2**31 - 1
"""A cancel without an attempt (and rows of journals older than the column) stop them all."""


def job_key(command: Envelope) -> str:
    """Idempotency key: step id + attempt (the message id for a command without a step)."""
    base = str(command.step_id) if command.step_id is not None else f"msg-{command.id}"
    return f"{base}/{command.attempt}"


@dataclass(frozen=True)
class JobRow:
    key: str
    command: Command
    state: str
    last_seq: int


@dataclass(frozen=True)
class OutboxRow:
    id: int
    type: str
    event: bytes


class Journal:
    """Blocking journal; one connection, used from one thread at a time."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(cancelled)")}
        if "attempt" not in columns:  # the attempts a cancel covers: a retry is a new attempt
            self._db.execute(
                f"ALTER TABLE cancelled ADD COLUMN attempt INTEGER NOT NULL DEFAULT {EVERY_ATTEMPT}"
            )

    def close(self) -> None:
        self._db.close()

    def _tx(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def record(self, command: Command) -> tuple[bool, str]:
        """Store a received command; ``(is_new, state)``. A duplicate changes nothing."""
        key, now = job_key(command), time.time()
        db = self._tx()
        try:
            row = db.execute("SELECT state FROM jobs WHERE job_key = ?", (key,)).fetchone()
            if row is not None:
                db.execute("COMMIT")
                return False, str(row[0])
            state = CANCELLED if self.is_cancelled(command.step_id, command.attempt) else PENDING
            db.execute(
                "INSERT INTO jobs (job_key, step_id, attempt, type, command, state,"
                " received_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    str(command.step_id) if command.step_id else None,
                    command.attempt,
                    command.type,
                    dump(command).decode(),
                    state,
                    now,
                    now,
                ),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return True, state

    def set_state(self, key: str, state: str, error: str | None = None) -> None:
        self._db.execute(
            "UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE job_key = ?",
            (state, error, time.time(), key),
        )

    def job(self, key: str) -> JobRow | None:
        row = self._db.execute(
            "SELECT job_key, command, state, last_seq FROM jobs WHERE job_key = ?", (key,)
        ).fetchone()
        return None if row is None else JobRow(row[0], parse_command(row[1]), row[2], row[3])

    def unfinished(self) -> list[JobRow]:
        """Jobs to resume at start, oldest first."""
        rows = self._db.execute(
            "SELECT job_key, command, state, last_seq FROM jobs"
            " WHERE state IN (?, ?) ORDER BY received_at",
            (PENDING, RUNNING),
        ).fetchall()
        return [JobRow(r[0], parse_command(r[1]), r[2], r[3]) for r in rows]

    def cancel(self, step_id: UUID, reason: str, attempt: int = EVERY_ATTEMPT) -> list[str]:
        """Remember the cancel of ``step_id`` up to ``attempt`` (a later attempt is a retry
        and runs); unfinished jobs it covers become cancelled. Their keys."""
        db = self._tx()
        try:
            db.execute(
                "INSERT INTO cancelled (step_id, reason, at, attempt) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(step_id) DO UPDATE SET attempt = MAX(attempt, excluded.attempt)",
                (str(step_id), reason, time.time(), attempt),
            )
            keys = [
                str(r[0])
                for r in db.execute(
                    "SELECT job_key FROM jobs WHERE step_id = ? AND attempt <= ?"
                    " AND state IN (?, ?)",
                    (str(step_id), attempt, PENDING, RUNNING),
                )
            ]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return keys

    def is_cancelled(self, step_id: UUID | None, attempt: int = 0) -> bool:
        if step_id is None:
            return False
        sql = "SELECT 1 FROM cancelled WHERE step_id = ? AND attempt >= ?"
        return self._db.execute(sql, (str(step_id), attempt)).fetchone() is not None

    def append_event(
        self,
        key: str | None,
        make: Callable[[int], Envelope],
        *,
        state: str | None = None,
        error: str | None = None,
    ) -> Envelope:
        """Give the next seq of job ``key`` to ``make(seq)`` and queue the event, atomically.

        With ``state``, the job's new state is written in the same transaction (final events:
        a crash never leaves a finished job without its event, or the event without the state).
        """
        db = self._tx()
        try:
            seq = 0
            if key is not None and state is not None:
                db.execute(
                    "UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE job_key = ?",
                    (state, error, time.time(), key),
                )
            if key is not None:
                db.execute("UPDATE jobs SET last_seq = last_seq + 1 WHERE job_key = ?", (key,))
                row = db.execute("SELECT last_seq FROM jobs WHERE job_key = ?", (key,)).fetchone()
                seq = int(row[0]) if row is not None else 0
            event = make(seq)
            db.execute(
                "INSERT INTO outbox (job_key, type, event) VALUES (?, ?, ?)",
                (key, str(getattr(event, "type", "")), dump(event).decode()),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return event

    def pending_events(self, limit: int = 100) -> list[OutboxRow]:
        rows = self._db.execute(
            "SELECT id, type, event FROM outbox ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        return [OutboxRow(int(r[0]), str(r[1]), str(r[2]).encode()) for r in rows]

    def count_pending_events(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def delete_event(self, event_id: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE id = ?", (event_id,))


class AsyncJournal:
    """:class:`Journal` on a thread of its own, so the event loop never waits on fsync."""

    def __init__(self, journal: Journal) -> None:
        self.sync = journal
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")

    @classmethod
    def open(cls, path: Path) -> AsyncJournal:
        return cls(Journal(path))

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def close(self) -> None:
        await self.call(self.sync.close)
        self._pool.shutdown(wait=True)
