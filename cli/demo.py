"""``hcc demo``: an all-in-one installation on this machine, and a copy from vSphere to vCD.

Starts (each as its own process, stopped by PID at the end): RabbitMQ when none answers,
vcsim with a seeded VM ``web-01`` (a real disk), the vCD simulator, the server, and two
nodes (``n-vsphere`` and ``n-vcd``) that enroll with one-time tokens. Registers both clouds,
waits for their inventories, copies ``web-01`` into the vCD catalog ``Templates`` and
deploys it as a vApp, with a progress bar per step. Then prints where the UI is and runs
until Ctrl-C; ``--exit`` stops everything instead and exits 0 when the copy succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from yarl import URL

from cli.client import Client, Credentials
from cli.watch import watch_task

VCD_PASSWORD = "hcc-demo-password"
DEMO_VM = "web-01"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


@dataclass
class Stack:
    """Processes the demo started, stopped in reverse order by PID."""

    root: Path
    console: Console
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    cleanups: list[Any] = field(default_factory=list)

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.root / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self.procs.append((name, proc))

    def check(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}; see {self.root}/{name}.log"
                )

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=20)
            self.console.print(f"[dim]stopped {name}[/dim]")
        for cleanup in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                cleanup()


def ensure_broker(url: str, stack: Stack) -> None:
    """Use the broker at ``url``; start the machine's RabbitMQ when none answers there."""
    u = URL(url)
    host, port = u.host or "127.0.0.1", u.port or 5672
    if answers(host, port):
        return
    if host not in ("127.0.0.1", "localhost") or not shutil.which("rabbitmq-server"):
        raise RuntimeError(f"no broker answers at {host}:{port} and none can be started here")
    stack.console.print("starting RabbitMQ (rabbitmq-server -detached) ...")
    subprocess.run(["rabbitmq-server", "-detached"], check=True)
    subprocess.run(["rabbitmqctl", "await_startup", "--timeout", "120"], check=True,
                   capture_output=True)  # fmt: skip
    stack.cleanups.append(lambda: subprocess.run(["rabbitmqctl", "stop"], capture_output=True))


def start_vcsim(stack: Stack, disk_mib: int) -> tuple[str, str, str]:
    """vcsim with VM ``web-01`` whose disk is a real streamOptimized VMDK."""
    from sim.vcsim import seed
    from sim.vcsim.process import start_vcsim as start

    sim = start(workdir=stack.root / "vcsim")
    stack.cleanups.append(sim.stop)
    si = seed.connect(sim.host, sim.port, sim.username, sim.password)
    try:
        disk = seed.make_disk_image(stack.root / f"{DEMO_VM}.vmdk", disk_mib * 1024 * 1024,
                                    seed=7, zero_fraction=0.5)  # fmt: skip
        vm = seed.seed_vm(si, sim.host, sim.port, DEMO_VM, [disk], cpus=2, memory_mib=512)
        seed.power_off(vm)
    finally:
        seed.disconnect(si)
    return sim.sdk_url, sim.username, sim.password


def start_vcd_sim(stack: Stack) -> str:
    data = stack.root / "vcd-sim"
    port = free_port()
    stack.spawn("vcd-sim", [sys.executable, "-m", "sim.vcd", "--listen", f"127.0.0.1:{port}",
                            "--data-dir", str(data), "--tls"])  # fmt: skip
    ready = data / "listening.json"
    deadline = time.monotonic() + 30
    while not ready.exists():
        stack.check()
        if time.monotonic() > deadline:
            raise RuntimeError("the vCD simulator did not start")
        time.sleep(0.1)
    url: str = json.loads(ready.read_text())["url"]
    return url


async def wait_ready(server: str, stack: Stack) -> None:
    import aiohttp

    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            stack.check()
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{server}/readyz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError("the server did not become ready")


async def until(what: str, probe: Any, stack: Stack, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stack.check()
        got = await probe()
        if got:
            return got
        await asyncio.sleep(0.3)
    raise RuntimeError(f"timed out waiting for {what}")


@dataclass
class Demo:
    stack: Stack
    console: Console
    amqp_url: str
    disk_mib: int
    port: int
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    @property
    def server(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_node(self, node_id: str, token: str) -> None:
        self.stack.spawn(node_id, [
            sys.executable, "-m", "cli", "node", "--id", node_id, "--server", self.server,
            "--enroll-token", token, "--listen", f"127.0.0.1:{free_port()}",
            "--data-dir", str(self.stack.root / node_id)])  # fmt: skip

    async def run(self) -> dict[str, Any]:
        c = self.console
        ensure_broker(self.amqp_url, self.stack)
        c.print("starting vcsim (VMware's vSphere simulator) with VM web-01 ...")
        sdk_url, vc_user, vc_password = await asyncio.to_thread(start_vcsim, self.stack,
                                                                self.disk_mib)  # fmt: skip
        c.print("starting the vCD simulator ...")
        vcd_url = await asyncio.to_thread(start_vcd_sim, self.stack)
        c.print(f"starting the server on {self.server} ...")
        self.stack.spawn("server", [
            sys.executable, "-m", "cli", "server", "--listen", f"127.0.0.1:{self.port}",
            "--data-dir", str(self.stack.root / "server"), "--amqp-url", self.amqp_url],
            {"HCC_ADMIN_PASSWORD": self.password, "HCC_BROKER_USERS": "none"})  # fmt: skip
        await wait_ready(self.server, self.stack)
        creds = Credentials(self.server, user="admin", password=self.password)
        async with Client(creds) as api:
            for node_id in ("n-vsphere", "n-vcd"):
                token = (await api.post("/api/v1/nodes", {"id": node_id}))["enroll_token"]
                self.start_node(node_id, token)

            async def online() -> bool:
                nodes = (await api.get("/api/v1/nodes"))["items"]
                return len(nodes) == 2 and all(n["status"] == "online" for n in nodes)

            await until("both nodes online", online, self.stack)
            c.print("nodes n-vsphere and n-vcd are online")
            await api.post(
                "/api/v1/clouds",
                {
                    "id": "onprem",
                    "kind": "vsphere",
                    "endpoint": sdk_url,
                    "username": vc_user,
                    "password": vc_password,
                    "node_id": "n-vsphere",
                    "insecure": True,
                },
            )
            await api.post(
                "/api/v1/clouds",
                {
                    "id": "provider",
                    "kind": "vcd",
                    "endpoint": vcd_url,
                    "username": "acme-admin",
                    "password": VCD_PASSWORD,
                    "org": "acme",
                    "node_id": "n-vcd",
                    "insecure": True,
                },
            )

            async def inventories() -> bool:
                clouds = (await api.get("/api/v1/clouds"))["items"]
                return all(x["inventory_at"] for x in clouds)

            await until("both inventories", inventories, self.stack)
            c.print("both clouds registered; copying web-01 from vSphere to vCD ...")
            task = await api.post("/api/v1/tasks", {
                "kind": "copy", "source": {"cloud": "onprem", "ref": f"DC0/vm/{DEMO_VM}"},
                "destination": {"cloud": "provider", "catalog": "Templates",
                                "name": DEMO_VM, "on_conflict": "suffix"},
                "deploy": {"name": f"{DEMO_VM}-vapp"}})  # fmt: skip
            final: dict[str, Any] = await watch_task(api, task["id"], c)
            return final


def run_demo(exit_after: bool, amqp_url: str, disk_mib: int, port: int | None) -> int:
    console = Console()
    root = Path(tempfile.mkdtemp(prefix="hcc-demo-"))
    stack = Stack(root, console)
    demo = Demo(stack, console, amqp_url, disk_mib, port or free_port())
    ok = False
    try:
        final = asyncio.run(demo.run())
        ok = final["state"] == "succeeded"
        _summary(console, demo, final, exit_after)
        if not exit_after:
            _wait_for_ctrl_c()
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        console.print(f"logs are in {root}")
    finally:
        console.print("stopping everything the demo started ...")
        stack.stop()
    if ok:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


def _summary(console: Console, demo: Demo, final: dict[str, Any], exit_after: bool) -> None:
    colour = "green" if final["state"] == "succeeded" else "red"
    console.print(f"\ncopy [{colour}]{final['state']}[/{colour}]")
    console.print(f"UI and API: [bold]{demo.server}/[/bold]  (user admin, password "
                  f"[bold]{demo.password}[/bold])")  # fmt: skip
    console.print(f"logs: {demo.stack.root}")
    if not exit_after:
        hcc = Path(sys.executable).with_name("hcc")  # the virtualenv's, not on PATH
        console.print("the task from the CLI:")
        console.print(f"  HCC_USER=admin HCC_PASSWORD={demo.password} {hcc} tasks show "
                      f"{final['id']} --server {demo.server}", soft_wrap=True,
                      highlight=False)  # fmt: skip
        console.print("running until Ctrl-C")


def _wait_for_ctrl_c() -> None:
    stop = False

    def handler(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, handler)
    with contextlib.suppress(KeyboardInterrupt):
        while not stop:
            time.sleep(0.5)
