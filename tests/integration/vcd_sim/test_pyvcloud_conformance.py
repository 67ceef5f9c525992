"""Conformance: VMware's official Python SDK, pyvcloud 23.0.4, unmodified, against the
simulator: login → upload an OVA to a catalog → instantiate a vApp → download the template
→ delete, as an org user (cloudapi login), a System administrator (provider login) and an
org user at API 32.0 (legacy POST /api/sessions)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from pyvcloud.vcd.client import BasicLoginCredentials, Client
from pyvcloud.vcd.exceptions import EntityNotFoundException
from pyvcloud.vcd.org import Org
from pyvcloud.vcd.vdc import VDC

from tests.fixtures.vcdsim import VcdSimProcess, make_ova, make_vmdk, start_vcd_sim

pytestmark = [pytest.mark.vcdsim, pytest.mark.slow]

PASSWORD = "hcc-demo-password"


@pytest.mark.parametrize(
    ("user", "org_name", "api_version", "expect_version", "sysadmin"),
    [
        ("acme-admin", "acme", None, "36.0", False),
        ("administrator", "System", None, "36.0", True),
        ("acme-admin", "acme", "32.0", "32.0", False),
    ],
    ids=["org-user-cloudapi", "sysadmin-provider", "org-user-legacy-api32"],
)
def test_pyvcloud_upload_instantiate_download(
    vcd_sim: VcdSimProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    user: str,
    org_name: str,
    api_version: str | None,
    expect_version: str,
    sysadmin: bool,
) -> None:
    monkeypatch.chdir(tmp_path)  # pyvcloud extracts OVAs and writes its log into the CWD
    disk = make_vmdk(tmp_path / "tpl-disk1.vmdk", size_mib=2)
    ova = make_ova(tmp_path / "tpl.ova", [disk], vm="web01")

    client = Client(
        vcd_sim.url,
        api_version=api_version,
        verify_ssl_certs=False,
        log_file=str(tmp_path / "pyvcloud.log"),
    )
    client.set_credentials(BasicLoginCredentials(user, org_name, PASSWORD))
    assert client.get_api_version() == expect_version
    assert client.is_sysadmin() is sysadmin

    org = Org(client, resource=client.get_org_by_name("acme"))
    assert [c["name"] for c in org.list_catalogs()] == ["Templates"]
    uploaded = org.upload_ovf("Templates", str(ova), item_name="tpl1", chunk_size=256 * 1024)
    assert uploaded >= disk.stat().st_size

    item = org.get_catalog_item("Templates", "tpl1")
    template = client.get_resource(item.Entity.get("href"))
    client.get_task_monitor().wait_for_success(template.Tasks.Task[0], 60, 0.2)
    template = client.get_resource(item.Entity.get("href"))
    assert template.get("status") == "8"
    assert [vm.get("name") for vm in template.Children.Vm] == ["web01"]

    vdc = VDC(client, resource=org.get_vdc("acme-vdc"))
    vapp = vdc.instantiate_vapp("app1", "Templates", "tpl1", accept_all_eulas=True)
    client.get_task_monitor().wait_for_success(vapp.Tasks.Task[0], 60, 0.2)
    vdc.reload()
    vapp = vdc.get_vapp("app1")
    assert vapp.get("status") == "4"  # powered on (deploy and powerOn default to true)
    assert [vm.get("name") for vm in vapp.Children.Vm] == ["web01"]

    out = tmp_path / "out.ova"
    written = org.download_catalog_item("Templates", "tpl1", str(out))
    assert written == out.stat().st_size
    with tarfile.open(out) as tar:
        names = tar.getnames()
        extracted = tar.extractfile(disk.name)
        assert extracted is not None
        assert extracted.read() == disk.read_bytes()
    assert names[0] == "descriptor.ovf"

    task = vdc.delete_vapp("app1", force=True)
    client.get_task_monitor().wait_for_success(task, 60, 0.2)
    org.delete_catalog_item("Templates", "tpl1")
    with pytest.raises(EntityNotFoundException):
        org.get_catalog_item("Templates", "tpl1")
    vdc.reload()
    with pytest.raises(EntityNotFoundException):
        vdc.get_vapp("app1")
    client.logout()
    assert vcd_sim.state()["templates"] == {}


def test_pyvcloud_multi_part_multi_vm_ova(
    vcd_sim: VcdSimProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OVA whose disk is split into ovf:chunkSize members and whose descriptor holds a
    VirtualSystemCollection of two VMs: pyvcloud PUTs every member to the one target File."""
    monkeypatch.chdir(tmp_path)
    disk = make_vmdk(tmp_path / "multi-disk1.vmdk", size_mib=1, seed=7)
    ova = make_ova(
        tmp_path / "multi.ova", [disk], vm="db01", chunk_size=40_000, extra_vms=("web01",)
    )
    client = Client(vcd_sim.url, verify_ssl_certs=False, log_file=str(tmp_path / "pyvcloud.log"))
    client.set_credentials(BasicLoginCredentials("acme-admin", "acme", PASSWORD))
    org = Org(client, resource=client.get_org())
    org.upload_ovf("Templates", str(ova), item_name="multi", chunk_size=64 * 1024)
    item = org.get_catalog_item("Templates", "multi")
    template = client.get_resource(item.Entity.get("href"))
    client.get_task_monitor().wait_for_success(template.Tasks.Task[0], 60, 0.2)
    template = client.get_resource(item.Entity.get("href"))
    assert sorted(vm.get("name") for vm in template.Children.Vm) == ["db01", "web01"]
    tid = item.Entity.get("href").rsplit("vappTemplate-", 1)[1]
    assert (vcd_sim.data_dir / "templates" / tid / disk.name).read_bytes() == disk.read_bytes()
    client.logout()


def test_pyvcloud_over_tls_verifying_the_simulator_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sim = start_vcd_sim(tmp_path / "sim", "--tls")
    try:
        ca = str(tmp_path / "sim" / "tls" / "cert.pem")
        client = Client(sim.url, verify_ssl_certs=ca, log_file=str(tmp_path / "pyvcloud.log"))
        client.set_credentials(BasicLoginCredentials("administrator", "System", PASSWORD))
        assert client.get_api_version() == "36.0"
        org = Org(client, resource=client.get_org_by_name("acme"))
        assert [c["name"] for c in org.list_catalogs()] == ["Templates"]
        client.logout()
    finally:
        sim.stop()
