"""``python -m firstboot run`` as the hcc-firstboot unit runs it, writing below a temp root:
the environment from vmtoolsd, from the fallback file, and refusals that keep hcc stopped."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.appliance.helpers import NODE_VALUES, REPO, SERVER_VALUES, environment


def fake_vmtoolsd(tmp_path: Path, document: bytes | None) -> Path:
    """A stand-in for VMware Tools' vmtoolsd: prints the document for exactly the query
    first boot must make, fails like vmtoolsd outside a VM otherwise."""
    doc = tmp_path / "guestinfo.xml"
    if document is not None:
        doc.write_bytes(document)
    script = tmp_path / "vmtoolsd"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--cmd" ] && [ "$2" = "info-get guestinfo.ovfEnv" ] && [ -f {doc} ]; then\n'
        f"  cat {doc}; exit 0\nfi\n"
        'echo "No value found" >&2; exit 1\n'
    )
    script.chmod(0o755)
    return script


def run(tmp_path: Path, kind: str, vmtoolsd: Path | str, fallback: Path | None = None):
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    fallback = fallback or tmp_path / "none.xml"
    args = [sys.executable, "-m", "firstboot", "run", "--kind", kind, "--root", str(root),
            "--vmtoolsd", str(vmtoolsd), "--fallback", str(fallback)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("HCC_")}
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=env, timeout=60)
    return proc, root


def test_node_from_guestinfo(tmp_path):
    proc, root = run(tmp_path, "node", fake_vmtoolsd(tmp_path, environment(NODE_VALUES)))
    assert proc.returncode == 0, proc.stderr
    env_file = root / "etc/hcc/node.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    text = env_file.read_text()
    assert "HCC_NODE_ID='n1'" in text
    assert "HCC_ENROLL_TOKEN='tok-AbC_123'" in text
    assert (root / "etc/hostname").read_text() == "node-a\n"
    assert "Address=192.0.2.10/24" in (root / "etc/systemd/network/10-hcc.network").read_text()
    assert "tcp dport 22 accept" in (root / "etc/nftables.conf").read_text()
    keys = (root / "home/hccadmin/.ssh/authorized_keys").read_text()
    assert keys == NODE_VALUES["admin.ssh_key"] + "\n"
    logs = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    done = next(e for e in logs if e["event"] == "firstboot.configured")
    assert done["source"] == "guestinfo.ovfEnv"
    for secret in ("tok-AbC_123", "c0nsole-Pa$$"):  # secrets never reach the journal
        assert secret not in proc.stderr + proc.stdout


def test_server_from_fallback_file_when_vmtoolsd_is_missing(tmp_path):
    fallback = tmp_path / "ovf-env.xml"
    fallback.write_bytes(environment(SERVER_VALUES))
    proc, root = run(tmp_path, "server", tmp_path / "no-such-vmtoolsd", fallback)
    assert proc.returncode == 0, proc.stderr
    text = (root / "etc/hcc/server.env").read_text()
    assert "HCC_PUBLIC_URL='https://hcc.example.net:8080'" in text
    assert "HCC_BROKER_USERS='rabbitmqctl'" in text
    assert "dport 22" not in (root / "etc/nftables.conf").read_text()
    assert "tcp dport 5672 accept" in (root / "etc/nftables.conf").read_text()


def test_guestinfo_wins_over_the_fallback_file(tmp_path):
    fallback = tmp_path / "ovf-env.xml"
    fallback.write_bytes(environment({**NODE_VALUES, "hcc.node_id": "from-file"}))
    tools = fake_vmtoolsd(tmp_path, environment(NODE_VALUES))
    proc, root = run(tmp_path, "node", tools, fallback)
    assert proc.returncode == 0, proc.stderr
    assert "HCC_NODE_ID='n1'" in (root / "etc/hcc/node.env").read_text()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (environment(NODE_VALUES)[:300], "not well-formed XML"),
        (b"<Environment/>", "not an OVF environment"),
        (environment({**NODE_VALUES, "hcc.node_id": ""}), "hcc.node_id: missing"),
        (None, "no OVF environment"),
    ],
)
def test_bad_environment_stops_hcc_with_a_clear_message(tmp_path, document, message):
    root = tmp_path / "root"
    stale = root / "etc/hcc/node.env"  # written by an earlier, good boot
    stale.parent.mkdir(parents=True)
    stale.write_text("HCC_NODE_ID='old'\n")
    proc, _ = run(tmp_path, "node", fake_vmtoolsd(tmp_path, document))
    assert proc.returncode == 1
    console = [line for line in proc.stderr.splitlines() if line.startswith("hcc-firstboot:")]
    assert message in console[0]
    assert "hcc-node will not start" in console[1]
    journal = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert any(e["event"] == "firstboot.failed" and message in e["error"] for e in journal)
    assert not stale.exists()  # the unit's EnvironmentFile is gone: hcc-node cannot start


def test_node_already_enrolled_boots_without_token(tmp_path):
    root = tmp_path / "root"
    (root / "var/lib/hcc-node").mkdir(parents=True)
    (root / "var/lib/hcc-node/node.json").write_text("{}")
    values = {**NODE_VALUES, "hcc.enroll_token": ""}
    proc, _ = run(tmp_path, "node", fake_vmtoolsd(tmp_path, environment(values)))
    assert proc.returncode == 0, proc.stderr
    assert "HCC_ENROLL_TOKEN" not in (root / "etc/hcc/node.env").read_text()


def test_erlang_cookie_is_copied_private(tmp_path):
    from firstboot.broker import BrokerSetup, copy_cookie

    source = tmp_path / "rabbitmq" / ".erlang.cookie"
    source.parent.mkdir()
    source.write_text("COOKIEVALUE")
    dest = tmp_path / "hcc" / ".erlang.cookie"
    setup = BrokerSetup(cookie_from=source, cookie_to=dest, service_user=None)
    copy_cookie(setup)
    copy_cookie(setup)  # every boot: replaced, not appended, even though it is read-only
    assert dest.read_text() == "COOKIEVALUE"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o400
