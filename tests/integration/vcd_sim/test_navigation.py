"""Org, VDC and catalog resources; the query service (formats, filters, paging, admin types)."""

from __future__ import annotations

import urllib.parse

import aiohttp
import pytest

from tests.fixtures.vcdsim import VcdSimInProcess, make_ovf
from tests.integration.vcd_sim.helpers import MT, RawClient, V, find_link

pytestmark = pytest.mark.vcdsim


async def test_org_at_api36_has_records_query_links_not_catalogs(client: RawClient) -> None:
    org = await client.org()
    assert org.get("id", "").startswith("urn:vcloud:org:")
    assert org.find(V + "Catalogs") is None
    records = [
        link.get("href", "")
        for link in org.findall(V + "Link")
        if link.get("type") == MT + "query.records+xml"
    ]
    assert next(h for h in records if "catalog" in h.lower()).count("type=catalog") == 1
    assert any("vdc" in h.lower() for h in records)
    catalogs = await client.get(
        urllib.parse.unquote(next(h for h in records if "catalog" in h.lower()))
    )
    assert [r.get("name") for r in catalogs.findall(V + "CatalogRecord")] == ["Templates"]
    assert not [link for link in org.findall(V + "Link") if link.get("type") == MT + "catalog+xml"]


async def test_org_at_api32_has_direct_catalog_and_vdc_links(client: RawClient) -> None:
    client.version = "32.0"
    org = await client.org()
    cat = [link for link in org.findall(V + "Link") if link.get("type") == MT + "catalog+xml"]
    vdc = [link for link in org.findall(V + "Link") if link.get("type") == MT + "vdc+xml"]
    assert [link.get("name") for link in cat] == ["Templates"]
    assert [link.get("name") for link in vdc] == ["acme-vdc"]
    assert not [
        link for link in org.findall(V + "Link") if link.get("type") == MT + "query.records+xml"
    ]


async def test_vdc_has_instantiate_link_network_and_up_link(client: RawClient) -> None:
    vdc = await client.get(await client.href_of("orgVdc", "acme-vdc"))
    assert vdc.get("type") == MT + "vdc+xml"
    assert find_link(vdc, "add", MT + "instantiateVAppTemplateParams+xml").endswith(
        "/action/instantiateVAppTemplate"
    )
    assert "/api/org/" in find_link(vdc, "up", MT + "org+xml")
    nets = vdc.findall(f"{V}AvailableNetworks/{V}Network")
    assert [n.get("name") for n in nets] == ["acme-net"]


async def test_catalog_always_has_catalog_items_and_upload_link(client: RawClient) -> None:
    cat = await client.get(await client.href_of("catalog", "Templates"))
    assert cat.find(V + "CatalogItems") is not None
    assert find_link(cat, "add", MT + "uploadVAppTemplateParams+xml").endswith("/action/upload")


async def test_query_list_hrefs_contain_question_mark(client: RawClient) -> None:
    qlist = await client.get("/api/query")
    links = qlist.findall(V + "Link")
    assert {(link.get("name"), link.get("type")) for link in links} >= {
        ("catalog", MT + "query.idrecords+xml"),
        ("vApp", MT + "query.records+xml"),
        ("orgVdc", MT + "query.references+xml"),
    }
    assert all("?" in link.get("href", "") for link in links)
    assert not [link for link in links if link.get("name") == "adminCatalog"]


async def test_idrecords_have_urn_ids_and_references_format(client: RawClient) -> None:
    rec = (await client.query("type=catalog&format=idrecords&page=1")).find(V + "CatalogRecord")
    assert rec is not None
    assert rec.get("id", "").startswith("urn:vcloud:catalog:")
    refs = await client.query("type=catalog&format=references")
    assert refs.tag == V + "CatalogReferences"
    assert [r.get("name") for r in refs.findall(V + "CatalogReference")] == ["Templates"]


async def test_admin_query_types_forbidden_for_org_users(client: RawClient) -> None:
    reply = await client.request("GET", "/api/query?type=adminCatalog&format=records")
    assert reply.status == 403


async def test_unknown_query_type_or_attribute_is_400(client: RawClient) -> None:
    assert (await client.request("GET", "/api/query?type=nope&format=records")).status == 400
    assert (
        await client.request("GET", "/api/query?type=catalog&format=records&filter=bogus==1")
    ).status == 400


async def _three_templates(client: RawClient) -> None:
    for name in ("t-a", "t-b", "t-c"):
        await client.upload(name, make_ovf({"d.vmdk": 3}), {"d.vmdk": b"abc"})


async def test_paging_and_next_page_links(client: RawClient) -> None:
    await _three_templates(client)
    page1 = await client.query("type=vAppTemplate&format=records&page=1&pageSize=2")
    assert (page1.get("total"), page1.get("page"), page1.get("pageSize")) == ("3", "1", "2")
    assert [r.get("name") for r in page1.findall(V + "VAppTemplateRecord")] == ["t-a", "t-b"]
    page2 = await client.get(find_link(page1, "nextPage", MT + "query.records+xml"))
    assert [r.get("name") for r in page2.findall(V + "VAppTemplateRecord")] == ["t-c"]
    assert not [link for link in page2.findall(V + "Link") if link.get("rel") == "nextPage"]
    assert (
        await client.request("GET", "/api/query?type=vAppTemplate&format=records&page=3&pageSize=2")
    ).status == 400


async def test_filters_as_pyvcloud_sends_them_at_api36_and_api32(client: RawClient) -> None:
    await _three_templates(client)
    vdc_href = await client.href_of("orgVdc", "acme-vdc")
    single = f"vdc=={urllib.parse.quote(vdc_href)};name==t-b"
    rows = await client.query(f"type=vAppTemplate&format=records&page=1&filter={single}")
    assert [r.get("name") for r in rows.findall(V + "VAppTemplateRecord")] == ["t-b"]
    double = urllib.parse.quote(single)
    rows = await client.query(
        f"type=vAppTemplate&format=records&page=1&filterEncoded=true&filter={double}"
    )
    assert [r.get("name") for r in rows.findall(V + "VAppTemplateRecord")] == ["t-b"]
    rows = await client.query(
        "type=vAppTemplate&format=records&filter=name==t-a,name==t-c&sortDesc=name"
    )
    assert [r.get("name") for r in rows.findall(V + "VAppTemplateRecord")] == ["t-c", "t-a"]
    rows = await client.query("type=catalogItem&format=records&filter=name==t-*;name!=t-b")
    assert [r.get("name") for r in rows.findall(V + "CatalogItemRecord")] == ["t-a", "t-c"]


async def test_sysadmin_sees_admin_types_and_all_orgs(
    vcd_sim_app: VcdSimInProcess, http: aiohttp.ClientSession
) -> None:
    admin = RawClient(http, vcd_sim_app.url)
    await admin.login("administrator", "System")
    rows = await admin.query("type=adminCatalog&format=idrecords&page=1")
    assert [r.get("orgName") for r in rows.findall(V + "AdminCatalogRecord")] == ["acme"]
    qlist = await admin.get("/api/query")
    assert any(link.get("name") == "adminVApp" for link in qlist.findall(V + "Link"))


async def test_vm_and_network_queries(client: RawClient) -> None:
    await client.upload("t-vm", make_ovf({"d.vmdk": 3}, vm="web07"), {"d.vmdk": b"abc"})
    rows = await client.query("type=vm&format=records&filter=isVAppTemplate==true")
    vm = rows.find(V + "VMRecord")
    assert vm is not None
    assert (vm.get("name"), vm.get("containerName"), vm.get("numberOfCpus")) == (
        "web07",
        "t-vm",
        "2",
    )
    nets = await client.query("type=orgVdcNetwork&format=records")
    net = nets.find(V + "OrgVdcNetworkRecord")
    assert net is not None
    assert (net.get("name"), net.get("vdcName")) == ("acme-net", "acme-vdc")
