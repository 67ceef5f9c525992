"""Seed, store persistence, fault flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sim.vcd.errors import VcdError
from sim.vcd.faults import Faults, parse_faults
from sim.vcd.model import Status, TransferFile, VAppTemplate
from sim.vcd.seed import DEFAULT_SEED, Seed, build_state, load_seed
from sim.vcd.store import Store


def test_default_seed_is_the_demo_inventory() -> None:
    state = build_state(DEFAULT_SEED)
    names = {o.name: o for o in state.orgs.values()}
    assert set(names) == {"acme", "System"}
    acme = names["acme"]
    assert [v.name for v in state.vdcs.values()] == ["acme-vdc"]
    assert [(c.name, state.vdcs[c.vdc_id].name) for c in state.catalogs.values()] == [
        ("Templates", "acme-vdc")
    ]
    assert [n.name for n in state.networks.values()] == ["acme-net"]
    assert state.user_in_org("acme-admin", acme.id) is not None
    admin = state.user_in_org("administrator", names["System"].id)
    assert admin is not None
    assert (admin.password, admin.role) == ("hcc-demo-password", "System Administrator")
    assert names["System"].is_system
    assert not acme.is_system


def test_seed_files_yaml_and_json(tmp_path: Path) -> None:
    data = {
        "orgs": [
            {
                "name": "o",
                "vdcs": [{"name": "v", "storage_quota_bytes": 5}],
                "catalogs": [{"name": "c"}],
            }
        ]
    }
    (tmp_path / "s.json").write_text(json.dumps(data))
    (tmp_path / "s.yaml").write_text(
        "orgs:\n  - name: o\n"
        "    vdcs: [{name: v, storage_quota_bytes: 5}]\n"
        "    catalogs: [{name: c}]\n"
    )
    for name in ("s.json", "s.yaml"):
        state = build_state(load_seed(tmp_path / name))
        assert [v.storage_quota_bytes for v in state.vdcs.values()] == [5]


def test_seed_rejects_unknown_network_or_vdc() -> None:
    bad_net = {"orgs": [{"name": "o", "vdcs": [{"name": "v", "networks": ["nope"]}]}]}
    with pytest.raises(ValueError, match="unknown networks"):
        build_state(load_seed_dict(bad_net))
    bad_vdc = {"orgs": [{"name": "o", "catalogs": [{"name": "c"}]}]}
    with pytest.raises(ValueError, match="no VDC"):
        build_state(load_seed_dict(bad_vdc))


def load_seed_dict(data: Any) -> Seed:
    return Seed.model_validate(data)


def test_store_persists_and_reloads(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    org = next(iter(store.state.orgs.values()))
    vdc = next(iter(store.state.vdcs.values()))
    t = VAppTemplate(
        name="t",
        org_id=org.id,
        vdc_id=vdc.id,
        owner_id="u",
        files=[TransferFile(name="d.vmdk", size=10, bytes_transferred=4)],
    )
    store.state.templates[t.id] = t
    store.save()
    again = Store.open(tmp_path, seed=None)
    assert again.state.templates[t.id].files[0].bytes_transferred == 4
    assert again.state.vdc_used_bytes(vdc.id) == 10
    assert again.state.templates[t.id].status == Status.UNRESOLVED


@pytest.mark.parametrize("name", ["", "..", ".", "a/b", "a\\b", "x\0y"])
def test_store_file_paths_refuse_traversal(tmp_path: Path, name: str) -> None:
    with pytest.raises(VcdError):
        Store.open(tmp_path).file_path("t", name)


def test_fail_count_consumes_and_clears() -> None:
    faults = Faults(fail_operations=["vdcInstantiateVapp"], fail_count=2)
    assert not faults.take_failure("vdcUploadOvfContents")
    assert faults.take_failure("vdcInstantiateVapp")
    assert faults.take_failure("vdcInstantiateVapp")
    assert not faults.take_failure("vdcInstantiateVapp")
    assert faults.fail_operations == []


def test_wildcard_failure_without_limit() -> None:
    faults = Faults(fail_operations=["*"])
    assert all(faults.take_failure(op) for op in ("a", "b", "c"))


def test_drop_count() -> None:
    faults = Faults(drop_upload_after_bytes=100, drop_upload_count=1)
    assert faults.take_drop() == 100
    assert faults.take_drop() is None
    forever = Faults(drop_upload_after_bytes=5, drop_upload_count=None)
    assert [forever.take_drop() for _ in range(3)] == [5, 5, 5]


def test_update_validates_and_parse() -> None:
    faults = parse_faults('{"task_delay_s": 1.5}')
    assert faults.task_delay_s == 1.5
    with pytest.raises(ValidationError):
        faults.update({"unknown": 1})
    with pytest.raises(ValidationError):
        faults.update({"task_delay_s": "slow"})
    assert faults.task_delay_s == 1.5
    assert parse_faults(None) == Faults()
