"""Fixtures for whole-installation tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from yarl import URL

from tests.e2e.fleet import Fleet


@pytest.fixture
def fleet(tmp_path: Path, amqp_url: str) -> Iterator[Fleet]:
    f = Fleet(tmp_path, amqp_url)
    try:
        yield f
    finally:
        f.close()
        _delete_node_users(amqp_url)


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
