"""The appliance build files checked by the tools that will run them: packer (validate, fmt),
shellcheck, systemd-analyze verify, nft -c. All offline, all fast."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from firstboot.properties import Kind
from firstboot.render import PORTS, nftables_file
from tests.appliance.helpers import REPO

PACKER = REPO / "packer"
SYSTEMD = PACKER / "files" / "systemd"
VERSION = "0.1.0"


def run(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def fake_dist(tmp_path: Path) -> Path:
    """packer validate checks that the wheel the file provisioner uploads exists."""
    dist = tmp_path / "dist"
    dist.mkdir(parents=True)
    (dist / f"hcc-{VERSION}-py3-none-any.whl").write_bytes(b"")
    return dist


def validate(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # output_dir: packer refuses an existing output directory, which `make appliance` leaves
    return run("packer", "validate", "-var", f"dist_dir={fake_dist(tmp_path)}",
               "-var", f"version={VERSION}", "-var", f"output_dir={tmp_path / 'out'}",
               *extra, PACKER)  # fmt: skip


def test_packer_validates_both_templates(tmp_path):
    templates = sorted(p.name for p in PACKER.glob("*.pkr.hcl"))
    assert templates == ["hcc-node.pkr.hcl", "hcc-server.pkr.hcl", "sources.pkr.hcl",
                         "variables.pkr.hcl"]  # fmt: skip
    result = validate(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("hcc-server", "hcc-node"):
        # what -only matches in 1.6.6; an unknown name matches nothing and validates nothing
        build = f"{name}.qemu.{name}"
        only = validate(tmp_path / name, f"-only={build}")
        assert only.returncode == 0, only.stdout + only.stderr
        # the selection is real: without the wheel exactly this build's template fails
        empty = tmp_path / "empty"
        missing = run("packer", "validate", "-var", f"dist_dir={empty}",
                      "-var", f"output_dir={tmp_path / 'out'}", f"-only={build}",
                      PACKER)  # fmt: skip
        assert missing.returncode != 0
        assert f"{name}.pkr.hcl" in missing.stdout + missing.stderr
    inspect = run("packer", "inspect", PACKER)
    assert "qemu.hcc-server" in inspect.stdout
    assert "qemu.hcc-node" in inspect.stdout


def test_packer_validate_catches_a_missing_wheel(tmp_path):
    result = run("packer", "validate", "-var", f"dist_dir={tmp_path}",
                 "-var", f"output_dir={tmp_path / 'out'}", PACKER)  # fmt: skip
    assert result.returncode != 0
    assert "provisioner" in result.stdout + result.stderr


def test_required_plugins_block_is_kept_out_of_the_validated_folder(tmp_path):
    """Packer 1.6.6 refuses required_plugins: that block lives in packer/plugins/."""
    copy = tmp_path / "with-plugins"
    shutil.copytree(PACKER, copy)
    shutil.copy(PACKER / "plugins" / "required_plugins.pkr.hcl", copy)
    result = run("packer", "validate", "-var", f"dist_dir={fake_dist(tmp_path)}",
                 "-var", f"output_dir={tmp_path / 'out'}", copy)  # fmt: skip
    assert result.returncode != 0
    assert "required_plugins" in result.stdout + result.stderr


@pytest.mark.parametrize("folder", [PACKER, PACKER / "plugins"])
def test_packer_fmt_check(folder):
    result = run("packer", "fmt", "-check", folder)
    assert result.returncode == 0, f"not formatted: {result.stdout}"


def shell_scripts() -> list[Path]:
    scripts = sorted((PACKER / "scripts").glob("*.sh"))
    scripts += [p for p in sorted((PACKER / "files" / "sbin").iterdir())]
    return scripts


def test_shellcheck_provisioning_scripts():
    scripts = shell_scripts()
    names = {p.name for p in scripts}
    assert {"disk.sh", "base.sh", "install-hcc.sh", "server.sh", "node.sh", "cleanup.sh"} <= names
    assert "hcc-transfer-disk" in names
    result = run("shellcheck", "--severity=style", "--external-sources", *scripts)
    assert result.returncode == 0, result.stdout


def test_shellcheck_the_projects_other_scripts():
    """The scripts `make` runs (system deps, vcsim, the test runner, CI, the appliance's
    base disk and boot check) are held to the same standard as the provisioners."""
    root = PACKER.parent
    scripts = [*sorted((root / "scripts").glob("*.sh")), *sorted((root / "sim").rglob("*.sh")),
               root / ".ci" / "run"]  # fmt: skip
    names = {p.name for p in scripts}
    assert {"appliance-base.sh", "appliance-bootcheck.sh", "run-tests.sh", "build.sh"} <= names
    result = run("shellcheck", "--severity=style", "--external-sources", *map(str, scripts))
    assert result.returncode == 0, result.stdout


def test_every_file_the_provisioners_install_exists():
    text = "\n".join(p.read_text() for p in shell_scripts())
    used = set(re.findall(r'"\$HCC_FILES/([^"]+)"', text))
    assert used, "the scripts install nothing from files/?"
    missing = sorted(u for u in used if not (PACKER / "files" / u).is_file())
    assert missing == []
    units = {p.name for p in SYSTEMD.iterdir()}
    installed = {Path(u).name for u in used if u.startswith("systemd/")}
    assert units == installed  # no unit is left behind, none is missing


# --- systemd units -------------------------------------------------------------------

SSH_BASE = """[Unit]
Description=OpenBSD Secure Shell server (stand-in for Debian's ssh.service)
[Service]
ExecStartPre=/usr/sbin/sshd -t
ExecStart=/usr/sbin/sshd -D
"""
DROP_INS = {
    "rabbitmq-server-hcc.conf": "rabbitmq-server.service.d/hcc.conf",
    "ssh-hostkeys.conf": "ssh.service.d/hcc.conf",
}
EXEC = re.compile(r"^Exec\w+=[-@+!:]*(/\S+)", re.M)


def unit_root(tmp_path: Path) -> Path:
    """A file system root with the host's systemd units, ours in /etc/systemd/system, and an
    executable at every path our units run (systemd-analyze checks that they exist)."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True)
    (etc / "ssh.service").write_text(SSH_BASE)
    debian = Path("/usr/lib/systemd/system")  # rabbitmq-server and nftables: system deps
    texts = [SSH_BASE] + [(debian / u).read_text() for u in ("rabbitmq-server.service",
                                                             "nftables.service")]  # fmt: skip
    for unit in SYSTEMD.iterdir():
        dest = etc / DROP_INS.get(unit.name, unit.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(unit, dest)
        texts.append(unit.read_text())
    for exe in {m for t in texts for m in EXEC.findall(t)}:
        path = root / exe.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    return root


def test_systemd_analyze_verify_units(tmp_path):
    root = unit_root(tmp_path)
    units = ["hcc-firstboot@server.service", "hcc-firstboot@node.service", "hcc-server.service",
             "hcc-node.service", "hcc-broker-setup.service", "hcc-transfer-disk.service",
             "rabbitmq-server.service", "nftables.service", "ssh.service"]  # fmt: skip
    result = run("systemd-analyze", "verify", f"--root={root}", *units)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # warnings (unknown keys...) count


def test_systemd_analyze_catches_a_broken_unit(tmp_path):
    root = unit_root(tmp_path)
    unit = root / "etc/systemd/system/hcc-node.service"
    unit.write_text(unit.read_text().replace("/opt/hcc/venv/bin/hcc", "/opt/hcc/nowhere/hcc"))
    result = run("systemd-analyze", "verify", f"--root={root}", "hcc-node.service")
    assert result.returncode != 0
    assert "/opt/hcc/nowhere/hcc" in result.stderr


def test_units_wire_first_boot_before_hcc():
    node = (SYSTEMD / "hcc-node.service").read_text()
    server = (SYSTEMD / "hcc-server.service").read_text()
    for text, kind in ((node, "node"), (server, "server")):
        requires = re.findall(r"^Requires=(.*)$", text, re.M)
        assert f"hcc-firstboot@{kind}.service" in " ".join(requires)
        assert f"EnvironmentFile=/etc/hcc/{kind}.env" in text
        assert "User=hcc" in text


# --- firewall ------------------------------------------------------------------------


def readme_ports() -> dict[str, set[int]]:
    """README's Operations table: | 8080/tcp | server | ... |"""
    rows = re.findall(r"^\| (\d+)/tcp \| (server|node)\b", (REPO / "README.md").read_text(), re.M)
    out: dict[str, set[int]] = {"server": set(), "node": set()}
    for port, who in rows:
        out[who].add(int(port))
    return out


def test_firewall_opens_exactly_the_readme_ports():
    ports = readme_ports()
    for kind in Kind:
        assert set(PORTS[kind]) == ports[kind.value]
        rules = nftables_file(kind, ssh=False)
        assert set(map(int, re.findall(r"tcp dport (\d+) accept", rules))) == ports[kind.value]


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize("ssh", [False, True])
def test_nft_accepts_the_rulesets(tmp_path, kind, ssh):
    rules = tmp_path / "nftables.conf"
    rules.write_text(nftables_file(kind, ssh=ssh))
    result = run("nft", "-c", "-f", rules)
    assert result.returncode == 0, result.stderr
