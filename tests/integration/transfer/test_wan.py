"""Long fat link: through the benchmark's WAN proxy (bench/_transfer/wanproxy.py: delay
each way, a window per connection, a cap for the link), the sender adds streams while
that raises the rate, and the package still arrives whole."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._transfer.procs import start_proxy, stop
from tests.fixtures.transfer import Receiver, sha256_file, write_random
from workers.transfer.sender import SendOptions, send_package

CHUNK = 256 * 1024


@pytest.fixture
def wan_url(tmp_path: Path, transfer_receiver: Receiver) -> Iterator[str]:
    """25 ms each way, 64 KiB window per connection (1.3 MB/s each), 50 MB/s link."""
    port = int(transfer_receiver.url.rsplit(":", 1)[1])
    proc, listen = start_proxy(tmp_path, port, 25.0, 64, 50.0, 25.0)
    try:
        yield f"https://127.0.0.1:{listen}"
    finally:
        stop(proc)


async def _progress(done: int, total: int | None, rate: float) -> None:
    return None


async def _no_refresh() -> str:
    raise AssertionError("no refresh expected")


async def test_window_bound_link_gets_more_streams(
    tmp_path: Path, transfer_receiver: Receiver, wan_url: str
):
    sha = write_random(tmp_path / "pkg" / "disk.raw", 48 * CHUNK)
    body = transfer_receiver.body("wan-1", streams=2, chunk_bytes=CHUNK, destination_url=wan_url)
    result = await send_package(tmp_path / "pkg", body, _progress, _no_refresh)
    assert result.rtt_ms is not None
    assert result.rtt_ms >= 50
    assert result.streams_used == 4  # 3 * streams - 2: the probe doubled the rate
    assert sha256_file(transfer_receiver.root / "wan-1" / "disk.raw") == sha


async def test_no_more_streams_than_allowed(
    tmp_path: Path, transfer_receiver: Receiver, wan_url: str
):
    write_random(tmp_path / "pkg" / "disk.raw", 16 * CHUNK)
    body = transfer_receiver.body("wan-2", streams=2, chunk_bytes=CHUNK, destination_url=wan_url)
    opts = SendOptions(max_streams=2)
    result = await send_package(tmp_path / "pkg", body, _progress, _no_refresh, options=opts)
    assert result.streams_used == 2
    assert result.chunks_sent == 16
