"""`make dist` as the appliance build uses it: the wheel packer uploads is named after
pyproject's version and holds first boot, the CLI and its entry point."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile

import pytest

from tests.appliance.helpers import REPO

pytestmark = pytest.mark.slow  # builds a wheel and an sdist: ~10 s


def makefile_command(target: str, pattern: str) -> str:
    out = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    match = re.search(pattern, out)
    assert match, out
    return match.group(0)


def test_dist_builds_the_wheel_the_templates_install(tmp_path):
    version = makefile_command("appliance", r"-var version=(\S+)").split("=", 1)[1]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'version = "{version}"' in pyproject
    recipe = makefile_command("dist", r"from setuptools import build_meta as b;[^\"]+")
    out = tmp_path / "dist"
    code = recipe.replace("'dist'", repr(str(out)))
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True)
    wheel = out / f"hcc-{version}-py3-none-any.whl"  # the name packer's file provisioner uploads
    template = (REPO / "packer" / "hcc-node.pkr.hcl").read_text()
    assert "hcc-${var.version}-py3-none-any.whl" in template
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(f"hcc-{version}.dist-info/entry_points.txt").decode()
    assert {"firstboot/__main__.py", "firstboot/ova.py", "firstboot/py.typed", "cli/main.py",
            "workers/settings.py", "appliance/settings.py"} <= names  # fmt: skip
    assert not any(n.startswith("tests/") for n in names)
    assert "hcc = cli.main:main" in entry_points
    with tarfile.open(out / f"hcc-{version}.tar.gz") as sdist:
        assert f"hcc-{version}/firstboot/config.py" in sdist.getnames()
