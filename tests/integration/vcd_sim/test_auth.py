"""Versions, both login styles, the session, logout, and the error shapes around them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter

import aiohttp
import pytest

from tests.fixtures.vcdsim import VcdSimInProcess
from tests.integration.vcd_sim.helpers import MT, RawClient, V, basic

pytestmark = pytest.mark.vcdsim
VERSIONS = "{http://www.vmware.com/vcloud/versions}"


async def test_versions_lists_29_to_37_with_login_urls(
    vcd_sim_app: VcdSimInProcess, http: aiohttp.ClientSession
) -> None:
    async with http.get(
        vcd_sim_app.url + "/api/versions", headers={"Accept": "application/*+xml"}
    ) as resp:
        assert resp.status == 200
        root = ET.fromstring(await resp.read())
    assert root.tag == VERSIONS + "SupportedVersions"
    infos = {i.findtext(VERSIONS + "Version"): i for i in root.findall(VERSIONS + "VersionInfo")}
    assert list(infos) == [f"{v}.0" for v in range(29, 38)]
    assert infos["32.0"].findtext(VERSIONS + "LoginUrl") == vcd_sim_app.url + "/api/sessions"
    assert (
        infos["36.0"].findtext(VERSIONS + "LoginUrl")
        == vcd_sim_app.url + "/cloudapi/1.0.0/sessions"
    )
    assert infos["36.0"].findtext(VERSIONS + "ProviderLoginUrl", "").endswith("/sessions/provider")


async def test_cloudapi_login_then_session_xml(client: RawClient) -> None:
    session = await client.get("/api/session")
    assert session.tag == V + "Session"
    assert (session.get("org"), session.get("user")) == ("acme", "acme-admin")
    pairs = Counter((link.get("rel"), link.get("type")) for link in session.findall(V + "Link"))
    assert all(n == 1 for n in pairs.values()), pairs  # pyvcloud needs (rel, type) unique
    assert ("down", MT + "org+xml") in pairs
    assert ("down", MT + "query.queryList+xml") in pairs
    assert ("remove", None) in pairs


async def test_provider_login_for_system_administrator(
    vcd_sim_app: VcdSimInProcess, http: aiohttp.ClientSession
) -> None:
    c = RawClient(http, vcd_sim_app.url)
    await c.login("administrator", "System")
    session = await c.get("/api/session")
    assert session.get("org") == "System"
    orgs = await c.get("/api/org/")
    assert sorted(o.get("name", "") for o in orgs) == ["System", "acme"]


@pytest.mark.parametrize(
    ("path", "user", "org", "password"),
    [
        ("/cloudapi/1.0.0/sessions", "acme-admin", "acme", "wrong"),
        ("/cloudapi/1.0.0/sessions", "nobody", "acme", "hcc-demo-password"),
        ("/cloudapi/1.0.0/sessions", "acme-admin", "no-such-org", "hcc-demo-password"),
        ("/cloudapi/1.0.0/sessions", "administrator", "System", "hcc-demo-password"),
        ("/cloudapi/1.0.0/sessions/provider", "acme-admin", "acme", "hcc-demo-password"),
    ],
    ids=[
        "wrong-password",
        "unknown-user",
        "unknown-org",
        "sysadmin-on-tenant-url",
        "tenant-on-provider-url",
    ],
)
async def test_cloudapi_login_refused_with_401_json(
    vcd_sim_app: VcdSimInProcess,
    http: aiohttp.ClientSession,
    path: str,
    user: str,
    org: str,
    password: str,
) -> None:
    headers = {
        "Authorization": basic(user, org, password),
        "Accept": "application/json;version=36.0",
    }
    async with http.post(vcd_sim_app.url + path, headers=headers) as resp:
        assert resp.status == 401
        body = await resp.json()
        assert "X-VMWARE-VCLOUD-ACCESS-TOKEN" not in resp.headers
    assert body["minorErrorCode"] == "UNAUTHORIZED"


async def test_legacy_login_returns_session_and_token(
    vcd_sim_app: VcdSimInProcess, http: aiohttp.ClientSession
) -> None:
    headers = {
        "Authorization": basic("acme-admin", "acme"),
        "Accept": "application/*+xml;version=32.0",
    }
    async with http.post(vcd_sim_app.url + "/api/sessions", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == MT + "session+xml;version=32.0"
        token = resp.headers["x-vcloud-authorization"]
        session = ET.fromstring(await resp.read())
    assert session.get("user") == "acme-admin"
    async with http.get(
        vcd_sim_app.url + "/api/org/",
        headers={"x-vcloud-authorization": token, "Accept": "application/*+xml;version=32.0"},
    ) as resp:
        assert resp.status == 200


async def test_legacy_login_wrong_password_is_401_error_xml(
    vcd_sim_app: VcdSimInProcess, http: aiohttp.ClientSession
) -> None:
    headers = {
        "Authorization": basic("acme-admin", "acme", "nope"),
        "Accept": "application/*+xml;version=32.0",
    }
    async with http.post(vcd_sim_app.url + "/api/sessions", headers=headers) as resp:
        assert resp.status == 401
        err = ET.fromstring(await resp.read())
    assert err.tag == V + "Error"
    assert (err.get("majorErrorCode"), err.get("minorErrorCode")) == ("401", "UNAUTHORIZED")
    assert err.get("message", "").startswith("[ ")


async def test_logout_invalidates_token(client: RawClient) -> None:
    assert (await client.request("DELETE", "/api/session")).status == 204
    reply = await client.request("GET", "/api/session")
    assert reply.status == 401
    assert reply.xml.get("minorErrorCode") == "UNAUTHORIZED"


async def test_no_token_is_401(client: RawClient) -> None:
    client.token = None
    assert (await client.request("GET", "/api/org/")).status == 401


@pytest.mark.parametrize(
    "accept",
    ["application/*+xml", "application/*+xml;version=5.1", "application/*+xml;version=38.0"],
)
async def test_missing_or_unsupported_version_is_406(client: RawClient, accept: str) -> None:
    reply = await client.request("GET", "/api/org/", headers={"Accept": accept})
    assert reply.status == 406
    assert reply.xml.get("minorErrorCode") == "NOT_ACCEPTABLE"


async def test_unknown_path_is_404_error_xml_with_request_id(client: RawClient) -> None:
    reply = await client.request("GET", "/api/nothing/here")
    assert reply.status == 404
    assert reply.headers["Content-Type"].startswith(MT + "error+xml")
    request_id = reply.headers["X-VMWARE-VCLOUD-REQUEST-ID"]
    assert reply.xml.get("message", "").startswith(f"[ {request_id} ]")
    assert reply.xml.get("minorErrorCode") == "RESOURCE_NOT_FOUND"


@pytest.mark.parametrize(
    "path",
    [
        "/api/org/00000000-0000-0000-0000-000000000000",
        "/api/vdc/00000000-0000-0000-0000-000000000000",
        "/api/catalog/nope",
        "/api/catalogItem/nope",
        "/api/vAppTemplate/vappTemplate-nope",
        "/api/vApp/vapp-nope",
        "/api/task/nope",
    ],
)
async def test_unknown_ids_are_403_like_vcd(client: RawClient, path: str) -> None:
    reply = await client.request("GET", path)
    assert reply.status == 403
    err = reply.xml
    assert (err.get("majorErrorCode"), err.get("minorErrorCode")) == (
        "403",
        "ACCESS_TO_RESOURCE_IS_FORBIDDEN",
    )


async def test_org_user_cannot_see_system_org(
    client: RawClient, vcd_sim_app: VcdSimInProcess
) -> None:
    system = vcd_sim_app.store.state.org_by_name("System")
    assert system is not None
    orgs = await client.get("/api/org/")
    assert [o.get("name") for o in orgs] == ["acme"]
    assert (await client.request("GET", f"/api/org/{system.id}")).status == 403


async def test_wrong_method_is_405_error_xml(client: RawClient) -> None:
    reply = await client.request("PUT", "/api/session")
    assert reply.status == 405
    assert (reply.xml.tag, reply.xml.get("majorErrorCode")) == (V + "Error", "405")
