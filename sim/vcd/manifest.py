"""OVF manifests for ``manifestRequired="true"`` uploads (vCloud API guide, "Including a
Manifest"): the template lists one more File, ``manifest.mf``; after every file arrived each
file named in the manifest is checked against its digest, and a mismatch fails the upload
(template status -1, the task's Error says which file)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from sim.vcd.errors import bad_request

MANIFEST = "manifest.mf"
MAX_MANIFEST_BYTES = 1 * 2**20
_LINE = re.compile(r"^(SHA1|SHA256|SHA512)\((?P<name>[^)]+)\)\s*=\s*(?P<digest>[0-9a-fA-F]+)\s*$")


def parse_manifest(data: bytes) -> dict[str, tuple[str, str]]:
    """``SHA256(disk.vmdk)= hex`` lines → {file name: (algorithm, hex digest)}."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request("The manifest is not UTF-8 text.") from exc
    entries: dict[str, tuple[str, str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.match(line.strip())
        if match is None:
            raise bad_request(f"Manifest line {number} is not 'ALGO(file)= digest'.")
        entries[match.group("name")] = (match.group(1).lower(), match.group("digest").lower())
    return entries


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def mismatches(entries: dict[str, tuple[str, str]], files: dict[str, Path]) -> list[str]:
    """Names of the package files whose digest differs from the manifest's. Entries for
    names not in ``files`` (such as the client's own .ovf name) are not checked."""
    return sorted(
        name
        for name, (algorithm, digest) in entries.items()
        if name in files and file_digest(files[name], algorithm) != digest
    )
