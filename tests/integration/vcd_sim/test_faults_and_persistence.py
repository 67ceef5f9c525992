"""Fault injection (in-process and over the admin API), idle expiry, restart persistence,
TLS, and ``--seed``."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.fixtures.vcdsim import VcdSimInProcess, VcdSimProcess, make_ovf, start_vcd_sim
from tests.integration.vcd_sim.helpers import RawClient, V, basic

pytestmark = pytest.mark.vcdsim

DISK = bytes(range(200)) * 50  # 10 000 bytes


async def _started(client: RawClient, name: str = "tpl") -> tuple[str, str]:
    _item, tpl_href = await client.start_upload(name)
    links = await client.upload_links(tpl_href)
    reply = await client.request("PUT", links["descriptor.ovf"], make_ovf({"disk.vmdk": len(DISK)}))
    assert reply.status == 200
    return tpl_href, (await client.upload_links(tpl_href))["disk.vmdk"]


async def _transferred(client: RawClient, tpl_href: str) -> int:
    tpl = await client.get(tpl_href)
    return int(
        next(f for f in tpl.iter(V + "File") if f.get("name") == "disk.vmdk").get(
            "bytesTransferred", "-1"
        )
    )


async def test_failing_task_ends_in_error_with_error_element(
    client: RawClient, vcd_sim_app: VcdSimInProcess
) -> None:
    vcd_sim_app.faults.update({"fail_operations": ["vdcUploadOvfContents"], "fail_count": 1})
    tpl_href, disk = await _started(client)
    assert (await client.request("PUT", disk, DISK)).status == 200
    task = (await client.get(tpl_href)).find(f"{V}Tasks/{V}Task")
    assert task is not None
    done = await client.wait_task(task.get("href", ""))
    assert done.get("status") == "error"
    err = done.find(V + "Error")
    assert err is not None
    assert "fault injection" in err.get("message", "")
    assert (await client.get(tpl_href)).get("status") == "-1"
    assert vcd_sim_app.faults.fail_operations == []  # fail_count consumed


async def test_slow_tasks_stay_running_until_the_delay_passes(
    client: RawClient, vcd_sim_app: VcdSimInProcess
) -> None:
    vcd_sim_app.faults.task_delay_s = 1.0
    tpl_href, disk = await _started(client)
    assert (await client.request("PUT", disk, DISK)).status == 200
    task = (await client.get(tpl_href)).find(f"{V}Tasks/{V}Task")
    assert task is not None
    started = time.monotonic()
    done = await client.wait_task(task.get("href", ""))
    assert done.get("status") == "success"
    assert time.monotonic() - started >= 0.9


async def test_dropped_connection_keeps_received_bytes_and_resume_completes(
    client: RawClient, vcd_sim_app: VcdSimInProcess
) -> None:
    # aiohttp's client re-sends an idempotent PUT once after a disconnect: drop both tries
    vcd_sim_app.faults.update({"drop_upload_after_bytes": 4000, "drop_upload_count": 2})
    tpl_href, disk = await _started(client)
    with pytest.raises(aiohttp.ClientError):
        await client.request(
            "PUT", disk, DISK, {"Content-Range": f"bytes 0-{len(DISK) - 1}/{len(DISK)}"}
        )
    vcd_sim_app.faults.drop_upload_after_bytes = None  # whether or not the client retried
    offset = await _transferred(client, tpl_href)
    assert offset == 4000
    rest = {"Content-Range": f"bytes {offset}-{len(DISK) - 1}/{len(DISK)}"}
    assert (await client.request("PUT", disk, DISK[offset:], rest)).status == 200
    task = (await client.get(tpl_href)).find(f"{V}Tasks/{V}Task")
    assert (await client.wait_task(task.get("href", ""))).get("status") == "success"  # type: ignore[union-attr]
    tid = tpl_href.rsplit("vappTemplate-", 1)[1]
    assert vcd_sim_app.store.file_path(tid, "disk.vmdk").read_bytes() == DISK


async def test_idle_upload_expires_and_starts_over(
    client: RawClient, vcd_sim_app: VcdSimInProcess
) -> None:
    tpl_href, disk = await _started(client)
    assert (
        await client.request(
            "PUT", disk, DISK[:3000], {"Content-Range": f"bytes 0-2999/{len(DISK)}"}
        )
    ).status == 200
    vcd_sim_app.faults.upload_idle_timeout_s = 0.0
    template = next(iter(vcd_sim_app.store.state.templates.values()))
    template.files[1].last_put = time.time() - 1  # idle for a second
    resumed = await client.request(
        "PUT", disk, DISK[3000:], {"Content-Range": f"bytes 3000-{len(DISK) - 1}/{len(DISK)}"}
    )
    assert resumed.status == 416
    assert await _transferred(client, tpl_href) == 0
    vcd_sim_app.faults.upload_idle_timeout_s = None
    assert (await client.request("PUT", disk, DISK)).status == 200


def test_admin_api_sets_faults_at_run_time(vcd_sim: VcdSimProcess) -> None:
    flags = vcd_sim.set_faults(task_delay_s=0.5, fail_operations=["vdcInstantiateVapp"])
    assert (flags["task_delay_s"], flags["fail_operations"]) == (0.5, ["vdcInstantiateVapp"])
    with pytest.raises(urllib.error.HTTPError) as bad:
        vcd_sim.set_faults(no_such_flag=1)
    assert bad.value.code == 400
    bad.value.close()
    vcd_sim.clear_faults()
    assert vcd_sim.admin("GET", "/_sim/faults")["fail_operations"] == []
    state = vcd_sim.state()
    assert {o["name"] for o in state["orgs"].values()} == {"acme", "System"}
    assert all("password" not in u for u in state["users"].values())


def test_faults_given_at_start(tmp_path: Path) -> None:
    sim = start_vcd_sim(tmp_path / "sim", "--faults", json.dumps({"task_delay_s": 3}))
    try:
        assert sim.admin("GET", "/_sim/faults")["task_delay_s"] == 3
    finally:
        sim.stop()


async def test_restart_keeps_state_bytes_and_half_done_upload(
    vcd_sim: VcdSimProcess, http: aiohttp.ClientSession
) -> None:
    client = RawClient(http, vcd_sim.url)
    await client.login()
    done_href = await client.upload("kept", make_ovf({"disk.vmdk": len(DISK)}), {"disk.vmdk": DISK})
    tpl_href, disk = await _started(client, "half")
    assert (
        await client.request(
            "PUT", disk, DISK[:6000], {"Content-Range": f"bytes 0-5999/{len(DISK)}"}
        )
    ).status == 200
    vcd_sim.restart()
    async with (
        aiohttp.ClientSession() as fresh
    ):  # the old pool holds connections to the dead process
        await _finish_after_restart(
            vcd_sim, RawClient(fresh, vcd_sim.url), done_href, tpl_href, disk
        )


async def _finish_after_restart(
    vcd_sim: VcdSimProcess, client: RawClient, done_href: str, tpl_href: str, disk: str
) -> None:
    await client.login()
    assert (await client.get(done_href)).get("status") == "8"
    assert await _transferred(client, tpl_href) == 6000
    rest = {"Content-Range": f"bytes 6000-{len(DISK) - 1}/{len(DISK)}"}
    assert (await client.request("PUT", disk, DISK[6000:], rest)).status == 200
    task = (await client.get(tpl_href)).find(f"{V}Tasks/{V}Task")
    assert (await client.wait_task(task.get("href", ""))).get("status") == "success"  # type: ignore[union-attr]
    tid = tpl_href.rsplit("vappTemplate-", 1)[1]
    assert (vcd_sim.data_dir / "templates" / tid / "disk.vmdk").read_bytes() == DISK


def test_tls_serves_https_with_self_signed_certificate(tmp_path: Path) -> None:
    sim = start_vcd_sim(tmp_path / "sim", "--tls")
    try:
        assert sim.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(tmp_path / "sim" / "tls" / "cert.pem"))
        context.check_hostname = False
        with urllib.request.urlopen(sim.url + "/api/versions", context=context, timeout=10) as resp:
            assert b"SupportedVersions" in resp.read()
        port = int(sim.url.rsplit(":", 1)[1])
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            pytest.raises(ssl.SSLCertVerificationError),  # self-signed: untrusted by default
        ):
            ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
    finally:
        sim.stop()


async def test_seed_file_replaces_default_inventory(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        "orgs:\n"
        "  - name: beta\n"
        "    users: [{name: ops, password: s3cret}]\n"
        "    networks: [{name: beta-net}]\n"
        "    vdcs: [{name: beta-vdc, storage_quota_bytes: 1048576}]\n"
        "    catalogs: [{name: Golden}]\n"
    )
    sim = start_vcd_sim(tmp_path / "sim", "--seed", str(seed))
    try:
        json_accept = "application/json;version=36.0"
        headers = {"Authorization": basic("acme-admin", "acme"), "Accept": json_accept}
        async with http.post(sim.url + "/cloudapi/1.0.0/sessions", headers=headers) as resp:
            assert resp.status == 401
        headers = {"Authorization": basic("ops", "beta", "s3cret"), "Accept": json_accept}
        client = RawClient(http, sim.url)
        async with http.post(sim.url + "/cloudapi/1.0.0/sessions", headers=headers) as resp:
            assert resp.status == 200
            client.token = resp.headers["X-VMWARE-VCLOUD-ACCESS-TOKEN"]
        vdc = (await client.query("type=orgVdc&format=records")).find(V + "OrgVdcRecord")
        assert vdc is not None
        assert (vdc.get("name"), vdc.get("storageLimitMB")) == ("beta-vdc", "1")
        cat = (await client.query("type=catalog&format=records")).find(V + "CatalogRecord")
        assert cat is not None
        assert cat.get("name") == "Golden"
    finally:
        sim.stop()


async def test_expired_sessions_get_401_until_login(
    vcd_sim: VcdSimProcess, http: aiohttp.ClientSession
) -> None:
    client = RawClient(http, vcd_sim.url)
    await client.login()
    assert (await client.request("GET", "/api/org/")).status == 200
    assert vcd_sim.expire_sessions() == 1
    assert (await client.request("GET", "/api/org/")).status == 401
    await client.login()
    assert (await client.request("GET", "/api/org/")).status == 200


async def test_running_task_resumes_after_restart(vcd_sim: VcdSimProcess) -> None:
    async with aiohttp.ClientSession() as http:
        client = RawClient(http, vcd_sim.url)
        await client.login()
        tpl_href = await client.upload("t", make_ovf({"d.vmdk": 3}), {"d.vmdk": b"abc"})
        vcd_sim.set_faults(task_delay_s=60)
        reply = await client.request("POST", tpl_href + "/action/enableDownload")
        assert reply.status == 202
        task_href = reply.xml.get("href", "")
        assert (await client.get(task_href)).get("status") == "running"
    vcd_sim.restart()  # faults are not persisted: the resumed task runs at normal speed
    async with aiohttp.ClientSession() as http:
        client = RawClient(http, vcd_sim.url)
        await client.login()
        assert (await client.wait_task(task_href)).get("status") == "success"
        tpl = await client.get(tpl_href)
        assert [link.get("rel") for link in tpl.findall(V + "Link")].count("download:default") == 1


async def test_idle_download_links_expire(client: RawClient, vcd_sim_app: VcdSimInProcess) -> None:
    tpl_href = await client.upload("dl", make_ovf({"disk.vmdk": len(DISK)}), {"disk.vmdk": DISK})
    enabled = await client.request("POST", tpl_href + "/action/enableDownload")
    await client.wait_task(enabled.xml.get("href", ""))
    tpl = await client.get(tpl_href)
    descriptor = next(
        link.get("href", "")
        for link in tpl.findall(V + "Link")
        if link.get("rel") == "download:default"
    )
    assert (await client.request("GET", descriptor)).status == 200
    vcd_sim_app.faults.download_idle_timeout_s = 0.0
    template = next(iter(vcd_sim_app.store.state.templates.values()))
    template.download_last_access = time.time() - 1
    assert (await client.request("GET", descriptor)).status == 404
    tpl = await client.get(tpl_href)
    assert not [link for link in tpl.findall(V + "Link") if link.get("rel") == "download:default"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "SEED"], "unknown networks"),
        (["--faults", '{"nope": 1}'], "nope"),
    ],
)
def test_cli_refuses_bad_seed_or_faults(tmp_path: Path, args: list[str], message: str) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text("orgs: [{name: x, vdcs: [{name: v, networks: [nope]}]}]\n")
    argv = [a.replace("SEED", str(seed)) for a in args]
    cmd = [
        sys.executable,
        "-m",
        "sim.vcd",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        str(tmp_path / "d"),
    ]
    done = subprocess.run([*cmd, *argv], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert message in done.stderr
