"""Every kind of bad input the issue names gets its HTTP answer, and nothing is damaged."""

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import blake3
import pytest
import yarl

from protocol.tokens import generate_private_key, issue_token
from tests.fixtures.transfer import Receiver, make_package, running_receiver, sha256_file
from tests.waiting import eventually
from workers.transfer.errors import StorageFull
from workers.transfer.sender import send_package
from workers.transfer.tls import client_fingerprint

CB = 64 * 1024


@pytest.fixture
async def http(transfer_receiver: Receiver) -> AsyncIterator[aiohttp.ClientSession]:
    conn = aiohttp.TCPConnector(ssl=client_fingerprint(transfer_receiver.fingerprint))
    async with aiohttp.ClientSession(transfer_receiver.url, connector=conn) as s:
        yield s


def _auth(r: Receiver, artifact: str = "a1", node: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {r.token(artifact, destination_node=node)}"}


def _manifest(*files: tuple[str, int | None], cb: int = CB) -> str:
    return json.dumps({"chunk_bytes": cb, "files": [{"path": p, "size": s} for p, s in files]})


async def _declare(http: aiohttp.ClientSession, r: Receiver, size: int = 2 * CB) -> None:
    async with http.put(
        "/transfer/v1/a1/manifest", data=_manifest(("disk", size)), headers=_auth(r)
    ) as resp:
        assert resp.status == 200, await resp.text()


def _chunk_headers(r: Receiver, data: bytes, digest: str | None = None) -> dict[str, str]:
    return {
        **_auth(r),
        "X-Hcc-Hash": digest or blake3.blake3(data).hexdigest(),
        "X-Hcc-Length": str(len(data)),
    }


async def _held(http: aiohttp.ClientSession, r: Receiver, index: int) -> bool:
    async with http.head(f"/transfer/v1/a1/disk/{index}", headers=_auth(r)) as resp:
        return resp.status == 200


async def _held_only_once_sent_whole(http: aiohttp.ClientSession, r: Receiver, data: bytes) -> None:
    """Chunk 0, after a PUT that failed: not held; held once a whole PUT of it is answered."""
    assert not await _held(http, r, 0)
    async with http.put("/transfer/v1/a1/disk/0", data=data, headers=_chunk_headers(r, data)):
        pass
    assert await _held(http, r, 0)


async def test_chunk_with_wrong_hash_is_rejected_then_accepted(http, transfer_receiver):
    r = transfer_receiver
    await _declare(http, r)
    data = b"x" * CB
    wrong = blake3.blake3(b"y" * CB).hexdigest()
    async with http.put(
        "/transfer/v1/a1/disk/0", data=data, headers=_chunk_headers(r, data, wrong)
    ) as resp:
        assert resp.status == 422
        assert (await resp.json())["code"] == "hash-mismatch"
    await _held_only_once_sent_whole(http, r, data)


@pytest.mark.parametrize(
    "name", ["../evil", "/etc/passwd", "a/../../evil", "nul\x00byte", "..", "a//b", "C:x"]
)
async def test_unsafe_names_in_a_manifest_are_400(http, transfer_receiver, name):
    r = transfer_receiver
    async with http.put(
        "/transfer/v1/a1/manifest", data=_manifest((name, 1)), headers=_auth(r)
    ) as resp:
        assert resp.status == 400
    assert not list((r.root / ".incoming").iterdir())


@pytest.mark.parametrize("name", ["..%2Fevil", "%2Fetc%2Fpasswd", "a%2F..%2F..%2Fx", "x%00y"])
async def test_unsafe_names_in_a_chunk_url_are_400(http, transfer_receiver, name):
    r = transfer_receiver
    await _declare(http, r)
    data = b"x" * CB
    url = yarl.URL(f"{r.url}/transfer/v1/a1/{name}/0", encoded=True)
    async with http.put(url, data=data, headers=_chunk_headers(r, data)) as resp:
        assert resp.status == 400, await resp.text()
    assert not (r.root / "evil").exists()


async def test_chunk_larger_than_declared_is_413(http, transfer_receiver):
    r = transfer_receiver
    await _declare(http, r, size=CB + 10)
    big = b"x" * (CB + 1)
    async with http.put("/transfer/v1/a1/disk/0", data=big, headers=_chunk_headers(r, big)) as resp:
        assert resp.status == 413
    tail = b"x" * 10
    hdrs = _chunk_headers(r, tail)
    async with http.put("/transfer/v1/a1/disk/1", data=tail + b"extra", headers=hdrs) as resp:
        assert resp.status == 413
    assert not await _held(http, r, 1)


@pytest.mark.parametrize(
    "other", [_manifest(("disk", 3 * CB)), _manifest(("disk", 2 * CB), cb=2 * CB)]
)
async def test_conflicting_manifest_is_409(http, transfer_receiver, other):
    r = transfer_receiver
    await _declare(http, r)
    async with http.put("/transfer/v1/a1/manifest", data=other, headers=_auth(r)) as resp:
        assert resp.status == 409


async def test_tokens_missing_expired_foreign_or_for_something_else(http, transfer_receiver):
    r = transfer_receiver
    url = "/transfer/v1/a1/manifest"
    body = _manifest(("disk", 1))
    foreign = issue_token(
        generate_private_key(),
        artifact_id="a1",
        source_node="n1",
        destination_node=r.node_id,
        now=0,
        ttl_s=10**10,
    )
    cases = [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer " + r.token("a1", ttl_s=-1)}, 401, "token-expired"),
        ({"Authorization": "Bearer " + foreign}, 401, "token-invalid"),
        ({"Authorization": "Bearer garbage"}, 401, "token-invalid"),
        (_auth(r, "other-artifact"), 403, "forbidden"),
        (_auth(r, "a1", node="n9"), 403, "forbidden"),
    ]
    for headers, status, code in cases:
        async with http.put(url, data=body, headers=headers) as resp:
            assert (resp.status, (await resp.json())["code"]) == (status, code)
    assert not list((r.root / ".incoming").iterdir())


async def test_quota_full_is_storage_full_and_keeps_nothing_broken(tmp_path: Path):
    async with running_receiver(tmp_path / "rx", quota_bytes=100_000) as r:
        pkg = tmp_path / "pkg"
        make_package(pkg, chunk=CB)

        async def progress(done: int, total: int | None, rate: float) -> None:
            return None

        async def refresh() -> str:
            return r.token("q1")

        with pytest.raises(StorageFull) as info:
            await send_package(pkg, r.body("q1", chunk_bytes=CB), progress, refresh)
        assert info.value.code == "storage-full"
        assert not (r.root / "q1").exists()


async def test_expired_token_mid_send_is_refreshed_without_restarting(
    tmp_path: Path, transfer_receiver: Receiver
):
    r = transfer_receiver
    pkg = tmp_path / "pkg"
    sums = make_package(pkg, chunk=CB)
    refreshed = []

    async def refresh() -> str:
        refreshed.append(1)
        return r.token("t1")

    async def progress(done: int, total: int | None, rate: float) -> None:
        return None

    body = r.body("t1", token=r.token("t1", ttl_s=-5))
    result = await send_package(pkg, body, progress, refresh)
    assert result.token_refreshes == 1 == len(refreshed)
    assert sha256_file(r.root / "t1" / "disk1.vmdk") == sums["disk1.vmdk"]


async def test_sender_resends_a_chunk_the_receiver_found_corrupt(tmp_path: Path):
    """The first PUT of one chunk is answered 422 hash-mismatch, as the receiver does when
    the bytes arrive damaged; the sender sends that chunk again and the copy completes."""
    from collections.abc import Awaitable, Callable

    from aiohttp import web

    rejected: list[str] = []

    @web.middleware
    async def damage_once(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method == "PUT" and request.path.endswith("/disk1.vmdk/1") and not rejected:
            rejected.append(request.path)
            await request.read()
            problem = {"status": 422, "code": "hash-mismatch", "detail": "damaged"}
            return web.json_response(problem, status=422)
        return await handler(request)

    async with running_receiver(tmp_path / "rx", middlewares=(damage_once,)) as r:
        pkg = tmp_path / "pkg"
        sums = make_package(pkg, chunk=CB)

        async def progress(done: int, total: int | None, rate: float) -> None:
            return None

        async def refresh() -> str:
            return r.token("c1")

        result = await send_package(pkg, r.body("c1", chunk_bytes=CB), progress, refresh)
        assert rejected
        assert result.resent_chunks == 1
        assert sha256_file(r.root / "c1" / "disk1.vmdk") == sums["disk1.vmdk"]


async def test_a_stalled_body_is_given_up_and_frees_the_chunk(http, transfer_receiver, monkeypatch):
    import asyncio

    import workers.transfer.body as body

    monkeypatch.setattr(body, "BODY_IDLE_S", 0.3)
    r = transfer_receiver
    await _declare(http, r)
    data = b"s" * CB
    never = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield data[:1000]
        await never.wait()

    hdrs = {**_chunk_headers(r, data), "Content-Length": str(CB)}
    async with http.put("/transfer/v1/a1/disk/0", data=stalls(), headers=hdrs) as resp:
        assert resp.status == 408
        assert (await resp.json())["code"] == "body-timeout"
    never.set()
    await _held_only_once_sent_whole(http, r, data)


async def test_a_receiver_with_another_certificate_is_refused_at_once(
    tmp_path: Path, transfer_receiver: Receiver
):
    from workers.transfer.errors import FingerprintMismatch

    pkg = tmp_path / "pkg"
    make_package(pkg, chunk=CB)

    async def progress(done: int, total: int | None, rate: float) -> None:
        return None

    async def refresh() -> str:
        return transfer_receiver.token("fp")

    body = transfer_receiver.body("fp", destination_fingerprint="ab" * 32)
    with pytest.raises(FingerprintMismatch) as info:
        await send_package(pkg, body, progress, refresh)
    assert not info.value.retryable
    assert not (transfer_receiver.root / ".incoming" / "fp").exists()
    body = transfer_receiver.body("fp", destination_fingerprint="not-hex")
    with pytest.raises(FingerprintMismatch, match="hex SHA-256"):
        await send_package(pkg, body, progress, refresh)


async def test_a_sender_gone_mid_body_is_logged_as_such_and_the_chunk_is_not_held(
    http, transfer_receiver, caplog
):
    import asyncio

    from structlog.testing import capture_logs

    r = transfer_receiver
    await _declare(http, r)
    data = b"g" * CB
    sent = asyncio.Event()

    async def dies() -> AsyncIterator[bytes]:
        yield data[:1000]
        sent.set()
        raise RuntimeError("the sender process dies")

    hdrs = {**_chunk_headers(r, data), "Content-Length": str(CB)}
    with capture_logs() as logs:
        with pytest.raises(aiohttp.ClientError):
            async with http.put("/transfer/v1/a1/disk/0", data=dies(), headers=hdrs):
                pass

        async def told() -> bool:
            return any(e["event"] == "transfer.sender_gone" for e in logs)

        await eventually(told, what="the receiver saw the sender go")
    assert sent.is_set()
    assert not [rec for rec in caplog.records if rec.levelname == "ERROR"]  # no traceback
    await _held_only_once_sent_whole(http, r, data)
