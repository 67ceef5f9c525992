"""``hcc export``'s download: a package's files from the node, straight into an OVA.

The node serves the package read-only (workers/transfer/download.py) to a read token the
server signed, over HTTPS pinned to the node's certificate. The manifest and descriptor are
fetched and checked first; the layout of the archive then follows from the files' names and
sizes, so each member is written at its offset in ``FILE.ova.part`` and an interrupted
download goes on where the part file ends (HTTP ``Range``), re-hashing what it already has.
Each file must match its manifest digest before the part file becomes ``FILE.ova``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
from rich.progress import Progress, TaskID

from workers.ovf.descriptor import DescriptorError, check_files, parse_descriptor
from workers.ovf.manifest import ManifestError, parse_manifest
from workers.ovf.ova import (
    MAX_DESCRIPTOR_BYTES,
    MAX_MANIFEST_BYTES,
    OvaError,
    OvaLayout,
    OvaMembers,
    Slot,
    check_coverage,
    ova_order,
    padding,
)
from workers.transfer import testhooks
from workers.transfer.tls import client_fingerprint

PIECE_BYTES = 1024 * 1024
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, ConnectionError)


class ExportFailed(Exception):
    """The export or its download cannot go on; ``str()`` tells the operator what to do."""


class DownloadInterrupted(ExportFailed):
    """The network failed or the read token expired: a fresh grant resumes the download."""


class NodeFiles:
    """Read-only requests to the node holding one artifact, with the grant's read token."""

    def __init__(self, grant: dict[str, Any]) -> None:
        self.base = f"{grant['receiver_url'].rstrip('/')}/transfer/v1/{grant['artifact_id']}"
        self.headers = {"Authorization": f"Bearer {grant['token']}"}
        connector = aiohttp.TCPConnector(ssl=client_fingerprint(grant["fingerprint"]))
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def close(self) -> None:
        await self.session.close()

    async def _fail(self, resp: aiohttp.ClientResponse) -> ExportFailed:
        text = await resp.text()
        try:
            detail = json.loads(text).get("detail", text)
        except ValueError:
            detail = text[:200]
        cls = DownloadInterrupted if resp.status in (401, 408, 502, 503, 504) else ExportFailed
        return cls(f"the node answered {resp.status} to {resp.url.path}: {detail}")

    async def listing(self) -> dict[str, Any]:
        async with self.session.get(self.base + "/files", headers=self.headers) as resp:
            if resp.status != 200:
                raise await self._fail(resp)
            data: dict[str, Any] = await resp.json()
            return data

    async def read_all(self, name: str, limit: int) -> bytes:
        async with self.session.get(f"{self.base}/files/{name}", headers=self.headers) as resp:
            if resp.status != 200:
                raise await self._fail(resp)
            data = await resp.content.read(limit + 1)
        if len(data) > limit:
            raise ExportFailed(f"{name} is larger than {limit} bytes")
        return data

    async def stream(self, name: str, start: int) -> AsyncIterator[tuple[int, bytes]]:
        """(offset, block) from ``start`` to the end (a 200 answer restarts at 0)."""
        headers = {**self.headers, **({"Range": f"bytes={start}-"} if start else {})}
        async with self.session.get(f"{self.base}/files/{name}", headers=headers) as resp:
            if resp.status not in (200, 206):
                raise await self._fail(resp)
            offset = start if resp.status == 206 else 0
            async for block in resp.content.iter_chunked(PIECE_BYTES):
                yield offset, block
                offset += len(block)


def _checked_members(listing: dict[str, Any]) -> tuple[list[str], dict[str, int], str]:
    """Archive order, sizes and the manifest's name, from the node's file list."""
    if listing.get("exporting"):
        raise ExportFailed("the package is still being exported")
    sizes = {f["name"]: int(f["size"]) for f in listing["files"]}
    order = ova_order(sizes)
    if len(order) < 2 or not order[1].lower().endswith(".mf"):
        raise ExportFailed("the exported package has no .mf manifest")
    return order, sizes, order[1]


async def _verified_package(
    node: NodeFiles, mtime: int
) -> tuple[OvaLayout, dict[str, Any], dict[str, bytes]]:
    """Layout, manifest entries, and the small files (descriptor, manifest)."""
    order, sizes, mf_name = _checked_members(await node.listing())
    mf = await node.read_all(mf_name, MAX_MANIFEST_BYTES)
    ovf = await node.read_all(order[0], MAX_DESCRIPTOR_BYTES)
    try:
        entries = parse_manifest(mf.decode("ascii"))
        check_files(parse_descriptor(ovf), sizes)
    except (ManifestError, DescriptorError, UnicodeDecodeError) as exc:
        raise ExportFailed(f"the exported package is not valid: {exc}") from None
    check_coverage(OvaMembers(order[0], mf_name, tuple((n, sizes[n]) for n in order)), entries)
    layout = OvaLayout.plan([(n, sizes[n]) for n in order], mtime)
    return layout, entries, {order[0]: ovf, mf_name: mf}


def _hash_prefix(fh: BinaryIO, offset: int, length: int, h: Any) -> None:
    fh.seek(offset)
    while length:
        block = fh.read(min(PIECE_BYTES, length))
        if not block:
            raise OvaError("the part file is shorter than it was")
        h.update(block)
        length -= len(block)


async def _write_member(
    fh: BinaryIO, layout: OvaLayout, slot: Slot, node: NodeFiles, small: bytes | None,
    expected: tuple[str, str] | None, advance: Callable[[int], None],
) -> None:  # fmt: skip
    """Write (or finish) one member at its offset, then check it against the manifest."""
    have = os.fstat(fh.fileno()).st_size
    h = hashlib.new(expected[0].lower() if expected else "sha256")
    if have <= slot.data_offset:
        fh.truncate(slot.header_offset)
        fh.seek(slot.header_offset)
        fh.write(layout.header(slot))
        start = 0
    else:
        start = min(have - slot.data_offset, slot.size)
        if have < slot.end:
            fh.truncate(slot.data_offset + start)
        _hash_prefix(fh, slot.data_offset, start, h)
    advance(slot.data_offset + start)
    if start < slot.size:
        blocks = _small_blocks(small, start) if small is not None else node.stream(slot.name, start)
        async for offset, block in blocks:
            if offset == 0 and start:  # the node sent the whole file again
                h, start = hashlib.new(h.name), 0
            fh.seek(slot.data_offset + offset)
            fh.write(block)
            h.update(block)
            advance(slot.data_offset + offset + len(block))
            testhooks.crash_point("export.after-block")  # tests kill the CLI here
        fh.truncate(slot.data_offset + slot.size)
    fh.seek(slot.data_offset + slot.size)
    fh.write(bytes(padding(slot.size)))
    if expected is not None and h.hexdigest() != expected[1]:
        fh.truncate(slot.header_offset)
        raise ExportFailed(f"{slot.name} does not match its {expected[0]} in the manifest")


async def _small_blocks(data: bytes, start: int) -> AsyncIterator[tuple[int, bytes]]:
    yield start, data[start:]


async def download_ova(grant: dict[str, Any], out: Path, mtime: int, bars: Progress) -> None:
    """Write the granted package as the OVA ``out`` (resuming ``out.part``), all verified.

    The read token lives ``transfer_token_ttl_s`` (1 h by default); past that the node
    answers 401 (:class:`DownloadInterrupted`) and :func:`download_with_retries` goes on
    with a fresh grant."""
    part = out.with_name(out.name + ".part")
    node = NodeFiles(grant)
    try:
        layout, entries, small = await _verified_package(node, mtime)
        bar: TaskID = bars.add_task(f"download {out.name}", total=layout.total_bytes)

        def advance(position: int) -> None:
            bars.update(bar, completed=position)

        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
        with os.fdopen(fd, "r+b") as fh:
            for slot in layout.slots:
                await _write_member(fh, layout, slot, node, small.get(slot.name),
                                    entries.get(slot.name), advance)  # fmt: skip
            fh.seek(layout.data_end)
            fh.write(layout.trailer())
            fh.truncate(layout.total_bytes)
            fh.flush()
            os.fsync(fh.fileno())
        advance(layout.total_bytes)
        part.replace(out)
    except NETWORK_ERRORS as exc:
        raise DownloadInterrupted(f"download interrupted ({exc!r}); run the same command "
                                  "again to resume it") from exc  # fmt: skip
    finally:
        await node.close()


async def download_with_retries(
    get_grant: Callable[[], Awaitable[dict[str, Any]]], out: Path, mtime: int, bars: Progress,
    attempts: int = 5, on_retry: Callable[[Exception], None] = lambda exc: None,
) -> None:  # fmt: skip
    """:func:`download_ova` with a fresh grant after an expired token or a network failure;
    each attempt resumes from the part file."""
    for attempt in range(1, attempts + 1):
        try:
            await download_ova(await get_grant(), out, mtime, bars)
            return
        except DownloadInterrupted as exc:
            if attempt == attempts:
                raise
            on_retry(exc)
