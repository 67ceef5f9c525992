"""A whole installation in real processes: ``hcc server`` and ``hcc node``s, on the real broker.

Processes are started with the CLI exactly as an operator would, logs go to files in the
test's tmp dir, and everything is stopped by PID at teardown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.fixtures.rabbit import free_port
from tests.waiting import eventually

ADMIN_PASSWORD = "fleet-admin-password"


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)

    def stop(self) -> int:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.returncode

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Fleet:
    root: Path
    amqp_url: str
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    server_port: int = 0
    token: str = ""

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Proc:
        log = self.root / f"{name}.log"
        out = log.open("ab")
        popen = subprocess.Popen(
            [sys.executable, "-m", "cli", *args],
            env={**os.environ, "HCC_LOG_LEVEL": "info", **self.env, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def start_server(self, **env: str) -> Proc:
        if not self.server_port:
            self.server_port = free_port()
        return self._spawn(
            "server",
            ["server", "--listen", f"127.0.0.1:{self.server_port}",
             "--data-dir", str(self.root / "server"), "--amqp-url", self.amqp_url],
            {"HCC_ADMIN_PASSWORD": ADMIN_PASSWORD, **env},
        )  # fmt: skip

    def start_node(self, node_id: str, token: str | None = None, **env: str) -> Proc:
        port_file = self.root / f"{node_id}.port"
        if not port_file.exists():
            port_file.write_text(str(free_port()))
        port = int(port_file.read_text())
        args = [
            "node",
            "--id",
            node_id,
            "--server",
            self.server_url,
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(self.root / node_id),
        ]
        if token:
            args += ["--enroll-token", token]
        return self._spawn(node_id, args, env)  # fmt: skip

    def cli(self, *args: str) -> str:
        """Run an ``hcc`` client command; returns stdout, raises with its output on failure."""
        result = subprocess.run(
            [sys.executable, "-m", "cli", *args],
            env={**os.environ, "HCC_SERVER": self.server_url, "HCC_TOKEN": self.token},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise AssertionError(f"hcc {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        async with aiohttp.ClientSession() as http, http.request(
            method, self.server_url + path, json=body,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as resp:  # fmt: skip
            data = await resp.json(content_type=None)
            assert resp.status < 400, f"{method} {path}: {resp.status} {data}"
            return data

    async def wait_ready(self) -> None:
        async def ready() -> bool:
            try:
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(self.server_url + "/readyz") as resp,
                ):
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, timeout_s=60, what="server ready")
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                self.server_url + "/api/v1/auth/login",
                json={"username": "admin", "password": ADMIN_PASSWORD},
            ) as resp,
        ):
            self.token = (await resp.json())["token"]

    async def node_status(self, node_id: str) -> str:
        node = await self.api("GET", f"/api/v1/nodes/{node_id}")
        status: str = node["status"]
        return status

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
