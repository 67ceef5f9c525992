"""Node pieces without a broker: progress throttle, path safety, config file, adapter factory."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from protocol.messages import CloudKind
from workers.clouds import NoAdapter, make_adapter
from workers.clouds.base import CloudConfig, CloudError
from workers.runtime.config import CloudEntry, NodeConfig, load_config, save_config
from workers.runtime.events import ProgressThrottle, RateMeter
from workers.runtime.heartbeat import heartbeat_body
from workers.runtime.steps import StepFailure, remove_artifact, safe_child
from workers.settings import NodeSettings


def test_throttle_admits_first_then_by_time_or_one_percent():
    throttle = ProgressThrottle(interval_s=1.0, fraction=0.01)
    assert throttle.admit(0.0, 0, 1000)
    assert not throttle.admit(0.5, 5, 1000)  # 0.5 %, 0.5 s
    assert throttle.admit(0.6, 10, 1000)  # 1 %
    assert not throttle.admit(0.7, 11, 1000)
    assert throttle.admit(1.7, 12, 1000)  # 1 s later
    assert throttle.admit(1.8, 1000, 1000)  # completion always


def test_throttle_without_total_is_time_only():
    throttle = ProgressThrottle(interval_s=1.0)
    assert throttle.admit(0.0, 0, None)
    assert not throttle.admit(0.9, 10**9, None)
    assert throttle.admit(1.0, 10**9 + 1, None)


def test_rate_is_the_speed_now_not_the_average_since_the_start():
    meter = RateMeter(window_s=10.0)
    assert meter.update(0.0, 0) == 0.0  # one reading: unknown
    # a send that waited 60 s for the export's first chunk, then moves 2 MB/s
    assert meter.update(60.0, 0) == 0.0
    for t in range(61, 80):
        rate = meter.update(float(t), (t - 60) * 2_000_000)
    assert rate == pytest.approx(2_000_000)  # an average since t=0 would say 475 kB/s


def test_rate_of_a_resumed_step_counts_only_what_moves_now():
    meter = RateMeter(window_s=10.0)
    meter.update(0.0, 900_000_000)  # a resume found 900 MB already held
    assert meter.update(2.0, 902_000_000) == pytest.approx(1_000_000)


def test_rate_starts_over_when_the_count_goes_back():
    meter = RateMeter(window_s=10.0)
    meter.update(0.0, 0)
    meter.update(5.0, 50)
    assert meter.update(6.0, 10) == 0.0
    assert meter.update(8.0, 30) == pytest.approx(10.0)


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", "x\0y"])
def test_safe_child_refuses_anything_but_a_plain_name(tmp_path: Path, name: str):
    with pytest.raises(StepFailure) as info:
        safe_child(tmp_path, name)
    assert info.value.code == "invalid-name"


def test_safe_child_refuses_a_symlink_out_of_storage(tmp_path: Path):
    storage = tmp_path / "storage"
    storage.mkdir()
    (storage / "evil").symlink_to(tmp_path)
    with pytest.raises(StepFailure):
        safe_child(storage, "evil")


def test_remove_artifact_removes_package_incoming_and_committed_only(tmp_path: Path):
    (tmp_path / "a1").mkdir()
    (tmp_path / "a1" / "disk.vmdk").write_bytes(b"x")
    (tmp_path / ".incoming" / "a1").mkdir(parents=True)
    (tmp_path / ".committed").mkdir()
    (tmp_path / ".committed" / "a1.json").write_text("{}")
    (tmp_path / "a2").mkdir()
    removed = remove_artifact(tmp_path, "a1")
    assert sorted(removed) == [".committed/a1.json", ".incoming/a1", "a1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".committed", ".incoming", "a2"]
    assert remove_artifact(tmp_path, "a1") == []  # idempotent


def test_config_file_is_private_and_round_trips(tmp_path: Path):
    cloud = CloudEntry(
        cloud_id="c1", kind=CloudKind.VCD, endpoint="https://vcd", username="u",
        password="pw", org="acme",
    )  # fmt: skip
    config = NodeConfig(node_id="n1", amqp_url="amqp://u:p@h/", node_token="t", clouds=[cloud])
    path = save_config(tmp_path / "data", config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_config(tmp_path / "data")
    assert loaded == config
    assert loaded.cloud_configs()["c1"].org == "acme"
    assert "pw" not in repr(loaded)
    assert load_config(tmp_path / "elsewhere") is None


def test_overlapping_config_saves_each_complete(tmp_path: Path):
    # two inventory refreshes at once each save the clouds they fetched; with one shared
    # temp file the second rename found nothing (FileNotFoundError in a step)
    configs = [NodeConfig(node_id="n1", amqp_url="amqp://u:p@h/", node_token=f"t{i}")
               for i in range(8)]  # fmt: skip
    with ThreadPoolExecutor(8) as pool:
        for _ in range(25):
            list(pool.map(lambda c: save_config(tmp_path, c), configs))
    assert load_config(tmp_path) in configs
    assert [p.name for p in tmp_path.iterdir()] == ["node.json"]  # no temp file left behind


def config(kind: CloudKind, **options: str) -> CloudConfig:
    return CloudConfig("c1", kind, "https://x", "u", "p", options=options)


async def test_make_adapter_without_module_gives_empty_inventory(monkeypatch):
    import importlib

    real = importlib.import_module

    def missing(name: str, *a, **kw):
        if name == "workers.clouds.vcd":
            raise ModuleNotFoundError(name=name)
        return real(name, *a, **kw)

    monkeypatch.setattr(importlib, "import_module", missing)
    adapter = make_adapter(config(CloudKind.VCD))
    assert isinstance(adapter, NoAdapter)
    assert await adapter.inventory() == []
    with pytest.raises(CloudError) as info:
        await adapter.check()
    assert info.value.code == "not-implemented"


def test_make_adapter_honours_the_adapter_option():
    adapter = make_adapter(
        config(CloudKind.VSPHERE, adapter="tests.integration.node.clouds:StaticAdapter")
    )
    assert type(adapter).__name__ == "StaticAdapter"
    with pytest.raises(ModuleNotFoundError):
        make_adapter(config(CloudKind.VSPHERE, adapter="no.such.module:X"))


def test_heartbeat_body_measures_storage(tmp_path: Path):
    from datetime import UTC, datetime

    body = heartbeat_body(
        version="1.0", started_at=datetime.now(UTC), storage_dir=tmp_path / "s",
        running_steps=(), clouds={"c1": False}, receiver_url="https://n1:8443",
    )  # fmt: skip
    assert 0 < body.free_bytes <= body.total_bytes
    assert body.clouds == {"c1": False}


def test_settings_from_environment(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HCC_NODE_ID", "n7")
    monkeypatch.setenv("HCC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HCC_LISTEN", "0.0.0.0:9443")
    settings = NodeSettings()
    assert settings.node_id == "n7"
    assert settings.host_port == ("0.0.0.0", 9443)
    assert settings.storage_dir == tmp_path / "transfer"
    assert settings.advertised_url == "https://0.0.0.0:9443"
