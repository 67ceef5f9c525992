"""Import an OVF package into a vCD catalog (vcd-api.md §5).

Checks first, before anything is created on vCD: one ``*.ovf`` descriptor that parses safely
(defusedxml: no DTD, entities or external references), every referenced file present with
its declared size, the SHA-256 manifest (when there is one) verifies, no ``.hcc-exporting``
marker (a package still being written is refused).

Then: ``POST catalog/action/upload`` (UploadVAppTemplateParams) → catalog item + template;
``PUT descriptor.ovf``; wait for the template to list the package files; each file in ranged
PUTs (``Content-Range: bytes a-b/total``). A PUT that fails (dropped connection, timeout,
416, 5xx) is resumed after re-reading the file's ``bytesTransferred`` from the template:
the next PUT starts exactly where vCD's copy ends, so no byte is sent twice; if vCD forgot
the file (idle upload expiry) it starts over from 0. The request body is a one-shot stream
so aiohttp cannot silently re-send it from the start. Finally wait for the
``vdcUploadOvfContents`` task. On failure the half-made catalog item is deleted.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element

import aiohttp
import structlog

from workers.clouds import _vcd_xml as x
from workers.clouds._vcd_session import VcdSession, connection_error
from workers.clouds.base import (
    CloudError,
    CloudUnreachable,
    ImportPackage,
    Progress,
    ProgressFn,
    invalid_package,
    open_local_package,
)
from workers.ovf import package as ovf_package

log = structlog.get_logger()
DESCRIPTOR = "descriptor.ovf"
UPLOAD_OP = "vdcUploadOvfContents"
READ_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Package(ImportPackage):
    cloud = "vcd"
    identity: str
    """SHA-256 over descriptor and manifest: which package an unfinished upload belongs to."""
    streaming: bool = False

    async def file(self, name: str, waiting: Callable[[str], Awaitable[None]]) -> Path:
        """The complete file ``name``, once it is there; ``waiting(name)`` first if it is
        not there yet."""
        if not (self.dir / name).is_file():
            await waiting(name)
        with invalid_package():
            return await ovf_package.wait_file(self.local, name)


async def open_package(package_dir: Path, *, streaming: bool = False) -> Package:
    """Find, parse and check the descriptor; with ``streaming``, as soon as the descriptor
    is there, the files following (each is awaited before its upload)."""
    pkg = await open_local_package(package_dir, streaming=streaming)
    # A streaming import knows no file's content yet: only the descriptor and the
    # artifact (one per task) say which upload is its own (see Uploader._ours).
    if streaming:
        identity = hashlib.sha256(b"streaming\0" + pkg.descriptor)
    else:
        identity = hashlib.sha256(pkg.descriptor + (pkg.manifest or b""))
    return Package(pkg, identity.hexdigest(), streaming)


class _Meter:
    def __init__(self, progress: ProgressFn, total: int) -> None:
        self.progress, self.total = progress, total
        self.done: dict[str, int] = {}
        self.last = 0.0

    async def set(self, name: str, offset: int, force: bool = False) -> None:
        self.done[name] = offset
        now = time.monotonic()
        if force or now - self.last >= 0.5:
            self.last = now
            await self.progress(Progress(sum(self.done.values()), self.total, "uploading"))

    async def waiting(self, name: str) -> None:
        """Say so when the next file is not there yet (it is still being sent)."""
        self.last = time.monotonic()
        await self.progress(Progress(sum(self.done.values()), self.total, f"waiting for {name}"))


async def _file_body(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        fh.seek(start)
        left = length
        while left > 0:
            piece = await asyncio.to_thread(fh.read, min(READ_BYTES, left))
            if not piece:
                raise CloudError(f"{path.name} shrank during the upload", code="package-changed")
            left -= len(piece)
            yield piece


class Uploader:
    """One catalog upload of one package (state kept for the retries)."""

    def __init__(self, session: VcdSession, pkg: Package, chunk_bytes: int, retries: int) -> None:
        self.s = session
        self.pkg = pkg
        self.chunk_bytes = chunk_bytes
        self.retries = retries
        self.template_href = ""
        self.item_href = ""
        self.resumed = False
        self.sent_bytes = 0
        """Disk bytes put on the wire in PUT bodies (a resume never re-sends vCD's bytes)."""

    @property
    def description(self) -> str:
        """Marks the upload as this package's (and this artifact's: the package directory's
        name, one per copy or import task), so a later attempt may resume it."""
        return f"hcc import {self.pkg.identity} {self.pkg.dir.name}"

    def _ours(self, description: str | None) -> str | None:
        """``"artifact"``: made for this very artifact; ``"package"``: an upload of the same
        package (an older description, or another task's); None: not ours."""
        if description == self.description:
            return "artifact"
        if self.pkg.streaming:  # the content is not known yet: another artifact's upload
            return None  # of the same descriptor may hold other disks
        if (description or "").startswith(f"hcc import {self.pkg.identity}"):
            return "package"
        return None

    async def start(self, catalog_href: str, name: str, storage_profile: str | None) -> None:
        catalog = await self.s.get_xml(catalog_href, "GET catalog")
        add = x.find_link(catalog, "add", x.MT_UPLOAD_PARAMS) or f"{catalog_href}/action/upload"
        body = x.upload_params(name, self.description, storage_profile)
        item = await self.s.send_xml("POST", add, body, x.MT_UPLOAD_PARAMS, f"upload {name!r}")
        entity = item.find(x.V + "Entity") if item is not None else None
        if item is None or entity is None or not entity.get("href"):
            raise x.VcdXmlError(f"upload {name!r}: vCD answered no catalog item entity")
        self.item_href = item.get("href", "")
        self.template_href = entity.get("href", "")

    async def adopt(self, item_href: str) -> str | None:
        """What an earlier attempt of this import left at ``item_href`` (a node that crashed
        or lost vCD mid-upload, or died after vCD finished but before the step reported):

        * ``"resume"``: an unfinished upload of this package (upload task running): go on;
        * ``"done"``: this artifact's template, complete: the import's result already;
        * ``"stale"``: this artifact's upload that can no longer finish (failed, or unfinished
          with no upload task): delete it and upload again under the same name;
        * None: not ours (another package, or another task's finished template)."""
        item = await self.s.get_xml(item_href, "GET catalog item")
        entity = item.find(x.V + "Entity")
        if entity is None or not entity.get("href"):
            return None
        tpl = await self.s.get_xml(entity.get("href", ""), "GET vAppTemplate")
        ours = self._ours(tpl.findtext(x.V + "Description"))
        if ours is None:
            return None
        uploading = x.running_task(tpl, UPLOAD_OP) is not None
        status = tpl.get("status")
        if status == "0" and uploading:
            verdict = "resume"
        elif ours != "artifact":
            return None
        elif status in ("8", "1") and not uploading:
            verdict = "done"
        elif not uploading:
            verdict = "stale"
        else:
            return None
        self.item_href, self.template_href = item_href, entity.get("href", "")
        self.resumed = verdict != "stale"
        log.info("vcd.upload_adopted", item=item_href, verdict=verdict, status=status)
        return verdict

    async def template(self) -> Element:
        return await self.s.get_xml(self.template_href, "GET vAppTemplate")

    async def put_descriptor(self) -> None:
        tpl = await self.template()
        if tpl.get("ovfDescriptorUploaded") == "true":
            return  # an adopted upload got that far already
        link = x.template_files(tpl).get(DESCRIPTOR)
        if link is None or not link.href:
            raise x.VcdXmlError("the new template has no descriptor upload link")
        await self.s.call("PUT", link.href, "upload descriptor", body=self.pkg.descriptor,
                          content_type="text/xml", expect=(200, 201, 204))  # fmt: skip

    async def wait_files(self, timeout_s: float = 300.0) -> dict[str, x.UploadFile]:
        wanted = {f.href for f in self.pkg.desc.files}
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        while True:
            tpl = await self.template()
            files = x.template_files(tpl)
            if wanted <= files.keys() and all(files[n].href for n in wanted):
                return files
            if tpl.get("status") == "-1" or time.monotonic() > deadline:
                task = x.running_task(tpl, UPLOAD_OP)
                if task:
                    await self.s.wait_task(task, "upload", timeout_s=1)
                raise CloudError("vCD did not list the package files after the descriptor",
                                 code="vcd-upload")  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def transferred(self, name: str) -> int:
        f = x.template_files(await self.template()).get(name)
        if f is None:
            raise CloudError(f"vCD no longer lists {name} in the upload", code="vcd-upload")
        return f.transferred

    async def _put(
        self, href: str, path: Path, start: int, end: int, total: int
    ) -> tuple[int, bytes]:
        """One ranged PUT of [start, end); returns the HTTP status and body."""
        length = end - start
        headers = {
            **self.s.auth_headers(),
            "Content-Range": f"bytes {start}-{end - 1}/{total}",
            "Content-Length": str(length),
            "Content-Type": "application/octet-stream",
        }
        self.sent_bytes += length
        try:
            async with self.s.http().put(
                self.s.url(href), data=_file_body(path, start, length), headers=headers
            ) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise connection_error(exc, f"upload {path.name}") from exc

    async def upload_file(self, f: x.UploadFile, meter: _Meter) -> None:
        assert f.href is not None
        path = await self.pkg.file(f.name, meter.waiting)
        offset, failures = f.transferred, 0
        while offset < f.size:
            end = min(offset + self.chunk_bytes, f.size)
            error, body = None, b""
            try:
                status, body = await self._put(f.href, path, offset, end, f.size)
            except CloudUnreachable as exc:
                status, error = 0, str(exc)
            if status == 200:
                offset = end
                await meter.set(f.name, offset)
                continue
            if status == 401:
                await self.s.login()
            elif status not in (0, 416, 500, 502, 503, 504):
                raise x.map_error(status, x.parse_error_body(body), f"upload {f.name}")
            failures += 1
            if failures > self.retries:
                raise CloudUnreachable(f"upload {f.name}: gave up after {failures} failed PUTs")
            await asyncio.sleep(min(0.2 * 2**failures, 10.0))
            offset = await self.transferred(f.name)
            log.info("vcd.upload_resume", file=f.name, offset=offset, status=status, error=error)
            await meter.set(f.name, offset, force=True)

    async def upload_files(self, files: dict[str, x.UploadFile], progress: ProgressFn) -> None:
        meter = _Meter(progress, self.pkg.total_bytes)
        for ref in self.pkg.desc.files:
            f = files[ref.href]
            if f.size != self.pkg.sizes[ref.href]:
                raise CloudError(f"vCD expects {f.size} bytes for {ref.href}, the package has "
                                 f"{self.pkg.sizes[ref.href]}", code="vcd-upload")  # fmt: skip
            await meter.set(ref.href, f.transferred)
            await self.upload_file(f, meter)
        await meter.set("", 0, force=True)

    async def finish(self) -> Element:
        tpl = await self.template()
        task = x.running_task(tpl, UPLOAD_OP)
        if task is not None:
            await self.s.wait_task(task, f"import {self.pkg.descriptor_name}")
            tpl = await self.template()
        if tpl.get("status") not in ("8", "1"):
            raise CloudError(f"the template ended in status {tpl.get('status')}", code="vcd-upload")
        return tpl

    async def discard(self) -> None:
        """Delete the half-made catalog item (best effort)."""
        href = self.item_href
        if not href:
            return
        try:
            await self.s.call("DELETE", f"{href}?force=true&recursive=true", "delete catalog item")
        except CloudError as exc:
            log.warning("vcd.discard_failed", item=href, error=str(exc))
