"""A real ENOSPC: the receiver runs in its own mount namespace on a tiny tmpfs."""

from pathlib import Path

import aiohttp
import blake3
import pytest

from protocol.tokens import generate_private_key, public_key_pem
from tests.fixtures.transfer import (
    RECEIVER_NODE,
    Receiver,
    ReceiverProcess,
    sha256_file,
    write_random,
)
from workers.transfer.sender import send_package
from workers.transfer.tls import client_fingerprint

CB = 64 * 1024


def _fill(path: Path) -> None:
    with open(path, "wb") as fh:
        fh.write(b"\1" * (4 << 20))


async def test_disk_full_is_storage_full_and_the_resume_is_clean(tmp_path: Path):
    key = generate_private_key()
    rx = ReceiverProcess(
        tmp_path / "rx",
        public_key_pem(key.public_key()).encode(),
        wrap=[
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            f"mount -t tmpfs -o size=2m none {tmp_path / 'rx' / 'storage'} && exec",
        ],
    )
    rx.start()
    try:
        r = Receiver(rx.url, rx.fingerprint, rx.root, key, RECEIVER_NODE, None)  # type: ignore[arg-type]
        pkg = tmp_path / "pkg"
        want = write_random(pkg / "disk", 16 * CB)
        auth = {"Authorization": f"Bearer {r.token('full')}"}
        conn = aiohttp.TCPConnector(ssl=client_fingerprint(rx.fingerprint))
        async with aiohttp.ClientSession(rx.url, connector=conn) as http:
            decl = {"chunk_bytes": CB, "files": [{"path": "disk", "size": 16 * CB}]}
            async with http.put("/transfer/v1/full/manifest", json=decl, headers=auth) as resp:
                assert resp.status == 200
            # Someone else fills the disk after the manifest was accepted.
            filler = Path(f"/proc/{rx.pid}/root") / rx.root.relative_to("/") / "filler"
            with pytest.raises(OSError, match="No space"):
                _fill(filler)
            data = (pkg / "disk").read_bytes()[:CB]
            hdrs = {**auth, "X-Hcc-Hash": blake3.blake3(data).hexdigest(), "X-Hcc-Length": str(CB)}
            async with http.put("/transfer/v1/full/disk/0", data=data, headers=hdrs) as resp:
                assert resp.status == 507
                assert (await resp.json())["code"] == "storage-full"
            async with http.head("/transfer/v1/full/disk/0", headers=auth) as resp:
                assert resp.status == 404
            filler.unlink()

        async def progress(done: int, total: int | None, rate: float) -> None:
            return None

        async def refresh() -> str:
            return r.token("full")

        result = await send_package(pkg, r.body("full", chunk_bytes=CB), progress, refresh)
        assert result.chunks_sent == 16
        got = Path(f"/proc/{rx.pid}/root") / rx.root.relative_to("/") / "full" / "disk"
        assert sha256_file(got) == want
    finally:
        rx.kill()
