"""Fixtures for whole-installation tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from yarl import URL

from tests.e2e.fleet import Fleet

_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash[_CALL_FAILED] = item.stash.get(_CALL_FAILED, False) or (
        report.when == "call" and report.failed
    )
    return report


def call_failed(request: pytest.FixtureRequest) -> bool:
    """Whether the test itself failed (for fixtures that print what helps then)."""
    return request.node.stash.get(_CALL_FAILED, False)


@pytest.fixture
def fleet(request: pytest.FixtureRequest, tmp_path: Path, amqp_url: str) -> Iterator[Fleet]:
    """Server and nodes in real processes. A test that fails prints the tail of each one's
    log: the temp dir that holds them is gone once the run ends."""
    f = Fleet(tmp_path, amqp_url)
    try:
        yield f
    finally:
        f.close()
        _delete_node_users(amqp_url)
        if call_failed(request):
            print("\n".join(f"--- {p.name}\n{p.tail(150)}" for p in f.procs))


def _delete_node_users(amqp_url: str) -> None:
    """Broker users are global: remove those the server made for nodes in this test's vhost."""
    vhost = URL(amqp_url).path.removeprefix("/")
    if not vhost or shutil.which("rabbitmqctl") is None:
        return
    listed = subprocess.run(["rabbitmqctl", "list_users", "--quiet", "--no-table-headers"],
                            capture_output=True, text=True, check=False)  # fmt: skip
    for line in listed.stdout.splitlines():
        user = line.split("\t")[0]
        if user.startswith(f"hcc-node-{vhost}-"):
            subprocess.run(["rabbitmqctl", "delete_user", user], capture_output=True, check=False)
