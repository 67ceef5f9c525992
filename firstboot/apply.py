"""First boot's I/O: find the OVF environment, write the files, set passwords.

The environment comes from VMware Tools (``vmtoolsd --cmd "info-get guestinfo.ovfEnv"``,
the ``com.vmware.guestInfo`` transport) and, when that has nothing, from a file the operator
or an ISO transport put in place (:data:`FALLBACK`, an OVF environment document or
``key = value`` lines).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import structlog

from firstboot.config import ApplianceConfig
from firstboot.render import ADMIN_USER, FileSpec

log = structlog.get_logger()
FALLBACK = Path("/etc/hcc/ovf-env.xml")
VMTOOLSD_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Source:
    data: bytes
    where: str


def read_guestinfo(vmtoolsd: str = "vmtoolsd") -> bytes | None:
    """The OVF environment from VMware Tools, or None (not on VMware, no vApp options)."""
    try:
        proc = subprocess.run(
            [vmtoolsd, "--cmd", "info-get guestinfo.ovfEnv"],
            capture_output=True,
            timeout=VMTOOLSD_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.info("firstboot.no_guestinfo", reason=type(exc).__name__)
        return None
    if proc.returncode != 0 or not proc.stdout.strip():
        log.info("firstboot.no_guestinfo", rc=proc.returncode)
        return None
    return proc.stdout


def read_source(vmtoolsd: str = "vmtoolsd", fallback: Path = FALLBACK) -> Source | None:
    data = read_guestinfo(vmtoolsd)
    if data is not None:
        return Source(data, "guestinfo.ovfEnv")
    if fallback.is_file():
        return Source(fallback.read_bytes(), str(fallback))
    return None


def _target(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def write_file(root: Path, spec: FileSpec, *, chown: bool) -> None:
    """Atomically: a temp file in the same folder, fsync, rename. Mode set before content."""
    dest = _target(root, spec.path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.firstboot")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, spec.mode)
    try:
        os.fchmod(fd, spec.mode)
        os.write(fd, spec.content.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if chown and spec.owner is not None:
        shutil.chown(tmp, spec.owner, spec.owner)
        shutil.chown(dest.parent, spec.owner, spec.owner)
    os.replace(tmp, dest)


def remove_file(root: Path, path: str) -> None:
    _target(root, path).unlink(missing_ok=True)


def set_admin_password(password: str) -> None:
    """chpasswd reads ``user:password`` on stdin: the password is never on a command line."""
    subprocess.run(
        ["chpasswd"], input=f"{ADMIN_USER}:{password}\n".encode(), check=True, capture_output=True
    )


def set_hostname(name: str) -> None:
    subprocess.run(["hostname", name], check=True, capture_output=True)


def apply_system(cfg: ApplianceConfig) -> None:
    """What only the running appliance gets (skipped when writing into another root)."""
    set_hostname(cfg.hostname)
    if cfg.admin_password is not None:
        set_admin_password(cfg.admin_password)
