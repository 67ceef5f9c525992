"""`make demo` in CI: `hcc demo --exit` sets up everything, copies, stops it all, exits 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_hcc_demo_exit(amqp_url: str):
    result = subprocess.run(
        [sys.executable, "-m", "cli", "demo", "--exit", "--disk-mib", "16", "--amqp-url", amqp_url],
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "COLUMNS": "120"},
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "copy succeeded" in out
    assert "UI and API: http://127.0.0.1:" in out
    # a row per step, with the bytes and the average rate of those that moved bytes
    for step in ("export", "send", "import"):
        assert re.search(rf"^{step} +n-\S+ .* [\d.]+/[\d.]+ MiB +[\d.]+ [KMG]?i?B/s +succeeded",
                         out, re.MULTILINE), out  # fmt: skip
    for name in ("n-vcd", "n-vsphere", "server", "vcd-sim"):
        assert f"stopped {name}" in out
