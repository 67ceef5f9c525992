"""``hcc node``: run a node (enrolling first when its data dir has no config yet).

Registered in cli/main.py; also runnable alone as ``python -m cli.node``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from runtime import bulkio
from runtime.logging import configure_logging


def node(
    node_id: Annotated[str | None, typer.Option("--id", help="Node id (env HCC_NODE_ID)")] = None,
    server: Annotated[str | None, typer.Option(help="Server URL (env HCC_SERVER)")] = None,
    enroll_token: Annotated[
        str | None, typer.Option(help="One-time enrollment token (env HCC_ENROLL_TOKEN)")
    ] = None,
    listen: Annotated[str | None, typer.Option(help="HOST:PORT (env HCC_LISTEN)")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data dir (env HCC_DATA_DIR)")] = None,
    amqp_url: Annotated[
        str | None, typer.Option(help="Broker URL; overrides enrollment's (env HCC_AMQP_URL)")
    ] = None,
    receiver_url: Annotated[
        str | None, typer.Option(help="URL peers reach this node at (env HCC_RECEIVER_URL)")
    ] = None,
) -> None:
    """Run a node: consume its command queue, run steps, report events and heartbeats."""
    from workers.runtime.process import run_node_process
    from workers.settings import NodeSettings

    given: dict[str, Any] = {
        "node_id": node_id,
        "server": server,
        "enroll_token": enroll_token,
        "listen": listen,
        "data_dir": data_dir,
        "amqp_url": amqp_url,
        "receiver_url": receiver_url,
    }
    try:
        settings = NodeSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        typer.echo(f"invalid node settings: {exc}", err=True)
        raise typer.Exit(2) from exc
    configure_logging(settings.log_level)
    raise typer.Exit(bulkio.run(run_node_process(settings)))


if __name__ == "__main__":
    typer.run(node)
