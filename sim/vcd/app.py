"""``create_app(config)``: the simulator as an aiohttp application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from sim.vcd import (
    auth,
    capture,
    download,
    extras,
    instantiate,
    inventory,
    query,
    tasks,
    upload,
    vapps,
)
from sim.vcd.faults import Faults, add_admin_routes
from sim.vcd.seed import Seed
from sim.vcd.store import Store
from sim.vcd.tasks import TaskRunner
from sim.vcd.web import FAULTS, STORE, TASKS, auth_middleware, error_middleware


@dataclass
class SimConfig:
    data_dir: Path
    seed: Seed | None = None
    """Used only when ``data_dir`` holds no state yet; None: the default demo seed."""
    faults: Faults = field(default_factory=Faults)
    admin_api: bool = False
    """Serve the test-only ``/_sim/`` endpoints (fault flags, state dump)."""
    task_duration_s: float = 0.2
    """How long each task runs (plus ``faults.task_delay_s``)."""


def create_app(config: SimConfig) -> web.Application:
    store = Store.open(config.data_dir, config.seed)
    app = web.Application(
        middlewares=[error_middleware, auth_middleware], client_max_size=64 * 2**20
    )
    app[STORE] = store
    app[FAULTS] = config.faults
    app[TASKS] = TaskRunner(store, config.faults, config.task_duration_s)
    modules = (auth, inventory, query, tasks, upload, instantiate, vapps, download, capture, extras)
    for module in modules:
        module.add_routes(app)
    if config.admin_api:
        add_admin_routes(app)
    app.cleanup_ctx.append(_run_tasks)
    return app


async def _run_tasks(app: web.Application) -> AsyncIterator[None]:
    app[TASKS].resume_all()
    yield
    await app[TASKS].close()
    app[STORE].save()
