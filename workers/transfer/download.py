"""Read-only download of a package in this node's transfer storage (``hcc export``).

Routes, beside the receiver's (every one needs a *read* token: ``access="read"``, the
artifact, and this node as ``source_node``, signed by the server):

* ``GET /transfer/v1/{artifact}/files``        ``{"exporting": bool, "files": [{"name",
  "size"}]}``: the package's complete files (private ``.hcc*`` names and ``.part`` files
  left out); ``exporting`` while the export still writes it
* ``GET /transfer/v1/{artifact}/files/{name}`` the file's bytes; ``Range: bytes=N-`` resumes
  (206), ``If-Range`` with the ETag makes a resume safe

Names are checked exactly like the receiver's (``check_relpath``), the resolved path must
stay inside the artifact's folder and be a regular file reached without a symbolic link.
Nothing here writes.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from workers.ovf.package import EXPORTING_MARKER, PART_SUFFIX, PRIVATE_PREFIX
from workers.transfer.auth import token_claims
from workers.transfer.errors import BadRequest, Forbidden, NotFound
from workers.transfer.manifest import check_relpath

_ARTIFACT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Downloads:
    storage_root: Path
    public_key: Ed25519PublicKey
    node_id: str
    clock: Callable[[], float]


DOWNLOADS = web.AppKey("transfer_downloads", Downloads)


def _package(request: web.Request) -> Path:
    """The artifact's folder, once the read token allows it."""
    cfg = request.app[DOWNLOADS]
    artifact_id = request.match_info["artifact"]
    if not _ARTIFACT.match(artifact_id):
        raise BadRequest("bad-artifact", "artifact id is not valid")
    claims = token_claims(request, cfg.public_key, now=cfg.clock())
    if claims.access != "read":
        raise Forbidden("a download needs a read token")
    if claims.source_node != cfg.node_id or claims.artifact_id != artifact_id:
        raise Forbidden("the token is for another artifact or node")
    folder = cfg.storage_root / artifact_id
    if not folder.is_dir() or folder.is_symlink():
        raise NotFound("no such package in transfer storage")
    return folder


def list_package(folder: Path) -> dict[str, Any]:
    """The package's complete files, sorted by name; whether its export still runs."""
    files = []
    exporting = (folder / EXPORTING_MARKER).exists()
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith(PRIVATE_PREFIX):
            continue
        if entry.name.endswith(PART_SUFFIX):
            exporting = True
            continue
        if entry.is_file(follow_symlinks=False):
            files.append({"name": entry.name, "size": entry.stat(follow_symlinks=False).st_size})
    return {"exporting": exporting, "files": files}


async def get_files(request: web.Request) -> web.Response:
    folder = _package(request)
    return web.json_response({"artifact": folder.name, **list_package(folder)})


def safe_file(folder: Path, name: str) -> Path:
    """``folder/name`` if it is a regular file inside ``folder`` reached through no link."""
    check_relpath(name)
    path = folder
    for part in name.split("/"):
        path = path / part
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            raise NotFound(f"no file {name!r} in the package") from None
        if stat.S_ISLNK(mode):
            raise Forbidden(f"{name!r} is a link")
    if not stat.S_ISREG(mode):
        raise NotFound(f"no file {name!r} in the package")
    return path


async def get_file(request: web.Request) -> web.StreamResponse:
    folder = _package(request)
    if (folder / EXPORTING_MARKER).exists():
        raise NotFound("the package is still being exported")
    path = safe_file(folder, request.match_info["name"])
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


def add_download_routes(app: web.Application, base: str, downloads: Downloads) -> None:
    """Mount the two read-only routes under ``base`` (``/transfer/v1/{artifact}``)."""
    app[DOWNLOADS] = downloads
    app.router.add_get(base + "/files", get_files, allow_head=False)
    app.router.add_get(base + "/files/{name:.+}", get_file, allow_head=False)
