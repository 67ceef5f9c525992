"""A userspace TCP proxy that models a WAN link (there is no netem here).

    python bench/_transfer/wanproxy.py --listen-port 0 --target 127.0.0.1:8443 \\
        --delay-ms 25 --window-kib 512 --cap-mb-s 60 --ready-file F

Per connection and direction, bytes are held for ``delay_ms`` (one way) before they are
written on. A connection may have at most ``window`` bytes read but not yet
"acknowledged"; an acknowledgement comes back ``delay_ms`` after delivery, so a window's
worth of bytes is in flight for a whole round trip, as with TCP (throughput per
connection <= window / RTT). The proxy reads no more than its remaining window (the
accepted socket's kernel buffer is also kept small), so read-ahead cannot hide the
window. All connections share one ``cap`` bytes/s per direction (the link).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
from pathlib import Path

from workers.transfer.ratelimit import TokenBucket

READ_BYTES = 64 * 1024


class Link:
    """One direction of the WAN, shared by every connection."""

    def __init__(self, delay_s: float, window: int, cap: float | None, ack_s: float) -> None:
        self.delay_s = delay_s
        self.ack_s = ack_s
        self.window = window
        self.bucket = TokenBucket(cap, burst=READ_BYTES) if cap else None

    async def pace(self, n: int) -> None:
        if self.bucket is not None:
            wait = self.bucket.reserve(n, asyncio.get_running_loop().time())
            if wait > 0:
                await asyncio.sleep(wait)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link) -> None:
    loop = asyncio.get_running_loop()
    credit = link.window
    has_credit = asyncio.Event()
    has_credit.set()
    line: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

    def acked(n: int) -> None:
        nonlocal credit
        credit += n
        has_credit.set()

    async def receive() -> None:
        nonlocal credit
        while True:
            await has_credit.wait()
            data = await reader.read(min(credit, READ_BYTES))
            if not data:
                await line.put(None)
                return
            credit -= len(data)
            if credit <= 0:
                has_credit.clear()
            await line.put((loop.time() + link.delay_s, data))

    async def deliver() -> None:
        while (item := await line.get()) is not None:
            due, data = item
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            await link.pace(len(data))
            writer.write(data)
            await writer.drain()
            loop.call_later(link.ack_s, acked, len(data))
        if writer.can_write_eof():
            writer.write_eof()

    try:
        await asyncio.gather(receive(), deliver())
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _serve(args: argparse.Namespace) -> None:
    host, _, port = args.target.rpartition(":")
    window = args.window_kib * 1024
    cap = args.cap_mb_s * 1e6 if args.cap_mb_s else None
    ack_ms = args.delay_ms if args.ack_delay_ms is None else args.ack_delay_ms
    up = Link(args.delay_ms / 1000, window, cap, ack_ms / 1000)
    down = Link(args.delay_ms / 1000, window, cap, ack_ms / 1000)

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sock = cw.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, READ_BYTES)
        try:
            sr, sw = await asyncio.open_connection(host, int(port))
        except OSError:
            cw.close()
            return
        upstream = sw.get_extra_info("socket")
        if upstream is not None:
            upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, READ_BYTES)
        await asyncio.gather(_pump(cr, sw, up), _pump(sr, cw, down))

    server = await asyncio.start_server(handle, "127.0.0.1", args.listen_port, limit=READ_BYTES)
    listen_port = server.sockets[0].getsockname()[1]
    if args.ready_file:
        ready = json.dumps({"port": listen_port, "pid": os.getpid()})
        await asyncio.to_thread(Path(args.ready_file).write_text, ready)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--listen-port", type=int, default=0)
    p.add_argument("--target", required=True)
    p.add_argument("--delay-ms", type=float, default=25.0)
    p.add_argument("--window-kib", type=int, default=512)
    p.add_argument("--cap-mb-s", type=float, default=60.0)
    p.add_argument(
        "--ack-delay-ms",
        type=float,
        default=None,
        help="when window credit comes back after delivery (default: --delay-ms, a full "
        "round trip in flight as with TCP; 0 models a window over the one-way path only)",
    )
    p.add_argument("--ready-file")
    asyncio.run(_serve(p.parse_args()))


if __name__ == "__main__":
    main()
