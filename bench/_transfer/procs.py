"""Processes for the transfer benchmark: receiver, sender, raw PUT, WAN proxy."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(proc: subprocess.Popen[bytes], ready: Path, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while not ready.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{proc.args!r} did not start")
        time.sleep(0.02)
    time.sleep(0.01)
    return json.loads(ready.read_text())


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


class Receiver:
    def __init__(self, base: Path, public_pem: bytes, env: dict[str, str] | None = None) -> None:
        self.base = base
        self.root = base / "storage"
        base.mkdir(parents=True, exist_ok=True)
        (base / "server.pub").write_bytes(public_pem)
        self.port = free_port()
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.fingerprint = ""
        self.idle_kib = 0

    def start(self, env: dict[str, str] | None = None) -> None:
        ready = self.base / "ready.json"
        ready.unlink(missing_ok=True)
        cmd = [
            sys.executable, "-m", "workers.transfer", "serve", "--root", str(self.root),
            "--cert-dir", str(self.base / "tls"), "--node-id", "n2",
            "--public-key", str(self.base / "server.pub"), "--port", str(self.port),
            "--ready-file", str(ready),
        ]  # fmt: skip
        full_env = {**os.environ, **self.env, **(env or {})}
        self.proc = subprocess.Popen(cmd, env=full_env, cwd=REPO)
        info = wait_ready(self.proc, ready)
        self.fingerprint = info["fingerprint"]
        self.idle_kib = status_kib(self.proc.pid, "VmRSS")

    def peak_kib(self) -> int:
        assert self.proc is not None
        return status_kib(self.proc.pid, "VmHWM")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        stop(self.proc)


def sender_cmd(
    pkg: Path,
    url: str,
    fingerprint: str,
    artifact: str,
    token_file: Path,
    streams: int,
    chunk: int,
    result: Path,
    extra: list[str] | None = None,
) -> list[str]:
    return [
        sys.executable, "-m", "workers.transfer", "send", "--package", str(pkg),
        "--url", url, "--fingerprint", fingerprint, "--artifact", artifact,
        "--destination-node", "n2", "--token-file", str(token_file), "--streams", str(streams),
        "--chunk-bytes", str(chunk), "--result-file", str(result), "--stall-timeout", "120",
        *(extra or []),
    ]  # fmt: skip


def run_sender(cmd: list[str], env: dict[str, str] | None = None, timeout_s: float = 1800) -> int:
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=REPO)
    try:
        return proc.wait(timeout_s)
    finally:
        stop(proc)


def start_proxy(
    base: Path, target_port: int, delay_ms: float, window_kib: int, cap: float, ack_ms: float
) -> tuple[subprocess.Popen[bytes], int]:
    ready = base / "proxy.json"
    ready.unlink(missing_ok=True)
    cmd = [
        sys.executable, str(HERE / "wanproxy.py"), "--target", f"127.0.0.1:{target_port}",
        "--delay-ms", str(delay_ms), "--window-kib", str(window_kib), "--cap-mb-s", str(cap),
        "--ready-file", str(ready), "--ack-delay-ms", str(ack_ms),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO)
    return proc, int(wait_ready(proc, ready)["port"])


def raw_put(base: Path, src: Path, size: int, tuned: bool = False) -> tuple[float, float]:
    """Seconds for one plain aiohttp HTTPS PUT of ``src`` (written + fsync'd), and the CPU
    seconds both processes spent on it. ``tuned``: both processes with the node's process
    settings (runtime/bulkio.py)."""
    flags = ["--tuned"] if tuned else []
    ready = base / "raw.json"
    ready.unlink(missing_ok=True)
    out = base / "raw.out"
    server = subprocess.Popen(
        [sys.executable, str(HERE / "rawput.py"), "serve", "--cert-dir", str(base / "rawtls"),
         "--out", str(out), "--ready-file", str(ready), *flags], cwd=REPO,
    )  # fmt: skip
    try:
        info = wait_ready(server, ready)
        server_cpu = cpu_s(server.pid)
        got = subprocess.run(
            [sys.executable, str(HERE / "rawput.py"), "put", "--url",
             f"https://127.0.0.1:{info['port']}/", "--fingerprint", info["fingerprint"],
             "--file", str(src), "--size", str(size), *flags],
            check=True, capture_output=True, cwd=REPO,
        )  # fmt: skip
        answer = json.loads(got.stdout)
        cpu = float(answer["cpu_s"]) + cpu_s(server.pid) - server_cpu
    finally:
        stop(server)
        out.unlink(missing_ok=True)
    return float(answer["seconds"]), cpu
