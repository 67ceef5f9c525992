"""A whole installation for the UI tests: vcsim, the vCD simulator, ``hcc server``, two nodes.

Everything runs as real processes (see :mod:`tests.e2e.fleet`); the set-up is synchronous so
the module-scoped fixture can build it once and Playwright's sync API can drive the browser.

``python -m tests.e2e.ui.stack`` starts the same stack by hand and prints the UI's URL and the
users' passwords (for looking at the UI while working on it); Ctrl-C stops everything.
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.vcsim.process import VcsimProcess, start_vcsim
from tests.e2e.fleet import ADMIN_PASSWORD, Fleet
from tests.fixtures.vcdsim import VcdSimProcess, start_vcd_sim
from tests.waiting import wait_until

VCD_USER, VCD_ORG, VCD_PASSWORD = "acme-admin", "acme", "hcc-demo-password"
USERS = {"admin": ADMIN_PASSWORD, "olga": "operator-password", "vic": "viewer-password"}
"""admin, an operator (olga) and a viewer (vic)."""
FAST = {"HCC_HEARTBEAT_INTERVAL_S": "1"}


class ApiError(AssertionError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status, self.body = status, body


@dataclass
class UiStack:
    root: Path
    amqp_url: str
    fleet: Fleet = field(init=False)
    vcsim: VcsimProcess | None = None
    vcd: VcdSimProcess | None = None

    def __post_init__(self) -> None:
        self.fleet = Fleet(self.root, self.amqp_url)

    @property
    def url(self) -> str:
        return self.fleet.server_url

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A call as admin (bearer token); raises :class:`ApiError` on 4xx/5xx."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.fleet.token}",
                   "Content-Type": "application/json"}  # fmt: skip
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, exc.read().decode(errors="replace")) from exc
        return json.loads(raw) if raw else None

    def start(self) -> None:
        self.vcsim = start_vcsim()
        self.vcd = start_vcd_sim(self.root / "vcdsim")
        self.fleet.start_server(HCC_HEARTBEAT_TIMEOUT_S="5")
        self.wait_ready()
        for node_id in ("n-vsphere", "n-vcd"):
            token = self.api("POST", "/api/v1/nodes", {"id": node_id})["enroll_token"]
            self.fleet.start_node(node_id, token, **FAST)
        wait_until(self._nodes_online, timeout_s=30, what="both nodes online")
        for name, role in (("olga", "operator"), ("vic", "viewer")):
            self.api("POST", "/api/v1/users", {"username": name, "password": USERS[name],
                                               "role": role})  # fmt: skip
        self.add_clouds()

    def wait_ready(self) -> None:
        """Like Fleet.wait_ready, without an event loop (Playwright's sync API owns it)."""

        def ready() -> bool:
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=5) as resp:
                    return bool(resp.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_until(ready, timeout_s=60, interval_s=0.1, what="server ready")
        self.fleet.token = self.login("admin", ADMIN_PASSWORD)

    def login(self, user: str, password: str) -> str:
        req = urllib.request.Request(
            self.url + "/api/v1/auth/login", method="POST",
            data=json.dumps({"username": user, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as resp:
            token: str = json.loads(resp.read())["token"]
            return token

    def _nodes_online(self) -> bool:
        nodes = self.api("GET", "/api/v1/nodes")["items"]
        return len(nodes) == 2 and all(n["status"] == "online" for n in nodes)

    def add_clouds(self) -> None:
        assert self.vcsim is not None
        assert self.vcd is not None
        self.api("POST", "/api/v1/clouds", {
            "id": "onprem", "kind": "vsphere", "endpoint": self.vcsim.sdk_url,
            "username": self.vcsim.username, "password": self.vcsim.password,
            "node_id": "n-vsphere", "insecure": True})  # fmt: skip
        self.api("POST", "/api/v1/clouds", {
            "id": "provider", "kind": "vcd", "endpoint": self.vcd.url, "username": VCD_USER,
            "password": VCD_PASSWORD, "org": VCD_ORG, "node_id": "n-vcd",
            "insecure": True})  # fmt: skip

    def wait_inventories(self, *clouds: str, timeout_s: float = 60) -> None:
        def listed() -> bool:
            views = {c["id"]: c for c in self.api("GET", "/api/v1/clouds")["items"]}
            return all(views[c]["inventory_at"] for c in clouds)

        wait_until(listed, timeout_s=timeout_s, what=f"inventories of {clouds}")

    def wait_task(self, task_id: str, timeout_s: float = 120) -> dict[str, Any]:
        def done() -> dict[str, Any]:
            task: dict[str, Any] = self.api("GET", f"/api/v1/tasks/{task_id}")
            return task if task["state"] in ("succeeded", "failed", "cancelled") else {}

        return wait_until(done, timeout_s=timeout_s, interval_s=0.2, what=f"task {task_id} ends")

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(lines)}" for p in self.fleet.procs)

    def close(self) -> None:
        self.fleet.close()
        if self.vcd is not None:
            self.vcd.stop()
        if self.vcsim is not None:
            self.vcsim.stop()


def main() -> int:
    """Run the stack until Ctrl-C (for working on the UI by hand)."""
    amqp = sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@127.0.0.1:5672/"
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop everything on SIGTERM too
    stack = UiStack(Path(tempfile.mkdtemp(prefix="hcc-ui-")), amqp)
    try:
        stack.start()
        print(f"UI: {stack.url}/  users: {USERS}  logs: {stack.root}", flush=True)
        stack.fleet.procs[0].popen.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stack.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
