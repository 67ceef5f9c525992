"""The ``hcc`` command: runs the server and nodes, and talks to the server's API.

Client commands take ``--server`` (env HCC_SERVER) and credentials from HCC_TOKEN or
HCC_USER / HCC_PASSWORD.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

import typer
from rich.console import Console
from rich.table import Table

from cli.client import ApiError, Client, Credentials
from cli.node import node as node_command
from cli.ova import export_command, import_command
from cli.units import size
from cli.watch import watch_task
from protocol.schema import message_schemas

app = typer.Typer(no_args_is_help=True, help="hcc — Hybrid Cloud Connector")
nodes_app = typer.Typer(no_args_is_help=True, help="Nodes: add, list, remove")
clouds_app = typer.Typer(no_args_is_help=True, help="Clouds: add, list, inventory, refresh")
tasks_app = typer.Typer(no_args_is_help=True, help="Tasks: list, show, watch, cancel, retry")
app.add_typer(nodes_app, name="nodes")
app.add_typer(clouds_app, name="clouds")
app.add_typer(tasks_app, name="tasks")
app.command("node")(node_command)  # hcc node: cli/node.py
app.command("export")(export_command)  # hcc export / import: OVA files, cli/ova.py
app.command("import")(import_command)

console = Console()
err = Console(stderr=True)
T = TypeVar("T")

ServerOpt = Annotated[
    str | None, typer.Option("--server", help="Server URL (env HCC_SERVER)", show_default=False)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def _call(server: str | None, fn: Callable[[Client], Awaitable[T]]) -> T:
    async def run() -> T:
        async with Client(Credentials.from_env(server)) as client:
            return await fn(client)

    try:
        return asyncio.run(run())
    except ApiError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)


# --------------------------------------------------------------------------- server


@app.command()
def server(
    listen: Annotated[str | None, typer.Option(help="HOST:PORT (env HCC_LISTEN)")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data dir (env HCC_DATA_DIR)")] = None,
    amqp_url: Annotated[str | None, typer.Option(help="Broker URL (env HCC_AMQP_URL)")] = None,
    db_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (env HCC_DB_URL)")] = None,
) -> None:
    """Run the server: API, UI, task engine."""
    from cli.serve import run_server

    overrides = {"listen": listen, "data_dir": data_dir, "amqp_url": amqp_url, "db_url": db_url}
    run_server({k: v for k, v in overrides.items() if v is not None})


@app.command()
def demo(
    exit_after: Annotated[
        bool, typer.Option("--exit", help="Stop everything after the copy; exit 0 if it worked")
    ] = False,
    amqp_url: Annotated[
        str, typer.Option(help="Broker; started here when none answers", envvar="HCC_AMQP_URL")
    ] = "amqp://guest:guest@127.0.0.1:5672/",
    disk_mib: Annotated[int, typer.Option(help="Size of the demo VM's disk")] = 256,
    port: Annotated[int | None, typer.Option(help="Server port (default: a free one)")] = None,
) -> None:
    """All-in-one: broker, vcsim, vCD simulator, server, two nodes; copy a VM vSphere → vCD."""
    from cli.demo import run_demo

    raise typer.Exit(run_demo(exit_after, amqp_url, disk_mib, port))


@app.command()
def schema() -> None:
    """Print the JSON Schema of every bus message."""
    typer.echo(json.dumps(message_schemas(), indent=2, sort_keys=True))


@app.command()
def asyncapi() -> None:
    """Print the AsyncAPI 3.0 document of the AMQP interface (events, RPC, commands)."""
    from importlib.metadata import version as dist_version

    from protocol.asyncapi import build

    typer.echo(json.dumps(build(version=dist_version("hcc")), indent=2))


@app.command()
def version() -> None:
    """Print hcc's version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("hcc"))


# --------------------------------------------------------------------------- nodes


@nodes_app.command("add")
def nodes_add(node_id: str, server: ServerOpt = None) -> None:
    """Add a node; prints its one-time enrollment token as the last line."""
    data = _call(server, lambda c: c.post("/api/v1/nodes", {"id": node_id}))
    err.print(f"node {data['id']} added; enroll it with: hcc node --id {data['id']} "
              "--enroll-token <token> ...")  # fmt: skip
    typer.echo(data["enroll_token"])


@nodes_app.command("list")
def nodes_list(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Nodes with status, version, last heartbeat and free transfer storage."""
    items = _call(server, lambda c: c.all_pages("/api/v1/nodes"))
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    _table("nodes", ["id", "status", "version", "last heartbeat", "free storage", "receiver"],
           [[n["id"], n["status"], n["version"], n["last_heartbeat"], size(n["free_bytes"]),
             n["receiver_url"]] for n in items])  # fmt: skip


@nodes_app.command("remove")
def nodes_remove(node_id: str, server: ServerOpt = None) -> None:
    """Remove a node that serves no cloud."""
    _call(server, lambda c: c.request("DELETE", f"/api/v1/nodes/{node_id}"))
    err.print(f"node {node_id} removed")


# --------------------------------------------------------------------------- clouds


@clouds_app.command("add")
def clouds_add(
    cloud_id: str,
    kind: Annotated[str, typer.Option(help="vsphere or vcd")],
    endpoint: Annotated[str, typer.Option(help="vCenter SDK URL or vCD URL")],
    username: Annotated[str, typer.Option()],
    node: Annotated[str, typer.Option(help="The node that serves this cloud")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, envvar="HCC_CLOUD_PASSWORD")
    ],
    org: Annotated[str | None, typer.Option(help="vCD organization")] = None,
    insecure: Annotated[bool, typer.Option(help="Skip TLS verification")] = False,
    thumbprint: Annotated[str | None, typer.Option(help="Pin the certificate")] = None,
    server: ServerOpt = None,
) -> None:
    """Register a cloud (the password is stored encrypted on the server)."""
    body = {"id": cloud_id, "kind": kind, "endpoint": endpoint, "username": username,
            "password": password, "org": org, "insecure": insecure, "thumbprint": thumbprint,
            "node_id": node}  # fmt: skip
    data = _call(server, lambda c: c.post("/api/v1/clouds", body))
    err.print(f"cloud {data['id']} added ({data['kind']} via node {data['node_id']})")


@clouds_app.command("list")
def clouds_list(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Clouds with kind, endpoint, node and health."""
    items = _call(server, lambda c: c.all_pages("/api/v1/clouds"))
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    _table("clouds", ["id", "kind", "endpoint", "node", "node online", "reachable", "inventory"],
           [[c["id"], c["kind"], c["endpoint"], c["node_id"], c["node_online"], c["reachable"],
             c["inventory_at"]] for c in items])  # fmt: skip


@clouds_app.command("inventory")
def clouds_inventory(
    cloud_id: str,
    kind: Annotated[str | None, typer.Option(help="Only this kind")] = None,
    name: Annotated[str | None, typer.Option(help="Name contains")] = None,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The cloud's objects as its node last reported them."""
    query = "&".join(f"{k}={v}" for k, v in (("kind", kind), ("name", name)) if v)
    path = f"/api/v1/clouds/{cloud_id}/inventory" + (f"?{query}" if query else "")
    items = _call(server, lambda c: c.all_pages(path, limit=1000))
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    _table(f"inventory of {cloud_id}", ["kind", "path", "power", "cpus", "memory MiB", "id"],
           [[i["kind"], i["path"], i.get("power_state"), i.get("cpus"), i.get("memory_mib"),
             i["id"]] for i in items])  # fmt: skip


@clouds_app.command("refresh")
def clouds_refresh(
    cloud_id: str,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the task")] = False,
    server: ServerOpt = None,
) -> None:
    """Ask the cloud's node for a fresh inventory."""
    task = _call(server, lambda c: c.post(f"/api/v1/clouds/{cloud_id}/refresh"))
    typer.echo(task["id"])
    if watch:
        _watch(server, task["id"])


# --------------------------------------------------------------------------- copy


def split_ref(text: str, what: str) -> tuple[str, str]:
    """``CLOUD:PATH`` -> (cloud, path)."""
    cloud, sep, path = text.partition(":")
    if not sep or not cloud or not path:
        raise typer.BadParameter(f"{what} must look like CLOUD:PATH, not {text!r}")
    return cloud, path


def destination_body(kind: str, cloud: str, path: str) -> dict[str, Any]:
    """``CATALOG/NAME`` on vCD, ``DATACENTER/FOLDER.../NAME`` on vSphere."""
    container, _, name = path.rstrip("/").rpartition("/")
    if not name:
        raise typer.BadParameter(f"give the new object's name: {cloud}:{path}/NAME")
    body: dict[str, Any] = {"cloud": cloud, "name": name}
    if kind == "vcd":
        body["catalog"] = container or None
    else:
        body["folder"] = container or None
    return body


@app.command()
def copy(
    source: Annotated[str, typer.Argument(help="SRC_CLOUD:PATH of a VM, template or vApp")],
    destination: Annotated[
        str, typer.Argument(help="DST_CLOUD:CATALOG/NAME (vCD) or DST_CLOUD:DC/FOLDER/NAME")
    ],
    deploy: Annotated[
        str | None, typer.Option(help="Also deploy it: a vApp (vCD) or VM (vSphere) named so")
    ] = None,
    network: Annotated[str | None, typer.Option(help="Network for the deployed copy")] = None,
    on_conflict: Annotated[
        str, typer.Option(help="fail or suffix when the name is taken")
    ] = "fail",
    streams: Annotated[int, typer.Option(help="Parallel transfer streams")] = 4,
    compress: Annotated[bool, typer.Option(help="zstd per chunk where it helps")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Progress bars until it ends")] = False,
    server: ServerOpt = None,
) -> None:
    """Copy a VM, template or vApp to another cloud; prints the task id."""
    src_cloud, ref = split_ref(source, "SOURCE")
    dst_cloud, path = split_ref(destination, "DESTINATION")

    async def start(c: Client) -> Any:
        kind = (await c.get(f"/api/v1/clouds/{dst_cloud}"))["kind"]
        dest = destination_body(kind, dst_cloud, path)
        dest.update({"on_conflict": on_conflict, "network": network})
        body: dict[str, Any] = {
            "kind": "copy", "source": {"cloud": src_cloud, "ref": ref}, "destination": dest,
            "options": {"streams": streams, "compress": compress},
        }  # fmt: skip
        if deploy:
            body["deploy"] = {"name": deploy, "network": network}
        return await c.post("/api/v1/tasks", body)

    task = _call(server, start)
    typer.echo(task["id"])
    if watch:
        _watch(server, task["id"])


# --------------------------------------------------------------------------- tasks


@tasks_app.command("list")
def tasks_list(
    state: Annotated[str | None, typer.Option(help="Only this state")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind (copy, ...)")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first")] = 20,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Tasks, newest first."""
    filters = {"limit": limit, "state": state, "kind": kind}
    query = "?" + urlencode({k: v for k, v in filters.items() if v is not None})
    page = _call(server, lambda c: c.get(f"/api/v1/tasks{query}"))
    if as_json:
        typer.echo(json.dumps(page["items"], indent=2))
        return
    _table(f"tasks ({page['total']} in all)", ["id", "kind", "state", "created", "by", "progress"],
           [[t["id"], t["kind"], t["state"], t["created_at"], t["created_by"],
             f"{size(t['bytes_done'])} / {size(t['bytes_total'])}" if t["bytes_total"] else ""]
            for t in page["items"]])  # fmt: skip


@tasks_app.command("show")
def tasks_show(task_id: str, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """A task with its steps and what happened to it."""
    t = _call(server, lambda c: c.get(f"/api/v1/tasks/{task_id}"))
    if as_json:
        typer.echo(json.dumps(t, indent=2))
        return
    console.print(f"[bold]{t['kind']}[/bold] {t['id']}: [bold]{t['state']}[/bold]")
    if t["error"]:
        console.print(f"[red]error:[/red] {t['error'].get('message')}")
    _table(
        "steps",
        ["step", "node", "state", "attempt", "done", "total", "error"],
        [
            [
                s["name"],
                s["node_id"],
                s["state"],
                s["attempt"],
                size(s["bytes_done"]),
                size(s["bytes_total"]),
                (s["error"] or {}).get("message"),
            ]
            for s in t["steps"]
        ],
    )
    _table("events", ["time", "type", "message"],
           [[e["ts"], e["type"], e["message"]] for e in reversed(t["events"])])  # fmt: skip


def _watch(server: str | None, task_id: str) -> None:
    final = _call(server, lambda c: watch_task(c, task_id, console))
    if final["state"] != "succeeded":
        raise typer.Exit(1)


@tasks_app.command("watch")
def tasks_watch(task_id: str, server: ServerOpt = None) -> None:
    """Follow a task with a progress bar per step until it ends (exit 1 unless it succeeds)."""
    _watch(server, task_id)


@tasks_app.command("cancel")
def tasks_cancel(task_id: str, server: ServerOpt = None) -> None:
    """Cancel a running task."""
    t = _call(server, lambda c: c.post(f"/api/v1/tasks/{task_id}/cancel"))
    err.print(f"task {t['id']}: {t['state']}")


@tasks_app.command("retry")
def tasks_retry(task_id: str, server: ServerOpt = None) -> None:
    """Resume a failed or cancelled task at the steps that did not finish."""
    t = _call(server, lambda c: c.post(f"/api/v1/tasks/{task_id}/retry"))
    err.print(f"task {t['id']}: {t['state']}")


def main() -> None:
    app()
