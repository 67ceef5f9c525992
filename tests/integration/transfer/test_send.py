"""Sender against a real HTTPS receiver (in-process), end to end."""

from pathlib import Path

from tests.fixtures.transfer import Receiver, make_package, sha256_file, write_random
from workers.transfer.sender import send_package

CHUNK = 64 * 1024


async def _no_refresh() -> str:
    raise AssertionError("no refresh expected")


async def test_package_arrives_whole_and_verified(tmp_path: Path, transfer_receiver: Receiver):
    sums = make_package(tmp_path / "pkg")
    seen: list[tuple[int, int | None]] = []

    async def progress(done: int, total: int | None, rate: float) -> None:
        seen.append((done, total))

    result = await send_package(
        tmp_path / "pkg", transfer_receiver.body("art-1"), progress, _no_refresh
    )
    out = transfer_receiver.root / "art-1"
    assert {p.name: sha256_file(p) for p in out.iterdir()} == sums
    assert result.files == sums
    assert result.zero_chunks == 5  # thin.img: 6 chunks, one with data
    assert seen[-1] == (result.bytes_total, result.bytes_total)
    assert not (transfer_receiver.root / ".incoming" / "art-1").exists()


async def test_second_send_of_a_committed_artifact_sends_nothing(
    tmp_path: Path, transfer_receiver: Receiver
):
    make_package(tmp_path / "pkg")

    async def progress(done: int, total: int | None, rate: float) -> None:
        return None

    body = transfer_receiver.body("art-2")
    await send_package(tmp_path / "pkg", body, progress, _no_refresh)
    again = await send_package(tmp_path / "pkg", body, progress, _no_refresh)
    assert again.already_committed
    assert again.chunks_sent == 0


async def test_compression_is_kept_only_when_it_pays(tmp_path: Path, transfer_receiver: Receiver):
    pkg = tmp_path / "pkg"
    write_random(pkg / "random.bin", 4 * CHUNK)
    (pkg / "text.txt").write_bytes(b"hello hcc " * (4 * CHUNK // 10))

    async def progress(done: int, total: int | None, rate: float) -> None:
        return None

    result = await send_package(
        pkg, transfer_receiver.body("art-3", compress=True), progress, _no_refresh
    )
    assert result.compressed_chunks == 4
    assert result.wire_bytes < 4 * CHUNK + 4 * CHUNK * 0.2
    assert sha256_file(transfer_receiver.root / "art-3" / "text.txt") == sha256_file(
        pkg / "text.txt"
    )


def _append(path: Path, block: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(block)


async def test_growing_files_are_sent_while_the_export_writes_them(
    tmp_path: Path, transfer_receiver: Receiver
):
    """The exporter writes X.part append-only, renames it to X when done, and removes
    .hcc-exporting at the end; the sender overlaps with it, commits each file as soon as
    it is complete (the receiver publishes it), and commits the final sums."""
    import asyncio
    import os

    from workers.transfer.sender import SendOptions

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / ".hcc-exporting").touch()
    blocks = [os.urandom(CHUNK) for _ in range(6)] + [b"tail"]
    sent_while_exporting: list[int] = []

    async def progress(done: int, total: int | None, rate: float) -> None:
        if (pkg / ".hcc-exporting").exists():
            sent_while_exporting.append(done)

    async def export() -> None:
        for i, block in enumerate(blocks):
            _append(pkg / "disk.vmdk.part", block)
            if i == 3:  # the sender must be sending while the export goes on
                deadline = asyncio.get_running_loop().time() + 30
                while not sent_while_exporting or max(sent_while_exporting) < 3 * CHUNK:
                    assert asyncio.get_running_loop().time() < deadline, "no overlap"
                    await asyncio.sleep(0.01)
        (pkg / "disk.vmdk.part").rename(pkg / "disk.vmdk")
        # the finished disk is published at the receiver while the package is not done
        out = transfer_receiver.root / "grow"
        deadline = asyncio.get_running_loop().time() + 30
        while not (out / "disk.vmdk").exists():
            assert asyncio.get_running_loop().time() < deadline, "disk.vmdk not published"
            await asyncio.sleep(0.01)
        assert (out / ".hcc-exporting").exists()
        assert sha256_file(out / "disk.vmdk") == sha256_file(pkg / "disk.vmdk")
        (pkg / "vm.ovf").write_text("<Envelope/>")
        (pkg / ".hcc-exporting").unlink()

    opts = SendOptions(poll_interval_s=0.01, progress_interval_s=0)
    body = transfer_receiver.body("grow")
    exporter = asyncio.create_task(export())
    result = await send_package(pkg, body, progress, _no_refresh, options=opts)
    await exporter
    assert sha256_file(transfer_receiver.root / "grow" / "disk.vmdk") == sha256_file(
        pkg / "disk.vmdk"
    )
    assert (transfer_receiver.root / "grow" / "vm.ovf").read_text() == "<Envelope/>"
    assert not (transfer_receiver.root / "grow" / ".hcc-exporting").exists()
    assert set(result.files) == {"disk.vmdk", "vm.ovf"}
    assert max(sent_while_exporting) >= 3 * CHUNK  # overlapped, did not wait for the end


async def test_resume_sends_only_what_the_receiver_lacks(
    tmp_path: Path, transfer_receiver: Receiver
):
    """Half the chunks are already there (a previous, interrupted send): only the rest go."""
    import aiohttp
    import blake3

    from workers.transfer.tls import client_fingerprint

    pkg = tmp_path / "pkg"
    want = write_random(pkg / "disk", 8 * CHUNK)
    data = (pkg / "disk").read_bytes()
    r = transfer_receiver
    auth = {"Authorization": f"Bearer {r.token('res')}"}
    conn = aiohttp.TCPConnector(ssl=client_fingerprint(r.fingerprint))
    async with aiohttp.ClientSession(r.url, connector=conn) as http:
        decl = {"chunk_bytes": CHUNK, "files": [{"path": "disk", "size": 8 * CHUNK}]}
        async with http.put("/transfer/v1/res/manifest", json=decl, headers=auth) as resp:
            assert resp.status == 200
        for i in (0, 2, 4, 6):
            piece = data[i * CHUNK : (i + 1) * CHUNK]
            hdrs = {
                **auth,
                "X-Hcc-Hash": blake3.blake3(piece).hexdigest(),
                "X-Hcc-Length": str(CHUNK),
            }
            async with http.put(f"/transfer/v1/res/disk/{i}", data=piece, headers=hdrs) as resp:
                assert resp.status == 200

    async def progress(done: int, total: int | None, rate: float) -> None:
        return None

    result = await send_package(pkg, r.body("res"), progress, _no_refresh)
    assert (result.chunks_sent, result.chunks_held) == (4, 4)
    assert result.wire_bytes == 4 * CHUNK
    assert sha256_file(r.root / "res" / "disk") == want


async def test_bandwidth_cap_holds(tmp_path: Path, transfer_receiver: Receiver):
    import time

    pkg = tmp_path / "pkg"
    write_random(pkg / "disk", 32 * CHUNK)
    cap = 4 * 1024 * 1024

    async def progress(done: int, total: int | None, rate: float) -> None:
        return None

    started = time.monotonic()
    body = transfer_receiver.body("cap", bandwidth_bytes_per_s=cap, streams=4)
    result = await send_package(pkg, body, progress, _no_refresh)
    elapsed = time.monotonic() - started
    from workers.transfer.sender import PIECE_BYTES

    burst = max(PIECE_BYTES, cap / 20)
    assert result.wire_bytes == 32 * CHUNK
    assert elapsed >= (32 * CHUNK - burst) / cap  # never faster than the cap allows


async def test_progress_moves_while_chunks_are_on_the_wire(
    tmp_path: Path, transfer_receiver: Receiver
):
    """Four streams share a slow link, so their chunks land together at the end: progress
    counts the pieces that left, not only the chunks held, or it would stand still."""
    from workers.transfer.sender import PIECE_BYTES, SendOptions

    chunk = 2 * PIECE_BYTES
    pkg = tmp_path / "pkg"
    write_random(pkg / "disk", 4 * chunk)
    readings: list[int] = []

    async def progress(done: int, total: int | None, rate: float) -> None:
        readings.append(done)

    body = transfer_receiver.body(
        "flow", chunk_bytes=chunk, streams=4, bandwidth_bytes_per_s=4 * chunk
    )
    options = SendOptions(progress_interval_s=0.05)
    result = await send_package(pkg, body, progress, _no_refresh, options=options)
    assert result.chunks_sent == 4
    assert readings[-1] == 4 * chunk
    assert readings == sorted(readings)  # nothing failed, so nothing was taken back
    assert any(done % chunk for done in readings), readings  # part of a chunk counted


async def test_sums_from_the_ovf_manifest_are_used_and_checked(
    tmp_path: Path, transfer_receiver: Receiver
):
    """The export's .mf already has each file's SHA-256; the receiver still checks it."""
    import pytest

    from workers.transfer.errors import ManifestConflict

    async def progress(done: int, total: int | None, rate: float) -> None:
        return None

    pkg = tmp_path / "pkg"
    want = write_random(pkg / "disk1.vmdk", 3 * CHUNK + 5)
    (pkg / "vm.mf").write_text(f"SHA256(disk1.vmdk)= {want}\nSHA1(vm.ovf)= abc\n")
    result = await send_package(pkg, transfer_receiver.body("mf1"), progress, _no_refresh)
    assert result.files["disk1.vmdk"] == want

    bad = tmp_path / "bad"
    write_random(bad / "disk1.vmdk", 3 * CHUNK + 5)
    (bad / "vm.mf").write_text(f"SHA256(disk1.vmdk)= {'0' * 64}\n")
    with pytest.raises(ManifestConflict) as info:
        await send_package(bad, transfer_receiver.body("mf2"), progress, _no_refresh)
    assert info.value.code == "sha256-mismatch"
    # the file that failed its check is not published, and the package is never whole
    # (vm.mf may have been published on its own: it is complete and correct)
    out = transfer_receiver.root / "mf2"
    assert not (out / "disk1.vmdk").exists()
    assert not out.exists() or (out / ".hcc-exporting").exists()
    assert not (transfer_receiver.root / ".committed" / "mf2.json").exists()


async def test_a_missing_package_is_a_clear_error(tmp_path: Path, transfer_receiver: Receiver):
    import pytest

    from workers.transfer.errors import SourceChanged

    async def progress(done: int, total: int | None, rate: float) -> None:
        return None

    with pytest.raises(SourceChanged, match="does not exist"):
        await send_package(tmp_path / "nope", transfer_receiver.body("gone"), progress, _no_refresh)


async def test_discard_forgets_partial_and_committed_artifacts(
    tmp_path: Path, transfer_receiver: Receiver
):
    from workers.transfer import discard_artifact
    from workers.transfer.receiver import STATE

    r = transfer_receiver
    make_package(tmp_path / "pkg")

    async def progress(done: int, total: int | None, rate: float) -> None:
        return None

    await send_package(tmp_path / "pkg", r.body("gone"), progress, _no_refresh)
    assert (r.root / "gone").is_dir()
    await discard_artifact(r.app, "gone")
    assert not (r.root / "gone").exists()
    assert not (r.root / ".committed" / "gone.json").exists()
    again = await send_package(tmp_path / "pkg", r.body("gone"), progress, _no_refresh)
    assert not again.already_committed
    assert again.chunks_sent > 0
    assert "gone" not in r.app[STATE].store.artifacts


async def test_an_export_that_stops_growing_fails_the_send(
    tmp_path: Path, transfer_receiver: Receiver
):
    import pytest

    from workers.transfer.errors import ExportStalled
    from workers.transfer.sender import SendOptions

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / ".hcc-exporting").touch()
    _append(pkg / "disk.vmdk.part", b"x" * (CHUNK + 10))

    async def progress(done: int, total: int | None, rate: float) -> None:
        return None

    opts = SendOptions(poll_interval_s=0.01, growth_timeout_s=0.3)
    with pytest.raises(ExportStalled) as info:
        await send_package(pkg, transfer_receiver.body("stuck"), progress, _no_refresh,
                           options=opts)  # fmt: skip
    assert info.value.retryable
