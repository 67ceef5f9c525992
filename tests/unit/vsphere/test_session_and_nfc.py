from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from workers.clouds import _vsphere_export as export_
from workers.clouds import _vsphere_nfc as nfc
from workers.clouds._vsphere_session import (
    FALLBACK_VERSION,
    PinnedContext,
    choose_version,
    map_error,
    normalize_thumbprint,
    parse_endpoint,
    vim,
)
from workers.clouds.base import (
    CloudAuthError,
    CloudError,
    CloudNotFound,
    CloudUnreachable,
    Progress,
)


@pytest.mark.parametrize(
    ("value", "algo"),
    [("AB:" * 19 + "AB", "sha1"), ("ab" * 32, "sha256"), ("Ab" * 64, "sha512")],
)
def test_thumbprints(value, algo):
    got_algo, hexdigest = normalize_thumbprint(value)
    assert got_algo == algo
    assert hexdigest == value.replace(":", "").lower()


@pytest.mark.parametrize("value", ["", "abc", "zz" * 32, "ab" * 31])
def test_bad_thumbprints(value):
    with pytest.raises(CloudError) as err:
        normalize_thumbprint(value)
    assert err.value.code == "bad-config"


@pytest.mark.parametrize(
    ("endpoint", "want"),
    [
        ("https://vc.example/sdk", ("vc.example", 443)),
        ("https://vc.example:8443/sdk", ("vc.example", 8443)),
        ("vc.example:9443", ("vc.example", 9443)),
        ("10.0.0.5", ("10.0.0.5", 443)),
    ],
)
def test_parse_endpoint(endpoint, want):
    assert parse_endpoint(endpoint) == want


VERSIONS = b"""<?xml version="1.0"?><namespaces version="1.0"><namespace><name>urn:vim25</name>
<version>6.5</version><priorVersions><version>6.0</version></priorVersions></namespace></namespaces>"""


def test_choose_version_prefers_the_newest_known():
    assert choose_version(VERSIONS) == "vim.version.version11"
    assert choose_version(VERSIONS.replace(b"6.5", b"99.9")) == "vim.version.version10"
    assert choose_version(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>") == FALLBACK_VERSION


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (vim.fault.InvalidLogin(msg="no"), CloudAuthError, "cloud-auth"),
        (vim.fault.InvalidPowerState(msg="on"), CloudError, "invalid-power-state"),
        (ConnectionRefusedError(111, "refused"), CloudUnreachable, "cloud-unreachable"),
        (TimeoutError(), CloudUnreachable, "cloud-unreachable"),
        (ssl.SSLCertVerificationError("bad"), CloudError, "tls-untrusted"),
        (ValueError("x"), CloudError, "cloud-error"),
    ],
)
def test_map_error(exc, kind, code):
    err = map_error(exc, "doing it")
    assert isinstance(err, kind)
    assert err.code == code
    assert str(err).startswith("doing it")


def test_map_error_not_found():
    from workers.clouds._vsphere_session import vmodl

    assert isinstance(map_error(vmodl.fault.ManagedObjectNotFound(), "x"), CloudNotFound)


def test_pinned_context_refuses_a_different_certificate():
    ctx = nfc.endpoint_for("https://h/x", "vc", 443, ssl.create_default_context(), "ab" * 20)
    assert isinstance(ctx.context, PinnedContext)
    assert (ctx.context.pin_algo, ctx.context.pin_hex) == ("sha1", "ab" * 20)


def test_endpoint_for_star_uses_vcenter():
    vc_ctx = ssl.create_default_context()
    ep = nfc.endpoint_for("https://*/nfc/52a/disk-0.vmdk", "vc.example", 8443, vc_ctx, None)
    assert (ep.host, ep.port, ep.path, ep.context) == (
        "vc.example",
        8443,
        "/nfc/52a/disk-0.vmdk",
        vc_ctx,
    )
    ep = nfc.endpoint_for("https://esx1:902/nfc/1/d.vmdk?x=1", "vc", 443, vc_ctx, None)
    assert (ep.host, ep.port, ep.path) == ("esx1", 902, "/nfc/1/d.vmdk?x=1")
    with pytest.raises(CloudError):
        nfc.endpoint_for("http://esx1/nfc/1/d.vmdk", "vc", 443, vc_ctx, None)


class Calls:
    def __init__(self) -> None:
        self.progress: list[Progress] = []
        self.keepalive: list[int] = []

    async def on_progress(self, p: Progress) -> None:
        self.progress.append(p)

    def on_keepalive(self, percent: int) -> None:
        self.keepalive.append(percent)


async def test_run_parallel_reports_and_keeps_the_lease_alive():
    calls = Calls()
    release = threading.Event()

    def keepalive(percent: int) -> None:  # the jobs finish once the lease was kept alive twice
        calls.on_keepalive(percent)
        if len(calls.keepalive) >= 2:
            release.set()

    def job(n: int):
        def run(cancel, on_bytes):
            on_bytes(n)
            assert release.wait(5)
            return n * 10

        return run

    results = await nfc.run_parallel(
        [job(1), job(2), job(3)],
        parallel=3,
        progress=calls.on_progress,
        total=12,
        keepalive=keepalive,
        keepalive_s=0.0,
        interval_s=0.01,
    )
    assert results == [10, 20, 30]
    assert calls.progress[-1] == Progress(6, 12)
    assert len(calls.keepalive) >= 2
    assert all(0 <= p <= 99 for p in calls.keepalive)


async def test_run_parallel_stops_every_stream_when_one_fails():
    stopped = []
    started = threading.Barrier(3, timeout=5)

    def slow(cancel, on_bytes):
        started.wait()
        while not cancel.wait(0.01):
            on_bytes(1)
        stopped.append(True)
        raise nfc.TransferCancelled("stopped")

    def broken(cancel, on_bytes):
        started.wait()
        raise nfc.NfcError("disk 2: HTTP 500")

    calls = Calls()
    with pytest.raises(nfc.NfcError, match="HTTP 500"):
        await nfc.run_parallel(
            [slow, broken, slow],
            parallel=3,
            progress=calls.on_progress,
            total=None,
            keepalive=calls.on_keepalive,
        )
    assert stopped == [True, True]  # both returned before run_parallel did


def test_package_name():
    assert export_.package_name("web 01/prod") == "web_01_prod"
    assert export_.package_name("..") == "export"


def test_finished_disks_need_the_same_key_and_size(tmp_path: Path):
    dev = export_.DeviceFile("/vm-1/ctl0:0", "disk-0.vmdk", "https://*/nfc/1/disk-0.vmdk", None)
    (tmp_path / "disk-0.vmdk").write_bytes(b"x" * 10)
    export_.save_state(tmp_path, "vm-1", {"disk-0.vmdk": {"key": dev.key, "size": 10}})
    assert set(export_.finished_disks(tmp_path, "vm-1", [dev])) == {"disk-0.vmdk"}
    assert export_.finished_disks(tmp_path, "vm-2", [dev]) == {}  # another VM's state
    (tmp_path / "disk-0.vmdk").write_bytes(b"x" * 9)
    assert export_.finished_disks(tmp_path, "vm-1", [dev]) == {}
    (tmp_path / export_.STATE_FILE).write_text("not json")
    assert export_.load_state(tmp_path, "vm-1") == {}


def test_silent_server_download_times_out(tmp_path: Path):
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        ctx = ssl.create_default_context()
        ep = nfc.endpoint_for(f"https://127.0.0.1:{port}/nfc/x", "vc", 443, ctx, None)
        with pytest.raises(TimeoutError):
            nfc.download(
                ep,
                tmp_path / "d",
                cookie="c",
                timeout_s=0.3,
                cancel=threading.Event(),
                on_bytes=lambda n: None,
            )


@pytest.mark.parametrize(
    ("on_disk", "stream", "reused"),
    [
        (b"", b"abcdef", 0),
        (b"abc", b"abcdef", 3),  # an earlier attempt's prefix: only compared
        (b"abcdef", b"abcdef", 6),
        (b"abXdefgh", b"abcdef", 2),  # differs at 2: cut back there, then written
        (b"abcdefgh", b"abcdef", 6),  # longer than the stream: truncated at the end
    ],
)
def test_append_only_writer(tmp_path: Path, on_disk: bytes, stream: bytes, reused: int):
    path = tmp_path / "disk-0.vmdk.part"
    if on_disk:
        path.write_bytes(on_disk)
    inode = path.stat().st_ino if on_disk else None
    w = nfc.AppendOnlyWriter(path)
    for i in range(0, len(stream), 2):
        w.write(stream[i : i + 2])
    w.close()
    assert path.read_bytes() == stream
    assert w.reused == reused
    if inode is not None:
        assert path.stat().st_ino == inode  # the same file, never recreated


@pytest.mark.parametrize(
    "changes",
    [
        {"thumbprint": "not-a-thumbprint"},
        {"endpoint": "https:///sdk"},
        {"options": {"timeout_s": "soon"}},
        {"options": {"parallel_disks": "many"}},
        {"options": {"export_powered_on": "maybe"}},
    ],
)
async def test_bad_configuration_fails_the_first_call_not_the_constructor(changes):
    from protocol.messages import CloudKind
    from workers.clouds.base import CloudConfig
    from workers.clouds.vsphere import VSphereAdapter

    fields = {
        "cloud_id": "c",
        "kind": CloudKind.VSPHERE,
        "endpoint": "https://127.0.0.1:1/sdk",
        "username": "u",
        "password": "p",
        **changes,
    }
    adapter = VSphereAdapter(CloudConfig(**fields))
    try:
        with pytest.raises(CloudError) as err:
            await adapter.check()
        assert err.value.code == "bad-config"
    finally:
        await adapter.close()


async def test_a_failed_lease_progress_update_is_not_fatal():
    calls = Calls()
    release = threading.Event()

    def failing_keepalive(percent: int) -> None:
        calls.on_keepalive(percent)
        release.set()
        raise CloudError("lease progress: timed out")

    def job(cancel, on_bytes):
        assert release.wait(5)
        on_bytes(3)
        return "done"

    results = await nfc.run_parallel(
        [job],
        parallel=1,
        progress=calls.on_progress,
        total=3,
        keepalive=failing_keepalive,
        keepalive_s=0.0,
        interval_s=0.01,
    )
    assert results == ["done"]
    assert calls.keepalive
    assert calls.progress[-1] == Progress(3, 3)


@pytest.mark.parametrize(
    ("name", "disk", "method", "content_type", "overwrite"),
    [
        ("disk-0.vmdk", True, "POST", "application/x-vnd.vmware-streamVmdk", None),
        ("vm.nvram", False, "PUT", "application/octet-stream", "t"),
    ],
)
def test_uploads_speak_nfc(tmp_path: Path, name, disk, method, content_type, overwrite):
    """What vCenter's NFC expects (vcsim does not check it): a disk is POSTed as a
    streamVmdk, another file PUT with ``Overwrite: t``; the session cookie rides along, and
    the device's certificate is pinned by its thumbprint."""
    import http.server

    from workers.transfer.tls import ensure_certificate

    cert = ensure_certificate(tmp_path / "tls", "esx")
    seen: dict[str, object] = {}

    class Nfc(http.server.BaseHTTPRequestHandler):
        def _take(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.update(method=self.command, path=self.path, headers=dict(self.headers),
                        body=body)  # fmt: skip
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT = _take

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Nfc)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.cert_path, cert.key_path)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        source = tmp_path / name
        source.write_bytes(b"x" * 3_000_000)
        url = f"https://*/nfc/52c1/{name}"
        ep = nfc.endpoint_for(url, "127.0.0.1", server.server_port, ssl.create_default_context(),
                              cert.fingerprint)  # fmt: skip
        moved: list[int] = []
        cookie = "vmware_soap_session=abc"
        sent = nfc.upload(ep, source, disk=disk, cookie=cookie, timeout_s=10,
                          cancel=threading.Event(), on_bytes=moved.append)  # fmt: skip
        thread.join(10)
    finally:
        server.server_close()
    headers = seen["headers"]
    assert isinstance(headers, dict)
    assert (seen["method"], seen["path"]) == (method, f"/nfc/52c1/{name}")
    assert headers["Content-Type"] == content_type
    assert headers.get("Overwrite") == overwrite
    assert headers["Cookie"] == "vmware_soap_session=abc"
    assert seen["body"] == source.read_bytes()
    assert sent == sum(moved) == 3_000_000
