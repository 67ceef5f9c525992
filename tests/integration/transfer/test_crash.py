"""Crash tests with real processes: SIGKILL either side at seeded points, then resume.

Both processes append one line per chunk PUT attempt to their own log (a killed
receiver loses its in-memory counts, the log survives). Re-sent chunks per kill must
stay within one per stream, and the result must equal the source, byte for byte.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from protocol.tokens import generate_private_key, issue_token, public_key_pem
from tests.fixtures.transfer import (
    RECEIVER_NODE,
    SENDER_NODE,
    ReceiverProcess,
    sha256_file,
    write_random,
)
from workers.transfer.testhooks import CRASH_ENV, PUT_LOG_ENV

MiB = 1024 * 1024
CHUNK = 8 * MiB
STREAMS = 4
REPO = Path(__file__).parents[3]
pytestmark = pytest.mark.slow


def _make_source(pkg: Path) -> dict[str, str]:
    sums = {"disk-random.bin": write_random(pkg / "disk-random.bin", 256 * MiB, seed=7)}
    with open(pkg / "disk-sparse.img", "wb") as fh:
        fh.truncate(96 * MiB)
        for at in (0, 40 * MiB + 123, 95 * MiB):
            fh.seek(at)
            fh.write(os.urandom(64 * 1024))
    sums["disk-sparse.img"] = sha256_file(pkg / "disk-sparse.img")
    return sums


def _sender(
    pkg: Path,
    rx: ReceiverProcess,
    token_file: Path,
    log: Path,
    crash: str | None,
    extra: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    env = {**os.environ, PUT_LOG_ENV: str(log)}
    env.pop(CRASH_ENV, None)
    if crash:
        env[CRASH_ENV] = crash
    cmd = [
        sys.executable,
        "-m",
        "workers.transfer",
        "send",
        "--package",
        str(pkg),
        "--url",
        rx.url,
        "--fingerprint",
        rx.fingerprint,
        "--artifact",
        "crashy",
        "--destination-node",
        RECEIVER_NODE,
        "--token-file",
        str(token_file),
        "--streams",
        str(STREAMS),
        "--chunk-bytes",
        str(CHUNK),
        "--stall-timeout",
        "60",
        *(extra or []),
    ]
    return subprocess.Popen(cmd, env=env, cwd=REPO)


def _wait(proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise


def _resent(log: Path, side: str) -> int:
    attempts = Counter(
        tuple(line.split()[1:]) for line in log.read_text().splitlines() if line.startswith(side)
    )
    return sum(n - 1 for n in attempts.values())


def _run_with_kills(tmp_path: Path, seed: int, extra: list[str] | None = None) -> dict[str, int]:
    rng = random.Random(seed)
    pkg = tmp_path / "pkg"
    sums = _make_source(pkg)
    key = generate_private_key()
    token_file = tmp_path / "token"
    token_file.write_text(
        issue_token(
            key,
            artifact_id="crashy",
            source_node=SENDER_NODE,
            destination_node=RECEIVER_NODE,
            now=int(time.time()),
            ttl_s=3600,
        )
    )
    rx_log, tx_log = tmp_path / "rx.log", tmp_path / "tx.log"
    rx = ReceiverProcess(
        tmp_path / "rx",
        public_key_pem(key.public_key()).encode(),
        env={PUT_LOG_ENV: str(rx_log)},
    )
    receiver_points = [
        "receiver.mid-body",  # inside a chunk body
        # data durable but no record yet / record written but not synced (one per seed)
        ["receiver.before-journal", "receiver.before-journal-fsync"][seed % 2],
        "receiver.after-journal",
    ]
    sender_points = ["sender.mid-body", "sender.after-chunk", "sender.mid-body"]
    kills = 0
    try:
        # Phase 1: one sender rides out three receiver deaths.
        rx.start(env={CRASH_ENV: f"{receiver_points[0]}:{rng.randint(1, 3)}"})
        sender = _sender(pkg, rx, token_file, tx_log, None, extra)
        for i, _point in enumerate(receiver_points):
            assert rx.wait_dead(120) == -9
            kills += 1
            nxt = receiver_points[i + 1] if i + 1 < len(receiver_points) else None
            if nxt is None:
                sender.kill()  # nothing of its is in flight: the receiver is down
                sender.wait(10)
                rx.start(env={CRASH_ENV: ""})
            else:
                rx.start(env={CRASH_ENV: f"{nxt}:{rng.randint(1, 3)}"})
        # Phase 2: three sender deaths, then a clean run finishes.
        for point in sender_points:
            proc = _sender(pkg, rx, token_file, tx_log, f"{point}:{rng.randint(1, 3)}", extra)
            assert _wait(proc, 120) == -9
            kills += 1
        assert _wait(_sender(pkg, rx, token_file, tx_log, None, extra), 120) == 0
        for name, want in sums.items():
            assert sha256_file(rx.root / "crashy" / name) == want
    finally:
        rx.kill()
    return {
        "kills": kills,
        "sender": _resent(tx_log, "sender"),
        "receiver": _resent(rx_log, "receiver"),
    }


@pytest.mark.parametrize(
    ("seed", "link"),
    [(1, []), (2, ["--bandwidth", str(150 * 1000 * 1000)])],
    ids=["loopback", "rate-limited"],
)
def test_kills_on_both_sides_resume_with_at_most_one_chunk_per_stream(tmp_path, seed, link):
    counts = _run_with_kills(tmp_path, seed, link)
    assert counts["kills"] == 6
    assert counts["sender"] <= counts["kills"] * STREAMS, counts
    assert counts["receiver"] <= counts["kills"] * STREAMS, counts
