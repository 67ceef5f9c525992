"""A minimal raw vCD client for the simulator's own tests (aiohttp + ElementTree)."""

from __future__ import annotations

import asyncio
import base64
import io
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import aiohttp

V = "{http://www.vmware.com/vcloud/v1.5}"
OVF = "{http://schemas.dmtf.org/ovf/envelope/1}"
MT = "application/vnd.vmware.vcloud."
PASSWORD = "hcc-demo-password"


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    @property
    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)


def basic(user: str, org: str, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}@{org}:{password}".encode()).decode()


def find_link(elem: ET.Element, rel: str, media_type: str | None = None) -> str:
    hits = [
        link.get("href", "")
        for link in elem.findall(V + "Link")
        if link.get("rel") == rel and link.get("type") == media_type
    ]
    assert len(hits) == 1, f"{len(hits)} links rel={rel} type={media_type}"
    return hits[0]


class RawClient:
    def __init__(self, http: aiohttp.ClientSession, url: str, version: str = "36.0") -> None:
        self.http = http
        self.url = url
        self.version = version
        self.token: str | None = None

    @property
    def accept(self) -> str:
        return f"application/*+xml;version={self.version}"

    async def login(self, user: str = "acme-admin", org: str = "acme") -> None:
        path = "/cloudapi/1.0.0/sessions" + ("/provider" if org == "System" else "")
        headers = {
            "Authorization": basic(user, org),
            "Accept": f"application/json;version={self.version}",
        }
        async with self.http.post(self.url + path, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            self.token = resp.headers["X-VMWARE-VCLOUD-ACCESS-TOKEN"]

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Accept": self.accept}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return {**h, **(extra or {})}

    async def request(
        self,
        method: str,
        href: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        url = href if href.startswith("http") else self.url + href
        data = io.BytesIO(body) if body is not None and len(body) > 2**20 else body
        async with self.http.request(method, url, data=data, headers=self.headers(headers)) as resp:
            return Reply(resp.status, resp.headers, await resp.read())

    async def get(self, href: str) -> ET.Element:
        reply = await self.request("GET", href)
        assert reply.status == 200, reply.body
        return reply.xml

    async def org(self, name: str = "acme") -> ET.Element:
        orgs = await self.get("/api/org/")
        href = next(o.get("href") for o in orgs if o.get("name") == name)
        return await self.get(href or "")

    async def query(self, query: str) -> ET.Element:
        return await self.get(f"/api/query?{query}")

    async def href_of(self, qtype: str, name: str) -> str:
        records = await self.query(f"type={qtype}&format=records&filter=name=={name}")
        hrefs = [r.get("href", "") for r in records if not r.tag.endswith("Link")]
        assert len(hrefs) == 1, hrefs
        return hrefs[0]

    async def wait_task(self, href: str, timeout_s: float = 20) -> ET.Element:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            task = await self.get(href)
            if task.get("status") in ("success", "error", "canceled", "aborted"):
                return task
            await asyncio.sleep(0.05)
        raise AssertionError(f"task {href} did not finish in {timeout_s}s")

    async def start_upload(self, name: str, catalog: str = "Templates") -> tuple[ET.Element, str]:
        """POST UploadVAppTemplateParams → (CatalogItem, template href)."""
        cat_href = await self.href_of("catalog", catalog)
        cat = await self.get(cat_href)
        params = (
            f'<UploadVAppTemplateParams xmlns="http://www.vmware.com/vcloud/v1.5" name="{name}">'
            "<Description>test</Description></UploadVAppTemplateParams>"
        ).encode()
        reply = await self.request(
            "POST",
            find_link(cat, "add", MT + "uploadVAppTemplateParams+xml"),
            params,
            {"Content-Type": MT + "uploadVAppTemplateParams+xml"},
        )
        assert reply.status == 201, reply.body
        item = reply.xml
        return item, item.find(V + "Entity").get("href", "")  # type: ignore[union-attr]

    async def upload_links(self, template_href: str) -> dict[str, str]:
        tpl = await self.get(template_href)
        return {
            f.get("name", ""): f.find(V + "Link").get("href", "")  # type: ignore[union-attr]
            for f in tpl.iter(V + "File")
        }

    async def upload(self, name: str, descriptor: bytes, files: dict[str, bytes]) -> str:
        """The whole catalog upload; returns the template href once its import succeeded."""
        _item, tpl_href = await self.start_upload(name)
        links = await self.upload_links(tpl_href)
        reply = await self.request(
            "PUT", links["descriptor.ovf"], descriptor, {"Content-Type": "text/xml"}
        )
        assert reply.status == 200, reply.body
        links = await self.upload_links(tpl_href)
        for fname, data in files.items():
            reply = await self.request("PUT", links[fname], data)
            assert reply.status == 200, reply.body
        task = (await self.get(tpl_href)).find(f"{V}Tasks/{V}Task")
        if task is not None:
            await self.wait_task(task.get("href", ""))
        return tpl_href
