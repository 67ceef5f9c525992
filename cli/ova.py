"""``hcc export CLOUD:PATH FILE.ova`` and ``hcc import FILE.ova CLOUD:TARGET``: OVA files for
offline transfer, the way vCloud Connector shipped disks.

The server never carries disk bytes: it signs a capability token and names the node; the
CLI moves the bytes straight to or from the node's HTTPS transfer listener, pinned to the
node's certificate fingerprint (docs/copy.md, "OVA files").

- import: check and extract the OVA into a temporary folder (a hostile archive is refused
  before anything is uploaded), ``POST /uploads`` for a push grant, send the package with
  the transfer engine's own sender (resumable: running the command again sends only the
  chunks the node does not hold yet), then an ``import`` task, watched.
- export: an ``export`` task, watched; ``POST /tasks/{id}/download`` for a read grant; the
  files are written straight into ``FILE.ova.part`` at the offsets an
  :class:`~workers.ovf.ova.OvaLayout` gives, each checked against the manifest, and renamed
  to ``FILE.ova``; then ``DELETE /tasks/{id}/artifact`` empties the node's storage. An
  interrupted export resumes: ``FILE.ova.hcc.json`` remembers the task, the download goes on
  from the end of ``FILE.ova.part`` with HTTP ranges.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from cli.client import ApiError, Client, Credentials
from cli.watch import watch_task

# The transfer engine and the OVA code are imported when a command runs, so that every other
# `hcc` command starts as fast as before.

console = Console()
err = Console(stderr=True)
T = TypeVar("T")
ServerOpt = Annotated[
    str | None, typer.Option("--server", help="Server URL (env HCC_SERVER)", show_default=False)
]
KeepOpt = Annotated[
    bool, typer.Option("--keep-on-node", help="Leave the package in the node's storage")
]
FINAL = ("succeeded", "failed", "cancelled")


def byte_bar(console: Console) -> Progress:
    """A rich progress bar in bytes: done / total, rate, time left."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _run(server: str | None, fn: Callable[[Client], Awaitable[T]]) -> T:
    async def run() -> T:
        async with Client(Credentials.from_env(server)) as client:
            return await fn(client)

    from cli.ova_download import ExportFailed
    from workers.ovf.ova import OvaError
    from workers.transfer.errors import TransferError

    try:
        return asyncio.run(run())
    except (ApiError, OvaError, TransferError, ExportFailed) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


async def wait_quietly(client: Client, task_id: str, timeout_s: float = 120) -> str:
    """Poll a short task (a clean-up) until it ends; its final state."""
    deadline = time.monotonic() + timeout_s
    while True:
        state: str = (await client.get(f"/api/v1/tasks/{task_id}"))["state"]
        if state in FINAL or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.5)


# --------------------------------------------------------------------------- import


async def _extract(ova: Path, dest: Path) -> Any:
    from workers.ovf.ova import extract_ova

    total = (await asyncio.to_thread(ova.stat)).st_size
    with byte_bar(err) as bars:
        bar = bars.add_task(f"check {ova.name}", total=total)
        loop = asyncio.get_running_loop()

        def advance(n: int) -> None:
            loop.call_soon_threadsafe(lambda: bars.advance(bar, n))

        extracted = await asyncio.to_thread(extract_ova, ova, dest, advance)
        bars.update(bar, completed=total)
    return extracted


async def upload_package(client: Client, package: Path, dest: dict[str, Any], key: str,
                         streams: int, chunk_mib: int) -> str:  # fmt: skip
    """Push ``package`` to the node of the cloud of ``dest`` (resuming); its artifact id.
    The server checks ``dest`` (catalog or folder, name) before granting anything."""
    from protocol.messages import SendBody
    from workers.transfer.sender import send_package

    request = {"cloud": dest["cloud"], "name": dest["name"], "key": key, "destination": dest}
    grant = await client.post("/api/v1/uploads", request)
    body = SendBody(artifact_id=grant["artifact_id"], destination_node=grant["node_id"],
                    destination_url=grant["receiver_url"],
                    destination_fingerprint=grant["fingerprint"], token=grant["token"],
                    streams=streams, chunk_bytes=chunk_mib * 1024 * 1024)  # fmt: skip

    async def refresh_token() -> str:
        token: str = (await client.post("/api/v1/uploads", request))["token"]
        return token

    with byte_bar(err) as bars:
        bar = bars.add_task(f"upload to {grant['node_id']}", total=None)

        async def progress(done: int, total: int | None, _rate: float) -> None:
            bars.update(bar, completed=done, total=total)

        result = await send_package(package, body, progress, refresh_token)
    held = f", {result.chunks_held} already on the node" if result.chunks_held else ""
    err.print(f"uploaded {result.chunks_sent} of {result.chunks_total} chunks{held} "
              f"({result.zero_chunks} zero chunks not sent)")  # fmt: skip
    return body.artifact_id


async def import_ova(client: Client, ova: Path, destination: str, *, deploy: str | None,
                     network: str | None, on_conflict: str, streams: int, chunk_mib: int,
                     work_dir: Path | None, keep: bool, watch: bool) -> dict[str, Any]:  # fmt: skip
    from cli.main import destination_body, split_ref

    cloud, path = split_ref(destination, "DESTINATION")
    kind = (await client.get(f"/api/v1/clouds/{cloud}"))["kind"]
    dest = destination_body(kind, cloud, path)
    dest.update({"on_conflict": on_conflict, "network": network})
    with tempfile.TemporaryDirectory(prefix="hcc-import-", dir=work_dir) as tmp:
        extracted = await _extract(ova, Path(tmp) / "package")
        key = extracted.sha256[extracted.manifest]
        artifact_id = await upload_package(client, extracted.directory, dest, key, streams,
                                           chunk_mib)  # fmt: skip
    body: dict[str, Any] = {"kind": "import", "artifact_id": artifact_id, "destination": dest,
                            "options": {"keep_artifacts": keep}}  # fmt: skip
    if deploy:
        body["deploy"] = {"name": deploy, "network": network}
    task: dict[str, Any] = await client.post("/api/v1/tasks", body)
    typer.echo(task["id"])
    if watch:
        task = await watch_task(client, task["id"], err)
    return task


def import_command(
    ova: Annotated[Path, typer.Argument(help="The OVA file", exists=True, dir_okay=False)],
    destination: Annotated[
        str, typer.Argument(help="CLOUD:CATALOG/NAME (vCD) or CLOUD:DC/FOLDER/NAME (vSphere)")
    ],
    deploy: Annotated[
        str | None, typer.Option(help="Also deploy it: a vApp (vCD) or VM (vSphere) named so")
    ] = None,
    network: Annotated[str | None, typer.Option(help="Network for the deployed copy")] = None,
    on_conflict: Annotated[str, typer.Option(help="fail or suffix when the name is taken")] = (
        "fail"
    ),
    streams: Annotated[int, typer.Option(help="Parallel upload streams")] = 4,
    chunk_mib: Annotated[int, typer.Option(help="Upload chunk size (MiB)")] = 8,
    work_dir: Annotated[
        Path | None, typer.Option(help="Where the OVA is extracted (default: the temp dir)")
    ] = None,
    keep_on_node: KeepOpt = False,
    watch: Annotated[bool, typer.Option(help="Follow the import task until it ends")] = True,
    server: ServerOpt = None,
) -> None:
    """Import an OVA into a cloud: checked, uploaded to the cloud's node (resumable), imported."""
    task = _run(server, lambda c: import_ova(
        c, ova, destination, deploy=deploy, network=network, on_conflict=on_conflict,
        streams=streams, chunk_mib=chunk_mib, work_dir=work_dir, keep=keep_on_node, watch=watch,
    ))  # fmt: skip
    if watch and task["state"] != "succeeded":
        raise typer.Exit(1)


# --------------------------------------------------------------------------- export


def _state_path(out: Path) -> Path:
    return out.with_name(out.name + ".hcc.json")


async def _export_task(client: Client, cloud: str, ref: str, out: Path) -> dict[str, Any]:
    """The export task to download from: the one an interrupted run left, or a new one."""
    state_path = _state_path(out)
    wanted = {"server": client.creds.server, "cloud": cloud, "ref": ref}
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if {k: state.get(k) for k in wanted} == wanted:
            try:
                task = await client.get(f"/api/v1/tasks/{state['task']}")
            except ApiError:
                task = None
            if task is not None and task["state"] not in ("failed", "cancelled"):
                err.print(f"resuming export task {task['id']}")
                return {**state, "task": task["id"]}
    task = await client.post("/api/v1/tasks", {"kind": "export",
                                               "source": {"cloud": cloud, "ref": ref}})  # fmt: skip
    state = {**wanted, "task": task["id"], "mtime": int(time.time())}
    tmp = state_path.with_name(state_path.name + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, state_path)
    out.with_name(out.name + ".part").unlink(missing_ok=True)  # a new task: a new archive
    return state


async def export_ova(client: Client, source: str, out: Path, keep: bool) -> None:
    from cli.main import split_ref
    from cli.ova_download import ExportFailed, download_with_retries

    cloud, ref = split_ref(source, "SOURCE")
    state = await _export_task(client, cloud, ref, out)
    typer.echo(state["task"])
    task = await watch_task(client, state["task"], err)
    if task["state"] != "succeeded":
        raise ExportFailed(f"the export task {task['id']} is {task['state']}")

    async def grant() -> dict[str, Any]:
        answer: dict[str, Any] = await client.post(f"/api/v1/tasks/{task['id']}/download")
        return answer

    def retrying(exc: Exception) -> None:
        err.print(f"[yellow]{exc}[/yellow]; resuming with a fresh grant")

    with byte_bar(err) as bars:
        await download_with_retries(grant, out, int(state["mtime"]), bars, on_retry=retrying)
    _state_path(out).unlink(missing_ok=True)
    err.print(f"wrote {out} ({(await asyncio.to_thread(out.stat)).st_size} bytes)")
    if not keep:
        cleanup = await client.request("DELETE", f"/api/v1/tasks/{task['id']}/artifact")
        final = await wait_quietly(client, cleanup["id"])
        if final != "succeeded":
            err.print(f"[yellow]warning:[/yellow] clean-up task {cleanup['id']} is {final}; "
                      "the package may still be in the node's storage")  # fmt: skip


def export_command(
    source: Annotated[str, typer.Argument(help="CLOUD:PATH of a VM, template or vApp")],
    out: Annotated[Path, typer.Argument(help="The OVA file to write", dir_okay=False)],
    keep_on_node: KeepOpt = False,
    server: ServerOpt = None,
) -> None:
    """Export a VM, template or vApp to an OVA file (run it again to resume a download)."""
    _run(server, lambda c: export_ova(c, source, out, keep_on_node))
