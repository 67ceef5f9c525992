"""A whole copy vSphere → vCD (or back) against each of its stages alone (issue 7).

    .venv/bin/python bench/copy.py [--disk-mib 64] [--rate-mb-s 8] [--send-mb-s 10] [--rounds 1]
                                   [--direction vsphere-vcd|vcd-vsphere]

Real processes, as ``make demo`` runs them: vcsim with one powered-off VM ``big`` whose disk
is a streamOptimized VMDK of random bytes (qemu-img; the file is about ``--disk-mib``), the
vCD simulator, ``hcc server`` and two nodes (n1 serves vcsim, n2 the vCD) on a private
RabbitMQ vhost. The simulators' data paths are slowed below what 2 cores can do, so the
stages do not fight over the CPU and the figures say what the pipeline does, not what the
machine does: vcsim and the vCD simulator are reached through paced
:class:`~tests.e2e.throttle.Throttle` proxies (``--rate-mb-s`` per connection and
direction, kept on a busy machine; the NFC disk download and the vCD file upload are one
connection each) and the send is capped with the copy's own
``bandwidth_mb_per_s`` (``--send-mb-s``, the node-to-node link).

Each round measures, one after the other:

* ``total_s``: a ``copy`` task (export → send → import → refresh → cleanups), from its
  creation to its end (server timestamps). The copy overlaps export and send (the send
  streams the files while the export writes them). The import step runs beside the send
  too and uploads each file as it arrives, but it starts on the descriptor, and a vSphere
  export writes the descriptor last (it declares every file's final size): in this
  direction the import's work follows the send.
* ``export_s``: an ``export`` task of the same VM (the stage alone, kept in n1's storage);
  creation to end.
* ``send_s``: that exported package pushed to n2's receiver with the transfer engine's
  ``send_package`` (the function n1's send step calls, with the copy's streams, chunk size
  and cap), under an upload grant of the server (``POST /api/v1/uploads``). It runs in this
  process rather than in n1: the same code on the same loopback; what it lacks is the
  dispatch of a command through the broker (milliseconds). Sending a finished export is
  the send alone: nothing waits for a file to grow.
* ``import_s``: an ``import`` task of the package the send left in n2's storage (import →
  refresh → cleanup: the same tail as the copy's); creation to end.

``ratio = total_s / (max(export_s, send_s) + import_s)`` (target ≤ 1.15): 1.0 is a copy
that overlaps export and send perfectly and adds nothing between the stages; ``excess_s``
is what it adds. ``ratio_vs_slowest_stage = total_s / max(export_s, send_s, import_s)``:
1.0 would be a perfect pipeline of all three stages. The copy's own step timestamps say
where the time goes: ``copy_steps`` (each step's seconds within the copy),
``export_send_overlap_s``, ``send_end_after_export_end_s`` (how far the send trails the
export), ``import_start_after_send_end_s`` (negative: the import step started beside the
send and waited for the descriptor), ``import_end_after_send_end_s`` (the import's work
after the send), ``head_s`` (task created → export started) and ``tail_s`` (import
finished → task finished: refresh and cleanups; the import alone has them too).

``--direction vcd-vsphere`` copies the other way: the VM is first uploaded to the vCD
simulator as the template ``big`` (setup, not paced), then each round copies that template
to vcsim's ``DC0/vm``, and the stages alone are its export from the vCD, the send to n1 and
an import into vcsim. A vCD export writes the descriptor first, so here the import runs
beside the send and the export: it makes the VM from the descriptor and uploads each disk
as soon as it has arrived whole, while the next ones are being exported and sent; what is
left after the send (``import_end_after_send_end_s``) is the last disk's upload. A file is
the unit of that overlap (``--disks``). With paced connections, vcsim takes the disks of an
import alone over as many connections at once, so the last disk alone takes about as long
as all of them: the figure shows the overlap in ``copy_steps`` and in that tail, not in
``ratio``.

What it showed (64 MiB, defaults, 2 shared cores at load 6-13): ratio 1.04-1.07, excess
0.7-1.3 s, of which the send ending 0.9-1.15 s after the export is nearly all; the import
started 0.02-0.03 s after the send ended (before it ran beside the send), the head is
0.02-0.07 s, and each stage takes as long in the copy as alone (± 0.3 s). The send trails
because a chunk goes only once the export has written all of it: the last full 8 MiB chunk
leaves after the export's last bytes, at the send cap (0.84 s at 10 MB/s), after up to one
0.5 s poll of the sender (``SendOptions.poll_interval_s``) and before the commit. With
``--chunk-mib 2`` it trailed by 0.5 s (ratio 0.97 in that run: the stages alone vary by ~1 s
between runs). The excess is about fixed, so the ratio grows as the disk shrinks: 1.21-1.24
at 16 MiB (5 s of stages), 1.03 at 256 MiB (16 MB/s, 20 MB/s cap).

With the import beside the send (2026-11-26, 3 rounds): ratio 1.047-1.051, the import's
work ending 8.75 s after the send for 8.89 s alone. ``--direction vcd-vsphere --disks 4``
(1 round): ratio 1.13, the import step running from the export's start and ending 2.37 s
after the send (the last disk's upload; 2.31 s for the whole import alone).

Not measured: ``govc export.ovf`` + ``govc import.ovf`` as a baseline (the issue's optional
part). Debian's govmomi source (golang-github-vmware-govmomi-dev 0.24.2) has the library and
the simulator but not ``govc/``, and Debian has no govc package; writing an equivalent Go
program on govmomi's ``ovf``/``nfc`` packages was left out of this change.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # the script's folder first on sys.path shadows the stdlib's `copy`
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import asyncio
import contextlib
import hashlib
import json
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from yarl import URL

MIB = 1024 * 1024
BROKER = os.environ.get("HCC_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
TARGET_RATIO = 1.15
PACE_S = 0.25
"""The proxies keep their rate on a busy machine (see Throttle)."""
VM = "big"


# --------------------------------------------------------------------------- figures (pure)


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def task_seconds(task: dict[str, Any]) -> float:
    """A finished task's wall time, creation to end (server clock)."""
    return _ts(task["finished_at"]) - _ts(task["created_at"])


def stage_ratio(total_s: float, export_s: float, send_s: float, import_s: float) -> float:
    """The copy against its stages alone: export and send may overlap, the import follows."""
    return total_s / (max(export_s, send_s) + import_s)


def copy_figures(task: dict[str, Any]) -> dict[str, Any]:
    """Where a finished copy's time went, from its steps' timestamps (seconds)."""
    steps = {s["name"]: s for s in task["steps"]}
    span = {n: (_ts(s["started_at"]), _ts(s["finished_at"])) for n, s in steps.items()
            if s["started_at"] and s["finished_at"]}  # fmt: skip
    (e0, e1), (s0, s1), (i0, i1) = span["export"], span["send"], span["import"]
    created, finished = _ts(task["created_at"]), _ts(task["finished_at"])
    return {
        "copy_steps": {n: round(b - a, 2) for n, (a, b) in span.items()},
        "export_send_overlap_s": round(max(0.0, min(e1, s1) - max(e0, s0)), 2),
        "send_start_after_export_start_s": round(s0 - e0, 2),
        "send_end_after_export_end_s": round(s1 - e1, 2),
        "import_start_after_send_end_s": round(i0 - s1, 2),
        "import_end_after_send_end_s": round(i1 - s1, 2),
        "head_s": round(e0 - created, 2),
        "tail_s": round(finished - i1, 2),
    }


def spread(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "max": round(max(values), 3)}  # fmt: skip


# --------------------------------------------------------------------------- the run


class Bench:
    def __init__(self, fleet: Any, args: argparse.Namespace, source: dict[str, str]) -> None:
        self.fleet = fleet
        self.args = args
        self.n = 0
        self.source = source
        """``{"cloud", "ref"}`` of what is copied."""
        self.to_vcd = args.direction == "vsphere-vcd"

    @property
    def options(self) -> dict[str, Any]:
        a = self.args
        return {"streams": a.streams, "chunk_mib": a.chunk_mib, "bandwidth_mb_per_s": a.send_mb_s}

    async def run_task(self, body: dict[str, Any]) -> dict[str, Any]:
        from tests.e2e.test_copy_directions import succeeded

        task = await self.fleet.api("POST", "/api/v1/tasks", body)
        done: dict[str, Any] = await succeeded(self.fleet, task["id"], timeout_s=600)
        return done

    def destination(self, label: str) -> dict[str, Any]:
        self.n += 1
        name = f"{VM}-{label}-{self.n}"
        if self.to_vcd:
            return {"cloud": "provider", "catalog": "Templates", "name": name,
                    "on_conflict": "suffix"}  # fmt: skip
        return {"cloud": "onprem", "folder": "DC0/vm", "name": name, "on_conflict": "suffix"}

    async def copy(self) -> dict[str, Any]:
        return await self.run_task({
            "kind": "copy", "source": self.source,
            "destination": self.destination("copy"), "options": self.options})  # fmt: skip

    async def export(self) -> dict[str, Any]:
        return await self.run_task({"kind": "export", "source": self.source})

    async def send(self, export_task: dict[str, Any]) -> tuple[float, str, dict[str, Any]]:
        """Push the exported package to n2 as an upload: (seconds, artifact, destination)."""
        from protocol.messages import SendBody
        from workers.transfer.sender import send_package

        artifact = export_task["spec"]["artifact_id"]
        node = "n1" if self.to_vcd else "n2"
        package = next(p for p in (self.fleet.root / node).rglob(artifact) if p.is_dir())
        mf = next(package.glob("*.mf"), None) or next(package.glob("*.ovf"))
        dest = self.destination("alone")
        request = {"cloud": dest["cloud"], "name": dest["name"], "destination": dest,
                   "key": hashlib.sha256(mf.read_bytes()).hexdigest()}  # fmt: skip
        grant = await self.fleet.api("POST", "/api/v1/uploads", request)
        a = self.args
        body = SendBody(artifact_id=grant["artifact_id"], destination_node=grant["node_id"],
                        destination_url=grant["receiver_url"],
                        destination_fingerprint=grant["fingerprint"], token=grant["token"],
                        streams=a.streams, chunk_bytes=a.chunk_mib * MIB,
                        bandwidth_bytes_per_s=int(a.send_mb_s * 1e6))  # fmt: skip

        async def progress(_done: int, _total: int | None, _rate: float) -> None:
            return None

        async def refresh() -> str:
            token: str = (await self.fleet.api("POST", "/api/v1/uploads", request))["token"]
            return token

        t0 = time.perf_counter()
        await send_package(package, body, progress, refresh)
        return time.perf_counter() - t0, grant["artifact_id"], dest

    async def import_(self, artifact: str, dest: dict[str, Any]) -> dict[str, Any]:
        return await self.run_task({"kind": "import", "artifact_id": artifact, "destination": dest})

    async def drop_export(self, export_task: dict[str, Any]) -> None:
        from tests.e2e.test_copy_directions import succeeded

        task = await self.fleet.api("DELETE", f"/api/v1/tasks/{export_task['id']}/artifact")
        await succeeded(self.fleet, task["id"])

    async def round(self) -> dict[str, Any]:
        copied = await self.copy()
        exported = await self.export()
        send_s, artifact, dest = await self.send(exported)
        imported = await self.import_(artifact, dest)
        await self.drop_export(exported)
        total_s, export_s, import_s = (task_seconds(t) for t in (copied, exported, imported))
        return {
            "total_s": round(total_s, 2),
            "export_s": round(export_s, 2),
            "send_s": round(send_s, 2),
            "import_s": round(import_s, 2),
            "ratio": round(stage_ratio(total_s, export_s, send_s, import_s), 3),
            "ratio_vs_slowest_stage": round(total_s / max(export_s, send_s, import_s), 3),
            "excess_s": round(total_s - max(export_s, send_s) - import_s, 2),
            **copy_figures(copied),
            "import_alone_step_s": copy_figures_step(imported, "import"),
        }


def copy_figures_step(task: dict[str, Any], name: str) -> float:
    step = next(s for s in task["steps"] if s["name"] == name)
    return round(_ts(step["finished_at"]) - _ts(step["started_at"]), 2)


def vhost(action: str, name: str) -> None:
    subprocess.run(["rabbitmqctl", action, name], check=True, capture_output=True)
    if action == "add_vhost":
        subprocess.run(["rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
                       check=True, capture_output=True)  # fmt: skip


def seed_vcsim(root: Path, disk_mib: int, disks: int) -> Any:
    from sim.vcsim import seed
    from sim.vcsim.process import start_vcsim

    sim = start_vcsim(workdir=root / "vcsim")
    try:
        si = seed.connect(sim.host, sim.port, sim.username, sim.password)
        try:
            images = [seed.make_disk_image(root / f"{VM}-{i}.vmdk", disk_mib * MIB // disks,
                                           seed=7 + i, zero_fraction=0.0)
                      for i in range(disks)]  # fmt: skip
            seed.power_off(seed.seed_vm(si, sim.host, sim.port, VM, images))
        finally:
            seed.disconnect(si)
    except BaseException:
        sim.stop()
        raise
    return sim, sum(image.stat().st_size for image in images)


async def run(args: argparse.Namespace, root: Path, amqp_url: str) -> dict[str, Any]:
    from tests.e2e.fleet import Fleet
    from tests.e2e.test_copy import add_vcd_cloud
    from tests.e2e.test_copy_directions import (
        inventories_listed,
        inventory_path,
        seed_vcd_from_vsphere,
        server_and_nodes,
    )
    from tests.e2e.test_fleet import add_vcsim_cloud
    from tests.e2e.throttle import Throttle
    from tests.fixtures.vcdsim import start_vcd_sim

    rate = args.rate_mb_s * 1e6
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        vcsim, disk_bytes = await asyncio.to_thread(seed_vcsim, root, args.disk_mib, args.disks)
        stack.callback(vcsim.stop)
        vcd = start_vcd_sim(root / "vcdsim")
        stack.callback(vcd.stop)
        source = {"cloud": "onprem", "ref": f"DC0/vm/{VM}"}
        if args.direction == "vcd-vsphere":  # the same VM as a template in the vCD (unpaced)
            await seed_vcd_from_vsphere(vcd, vcsim, source["ref"], VM, root)
        vcd_url = URL(vcd.url)
        proxies = [Throttle(vcsim.host, vcsim.port, rate, pace_s=PACE_S),
                   Throttle(vcd_url.host or "127.0.0.1", vcd_url.port or 80, rate,
                            pace_s=PACE_S)]  # fmt: skip
        for proxy in proxies:
            stack.callback(proxy.close)
        fleet = Fleet(root / "fleet", amqp_url)
        fleet.root.mkdir()
        stack.callback(fleet.close)
        await server_and_nodes(fleet, "n1", "n2")
        add_vcsim_cloud(fleet, vcsim, "onprem", "n1",
                        endpoint=f"https://127.0.0.1:{proxies[0].port}/sdk")  # fmt: skip
        add_vcd_cloud(fleet, vcd, "provider", "n2", endpoint=f"http://127.0.0.1:{proxies[1].port}")
        await inventories_listed(fleet, 2)
        if args.direction == "vcd-vsphere":
            ref = await inventory_path(fleet, "provider", "vapp_template", VM)
            source = {"cloud": "provider", "ref": ref}
        setup_s = time.perf_counter() - t0
        bench = Bench(fleet, args, source)
        rounds = [await bench.round() for _ in range(args.rounds)]
    # the round of median ratio is the headline (the lower one of an even count): the best
    # of a few would flatter, and the spread below shows the rest
    median = sorted(rounds, key=lambda r: r["ratio"])[(len(rounds) - 1) // 2]
    out: dict[str, Any] = {
        "bench": "copy",
        "direction": args.direction,
        "disk_mib": args.disk_mib,
        "disks": args.disks,
        "disk_file_mib": round(disk_bytes / MIB, 1),
        "sim_rate_mb_s": args.rate_mb_s,
        "send_cap_mb_s": args.send_mb_s,
        "setup_s": round(setup_s, 1),
        **median,
        "target_ratio": TARGET_RATIO,
    }
    if len(rounds) > 1:
        out["rounds"] = len(rounds)
        out["ratio_spread"] = spread([r["ratio"] for r in rounds])
        out["total_s_spread"] = spread([r["total_s"] for r in rounds])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--disk-mib", type=int, default=64, help="virtual (and about file) size")
    p.add_argument("--disks", type=int, default=1, help="--disk-mib split over this many disks")
    p.add_argument("--direction", choices=("vsphere-vcd", "vcd-vsphere"),
                   default="vsphere-vcd", help="vcd-vsphere: the VM is first put into the "
                   "vCD as a template (not paced)")  # fmt: skip
    p.add_argument("--rate-mb-s", type=float, default=8.0,
                   help="the simulators' data paths, MB/s per connection")  # fmt: skip
    p.add_argument("--send-mb-s", type=float, default=10.0, help="the send's cap, MB/s")
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--chunk-mib", type=int, default=8)
    p.add_argument("--rounds", type=int, default=1, help="copy + stages alone; the median counts")
    p.add_argument("--workdir", default=None, help="where the files go (default: a temp dir)")
    args = p.parse_args()
    from runtime.logging import configure_logging

    configure_logging("warning")  # stderr: stdout is the one JSON line
    name = f"hcc-bench-copy-{uuid.uuid4().hex[:8]}"
    vhost("add_vhost", name)
    url = str(URL(BROKER).with_path("/" + name))
    try:
        with tempfile.TemporaryDirectory(prefix="hcc-bench-copy-", dir=args.workdir) as d:
            result = asyncio.run(run(args, Path(d), url))
    finally:
        vhost("delete_vhost", name)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
