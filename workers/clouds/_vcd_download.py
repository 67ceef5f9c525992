"""Export a vApp template from vCD as an OVF package (vcd-api.md §8).

``enableDownload`` (a task) → the template's ``download:default`` link → the descriptor, then
each ``References/File`` from the descriptor URL with its last segment replaced by the file's
``ovf:href``. Multi-part files (``ovf:chunkSize``: members ``<href>.000000000``, …) are joined
into one file and the attribute is dropped from the descriptor. Whether real vCD honours
``Range`` on downloads is not documented (vcd-api.md §14), so a failed file starts over.

Package layout follows the transfer engine's streaming convention (workers/transfer/source.py):
``dest/.hcc-exporting`` exists while the export runs, every file is written as
``<name>.part`` and renamed when complete (with its final size), the SHA-256 manifest
``<stem>.mf`` comes last, and the marker is removed at the very end. After a failure the
marker stays (the package is incomplete); ``.part`` files only ever grow (see
:class:`AppendOnlyFile`), also across retries and attempts.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from pathlib import Path
from typing import BinaryIO

import aiohttp
import structlog

from workers.clouds import _vcd_xml as x
from workers.clouds._vcd_session import VcdSession, connection_error
from workers.clouds.base import (
    CloudError,
    CloudNotFound,
    CloudUnreachable,
    ExportResult,
    InvalidPackage,
    Progress,
    ProgressFn,
)
from workers.ovf.descriptor import DescriptorError, check_consistency, parse_descriptor
from workers.ovf.manifest import format_manifest
from workers.ovf.package import EXPORTING_MARKER, PART_SUFFIX

log = structlog.get_logger()
READ_BYTES = 1024 * 1024


def package_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:100]
    return stem or "export"


def _write_final(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + PART_SUFFIX)
    part.write_bytes(data)
    part.replace(path)


class _Meter:
    def __init__(self, progress: ProgressFn, total: int | None) -> None:
        self.progress, self.total = progress, total
        self.done = 0
        self.last = 0.0

    async def add(self, n: int, force: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if force or now - self.last >= 0.5:
            self.last = now
            await self.progress(Progress(self.done, self.total, "downloading"))


class AppendOnlyFile:
    """A ``.part`` file that a concurrent sender may already be streaming: a download that
    starts over (vCD offers no documented Range) re-reads from byte 0, but bytes already on
    disk are compared instead of rewritten, so the file only grows. Only if the new bytes
    differ from an earlier attempt's is the file cut back (the sender then restarts it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh: BinaryIO = path.open("r+b" if path.exists() else "w+b")
        self.size = os.fstat(self.fh.fileno()).st_size
        self.pos = 0

    def write(self, piece: bytes) -> None:
        if self.pos < self.size:
            overlap = min(len(piece), self.size - self.pos)
            self.fh.seek(self.pos)
            if self.fh.read(overlap) == piece[:overlap]:
                self.pos += overlap
                piece = piece[overlap:]
            else:
                log.warning("vcd.download_differs", file=self.path.name, offset=self.pos)
                self.fh.truncate(self.pos)
                self.size = self.pos
        if piece:
            self.fh.seek(self.pos)
            self.fh.write(piece)
            self.pos += len(piece)
            self.size = max(self.size, self.pos)

    def close(self, complete: bool) -> None:
        if complete and self.size > self.pos:
            self.fh.truncate(self.pos)
        self.fh.close()


class Downloader:
    def __init__(self, session: VcdSession, template_href: str, dest: Path, retries: int) -> None:
        self.s = session
        self.template_href = template_href
        self.dest = dest
        self.retries = retries
        self.digests: dict[str, str] = {}

    async def descriptor_url(self, force_enable: bool = False) -> str:
        tpl = await self.s.get_xml(self.template_href, "GET vAppTemplate")
        if tpl.get("status") not in ("8", "1"):
            raise CloudError(f"template {tpl.get('name')} is not ready for export "
                             f"(status {tpl.get('status')})", code="vcd-not-ready")  # fmt: skip
        link = None if force_enable else x.find_link(tpl, "download:default")
        if link is None:
            enable = x.find_link(tpl, "enable")
            if enable is None:
                raise CloudError("the template offers no enableDownload link", code="vcd-export")
            data = await self.s.call("POST", enable, "enableDownload", expect=(200, 202))
            task = x.parse(data, "enableDownload task")
            if task.get("href"):
                await self.s.wait_task(task.get("href", ""), "enableDownload")
            tpl = await self.s.get_xml(self.template_href, "GET vAppTemplate")
            link = x.find_link(tpl, "download:default")
        if link is None:
            raise CloudError(
                "vCD enabled the download but gave no download link", code="vcd-export"
            )
        return link

    async def run(self, name: str, progress: ProgressFn) -> ExportResult:
        await asyncio.to_thread(self._prepare)
        url = await self.descriptor_url()
        try:
            data = await self._get_bytes(url, "descriptor")
        except CloudNotFound:  # the links expired while idle: enable the download again
            url = await self.descriptor_url(force_enable=True)
            data = await self._get_bytes(url, "descriptor")
        try:
            desc = parse_descriptor(data)
            check_consistency(desc)
            chunks = x.chunk_sizes(data)
        except (DescriptorError, x.VcdXmlError) as exc:
            raise InvalidPackage(f"vCD exported a descriptor that is refused: {exc}") from exc
        if chunks:
            data = x.strip_chunk_size(data)
        stem = package_stem(name)
        ovf_name, mf_name = f"{stem}.ovf", f"{stem}.mf"
        if any(f.href in (ovf_name, mf_name) for f in desc.files):
            raise InvalidPackage(
                f"the descriptor references a file named like the package ({stem})"
            )
        await asyncio.to_thread(_write_final, self.dest / ovf_name, data)
        self.digests[ovf_name] = hashlib.sha256(data).hexdigest()
        total = (
            sum(f.size or 0 for f in desc.files)
            if all(f.size is not None for f in desc.files)
            else None
        )
        meter = _Meter(progress, total)
        for ref in desc.files:
            url = await self._file(url, ref.href, ref.size, chunks.get(ref.href), meter)
        await meter.add(0, force=True)
        manifest = format_manifest(self.digests).encode("ascii")
        await asyncio.to_thread(_write_final, self.dest / mf_name, manifest)
        files = {n: (self.dest / n).stat().st_size for n in [*self.digests, mf_name]}
        await asyncio.to_thread((self.dest / EXPORTING_MARKER).unlink, missing_ok=True)
        return ExportResult(package_dir=self.dest, descriptor=ovf_name, files=files)

    def _prepare(self) -> None:
        """The marker first. ``.part`` files of an earlier attempt stay: a sender may be
        reading them, and the new download appends to them after checking their bytes."""
        self.dest.mkdir(parents=True, exist_ok=True)
        (self.dest / EXPORTING_MARKER).touch()

    async def _get_bytes(self, url: str, what: str) -> bytes:
        return await self.s.call("GET", url, f"download {what}", expect=(200,))

    async def _file(
        self, url: str, href: str, size: int | None, chunk: int | None, meter: _Meter
    ) -> str:
        """Download one package file (retrying from its start); returns the descriptor URL
        to use next (a new one when the download links had expired)."""
        failures = 0
        while True:
            try:
                await self._download(url, href, size, chunk, meter)
                return url
            except (CloudUnreachable, CloudNotFound) as exc:
                failures += 1
                if failures > self.retries:
                    raise
                log.info("vcd.download_retry", file=href, error=str(exc), attempt=failures)
                await asyncio.sleep(min(0.2 * 2**failures, 10.0))
                if isinstance(exc, CloudNotFound):  # links expire when idle: enable again
                    url = await self.descriptor_url(force_enable=True)

    async def _download(
        self, url: str, href: str, size: int | None, chunk: int | None, meter: _Meter
    ) -> None:
        base = url.rsplit("/", 1)[0]
        part = self.dest / (href + PART_SUFFIX)
        sha = hashlib.sha256()
        got = 0
        if chunk:
            count = max(1, -(-(size or 0) // chunk))
            sources = [f"{base}/{href}.{i:09d}" for i in range(count)]
        else:
            sources = [f"{base}/{href}"]
        out = await asyncio.to_thread(AppendOnlyFile, part)
        try:
            for src in sources:
                got += await self._stream(src, href, out, sha, meter)
        except BaseException:
            await asyncio.to_thread(out.close, False)
            await meter.add(-got)
            raise
        await asyncio.to_thread(out.close, True)
        if size is not None and got != size:
            await meter.add(-got)
            raise CloudUnreachable(f"download {href}: got {got} bytes, the descriptor says {size}")
        part.replace(self.dest / href)
        self.digests[href] = sha.hexdigest()

    async def _stream(
        self, url: str, href: str, out: AppendOnlyFile, sha: hashlib._Hash, meter: _Meter
    ) -> int:
        headers = {**self.s.auth_headers(), "Accept": "*/*"}
        got = 0
        try:
            async with self.s.http().get(self.s.url(url), headers=headers) as resp:
                if resp.status == 401:
                    await self.s.login()
                    raise CloudUnreachable(f"download {href}: session expired")
                if resp.status != 200:
                    body = await resp.read()
                    raise x.map_error(resp.status, x.parse_error_body(body), f"download {href}")
                async for piece in resp.content.iter_chunked(READ_BYTES):
                    await asyncio.to_thread(out.write, piece)
                    sha.update(piece)
                    got += len(piece)
                    await meter.add(len(piece))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            await meter.add(-got)
            raise connection_error(exc, f"download {href}") from exc
        return got
