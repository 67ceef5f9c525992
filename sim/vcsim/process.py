"""Start and stop the vcsim binary (sim/vcsim/bin/vcsim, built by ``make vcsim``).

``start_vcsim()`` runs one simulator on a port the OS picks (``-l 127.0.0.1:0``), waits for
the ``export GOVC_URL=...`` line it prints when it listens, and returns a
:class:`VcsimProcess`. ``stop()`` signals that PID (SIGTERM, then SIGKILL after a deadline)
and removes the private temp dir that held its datastores and log. vcsim also holds a pipe
from us on its stdin: if this process dies without ``stop()``, vcsim sees EOF, removes its
datastores and that temp dir, and exits (no orphans, nothing left in /tmp).

Command line: ``python -m sim.vcsim.process [--seed NAME[:MIB,...]]... [vcsim flags...]``
seeds VMs with real disks, prints the URL and runs until Ctrl-C (see sim/vcsim/start.sh).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
BINARY = HERE / "bin" / "vcsim"


class VcsimError(RuntimeError):
    """vcsim is missing, did not start, or said something we do not understand."""


@dataclass
class VcsimProcess:
    """One running simulator. ``url`` has no credentials; ``sdk_url`` is ``url`` + /sdk."""

    url: str
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    pid: int
    workdir: Path
    log_path: Path
    _proc: subprocess.Popen[bytes] = field(repr=False)
    _own_workdir: bool = field(default=True, repr=False)

    @property
    def sdk_url(self) -> str:
        return f"{self.url}/sdk"

    def running(self) -> bool:
        return self._proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM the process by PID, SIGKILL after ``timeout_s``; return its exit code."""
        if self._proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self._proc.wait(timeout=timeout_s)
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self._proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def parse_ready_line(line: str) -> tuple[str, int]:
    """``export GOVC_URL=https://u:p@127.0.0.1:1234/sdk GOVC_SIM_PID=42`` -> (url, pid)."""
    values: dict[str, str] = {}
    for word in line.split():
        key, sep, value = word.partition("=")
        if sep:
            values[key] = value
    if "GOVC_URL" not in values or "GOVC_SIM_PID" not in values:
        raise VcsimError(f"unexpected vcsim output: {line.strip()!r}")
    return values["GOVC_URL"], int(values["GOVC_SIM_PID"])


def _read_line(proc: subprocess.Popen[bytes], deadline: float) -> str:
    assert proc.stdout is not None
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise VcsimError("vcsim did not report its URL in time")
            if sel.select(timeout=left):
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    raise VcsimError(f"vcsim exited with {proc.wait()} before listening")
                buf += chunk
    return buf.decode()


def start_vcsim(
    args: Sequence[str] = (),
    *,
    username: str = "hcc",
    password: str = "hcc-secret",
    workdir: Path | None = None,
    binary: Path = BINARY,
    timeout_s: float = 15.0,
) -> VcsimProcess:
    """Start vcsim on 127.0.0.1 with a free port; ``args`` are extra vcsim flags."""
    if not binary.exists():
        raise VcsimError(f"{binary} is missing: run `make vcsim`")
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="hcc-vcsim-")) if workdir is None else workdir
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "vcsim.log"
    cmd = [str(binary), "-l", "127.0.0.1:0", "-username", username, "-password", password]
    cmd.append("-stdinexit")  # if this Python process dies, vcsim sees EOF and cleans up
    if own:
        cmd += ["-cleanup-dir", str(work)]
    env = {**os.environ, "TMPDIR": str(work)}  # datastores live under work/, never /tmp
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*cmd, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            start_new_session=True,
        )
    try:
        url, pid = parse_ready_line(_read_line(proc, time.monotonic() + timeout_s))
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if own:
            shutil.rmtree(work, ignore_errors=True)
        raise
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    return VcsimProcess(
        url=f"{parts.scheme}://{host}:{port}",
        host=host,
        port=port,
        username=username,
        password=password,
        pid=pid,
        workdir=work,
        log_path=log_path,
        _proc=proc,
        _own_workdir=own,
    )


def parse_seed(spec: str) -> tuple[str, list[int]]:
    """``web-01:64,8`` -> ("web-01", [64 MiB, 8 MiB]); no sizes means one 16 MiB disk."""
    name, _, sizes = spec.partition(":")
    mib = [int(x) for x in sizes.split(",") if x] or [16]
    if not name or any(n <= 0 for n in mib):
        raise ValueError(f"bad --seed {spec!r}: want NAME[:MIB[,MIB...]]")
    return name, [n * 1024 * 1024 for n in mib]


def seed_vms(sim: VcsimProcess, specs: Sequence[str]) -> None:
    """Create powered-off VMs with random, partly-zero streamOptimized disks (qemu-img)."""
    from sim.vcsim import seed

    si = seed.connect(sim.host, sim.port, sim.username, sim.password)
    try:
        for n, spec in enumerate(specs):
            name, sizes = parse_seed(spec)
            images = [
                seed.make_disk_image(sim.workdir / f"{name}-{i}.vmdk", size, seed=n * 100 + i)
                for i, size in enumerate(sizes)
            ]
            seed.seed_vm(si, sim.host, sim.port, name, images)
            for image in images:
                image.unlink()
    finally:
        seed.disconnect(si)


def main(argv: Sequence[str] | None = None) -> int:
    """``[--seed NAME[:MIB,...]]... [vcsim flags]``: run until Ctrl-C."""
    args = list(sys.argv[1:] if argv is None else argv)
    seeds = []
    while "--seed" in args:
        i = args.index("--seed")
        seeds.append(args[i + 1])
        del args[i : i + 2]
    sim = start_vcsim(args)
    try:
        seed_vms(sim, seeds)
        print(f"vcsim {sim.sdk_url} user={sim.username} password={sim.password} pid={sim.pid}")
        sys.stdout.flush()
        while sim.running():
            time.sleep(0.5)  # waiting for Ctrl-C, not synchronising anything
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
