"""Helpers for the vCD adapter's tests against the real simulator (sim/vcd, in-process).

* ``sim`` (async fixture): the simulator app on a free port, tasks 0.05 s, admin API on, with
  an observing middleware that records every transfer PUT (path, Content-Range, status) in
  ``sim.puts`` — the simulator itself is not altered.
* ``make_adapter(sim, user=..., org=..., **options)``: a VcdAdapter closed at teardown.
* ``make_package(dir, name, disks)``: an OVF package (descriptor, disks, SHA-256 .mf).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from protocol.messages import CloudKind
from sim.vcd.app import SimConfig, create_app
from sim.vcd.faults import Faults
from sim.vcd.seed import Seed
from sim.vcd.store import Store
from sim.vcd.web import FAULTS, STORE
from tests.fixtures.vcdsim import make_ovf
from workers.clouds.base import CloudConfig, Progress
from workers.clouds.vcd import VcdAdapter
from workers.ovf.manifest import write_manifest

PASSWORD = "hcc-demo-password"


@dataclass
class Put:
    path: str
    content_range: str | None
    status: int | None


@dataclass
class Sim:
    url: str
    app: web.Application
    runner: web.AppRunner
    puts: list[Put] = field(default_factory=list)

    @property
    def faults(self) -> Faults:
        return self.app[FAULTS]

    @property
    def store(self) -> Store:
        return self.app[STORE]


async def start_sim(data_dir: Path, seed: Seed | None = None, middlewares: Any = ()) -> Sim:
    """The simulator on a free port; ``middlewares`` go in front of it (test-side behaviour
    the simulator lacks, e.g. multi-part downloads)."""
    config = SimConfig(data_dir=data_dir, seed=seed, admin_api=True, task_duration_s=0.05)
    app = create_app(config)
    puts: list[Put] = []

    @web.middleware
    async def observe(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method != "PUT" or not request.path.startswith("/transfer/"):
            return await handler(request)
        put = Put(request.path, request.headers.get("Content-Range"), None)
        puts.append(put)
        resp: web.StreamResponse = await handler(request)
        put.status = resp.status
        return resp

    app.middlewares.insert(0, observe)
    for mw in reversed(middlewares):
        app.middlewares.insert(0, mw)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return Sim(f"http://127.0.0.1:{port}", app, runner, puts)


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Sim]:
    s = await start_sim(tmp_path / "vcdsim")
    try:
        yield s
    finally:
        await s.runner.cleanup()


AdapterFactory = Callable[..., VcdAdapter]


@pytest.fixture
async def make_adapter() -> AsyncIterator[AdapterFactory]:
    made: list[VcdAdapter] = []

    def factory(
        sim: Sim | str,
        user: str = "acme-admin",
        org: str | None = "acme",
        password: str = PASSWORD,
        insecure: bool = False,
        thumbprint: str | None = None,
        **options: str,
    ) -> VcdAdapter:
        url = sim if isinstance(sim, str) else sim.url
        config = CloudConfig(
            cloud_id="vcd1", kind=CloudKind.VCD, endpoint=url, username=user, password=password,
            org=org, insecure=insecure, thumbprint=thumbprint, options=options,
        )  # fmt: skip
        adapter = VcdAdapter(config)
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        await adapter.close()


def disk_bytes(size: int, seed: int) -> bytes:
    """Deterministic non-repeating bytes (a repeated block would hide offset mistakes)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def make_package(
    root: Path, name: str, disks: dict[str, bytes], descriptor: bytes | None = None
) -> Path:
    """``root/<name>/``: ``<name>.ovf`` (make_ovf unless given), the disks, ``<name>.mf``."""
    pkg = root / name
    pkg.mkdir(parents=True)
    for disk, data in disks.items():
        (pkg / disk).write_bytes(data)
    ovf = descriptor or make_ovf({d: len(b) for d, b in disks.items()}, vm=f"{name}-vm")
    (pkg / f"{name}.ovf").write_bytes(ovf)
    digests = {f"{name}.ovf": hashlib.sha256(ovf).hexdigest()}
    digests.update({d: hashlib.sha256(b).hexdigest() for d, b in disks.items()})
    if descriptor is None:
        write_manifest(pkg, f"{name}.mf", digests)
    return pkg


@dataclass
class ProgressLog:
    events: list[Progress] = field(default_factory=list)
    checks: list[Callable[[Progress], None]] = field(default_factory=list)

    async def __call__(self, p: Progress) -> None:
        self.events.append(p)
        for check in self.checks:
            check(p)


@pytest.fixture
def progress() -> ProgressLog:
    return ProgressLog()


def files_in(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def package_names(path: Path) -> list[str]:
    return sorted(os.listdir(path))


NoProgress = Callable[[Progress], Awaitable[None]]
