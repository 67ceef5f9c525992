"""Login styles, re-login, errors and the inventory, against the vCD simulator."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest

from protocol.messages import CloudKind, DeploySpec, ObjectKind, Target
from sim.vcd.model import State
from tests.integration.vcd.conftest import (
    AdapterFactory,
    ProgressLog,
    Sim,
    disk_bytes,
    make_package,
)
from workers.clouds import make_adapter as node_adapter_factory
from workers.clouds.base import (
    CloudAuthError,
    CloudConfig,
    CloudError,
    CloudUnreachable,
    Progress,
)
from workers.clouds.vcd import VcdAdapter


def expected_paths(state: State, org_names: set[str]) -> set[tuple[str, str, str]]:
    """(kind, urn, path) of everything the simulator holds in those orgs."""
    orgs = {o.id: o.name for o in state.orgs.values() if o.name in org_names}
    out = {("org", f"urn:vcloud:org:{oid}", name) for oid, name in orgs.items()}
    for v in state.vdcs.values():
        if v.org_id in orgs:
            out.add(("vdc", f"urn:vcloud:vdc:{v.id}", f"{orgs[v.org_id]}/{v.name}"))
    for c in state.catalogs.values():
        if c.org_id in orgs:
            out.add(("catalog", f"urn:vcloud:catalog:{c.id}", f"{orgs[c.org_id]}/{c.name}"))
    for i in state.items.values():
        c = state.catalogs[i.catalog_id]
        if c.org_id in orgs:
            path = f"{orgs[c.org_id]}/{c.name}/{i.name}"
            out.add(("catalog_item", f"urn:vcloud:catalogitem:{i.id}", path))
            t = state.templates[i.template_id]
            out.add(("vapp_template", f"urn:vcloud:vapptemplate:{t.id}", f"{path}/{t.name}"))
    for a in state.vapps.values():
        if a.org_id in orgs:
            path = f"{orgs[a.org_id]}/{state.vdcs[a.vdc_id].name}/{a.name}"
            out.add(("vapp", f"urn:vcloud:vapp:{a.id}", path))
            out |= {("vm", f"urn:vcloud:vm:{m.id}", f"{path}/{m.name}") for m in a.vms}
    return out


async def populate(sim: Sim, make_adapter: AdapterFactory, tmp_path: Path) -> None:
    adapter = make_adapter(sim)
    pkg = make_package(tmp_path / "pkgs", "web", {"web-disk1.vmdk": disk_bytes(70_000, 1)})
    result = await adapter.import_package(
        pkg, Target(catalog="Templates", name="web"), ProgressLog()
    )
    await adapter.deploy(result.object_id, DeploySpec(name="web-01"), ProgressLog())


async def test_inventory_equals_the_simulator(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    await populate(sim, make_adapter, tmp_path)
    items = await make_adapter(sim).inventory()
    got = {(i.kind.value, i.id, i.path) for i in items}
    assert got == expected_paths(sim.store.state, {"acme"})
    by_path = {i.path: i for i in items}
    assert by_path["acme/Templates"].kind == ObjectKind.CATALOG
    assert by_path["acme/Templates/web/web"].parent_id == by_path["acme/Templates/web"].id
    vapp = by_path["acme/acme-vdc/web-01"]
    assert vapp.power_state == "poweredOn"
    vm = by_path["acme/acme-vdc/web-01/web-vm"]
    assert (vm.parent_id, vm.cpus, vm.memory_mib) == (vapp.id, 2, 1024)
    assert by_path["acme/acme-vdc"].parent_id == by_path["acme"].id


async def test_system_admin_sees_every_org(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    await populate(sim, make_adapter, tmp_path)
    admin = make_adapter(sim, user="administrator", org="System")
    items = await admin.inventory()
    got = {(i.kind.value, i.id, i.path) for i in items}
    assert got == expected_paths(sim.store.state, {"acme", "System"})


@pytest.mark.parametrize("version", ["32.0", "36.0"])
async def test_both_login_styles_by_version(
    sim: Sim, make_adapter: AdapterFactory, version: str
) -> None:
    adapter = make_adapter(sim, api_version=version)
    await adapter.check()
    assert adapter.session.version == version
    legacy = "x-vcloud-authorization" in adapter.session.auth_headers()
    assert legacy == (version == "32.0")
    assert [i.path for i in await adapter.inventory() if i.kind == ObjectKind.CATALOG] == [
        "acme/Templates"
    ]


async def test_negotiates_the_highest_offered_version(
    sim: Sim, make_adapter: AdapterFactory
) -> None:
    adapter = make_adapter(sim)
    await adapter.check()
    assert adapter.session.version == "37.0"  # the simulator offers 29.0 … 37.0
    assert adapter.session.auth_headers()["Authorization"].startswith("Bearer ")


@pytest.mark.parametrize("version", ["32.0", "36.0"])
async def test_system_login(sim: Sim, make_adapter: AdapterFactory, version: str) -> None:
    """36.0: the provider endpoint (the simulator refuses System users on the tenant one);
    32.0: the legacy login; both list every org through the admin queries."""
    adapter = make_adapter(sim, user="administrator", org="System", api_version=version)
    await adapter.check()
    assert adapter.session.is_system
    orgs = {i.path for i in await adapter.inventory() if i.kind == ObjectKind.ORG}
    assert orgs == {"acme", "System"}


async def test_username_may_carry_the_org(sim: Sim, make_adapter: AdapterFactory) -> None:
    await make_adapter(sim, user="acme-admin@acme", org=None).check()


async def test_relogin_after_the_session_expired(sim: Sim, make_adapter: AdapterFactory) -> None:
    adapter = make_adapter(sim)
    await adapter.check()
    before = adapter.session.auth_headers()
    async with aiohttp.ClientSession() as http, http.delete(sim.url + "/_sim/sessions") as r:
        assert (await r.json())["expired"] >= 1
    items = await adapter.inventory()
    assert any(i.path == "acme/Templates" for i in items)
    assert adapter.session.auth_headers() != before


async def test_wrong_password(sim: Sim, make_adapter: AdapterFactory) -> None:
    adapter = make_adapter(sim, password="not-the-password")
    with pytest.raises(CloudAuthError, match="acme-admin@acme") as exc:
        await adapter.check()
    assert exc.value.code == "cloud-auth"
    assert "not-the-password" not in str(exc.value)


async def test_unknown_org_is_an_auth_error(sim: Sim, make_adapter: AdapterFactory) -> None:
    with pytest.raises(CloudAuthError):
        await make_adapter(sim, org="nope").check()


async def test_unreachable(make_adapter: AdapterFactory) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    adapter = make_adapter(f"http://127.0.0.1:{port}")
    with pytest.raises(CloudUnreachable) as exc:
        await adapter.check()
    assert exc.value.retryable


async def test_the_node_factory_builds_this_adapter(sim: Sim) -> None:
    config = CloudConfig(
        cloud_id="c", kind=CloudKind.VCD, endpoint=sim.url + "/api/", username="acme-admin",
        password="hcc-demo-password", org="acme",
    )  # fmt: skip
    adapter = node_adapter_factory(config)
    assert isinstance(adapter, VcdAdapter)
    try:
        await adapter.check()
        assert any(i.kind == ObjectKind.ORG for i in await adapter.inventory())
    finally:
        await adapter.close()


async def expire_sessions(sim: Sim) -> None:
    async with aiohttp.ClientSession() as http, http.delete(sim.url + "/_sim/sessions") as r:
        assert r.status == 200


async def test_session_expiring_mid_transfer(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    """The token dies during an upload and during a download: both log in again and go on."""
    adapter = make_adapter(sim, upload_chunk_mib="0.1")
    disks = {"exp1.vmdk": disk_bytes(300_000, 20), "exp2.vmdk": disk_bytes(200_000, 21)}
    pkg = make_package(tmp_path / "pkgs", "exp", disks)
    expired: list[Progress] = []

    async def expire_once(p: Progress) -> None:
        if not expired:  # the first event comes before the first disk byte moves
            expired.append(p)
            await expire_sessions(sim)

    target = Target(catalog="Templates", name="exp")
    result = await adapter.import_package(pkg, target, expire_once)
    assert expired
    assert next(p.status for p in sim.puts if "/exp1.vmdk" in p.path) == 401
    tid = result.object_id.rsplit(":", 1)[1]
    for name, data in disks.items():
        assert sim.store.file_path(tid, name).read_bytes() == data
    refused = int(0.1 * 1024 * 1024)  # the first PUT, refused with 401, then re-sent
    assert int(result.attributes["sent_bytes"]) == 500_000 + refused

    expired.clear()
    out = await adapter.export(result.object_id, tmp_path / "out", expire_once)
    assert expired
    for name, data in disks.items():
        assert (out.package_dir / name).read_bytes() == data


async def test_task_deadline(sim: Sim, make_adapter: AdapterFactory, tmp_path: Path) -> None:
    adapter = make_adapter(sim, task_timeout_s="0.5")
    pkg = make_package(tmp_path / "pkgs", "slow", {"slow.vmdk": disk_bytes(1000, 21)})
    result = await adapter.import_package(
        pkg, Target(catalog="Templates", name="slow"), ProgressLog()
    )
    sim.faults.update({"task_delay_s": 30.0})
    with pytest.raises(CloudError, match="still running after the deadline") as exc:
        await adapter.deploy(result.object_id, DeploySpec(name="slow-01"), ProgressLog())
    assert exc.value.code == "vcd-task-timeout"
