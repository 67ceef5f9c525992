"""Local fixtures: an aiohttp session and a logged-in raw client on the in-process simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fixtures.vcdsim import VcdSimInProcess
from tests.integration.vcd_sim.helpers import RawClient


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def client(vcd_sim_app: VcdSimInProcess, http: aiohttp.ClientSession) -> RawClient:
    c = RawClient(http, vcd_sim_app.url)
    await c.login()
    return c
