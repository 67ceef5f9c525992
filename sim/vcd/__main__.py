"""``python -m sim.vcd --listen HOST:PORT --data-dir DIR [--seed FILE] [--tls]``.

Port 0 picks a free port. Once listening, ``<data-dir>/listening.json`` holds
``{"url": ..., "pid": ...}`` (the fixture waits for it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import structlog
from aiohttp import web

from runtime.logging import configure_logging
from sim.vcd.app import SimConfig, create_app
from sim.vcd.faults import parse_faults
from sim.vcd.seed import load_seed
from sim.vcd.tls import ensure_certificate, server_context

log = structlog.get_logger()
READY_FILE = "listening.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m sim.vcd", description="VMware Cloud Director API simulator"
    )
    p.add_argument("--listen", default="127.0.0.1:8443", help="HOST:PORT (port 0: any free port)")
    p.add_argument("--data-dir", required=True, type=Path, help="state.json and uploaded files")
    p.add_argument(
        "--seed", type=Path, help="YAML or JSON inventory (used when the data dir is new)"
    )
    p.add_argument("--tls", action="store_true", help="HTTPS with a self-signed certificate")
    p.add_argument(
        "--tls-cert", type=Path, help="PEM certificate (with --tls; default: self-signed)"
    )
    p.add_argument("--tls-key", type=Path, help="PEM private key (with --tls-cert)")
    p.add_argument("--faults", help='initial fault flags as JSON, e.g. {"task_delay_s": 2}')
    p.add_argument("--admin-api", action="store_true", help="serve the test-only /_sim/ endpoints")
    p.add_argument("--task-duration", type=float, default=0.2, help="seconds each task runs")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    host, _, port = args.listen.rpartition(":")
    config = SimConfig(
        data_dir=args.data_dir,
        seed=load_seed(args.seed) if args.seed else None,
        faults=parse_faults(args.faults),
        admin_api=args.admin_api,
        task_duration_s=args.task_duration,
    )
    ssl_context = None
    if args.tls:
        cert, key = (
            (args.tls_cert, args.tls_key)
            if args.tls_cert
            else ensure_certificate(args.data_dir / "tls", host.strip("[]"))
        )
        ssl_context = server_context(cert, key)
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]"), int(port), ssl_context=ssl_context)
    await site.start()
    bound = runner.addresses[0]
    scheme = "https" if ssl_context else "http"
    url = f"{scheme}://{host}:{bound[1]}"
    ready = args.data_dir / READY_FILE
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    tmp.replace(ready)
    log.info("vcdsim.listening", url=url, data_dir=str(args.data_dir))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        ready.unlink(missing_ok=True)
        await runner.cleanup()
        log.info("vcdsim.stopped")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level)
    try:
        asyncio.run(serve(args))
    except (OSError, ValueError) as exc:  # bad seed/faults/TLS files, port in use
        print(f"vcd simulator: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
