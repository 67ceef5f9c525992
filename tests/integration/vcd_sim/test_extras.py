"""Metadata, org networks, task lists, the entity resolver, VM hardware sections."""

from __future__ import annotations

import pytest

from tests.fixtures.vcdsim import make_ovf
from tests.integration.vcd_sim.helpers import MT, OVF, RawClient, V, find_link

pytestmark = pytest.mark.vcdsim
RASD = "{http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData}"


async def test_every_link_of_org_vdc_and_catalog_resolves(client: RawClient) -> None:
    """No dangling navigation: each Link href with a vCD media type answers 200."""
    org = await client.org()
    vdc = await client.get(await client.href_of("orgVdc", "acme-vdc"))
    cat = await client.get(await client.href_of("catalog", "Templates"))
    for entity in (org, vdc, cat):
        for link in entity.findall(V + "Link"):
            if link.get("rel") in ("down", "up"):
                reply = await client.request("GET", link.get("href", ""))
                assert reply.status == 200, (link.attrib, reply.body[:200])


async def test_org_network_and_metadata(client: RawClient) -> None:
    org = await client.org()
    net = await client.get(find_link(org, "down", MT + "network+xml"))
    assert (net.get("name"), net.findtext(f"{V}Configuration/{V}FenceMode")) == (
        "acme-net",
        "bridged",
    )
    meta = await client.get(find_link(org, "down", MT + "metadata+xml"))
    assert (meta.tag, list(meta)) == (V + "Metadata", [])


async def test_tasks_list_and_entity_resolver(client: RawClient) -> None:
    tpl_href = await client.upload("t", make_ovf({"d.vmdk": 4}, vm="app01"), {"d.vmdk": b"abcd"})
    org = await client.org()
    tasks = await client.get(find_link(org, "down", MT + "tasksList+xml"))
    assert [t.get("operationName") for t in tasks.findall(V + "Task")] == ["vdcUploadOvfContents"]
    tpl = await client.get(tpl_href)
    entity = await client.get(f"/api/entity/{tpl.get('id')}")
    assert find_link(entity, "alternate", MT + "vAppTemplate+xml") == tpl_href
    assert (await client.request("GET", "/api/entity/urn:vcloud:vapp:nope")).status == 403


async def test_vm_has_hardware_section_with_cpu_and_memory(client: RawClient) -> None:
    tpl_href = await client.upload("t", make_ovf({"d.vmdk": 4}, vm="app01"), {"d.vmdk": b"abcd"})
    vm = (await client.get(tpl_href)).find(f"{V}Children/{V}Vm")
    assert vm is not None
    items = {
        i.findtext(RASD + "ResourceType"): i.findtext(RASD + "VirtualQuantity")
        for i in vm.iter(OVF + "Item")
    }
    assert items == {"3": "2", "4": "1024"}
