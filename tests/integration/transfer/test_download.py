"""The node's read-only download route (workers/transfer/download.py) and ``hcc export``'s
download into an OVA (cli/ova_download.py), against a real HTTPS receiver."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from rich.progress import Progress

from cli.ova_download import ExportFailed, download_ova, download_with_retries
from protocol.tokens import issue_token
from tests.fixtures.transfer import Receiver, running_receiver, write_random
from tests.fixtures.vcdsim import make_ovf
from workers.ovf.manifest import format_manifest
from workers.ovf.ova import OvaLayout, pack_ova
from workers.transfer.tls import client_fingerprint

MTIME = 1_700_000_000
ARTIFACT = "export-web-0123456789ab"


def read_token(r: Receiver, artifact_id: str = ARTIFACT, node: str | None = None) -> str:
    return issue_token(r.key, artifact_id=artifact_id, source_node=node or r.node_id,
                       destination_node="operator", now=int(time.time()), ttl_s=600,
                       access="read")  # fmt: skip


def package(root: Path) -> list[Path]:
    pkg = root / ARTIFACT
    disk = write_random(pkg / "web-disk1.vmdk", 3 * 1024 * 1024 + 77)
    ovf = make_ovf({"web-disk1.vmdk": (pkg / "web-disk1.vmdk").stat().st_size})
    (pkg / "web.ovf").write_bytes(ovf)
    (pkg / "web.mf").write_text(format_manifest({"web.ovf": hashlib.sha256(ovf).hexdigest(),
                                                 "web-disk1.vmdk": disk}))  # fmt: skip
    return [pkg / "web.ovf", pkg / "web.mf", pkg / "web-disk1.vmdk"]


def grant(r: Receiver) -> dict[str, Any]:
    return {"receiver_url": r.url, "fingerprint": r.fingerprint, "artifact_id": ARTIFACT,
            "token": read_token(r)}  # fmt: skip


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def test_an_interrupted_download_resumes_where_the_part_file_ends(tmp_path: Path):
    ranges: list[tuple[str, str | None]] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        ranges.append((request.path.rsplit("/", 1)[-1], request.headers.get("Range")))
        return await handler(request)

    async with running_receiver(tmp_path / "node", middlewares=(record,)) as r:
        files = package(r.root)
        expected = pack_ova(files, tmp_path / "expected.ova", mtime=MTIME).read_bytes()
        layout = OvaLayout.plan([(f.name, f.stat().st_size) for f in files], MTIME)
        disk = layout.slots[2]
        out = tmp_path / "web.ova"
        cut = disk.data_offset + 1024 * 1024 + 17
        out.with_name("web.ova.part").write_bytes(expected[:cut])  # what a killed run left
        await download_ova(grant(r), out, MTIME, Progress(disable=True))
        assert out.read_bytes() == expected
        assert ("web-disk1.vmdk", f"bytes={1024 * 1024 + 17}-") in ranges
        assert not out.with_name("web.ova.part").exists()

        # a part file whose bytes differ from the package fails its digest, and is cut back
        # to that member, so the next run fetches it whole
        ranges.clear()
        bad = bytearray(expected[:cut])
        bad[disk.data_offset + 5] ^= 1
        out.unlink()
        out.with_name("web.ova.part").write_bytes(bytes(bad))
        with pytest.raises(ExportFailed, match=r"web-disk1\.vmdk does not match its SHA256"):
            await download_ova(grant(r), out, MTIME, Progress(disable=True))
        assert out.with_name("web.ova.part").stat().st_size == disk.header_offset
        await download_ova(grant(r), out, MTIME, Progress(disable=True))
        assert out.read_bytes() == expected


async def status_of(r: Receiver, method: str, path: str, token: str) -> int:
    connector = aiohttp.TCPConnector(ssl=client_fingerprint(r.fingerprint))
    async with aiohttp.ClientSession(connector=connector) as http, http.request(
        method, f"{r.url}/transfer/v1/{path}", headers={"Authorization": f"Bearer {token}"},
        data=b"{}" if method == "PUT" else None,
    ) as resp:  # fmt: skip
        return resp.status


async def test_the_download_route_reads_only_what_a_read_token_allows(tmp_path: Path):
    async with running_receiver(tmp_path / "node") as r:
        files = package(r.root)
        (files[0].parent / "evil.vmdk").symlink_to("/etc/passwd")
        ok = read_token(r)
        assert await status_of(r, "GET", f"{ARTIFACT}/files/web.ovf", ok) == 200
        push = r.token(ARTIFACT)  # a push token to this node: no reading with it
        assert await status_of(r, "GET", f"{ARTIFACT}/files/web.ovf", push) == 403
        other = read_token(r, node="n9")  # for another node's storage
        assert await status_of(r, "GET", f"{ARTIFACT}/files/web.ovf", other) == 403
        wrong = read_token(r, artifact_id="export-other-0123456789ab")
        assert await status_of(r, "GET", f"{ARTIFACT}/files/web.ovf", wrong) == 403
        assert await status_of(r, "GET", f"{ARTIFACT}/files/..%2F..%2Fetc", ok) == 400
        assert await status_of(r, "GET", f"{ARTIFACT}/files/.hcc-exporting", ok) == 400
        assert await status_of(r, "GET", f"{ARTIFACT}/files/evil.vmdk", ok) == 403
        assert await status_of(r, "GET", f"{ARTIFACT}/files/nope.vmdk", ok) == 404
        # and a read token never writes
        assert await status_of(r, "PUT", f"{ARTIFACT}/manifest", ok) == 403
        # a package still being exported is listed as such and not served
        (files[0].parent / ".hcc-exporting").touch()
        assert await status_of(r, "GET", f"{ARTIFACT}/files/web.ovf", ok) == 404
        connector = aiohttp.TCPConnector(ssl=client_fingerprint(r.fingerprint))
        async with aiohttp.ClientSession(connector=connector) as http, http.get(
            f"{r.url}/transfer/v1/{ARTIFACT}/files", headers={"Authorization": f"Bearer {ok}"}
        ) as resp:  # fmt: skip
            listing = await resp.json()
        assert listing["exporting"] is True
        assert {f["name"] for f in listing["files"]} == {"web.ovf", "web.mf", "web-disk1.vmdk"}


async def test_an_expired_read_token_gets_a_fresh_grant_and_the_download_resumes(tmp_path: Path):
    async with running_receiver(tmp_path / "node") as r:
        files = package(r.root)
        expected = pack_ova(files, tmp_path / "expected.ova", mtime=MTIME).read_bytes()
        grants: list[str] = []

        async def get_grant() -> dict[str, Any]:
            ttl = 0 if not grants else 600  # the first one is already expired
            token = issue_token(r.key, artifact_id=ARTIFACT, source_node=r.node_id,
                                destination_node="operator", now=int(time.time()), ttl_s=ttl,
                                access="read")  # fmt: skip
            grants.append(token)
            return {**grant(r), "token": token}

        retried: list[Exception] = []
        out = tmp_path / "web.ova"
        await download_with_retries(get_grant, out, MTIME, Progress(disable=True),
                                    on_retry=retried.append)  # fmt: skip
        assert out.read_bytes() == expected
        assert len(grants) == 2
        assert "401" in str(retried[0])
