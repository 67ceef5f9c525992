"""Pure vCD XML handling: versions, errors, tasks, templates, request bodies, hostile XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from workers.clouds import _vcd_xml as x
from workers.clouds.base import (
    CloudAuthError,
    CloudConflict,
    CloudError,
    CloudNotFound,
    CloudQuotaExceeded,
    CloudUnreachable,
)

VERSIONS = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<SupportedVersions xmlns="http://www.vmware.com/vcloud/versions">
  <VersionInfo deprecated="true"><Version>29.0</Version><LoginUrl>https://h/api/sessions</LoginUrl></VersionInfo>
  <VersionInfo deprecated="false"><Version>36.0</Version>
    <LoginUrl>https://h/cloudapi/1.0.0/sessions</LoginUrl>
    <ProviderLoginUrl>https://h/cloudapi/1.0.0/sessions/provider</ProviderLoginUrl></VersionInfo>
  <VersionInfo deprecated="false"><Version>40.0</Version><LoginUrl>x</LoginUrl></VersionInfo>
  <VersionInfo deprecated="false"><Version>37.2</Version><LoginUrl>x</LoginUrl></VersionInfo>
</SupportedVersions>"""


def test_negotiation_takes_the_highest_supported_version() -> None:
    offered = x.parse_versions(VERSIONS)
    assert [v.version for v in offered] == ["29.0", "36.0", "40.0", "37.2"]
    assert offered[1].provider_login_url == "https://h/cloudapi/1.0.0/sessions/provider"
    assert x.negotiate(offered, (29, 0), (39, 1)).version == "37.2"
    assert x.negotiate(offered, (29, 0), (36, 0)).version == "36.0"
    with pytest.raises(CloudError, match=r"offered: 29\.0, 36\.0, 40\.0, 37\.2") as exc:
        x.negotiate(offered, (41, 0), (42, 0))
    assert exc.value.code == "vcd-version"


def error(major: int, minor: str, message: str) -> bytes:
    return (
        f'<Error xmlns="{x.VCLOUD_NS}" majorErrorCode="{major}" minorErrorCode="{minor}" '
        f'message="[ 1f2e-req ] {message}"/>'
    ).encode()


@pytest.mark.parametrize(
    ("status", "minor", "message", "kind"),
    [
        (401, "UNAUTHORIZED", "Bad credentials", CloudAuthError),
        (403, "ACCESS_TO_RESOURCE_IS_FORBIDDEN", "entity does not exist.", CloudNotFound),
        (404, "RESOURCE_NOT_FOUND", "No such path.", CloudNotFound),
        (400, "DUPLICATE_NAME", "Catalog already contains an item named 'x'.", CloudConflict),
        (
            400,
            "BAD_REQUEST",
            "The requested operation will exceed the VDC's storage quota",
            CloudQuotaExceeded,
        ),
        (503, "SERVICE_UNAVAILABLE", "down", CloudUnreachable),
        (400, "BAD_REQUEST", "Something else.", CloudError),
    ],
)
def test_error_mapping(status: int, minor: str, message: str, kind: type[CloudError]) -> None:
    mapped = x.map_error(status, x.parse_error_body(error(status, minor, message)), "upload x")
    assert type(mapped) is kind
    assert "1f2e-req" not in str(mapped)  # the request-id prefix is dropped
    if kind is not CloudAuthError:
        assert message in str(mapped)
        assert str(mapped).startswith("upload x: ")


def test_error_body_that_is_not_xml() -> None:
    assert x.parse_error_body(b"<html>gateway</html>") is None
    assert x.parse_error_body(b"") is None
    mapped = x.map_error(502, None, "GET vdc")
    assert isinstance(mapped, CloudUnreachable)
    assert "HTTP 502" in str(mapped)


def task(status: str, error_xml: str = "") -> ET.Element:
    return x.parse(
        f'<Task xmlns="{x.VCLOUD_NS}" status="{status}" operationName="vdcUploadOvfContents" '
        f'href="https://h/api/task/1">{error_xml}<Progress>40</Progress></Task>'.encode()
    )


def test_task_errors_carry_vcds_message() -> None:
    failed = task("error", '<Error majorErrorCode="500" message="[ r ] Datastore full."/>')
    err = x.task_error(failed, "import web")
    assert str(err) == "import web: vCD task vdcUploadOvfContents failed: Datastore full."
    assert err.code == "vcd-task-failed"
    quota = task("error", '<Error majorErrorCode="400" message="storage quota exceeded"/>')
    assert isinstance(x.task_error(quota, "x"), CloudQuotaExceeded)
    assert x.task_error(task("canceled"), "x").code == "vcd-task-canceled"


TEMPLATE = f"""<VAppTemplate xmlns="{x.VCLOUD_NS}" status="0" name="t" href="https://h/api/vAppTemplate/vappTemplate-1">
  <Link rel="up" type="application/vnd.vmware.vcloud.vdc+xml" href="https://h/api/vdc/9"/>
  <Link rel="enable" href="https://h/api/vAppTemplate/vappTemplate-1/action/enableDownload"/>
  <Tasks><Task status="running" operationName="vdcUploadOvfContents" href="https://h/api/task/7"/></Tasks>
  <Files>
    <File size="10703" bytesTransferred="10703" name="descriptor.ovf">
      <Link rel="upload:default" href="https://h/transfer/x/descriptor.ovf"/></File>
    <File size="68096" bytesTransferred="30000" name="disk-0.vmdk">
      <Link rel="upload:default" href="https://h/transfer/x/disk-0.vmdk"/></File>
  </Files>
  <Children><Vm name="vm1" href="https://h/api/vAppTemplate/vm-3"/></Children>
</VAppTemplate>""".encode()


def test_template_parts() -> None:
    tpl = x.parse(TEMPLATE)
    files = x.template_files(tpl)
    assert files["disk-0.vmdk"] == x.UploadFile(
        "disk-0.vmdk", 68096, 30000, "https://h/transfer/x/disk-0.vmdk"
    )
    assert x.running_task(tpl, "vdcUploadOvfContents") == "https://h/api/task/7"
    assert x.running_task(tpl, "vdcInstantiateVapp") is None
    assert (
        x.find_link(tpl, "enable")
        == "https://h/api/vAppTemplate/vappTemplate-1/action/enableDownload"
    )
    assert x.find_link(tpl, "up", "application/vnd.vmware.vcloud.vdc+xml") == "https://h/api/vdc/9"
    assert [v.get("name") for v in x.children_vms(tpl)] == ["vm1"]


def test_uuid_of_hrefs_and_urns() -> None:
    u = "0f1c2d3e-4a5b-4c6d-8e9f-a0b1c2d3e4f5"
    assert x.uuid_of(f"https://h/api/vAppTemplate/vappTemplate-{u}") == u
    assert x.uuid_of(f"urn:vcloud:vapptemplate:{u.upper()}") == u
    assert x.uuid_of("acme/Templates/web") is None


HOSTILE = [
    b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]><t>&x;</t>',
    b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aa"><!ENTITY b "&a;&a;">]><t>&b;</t>',
    b'<!DOCTYPE t SYSTEM "http://127.0.0.1:1/dtd"><t/>',
    b"<t><unclosed></t>",
]


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_answers_are_refused(body: bytes) -> None:
    with pytest.raises(x.VcdXmlError):
        x.parse(body, "answer")


def test_request_bodies_escape_names() -> None:
    name = 'a "quoted" <name> & more'
    up = x.parse(x.upload_params(name, "d & e", "https://h/api/vdcStorageProfile/1"))
    assert (up.get("name"), up.findtext(x.V + "Description")) == (name, "d & e")
    assert up.find(x.V + "VdcStorageProfile") is not None
    net = x.Network("acme-net", "https://h/api/network/5")
    body = x.parse(
        x.instantiate_params(name, "https://h/t", [("https://h/vm-1", "vm1")], net, False)
    )
    assert (body.get("name"), body.get("powerOn"), body.get("deploy")) == (name, "false", "false")
    parent = body.find(f"{x.V}InstantiationParams/{x.V}NetworkConfigSection/{x.V}NetworkConfig")
    assert parent is not None
    assert parent.get("networkName") == "acme-net"
    assert body.find(f"{x.V}SourcedItem/{x.V}Source").get("href") == "https://h/vm-1"  # type: ignore[union-attr]
    bare = x.parse(x.instantiate_params("v", "https://h/t", [], None, True))
    assert bare.find(f"{x.V}InstantiationParams/{x.V}NetworkConfigSection") is None
    cap = x.parse(x.capture_params("c", "", "https://h/api/vApp/vapp-1"))
    assert cap.find(x.V + "Source").get("href") == "https://h/api/vApp/vapp-1"  # type: ignore[union-attr]


CHUNKED = b"""<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
 xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"><References>
<File ovf:href="a.vmdk" ovf:id="f1" ovf:size="300" ovf:chunkSize="128"/>
<File ovf:href="b.vmdk" ovf:id="f2" ovf:size="10"/></References></Envelope>"""


def test_chunk_sizes_and_stripping() -> None:
    assert x.chunk_sizes(CHUNKED) == {"a.vmdk": 128}
    stripped = x.strip_chunk_size(CHUNKED)
    assert b"chunkSize" not in stripped
    assert x.chunk_sizes(stripped) == {}
    assert b'ovf:size="300"' in stripped


def test_query_records_and_next_page() -> None:
    page = x.parse(
        f"""<QueryResultRecords xmlns="{x.VCLOUD_NS}" total="3">
        <Link rel="nextPage" href="https://h/api/query?type=catalog&amp;page=2"/>
        <CatalogRecord name="a" href="https://h/api/catalog/1"/>
        <CatalogRecord name="b" href="https://h/api/catalog/2"/></QueryResultRecords>""".encode()
    )
    rows, nxt = x.records(page)
    assert [r["name"] for r in rows] == ["a", "b"]
    assert nxt == "https://h/api/query?type=catalog&page=2"
