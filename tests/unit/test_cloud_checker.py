"""The node's cloud checks keep one adapter (one session) per cloud between checks."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from protocol.messages import CloudKind
from workers.clouds.base import CloudConfig, CloudError
from workers.runtime.heartbeat import CloudChecker


class CountingAdapter:
    made: list[CountingAdapter] = []

    def __init__(self, config: CloudConfig) -> None:
        self.config = config
        self.checks = 0
        self.closed = False
        CountingAdapter.made.append(self)

    async def check(self) -> None:
        self.checks += 1
        if self.config.endpoint.endswith("/down"):
            raise CloudError("unreachable")

    async def close(self) -> None:
        self.closed = True

    def __getattr__(self, name: str) -> Any:  # the rest of the interface is not used here
        raise AttributeError(name)


def cfg(endpoint: str = "https://vc/sdk", cloud_id: str = "c1") -> CloudConfig:
    return CloudConfig(cloud_id, CloudKind.VSPHERE, endpoint, "u", "p")


async def test_one_adapter_per_cloud_until_its_config_changes():
    CountingAdapter.made = []
    clouds = {"c1": cfg()}
    checker = CloudChecker(lambda: clouds, CountingAdapter, timeout_s=1)
    for _ in range(3):
        assert await checker.check_all() == {"c1": True}
    assert len(CountingAdapter.made) == 1
    assert CountingAdapter.made[0].checks == 3
    clouds["c1"] = replace(cfg(), endpoint="https://vc/down")
    assert await checker.check_all() == {"c1": False}
    first, second = CountingAdapter.made
    assert first.closed
    assert not second.closed
    del clouds["c1"]
    assert await checker.check_all() == {}
    assert second.closed
    clouds["c2"] = cfg(cloud_id="c2")
    await checker.check_all()
    await checker.close()
    assert all(a.closed for a in CountingAdapter.made)
