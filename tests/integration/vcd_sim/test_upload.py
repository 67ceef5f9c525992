"""Catalog upload: CatalogItem + template + task, descriptor then Files, ranged PUT rules
(gap, overlap, out-of-range, wrong total, resume), hostile descriptors, duplicates, quota."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import pytest

from tests.fixtures.vcdsim import VcdSimInProcess, make_ovf
from tests.integration.vcd_sim.helpers import MT, OVF, RawClient, V, find_link

pytestmark = pytest.mark.vcdsim

DISK = bytes(range(256)) * 40  # 10 240 bytes


async def _started(client: RawClient, name: str = "tpl") -> tuple[str, dict[str, str]]:
    """Upload started and descriptor PUT: (template href, file name → upload href)."""
    _item, tpl_href = await client.start_upload(name)
    links = await client.upload_links(tpl_href)
    reply = await client.request("PUT", links["descriptor.ovf"], make_ovf({"disk.vmdk": len(DISK)}))
    assert reply.status == 200
    return tpl_href, await client.upload_links(tpl_href)


def _file(tpl: ET.Element, name: str) -> ET.Element:
    return next(f for f in tpl.iter(V + "File") if f.get("name") == name)


async def _put(client: RawClient, href: str, start: int, end: int, total: int = len(DISK)) -> int:
    headers = {"Content-Range": f"bytes {start}-{end}/{total}"}
    return (await client.request("PUT", href, DISK[start : end + 1], headers)).status


async def test_upload_starts_with_item_template_task_and_descriptor_file(client: RawClient) -> None:
    item, tpl_href = await client.start_upload("tpl")
    assert item.tag == V + "CatalogItem"
    assert item.find(V + "Entity").get("type") == MT + "vAppTemplate+xml"  # type: ignore[union-attr]
    assert "/api/vAppTemplate/vappTemplate-" in tpl_href
    tpl = await client.get(tpl_href)
    assert (tpl.get("status"), tpl.get("ovfDescriptorUploaded")) == ("0", "false")
    task = tpl.find(f"{V}Tasks/{V}Task")
    assert task is not None
    assert (task.get("status"), task.get("operationName")) == ("running", "vdcUploadOvfContents")
    files = tpl.findall(f"{V}Files/{V}File")
    assert [(f.get("name"), f.get("size"), f.get("bytesTransferred")) for f in files] == [
        ("descriptor.ovf", "-1", "0")
    ]
    assert files[0].find(V + "Link").get("rel") == "upload:default"  # type: ignore[union-attr]


async def test_descriptor_adds_one_file_per_reference_and_vms(client: RawClient) -> None:
    tpl_href, links = await _started(client)
    tpl = await client.get(tpl_href)
    assert tpl.get("ovfDescriptorUploaded") == "true"
    disk = _file(tpl, "disk.vmdk")
    assert (disk.get("size"), disk.get("bytesTransferred")) == (str(len(DISK)), "0")
    assert set(links) == {"descriptor.ovf", "disk.vmdk"}
    assert [vm.get("name") for vm in tpl.findall(f"{V}Children/{V}Vm")] == ["vm1"]


async def test_ranged_upload_resolves_template_and_stores_bytes(
    client: RawClient, vcd_sim_app: VcdSimInProcess
) -> None:
    tpl_href, links = await _started(client)
    assert await _put(client, links["disk.vmdk"], 0, 4095) == 200
    assert _file(await client.get(tpl_href), "disk.vmdk").get("bytesTransferred") == "4096"
    assert await _put(client, links["disk.vmdk"], 4096, len(DISK) - 1) == 200
    task = (await client.get(tpl_href)).find(f"{V}Tasks/{V}Task")
    assert task is not None
    done = await client.wait_task(task.get("href", ""))
    assert (done.get("status"), done.findtext(V + "Progress")) == ("success", "100")
    tpl = await client.get(tpl_href)
    assert tpl.get("status") == "8"
    assert tpl.find(V + "Files") is None
    assert tpl.find(V + "Tasks") is None
    assert [
        link.get("type") for link in tpl.findall(V + "Link") if link.get("rel") == "enable"
    ] == [None]
    tid = tpl_href.rsplit("vappTemplate-", 1)[1]
    assert vcd_sim_app.store.file_path(tid, "disk.vmdk").read_bytes() == DISK


async def test_gap_is_416_and_nothing_is_written(client: RawClient) -> None:
    tpl_href, links = await _started(client)
    assert await _put(client, links["disk.vmdk"], 0, 999) == 200
    reply = await client.request(
        "PUT",
        links["disk.vmdk"],
        DISK[2000:3000],
        {"Content-Range": f"bytes 2000-2999/{len(DISK)}"},
    )
    assert reply.status == 416
    assert reply.xml.get("majorErrorCode") == "416"
    assert _file(await client.get(tpl_href), "disk.vmdk").get("bytesTransferred") == "1000"


async def test_overlap_is_accepted_and_resume_continues(client: RawClient) -> None:
    tpl_href, links = await _started(client)
    assert await _put(client, links["disk.vmdk"], 0, 5999) == 200
    assert await _put(client, links["disk.vmdk"], 4000, 7999) == 200  # re-sends 4000-5999
    assert _file(await client.get(tpl_href), "disk.vmdk").get("bytesTransferred") == "8000"
    assert await _put(client, links["disk.vmdk"], 8000, len(DISK) - 1) == 200
    task = (await client.get(tpl_href)).find(f"{V}Tasks/{V}Task")
    assert (await client.wait_task(task.get("href", ""))).get("status") == "success"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "content_range",
    [
        "bytes 0-99/99999",
        f"bytes 10200-10300/{len(DISK)}",
        "bytes 5-2/10240",
        "bytes=0-9/10240",
        "items 0-9/10240",
    ],
    ids=["wrong-total", "past-end", "reversed", "malformed", "wrong-unit"],
)
async def test_bad_ranges_are_416(client: RawClient, content_range: str) -> None:
    _tpl, links = await _started(client)
    reply = await client.request(
        "PUT", links["disk.vmdk"], b"x" * 10, {"Content-Range": content_range}
    )
    assert reply.status == 416


async def test_body_length_must_match_range(client: RawClient) -> None:
    _tpl, links = await _started(client)
    reply = await client.request(
        "PUT", links["disk.vmdk"], DISK[:50], {"Content-Range": f"bytes 0-99/{len(DISK)}"}
    )
    assert reply.status == 416


async def test_whole_file_put_without_range(client: RawClient) -> None:
    tpl_href, links = await _started(client)
    assert (await client.request("PUT", links["disk.vmdk"], DISK[:-1])).status == 400
    assert (await client.request("PUT", links["disk.vmdk"], DISK)).status == 200
    assert _file(await client.get(tpl_href), "disk.vmdk").get("bytesTransferred") == str(len(DISK))


async def test_put_to_unlisted_file_or_unknown_session_is_404(client: RawClient) -> None:
    _tpl, links = await _started(client)
    other = links["disk.vmdk"].rsplit("/", 1)[0] + "/other.vmdk"
    assert (await client.request("PUT", other, b"x")).status == 404
    assert (await client.request("PUT", "/transfer/nope/disk.vmdk", b"x")).status == 404


async def test_descriptor_twice_is_400(client: RawClient) -> None:
    _tpl, links = await _started(client)
    reply = await client.request("PUT", links["descriptor.ovf"], make_ovf({"disk.vmdk": 1}))
    assert reply.status == 400


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"><References/>&x;</Envelope>"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">&lol3;</Envelope>"""
TRAVERSAL = make_ovf({"../../etc/passwd": 4})
SHADOWS_DESCRIPTOR = make_ovf({"descriptor.ovf": 4})
NOT_OVF = b"<html><body>hello</body></html>"
BROKEN = b"<Envelope"


@pytest.mark.parametrize(
    "descriptor",
    [XXE, LAUGHS, TRAVERSAL, SHADOWS_DESCRIPTOR, NOT_OVF, BROKEN],
    ids=["xxe", "entity-expansion", "path-traversal", "shadows-descriptor", "not-ovf", "malformed"],
)
async def test_hostile_or_malformed_descriptor_is_400_error_xml(
    client: RawClient, descriptor: bytes
) -> None:
    _item, tpl_href = await client.start_upload("bad")
    links = await client.upload_links(tpl_href)
    reply = await client.request("PUT", links["descriptor.ovf"], descriptor)
    assert reply.status == 400
    err = reply.xml
    assert (err.tag, err.get("minorErrorCode")) == (V + "Error", "BAD_REQUEST")
    assert "root:" not in err.get("message", "")  # nothing from /etc/passwd leaks back
    tpl = await client.get(tpl_href)
    assert (tpl.get("ovfDescriptorUploaded"), tpl.get("status")) == ("false", "-1")
    tasks = await client.query("type=task&format=records&filter=objectName==bad")
    task = await client.get(tasks.find(V + "TaskRecord").get("href", ""))  # type: ignore[union-attr]
    assert task.get("status") == "error"
    assert task.find(V + "Error").get("minorErrorCode") == "BAD_REQUEST"  # type: ignore[union-attr]


async def test_duplicate_item_name_is_400_duplicate_name(client: RawClient) -> None:
    await client.start_upload("same")
    cat = await client.get(await client.href_of("catalog", "Templates"))
    href = next(
        link.get("href", "")
        for link in cat.findall(V + "Link")
        if link.get("type") == MT + "uploadVAppTemplateParams+xml"
    )
    body = b'<UploadVAppTemplateParams xmlns="http://www.vmware.com/vcloud/v1.5" name="same"/>'
    reply = await client.request(
        "POST", href, body, {"Content-Type": MT + "uploadVAppTemplateParams+xml"}
    )
    assert reply.status == 400
    assert reply.xml.get("minorErrorCode") == "DUPLICATE_NAME"


async def test_wrong_content_type_is_415(client: RawClient) -> None:
    href = await client.href_of("catalog", "Templates") + "/action/upload"
    body = b'<UploadVAppTemplateParams xmlns="http://www.vmware.com/vcloud/v1.5" name="x"/>'
    reply = await client.request("POST", href, body, {"Content-Type": "application/json"})
    assert reply.status == 415


async def test_quota_exceeded_rejects_descriptor_and_fails_task(
    client: RawClient, vcd_sim_app: VcdSimInProcess
) -> None:
    vdc = next(iter(vcd_sim_app.store.state.vdcs.values()))
    vdc.storage_quota_bytes = 5000
    _item, tpl_href = await client.start_upload("big")
    links = await client.upload_links(tpl_href)
    reply = await client.request("PUT", links["descriptor.ovf"], make_ovf({"disk.vmdk": 6000}))
    assert reply.status == 400
    assert "quota" in reply.xml.get("message", "")
    tpl = await client.get(tpl_href)
    assert tpl.get("status") == "-1"
    tasks = await client.query("type=task&format=records&filter=objectName==big")
    task = await client.get(tasks.find(V + "TaskRecord").get("href", ""))  # type: ignore[union-attr]
    assert task.get("status") == "error"
    assert task.find(V + "Error") is not None


async def test_delete_item_removes_template_and_files(
    client: RawClient, vcd_sim_app: VcdSimInProcess
) -> None:
    tpl_href = await client.upload("gone", make_ovf({"disk.vmdk": len(DISK)}), {"disk.vmdk": DISK})
    tid = tpl_href.rsplit("vappTemplate-", 1)[1]
    assert vcd_sim_app.store.template_dir(tid).exists()
    item_href = await client.href_of("catalogItem", "gone")
    assert (
        await client.request("DELETE", item_href + "?force=False&recursive=False")
    ).status == 204
    assert (await client.request("GET", tpl_href)).status == 403
    assert not vcd_sim_app.store.template_dir(tid).exists()


async def test_ovf_namespace_in_template_sections(client: RawClient) -> None:
    tpl_href = await client.upload("ns", make_ovf({"disk.vmdk": len(DISK)}), {"disk.vmdk": DISK})
    tpl = await client.get(tpl_href)
    section = tpl.find(V + "NetworkConfigSection")
    assert section is not None
    assert section.findtext(OVF + "Info")
    for nc in section.findall(V + "NetworkConfig"):
        assert nc.find(V + "Configuration") is not None  # pyvcloud reads Configuration


async def test_large_descriptor_is_read_whole(client: RawClient) -> None:
    padding = b"<!-- " + b"x" * (3 * 2**20) + b" -->"
    descriptor = make_ovf({"disk.vmdk": len(DISK)}).replace(
        b"<References>", padding + b"<References>"
    )
    _item, tpl_href = await client.start_upload("large")
    links = await client.upload_links(tpl_href)
    assert (await client.request("PUT", links["descriptor.ovf"], descriptor)).status == 200
    tpl = await client.get(tpl_href)
    assert _file(tpl, "descriptor.ovf").get("size") == str(len(descriptor))


async def test_forced_delete_aborts_the_upload_task(client: RawClient) -> None:
    tpl_href, _links = await _started(client, "doomed")
    task = (await client.get(tpl_href)).find(f"{V}Tasks/{V}Task")
    assert task is not None
    item_href = await client.href_of("catalogItem", "doomed")
    assert (await client.request("DELETE", item_href + "?force=true")).status == 204
    assert (await client.get(task.get("href", ""))).get("status") == "aborted"


async def _manifest_upload(client: RawClient, name: str) -> tuple[str, dict[str, str]]:
    cat = await client.get(await client.href_of("catalog", "Templates"))
    href = next(
        link.get("href", "")
        for link in cat.findall(V + "Link")
        if link.get("type") == MT + "uploadVAppTemplateParams+xml"
    )
    body = (
        f'<UploadVAppTemplateParams xmlns="http://www.vmware.com/vcloud/v1.5" name="{name}" '
        'manifestRequired="true"/>'
    ).encode()
    reply = await client.request(
        "POST", href, body, {"Content-Type": MT + "uploadVAppTemplateParams+xml"}
    )
    tpl_href = reply.xml.find(V + "Entity").get("href", "")  # type: ignore[union-attr]
    links = await client.upload_links(tpl_href)
    ovf = make_ovf({"disk.vmdk": len(DISK)})
    assert (await client.request("PUT", links["descriptor.ovf"], ovf)).status == 200
    return tpl_href, await client.upload_links(tpl_href)


@pytest.mark.parametrize("good", [True, False])
async def test_manifest_required_upload_is_verified(client: RawClient, good: bool) -> None:
    tpl_href, links = await _manifest_upload(client, "mf")
    assert set(links) == {"descriptor.ovf", "disk.vmdk", "manifest.mf"}
    digest = hashlib.sha256(DISK if good else b"other").hexdigest()
    manifest = f"SHA256(mf.ovf)= {'0' * 64}\nSHA256(disk.vmdk)= {digest}\n".encode()
    assert (await client.request("PUT", links["manifest.mf"], manifest)).status == 200
    assert (await client.request("PUT", links["disk.vmdk"], DISK)).status == 200
    task = (await client.get(tpl_href)).find(f"{V}Tasks/{V}Task")
    assert task is not None
    done = await client.wait_task(task.get("href", ""))
    tpl = await client.get(tpl_href)
    if good:
        assert (done.get("status"), tpl.get("status")) == ("success", "8")
    else:
        assert (done.get("status"), tpl.get("status")) == ("error", "-1")
        assert "disk.vmdk" in done.find(V + "Error").get("message", "")  # type: ignore[union-attr]


async def test_malformed_manifest_is_400(client: RawClient) -> None:
    _tpl, links = await _manifest_upload(client, "mf")
    assert (await client.request("PUT", links["manifest.mf"], b"not a manifest")).status == 400


async def test_template_ovf_link_serves_the_descriptor(client: RawClient) -> None:
    tpl_href = await client.upload(
        "o", make_ovf({"disk.vmdk": len(DISK)}, chunk_size=4096), {"disk.vmdk": DISK}
    )
    tpl = await client.get(tpl_href)
    ovf = await client.request("GET", find_link(tpl, "ovf", "text/xml"))
    assert ovf.status == 200
    assert ovf.headers["Content-Type"].startswith("text/xml")
    files = ovf.xml.findall(f"{OVF}References/{OVF}File")
    assert [(f.get(OVF + "href"), f.get(OVF + "chunkSize")) for f in files] == [("disk.vmdk", None)]
