"""Standalone receiver and sender, for tests, benchmarks and operators' debugging.

    python -m workers.transfer serve --root DIR --cert-dir DIR --node-id n2 \\
        --public-key server.pub.pem [--port 0] [--ready-file F]
    python -m workers.transfer send --package DIR --url https://127.0.0.1:PORT \\
        --fingerprint HEX --artifact A --token-file F [--streams 4] [--result-file F]

``serve`` writes ``{"port": .., "fingerprint": .., "pid": ..}`` to ``--ready-file`` once
it listens. ``send`` re-reads ``--token-file`` whenever the receiver says the token
expired, and writes its SendResult as JSON to ``--result-file``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path

from protocol.messages import SendBody
from protocol.tokens import load_public_key
from runtime import bulkio
from runtime.logging import configure_logging
from workers.transfer.errors import TransferError
from workers.transfer.receiver import make_receiver_app, start_receiver
from workers.transfer.sender import SendOptions, send_package
from workers.transfer.tls import ensure_certificate, server_ssl_context


def _write_ready(path: str, ready: dict[str, object]) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(json.dumps(ready))
    tmp.replace(path)


async def _serve(args: argparse.Namespace) -> None:
    cert = ensure_certificate(Path(args.cert_dir), args.node_id)
    key = load_public_key(args.public_key_pem)
    app = make_receiver_app(
        Path(args.root), key, args.node_id, args.quota, reserve_bytes=args.reserve
    )
    runner, port = await start_receiver(app, args.host, args.port, server_ssl_context(cert))
    if args.ready_file:
        ready = {"port": port, "fingerprint": cert.fingerprint, "pid": os.getpid()}
        await asyncio.to_thread(_write_ready, args.ready_file, ready)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def _proc_status_kib(field: str) -> int:
    """VmRSS / VmHWM of this process in KiB (0 where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


async def _send(args: argparse.Namespace) -> int:
    token_file = Path(args.token_file)

    async def refresh() -> str:
        return (await asyncio.to_thread(token_file.read_text)).strip()

    async def progress(done: int, total: int | None, rate: float) -> None:
        return None

    body = SendBody(
        artifact_id=args.artifact,
        destination_node=args.destination_node,
        destination_url=args.url,
        destination_fingerprint=args.fingerprint,
        token=args.token,
        streams=args.streams,
        chunk_bytes=args.chunk_bytes,
        compress=args.compress,
        bandwidth_bytes_per_s=args.bandwidth,
    )
    opts = SendOptions(stall_timeout_s=args.stall_timeout, max_streams=args.max_streams)
    rss_idle_kib = _proc_status_kib("VmRSS")
    cpu_before = time.process_time()
    try:
        result = await send_package(Path(args.package), body, progress, refresh, options=opts)
    except TransferError as exc:
        print(json.dumps({"error": exc.code, "detail": str(exc)}), file=sys.stderr)
        return 2
    if args.result_file:
        report = {
            **dataclasses.asdict(result),
            "rss_idle_kib": rss_idle_kib,
            "rss_peak_kib": _proc_status_kib("VmHWM"),
            "cpu_s": time.process_time() - cpu_before,
        }
        text = json.dumps(report)
        await asyncio.to_thread(Path(args.result_file).write_text, text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.transfer")
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--root", required=True)
    serve.add_argument("--cert-dir", required=True)
    serve.add_argument("--node-id", required=True)
    serve.add_argument("--public-key", required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8443)
    serve.add_argument("--quota", type=int, default=None)
    serve.add_argument("--reserve", type=int, default=0)
    serve.add_argument("--ready-file")
    send = sub.add_parser("send")
    send.add_argument("--package", required=True)
    send.add_argument("--url", required=True)
    send.add_argument("--fingerprint", required=True)
    send.add_argument("--artifact", required=True)
    send.add_argument("--destination-node", default="n2")
    send.add_argument("--token-file", required=True)
    send.add_argument("--streams", type=int, default=4)
    send.add_argument("--chunk-bytes", type=int, default=8 << 20)
    send.add_argument("--compress", action="store_true")
    send.add_argument("--bandwidth", type=int, default=None)
    send.add_argument("--stall-timeout", type=float, default=300.0)
    send.add_argument(
        "--max-streams",
        type=int,
        default=None,
        help="most streams on a long fat link (default: what the memory budget holds; "
        "= streams: never more)",
    )
    send.add_argument("--result-file")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    configure_logging(args.log_level, json=True)
    if args.cmd == "serve":
        args.public_key_pem = Path(args.public_key).read_bytes()
        bulkio.run(_serve(args))
        return 0
    args.token = Path(args.token_file).read_text().strip()
    return bulkio.run(_send(args))


if __name__ == "__main__":
    sys.exit(main())
