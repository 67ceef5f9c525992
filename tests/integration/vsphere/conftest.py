"""Adapters pointed at the per-test vcsim, with the simulator's certificate pinned."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import AsyncIterator

import pytest

from protocol.messages import CloudKind
from sim.vcsim.process import VcsimProcess
from workers.clouds.base import CloudConfig, Progress
from workers.clouds.vsphere import VSphereAdapter


def sim_thumbprint(sim: VcsimProcess) -> str:
    pem = ssl.get_server_certificate((sim.host, sim.port))
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def sim_config(sim: VcsimProcess, **changes: object) -> CloudConfig:
    fields: dict[str, object] = {
        "cloud_id": "vc1",
        "kind": CloudKind.VSPHERE,
        "endpoint": f"https://{sim.host}:{sim.port}/sdk",
        "username": sim.username,
        "password": sim.password,
        "thumbprint": sim_thumbprint(sim),
        "options": {"timeout_s": "10", "parallel_disks": "2"},
    }
    fields.update(changes)
    return CloudConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def adapter(vcsim: VcsimProcess) -> AsyncIterator[VSphereAdapter]:
    a = VSphereAdapter(sim_config(vcsim))
    yield a
    await a.close()


class Recorder:
    """A ProgressFn that keeps every report."""

    def __init__(self) -> None:
        self.reports: list[Progress] = []

    async def __call__(self, p: Progress) -> None:
        self.reports.append(p)

    @property
    def last_bytes(self) -> int:
        return max((p.bytes_done for p in self.reports), default=0)


@pytest.fixture
def progress() -> Recorder:
    return Recorder()
