"""OVF manifests (``<name>.mf``): one ``SHA256(<file>)= <hex>`` line per package file.

The OVF 1.x manifest format (DSP0243 §5.1) also allows SHA1 and SHA512 lines; all three are
verified, SHA-256 is what we write. File names are plain names inside the package directory.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from workers.ovf.layout import PART_SUFFIX

_LINE = re.compile(r"^(SHA1|SHA256|SHA512)\((?P<name>[^()]+)\)\s*=\s*(?P<hex>[0-9a-fA-F]+)\s*$")
_DIGEST_LEN = {"SHA1": 40, "SHA256": 64, "SHA512": 128}
CHUNK_BYTES = 1024 * 1024


class ManifestError(ValueError):
    """A manifest that does not parse, or a file that does not match it."""


def check_file_name(name: str) -> str:
    """A package member name: no directories, no parent references, nothing hidden."""
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or name.startswith(".")
        or len(name) > 255
    ):
        raise ManifestError(f"not a plain file name: {name!r}")
    return name


def sha256_file(path: Path, chunk_bytes: int = CHUNK_BYTES) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


def format_manifest(digests: Mapping[str, str]) -> str:
    """``{"a.ovf": "ab12..."}`` -> ``SHA256(a.ovf)= ab12...\\n`` lines, in the given order."""
    lines = []
    for name, hexdigest in digests.items():
        check_file_name(name)
        if len(hexdigest) != 64:
            raise ManifestError(f"not a SHA-256 digest for {name}: {hexdigest!r}")
        lines.append(f"SHA256({name})= {hexdigest.lower()}\n")
    return "".join(lines)


def parse_manifest(text: str) -> dict[str, tuple[str, str]]:
    """``name -> (algorithm, lower-case hex)``. Blank lines are ignored, others must parse."""
    out: dict[str, tuple[str, str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line.strip())
        if m is None:
            raise ManifestError(f"manifest line {number} is not ALG(file)= hex: {line[:80]!r}")
        algo, name, hexdigest = m.group(1), check_file_name(m["name"]), m["hex"].lower()
        if len(hexdigest) != _DIGEST_LEN[algo]:
            raise ManifestError(f"manifest line {number}: wrong {algo} digest length")
        if name in out:
            raise ManifestError(f"manifest lists {name} twice")
        out[name] = (algo, hexdigest)
    return out


def write_manifest(package_dir: Path, mf_name: str, digests: Mapping[str, str]) -> Path:
    """Write ``package_dir/mf_name`` atomically (temp file + rename)."""
    path = package_dir / check_file_name(mf_name)
    tmp = path.with_name(path.name + PART_SUFFIX)  # a growing file to a concurrent send
    tmp.write_text(format_manifest(digests), encoding="ascii")
    tmp.replace(path)
    return path


def verify_manifest(
    package_dir: Path, mf_name: str, *, required: Iterable[str] = (), known: Mapping[str, str] = {}
) -> dict[str, tuple[str, str]]:
    """Check every file the manifest lists against its digest; return the parsed manifest.

    ``required``: names the manifest must list (e.g. the descriptor and every referenced
    file). ``known``: SHA-256 digests already computed (skips re-reading those files).
    """
    entries = parse_manifest((package_dir / check_file_name(mf_name)).read_text("ascii"))
    missing = [n for n in required if n not in entries]
    if missing:
        raise ManifestError(f"manifest does not list {', '.join(sorted(missing))}")
    for name, (algo, expected) in entries.items():
        path = package_dir / name
        if not path.is_file():
            raise ManifestError(f"manifest lists {name}, which is not in the package")
        if algo == "SHA256" and name in known:
            actual = known[name]
        else:
            h = hashlib.new(algo.lower())
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK_BYTES):
                    h.update(chunk)
            actual = h.hexdigest()
        if actual != expected:
            raise ManifestError(f"{algo} of {name} does not match the manifest")
    return entries
