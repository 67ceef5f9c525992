"""runtime/logging.py: one JSON line per event, ours and the libraries', with no secret."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from runtime.logging import configure_logging


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """configure_logging's JSON lines, read back; logging's set-up restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging("info", json=True)  # its handler writes to that stderr

    def lines() -> list[dict[str, Any]]:
        out = stderr.getvalue()
        stderr.seek(0)
        stderr.truncate()
        return [json.loads(line) for line in out.splitlines()]

    try:
        yield lines
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()


def test_a_library_exception_is_logged_with_its_traceback_as_text(json_logs: Any) -> None:
    try:
        raise ConnectionResetError("Connection lost to amqp://hcc:s3cret@broker:5672/")
    except ConnectionResetError as exc:
        logging.getLogger("aiohttp.server").error("Error handling request", exc_info=exc)
    (line,) = json_logs()
    assert line["event"] == "Error handling request"
    assert line["level"] == "error"
    assert "exc_info" not in line
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert (
        "ConnectionResetError: Connection lost to amqp://hcc:***@broker:5672/" in line["exception"]
    )
    assert "s3cret" not in json.dumps(line)


def test_our_events_lose_their_secrets(json_logs: Any) -> None:
    log = structlog.get_logger("hcc.test")
    log.info("cloud added", password="hunter2", token="t0k", broker="amqp://u:pw@h/v", user="u")
    (line,) = json_logs()
    assert line["password"] == line["token"] == "***"
    assert line["broker"] == "amqp://u:***@h/v"
    assert line["user"] == "u"
    try:
        raise ValueError("login to https://admin:pw9@vc/sdk failed")
    except ValueError:
        log.exception("step crashed")
    (line,) = json_logs()
    assert "ValueError: login to https://admin:***@vc/sdk failed" in line["exception"]
