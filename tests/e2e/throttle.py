"""A rate-limiting TCP proxy for whole-installation tests and benchmarks (bench/copy.py).

Put it in front of a simulator (register the cloud with the proxy's port as its endpoint):
TLS passes through untouched, and vcsim's NFC device URLs say ``*`` ("the host you called"),
so disks come through the proxy too.
"""

from __future__ import annotations

import asyncio
import threading
import time


class Throttle:
    """A TCP proxy on 127.0.0.1 to ``target``, ``rate`` bytes/s per connection and direction,
    in a thread of its own (the test's loop blocks in CLI calls). ``down``/``up``: bytes
    carried from / to the target.

    By default it sleeps ``len / rate`` after each piece it forwards, so the time it takes to
    read and write comes on top and the rate is a ceiling, lower when the CPU is busy. With
    ``pace_s`` it keeps a schedule instead: it forwards at ``rate`` on average, catching up
    after a late wake-up with at most ``pace_s`` seconds' worth of bytes (and no more after
    an idle spell), so a busy machine does not slow the link down (bench/copy.py).

    :meth:`hold` stops forwarding towards the target until :meth:`release` (a test that
    needs a stage still running after something else happened)."""

    def __init__(
        self, host: str, port: int, rate_bytes_per_s: float, pace_s: float | None = None
    ) -> None:
        self.target = (host, port)
        self.rate = rate_bytes_per_s
        self.pace_s = pace_s
        self.down = 0
        self.up = 0
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._open = asyncio.Event()
        self._open.set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        server.close()
        for writer in self._writers:
            writer.close()
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(server.wait_closed())
        loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.add(up_w)
        await asyncio.gather(
            self._pipe(reader, up_w, "up"), self._pipe(up_r, writer, "down"),
            return_exceptions=True,
        )  # fmt: skip
        self._writers -= {writer, up_w}

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, way: str) -> None:
        due = time.monotonic()  # when the next byte may go (pace_s)
        try:
            while data := await r.read(64 * 1024):
                if way == "up":
                    await self._open.wait()
                setattr(self, way, getattr(self, way) + len(data))
                w.write(data)
                await w.drain()
                if self.pace_s is None:
                    await asyncio.sleep(len(data) / self.rate)
                    continue
                now = time.monotonic()
                due = max(due, now - self.pace_s) + len(data) / self.rate
                if due > now:
                    await asyncio.sleep(due - now)
        finally:
            w.close()

    def hold(self) -> None:
        self._loop.call_soon_threadsafe(self._open.clear)

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self._open.set)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
