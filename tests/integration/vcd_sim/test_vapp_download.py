"""instantiateVAppTemplate, power and delete of vApps, enableDownload and the download links."""

from __future__ import annotations

import io
import tarfile
import xml.etree.ElementTree as ET

import pytest

from tests.fixtures.vcdsim import VcdSimInProcess, make_ovf
from tests.integration.vcd_sim.helpers import MT, OVF, RawClient, V, find_link

pytestmark = pytest.mark.vcdsim

DISK = b"\x01\x02\x03\x04" * 3000
INSTANTIATE = MT + "instantiateVAppTemplateParams+xml"


def _params(
    name: str, template_href: str, power_on: bool = True, network_href: str | None = None
) -> bytes:
    net = ""
    if network_href:
        net = (
            '<NetworkConfigSection><ovf:Info xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">n</ovf:Info>'
            '<NetworkConfig networkName="acme-net"><Configuration>'
            f'<ParentNetwork href="{network_href}"/><FenceMode>bridged</FenceMode>'
            "</Configuration></NetworkConfig></NetworkConfigSection>"
        )
    return (
        f'<InstantiateVAppTemplateParams xmlns="http://www.vmware.com/vcloud/v1.5" name="{name}" '
        f'deploy="true" powerOn="{str(power_on).lower()}"><Description>d</Description>'
        f'<InstantiationParams>{net}</InstantiationParams><Source href="{template_href}"/>'
        "<AllEULAsAccepted>true</AllEULAsAccepted></InstantiateVAppTemplateParams>"
    ).encode()


async def _template(client: RawClient, name: str = "tpl") -> str:
    return await client.upload(
        name, make_ovf({"disk.vmdk": len(DISK)}, vm="db01"), {"disk.vmdk": DISK}
    )


async def _instantiate(client: RawClient, body: bytes) -> tuple[int, ET.Element]:
    vdc = await client.get(await client.href_of("orgVdc", "acme-vdc"))
    href = find_link(vdc, "add", INSTANTIATE)
    reply = await client.request("POST", href, body, {"Content-Type": INSTANTIATE})
    return reply.status, reply.xml


@pytest.mark.parametrize(("power_on", "status"), [(True, "4"), (False, "8")])
async def test_instantiate_creates_vapp_with_vms_and_power_state(
    client: RawClient, power_on: bool, status: str
) -> None:
    tpl = await _template(client)
    code, vapp = await _instantiate(client, _params("app", tpl, power_on))
    assert code == 201
    assert (vapp.tag, vapp.get("status")) == (V + "VApp", "0")
    task = vapp.find(f"{V}Tasks/{V}Task")
    assert task is not None
    assert task.get("operationName") == "vdcInstantiateVapp"
    assert (await client.wait_task(task.get("href", ""))).get("status") == "success"
    vapp = await client.get(vapp.get("href", ""))
    assert (vapp.get("status"), vapp.get("deployed")) == (status, "true")
    vms = vapp.findall(f"{V}Children/{V}Vm")
    assert [(vm.get("name"), vm.get("status")) for vm in vms] == [("db01", status)]
    assert "/api/vApp/vm-" in vms[0].get("href", "")
    assert (await client.get(vms[0].get("href", ""))).get("name") == "db01"
    vdc = await client.get(await client.href_of("orgVdc", "acme-vdc"))
    names = [e.get("name") for e in vdc.iter(V + "ResourceEntity")]
    assert sorted(n or "" for n in names) == ["app", "tpl"]
    rows = await client.query("type=vApp&format=records&filter=name==app")
    record = rows.find(V + "VAppRecord")
    assert record is not None
    assert record.get("status") == ("POWERED_ON" if power_on else "POWERED_OFF")


async def test_instantiate_on_org_network(client: RawClient) -> None:
    tpl = await _template(client)
    vdc = await client.get(await client.href_of("orgVdc", "acme-vdc"))
    net = vdc.find(f"{V}AvailableNetworks/{V}Network")
    assert net is not None
    code, _vapp = await _instantiate(client, _params("app", tpl, network_href=net.get("href")))
    assert code == 201
    code, _ = await _instantiate(
        client,
        _params(
            "app2", tpl, network_href="http://x/api/network/00000000-0000-0000-0000-000000000000"
        ),
    )
    assert code == 400


async def test_instantiate_errors(client: RawClient) -> None:
    tpl = await _template(client)
    code, _ = await _instantiate(client, _params("app", tpl))
    assert code == 201
    code, err = await _instantiate(client, _params("app", tpl))
    assert (code, err.get("minorErrorCode")) == (400, "DUPLICATE_NAME")
    code, err = await _instantiate(
        client, _params("x", tpl.replace(tpl[-36:], "0" * 8 + "-0000-0000-0000-" + "0" * 12))
    )
    assert code == 403
    code, err = await _instantiate(client, b"<nope/>")
    assert code == 400
    _item, pending = await client.start_upload("pending")
    code, err = await _instantiate(client, _params("y", pending))
    assert code == 400
    assert "not ready" in err.get("message", "")


async def test_delete_powered_on_vapp_needs_force_or_power_off(client: RawClient) -> None:
    tpl = await _template(client)
    _code, vapp = await _instantiate(client, _params("app", tpl))
    await client.wait_task(vapp.find(f"{V}Tasks/{V}Task").get("href", ""))  # type: ignore[union-attr]
    href = vapp.get("href", "")
    assert (await client.request("DELETE", href)).status == 400
    off = await client.request("POST", href + "/power/action/powerOff")
    assert off.status == 202
    await client.wait_task(off.xml.get("href", ""))
    assert (await client.get(href)).get("status") == "8"
    deleted = await client.request("DELETE", href)
    assert deleted.status == 202
    assert deleted.xml.get("operationName") == "vdcDeleteVapp"
    await client.wait_task(deleted.xml.get("href", ""))
    assert (await client.request("GET", href)).status == 403


async def test_enable_download_then_descriptor_files_and_ova(client: RawClient) -> None:
    tpl_href = await client.upload(
        "dl", make_ovf({"disk.vmdk": len(DISK)}, vm="db01", chunk_size=5000), {"disk.vmdk": DISK}
    )
    tpl = await client.get(tpl_href)
    assert not [link for link in tpl.findall(V + "Link") if link.get("rel") == "download:default"]
    reply = await client.request("POST", find_link(tpl, "enable"))
    assert reply.status == 202
    assert reply.xml.get("operationName") == "vdcEnableDownload"
    await client.wait_task(reply.xml.get("href", ""))
    tpl = await client.get(tpl_href)
    descriptor_href = find_link(tpl, "download:default", "text/xml")
    for rel in ("download:identity", "download:ovaDefault", "download:ovaIdentity"):
        find_link(tpl, rel, "text/xml")
    envelope = await client.request("GET", descriptor_href)
    assert envelope.status == 200
    files = envelope.xml.findall(f"{OVF}References/{OVF}File")
    assert [
        (f.get(OVF + "href"), f.get(OVF + "size"), f.get(OVF + "chunkSize")) for f in files
    ] == [("disk.vmdk", str(len(DISK)), None)]
    disk_href = descriptor_href.rsplit("/", 1)[0] + "/disk.vmdk"
    got = await client.request("GET", disk_href)
    assert (got.status, got.body) == (200, DISK)
    part = await client.request("GET", disk_href, headers={"Range": "bytes=100-199"})
    assert (part.status, part.body) == (206, DISK[100:200])
    ova = await client.request("GET", find_link(tpl, "download:ovaDefault", "text/xml"))
    with tarfile.open(fileobj=io.BytesIO(ova.body)) as tar:
        assert tar.getnames() == ["dl.ovf", "disk.vmdk"]
        member = tar.extractfile("disk.vmdk")
        assert member is not None
        assert member.read() == DISK
    assert (
        await client.request("GET", descriptor_href.rsplit("/", 1)[0] + "/nope.vmdk")
    ).status == 404


async def test_enable_download_on_unresolved_template_is_400(client: RawClient) -> None:
    _item, tpl_href = await client.start_upload("pending")
    reply = await client.request("POST", tpl_href + "/action/enableDownload")
    assert reply.status == 400


async def test_delete_template_via_its_own_link_is_a_task(client: RawClient) -> None:
    tpl_href = await _template(client, "bye")
    reply = await client.request("DELETE", tpl_href)
    assert reply.status == 202
    assert reply.xml.get("operationName") == "vdcDeleteTemplate"
    await client.wait_task(reply.xml.get("href", ""))
    cat = await client.get(await client.href_of("catalog", "Templates"))
    assert cat.findall(f"{V}CatalogItems/{V}CatalogItem") == []


async def test_capture_vapp_into_catalog_then_download_its_disk(client: RawClient) -> None:
    tpl = await _template(client, "base")
    _code, vapp = await _instantiate(client, _params("app", tpl, power_on=False))
    await client.wait_task(vapp.find(f"{V}Tasks/{V}Task").get("href", ""))  # type: ignore[union-attr]
    item_href = await client.href_of("catalogItem", "base")
    assert (await client.request("DELETE", item_href)).status == 204  # the vApp keeps its disks
    cat = await client.get(await client.href_of("catalog", "Templates"))
    body = (
        '<CaptureVAppParams xmlns="http://www.vmware.com/vcloud/v1.5" name="captured">'
        f'<Description>c</Description><Source href="{vapp.get("href")}"/></CaptureVAppParams>'
    ).encode()
    capture_type = MT + "captureVAppParams+xml"
    reply = await client.request(
        "POST", find_link(cat, "add", capture_type), body, {"Content-Type": capture_type}
    )
    assert reply.status == 201
    assert (reply.xml.tag, reply.xml.get("status")) == (V + "VAppTemplate", "0")
    task = reply.xml.find(f"{V}Tasks/{V}Task")
    assert task is not None
    assert task.get("operationName") == "vdcCaptureTemplate"
    assert (await client.wait_task(task.get("href", ""))).get("status") == "success"
    captured = await client.get(reply.headers["Location"])
    assert captured.get("status") == "8"
    assert [vm.get("name") for vm in captured.findall(f"{V}Children/{V}Vm")] == ["db01"]
    enabled = await client.request("POST", find_link(captured, "enable"))
    await client.wait_task(enabled.xml.get("href", ""))
    captured = await client.get(reply.headers["Location"])
    base = find_link(captured, "download:default", "text/xml").rsplit("/", 1)[0]
    assert (await client.request("GET", base + "/disk.vmdk")).body == DISK
    dup = await client.request(
        "POST", find_link(cat, "add", capture_type), body, {"Content-Type": capture_type}
    )
    assert (dup.status, dup.xml.get("minorErrorCode")) == (400, "DUPLICATE_NAME")


async def test_disable_download_removes_links(client: RawClient) -> None:
    tpl_href = await _template(client)
    tpl = await client.get(tpl_href)
    enabled = await client.request("POST", find_link(tpl, "enable"))
    await client.wait_task(enabled.xml.get("href", ""))
    tpl = await client.get(tpl_href)
    descriptor = find_link(tpl, "download:default", "text/xml")
    assert (await client.request("POST", find_link(tpl, "disable"))).status == 204
    tpl = await client.get(tpl_href)
    assert not [
        link for link in tpl.findall(V + "Link") if link.get("rel", "").startswith("download:")
    ]
    assert (await client.request("GET", descriptor)).status == 404


async def test_busy_entities_refuse_delete(client: RawClient, vcd_sim_app: VcdSimInProcess) -> None:
    _item, _pending = await client.start_upload("pending")
    item_href = await client.href_of("catalogItem", "pending")
    busy = await client.request("DELETE", item_href)
    assert (busy.status, busy.xml.get("minorErrorCode")) == (400, "BUSY_ENTITY")
    assert (await client.request("DELETE", item_href + "?force=true")).status == 204
    tpl = await _template(client)
    vcd_sim_app.faults.task_delay_s = 30
    _code, vapp = await _instantiate(client, _params("slow", tpl))
    busy = await client.request("DELETE", vapp.get("href", "") + "?force=true")
    assert (busy.status, busy.xml.get("minorErrorCode")) == (400, "BUSY_ENTITY")
    task_href = vapp.find(f"{V}Tasks/{V}Task").get("href", "")  # type: ignore[union-attr]
    assert (await client.request("POST", task_href + "/action/cancel")).status == 204
    vcd_sim_app.faults.task_delay_s = 0
    canceled = await client.wait_task(task_href, timeout_s=40)
    assert canceled.get("status") == "canceled"
    assert (await client.get(vapp.get("href", ""))).get("status") == "-1"


async def test_cancel_upload_task(client: RawClient) -> None:
    _item, tpl_href = await client.start_upload("up")
    task = (await client.get(tpl_href)).find(f"{V}Tasks/{V}Task")
    assert task is not None
    assert (await client.request("POST", task.get("href", "") + "/action/cancel")).status == 204
    assert (await client.get(task.get("href", ""))).get("status") == "canceled"
    assert (await client.get(tpl_href)).get("status") == "-1"


async def test_capture_over_quota_is_400(client: RawClient, vcd_sim_app: VcdSimInProcess) -> None:
    tpl = await _template(client)
    _code, vapp = await _instantiate(client, _params("app", tpl, power_on=False))
    await client.wait_task(vapp.find(f"{V}Tasks/{V}Task").get("href", ""))  # type: ignore[union-attr]
    vdc = next(iter(vcd_sim_app.store.state.vdcs.values()))
    vdc.storage_quota_bytes = vcd_sim_app.store.state.vdc_used_bytes(vdc.id)  # full
    cat = await client.get(await client.href_of("catalog", "Templates"))
    body = (
        '<CaptureVAppParams xmlns="http://www.vmware.com/vcloud/v1.5" name="c">'
        f'<Source href="{vapp.get("href")}"/></CaptureVAppParams>'
    ).encode()
    capture_type = MT + "captureVAppParams+xml"
    reply = await client.request(
        "POST", find_link(cat, "add", capture_type), body, {"Content-Type": capture_type}
    )
    assert reply.status == 400
    assert "quota" in reply.xml.get("message", "")


async def test_undeploy_and_deploy(client: RawClient) -> None:
    tpl = await _template(client)
    _code, vapp = await _instantiate(client, _params("app", tpl))
    await client.wait_task(vapp.find(f"{V}Tasks/{V}Task").get("href", ""))  # type: ignore[union-attr]
    href = vapp.get("href", "")
    vapp = await client.get(href)
    undeploy_type = MT + "undeployVAppParams+xml"
    body = (
        b'<UndeployVAppParams xmlns="http://www.vmware.com/vcloud/v1.5">'
        b"<UndeployPowerAction>powerOff</UndeployPowerAction></UndeployVAppParams>"
    )
    reply = await client.request(
        "POST", find_link(vapp, "undeploy", undeploy_type), body, {"Content-Type": undeploy_type}
    )
    assert reply.status == 202
    await client.wait_task(reply.xml.get("href", ""))
    vapp = await client.get(href)
    assert (vapp.get("status"), vapp.get("deployed")) == ("8", "false")
    deploy_type = MT + "deployVAppParams+xml"
    body = b'<DeployVAppParams xmlns="http://www.vmware.com/vcloud/v1.5" powerOn="false"/>'
    reply = await client.request(
        "POST", find_link(vapp, "deploy", deploy_type), body, {"Content-Type": deploy_type}
    )
    await client.wait_task(reply.xml.get("href", ""))
    vapp = await client.get(href)
    assert (vapp.get("status"), vapp.get("deployed")) == ("8", "true")
    on = await client.request("POST", find_link(vapp, "power:powerOn"))
    await client.wait_task(on.xml.get("href", ""))
    vapp = await client.get(href)
    assert (vapp.get("status"), vapp.get("deployed")) == ("4", "true")
    vm = vapp.find(f"{V}Children/{V}Vm")
    assert vm is not None
    assert vm.get("status") == "4"
