"""The simulator itself: start/stop, and what the overlay adds to stock vcsim 0.24."""

from __future__ import annotations

import os
import ssl
import urllib.request
from typing import Any

import pytest
import pyVmomi

from sim.vcsim.process import VcsimError, parse_ready_line, start_vcsim

vim: Any = pyVmomi.vim
pytestmark = pytest.mark.vcsim


def _get(sim, url: str) -> Any:
    ctx = ssl._create_unverified_context()
    with urllib.request.urlopen(url.replace("*", f"{sim.host}:{sim.port}"), context=ctx) as r:
        return r.read()


def test_parse_ready_line():
    url, pid = parse_ready_line("export GOVC_URL=https://u:p@127.0.0.1:9/sdk GOVC_SIM_PID=42\n")
    assert (url, pid) == ("https://u:p@127.0.0.1:9/sdk", 42)
    with pytest.raises(VcsimError):
        parse_ready_line("panic: something\n")


def test_start_and_stop_by_pid_leaves_nothing(vcsim_binary):
    sim = start_vcsim(binary=vcsim_binary)
    assert sim.running()
    datastores = [p for p in sim.workdir.iterdir() if p.name.startswith("govcsim-")]
    assert datastores, "datastore dirs belong under the private workdir"
    assert sim.stop() == 0
    assert not sim.running()
    assert not sim.workdir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(sim.pid, 0)


def test_wrong_credentials_are_refused(vcsim):
    from sim.vcsim import seed

    with pytest.raises(vim.fault.InvalidLogin):
        seed.connect(vcsim.host, vcsim.port, vcsim.username, "wrong")


def test_export_lease_serves_the_seeded_disks_and_refuses_powered_on(vcsim, vcsim_si, vcsim_seeder):
    seeded = vcsim_seeder.vm("two-disks", [4 * 2**20, 2 * 2**20])
    vm = vim.VirtualMachine(seeded.ref, vcsim_si._stub)
    lease = vm.ExportVm()
    urls = lease.info.deviceUrl
    assert [u.targetId for u in urls] == ["disk-0.vmdk", "disk-1.vmdk"]
    for u, disk in zip(urls, seeded.disks, strict=True):
        assert _get(vcsim, u.url) == disk.read_bytes()
    files = [
        vim.OvfManager.OvfFile(deviceId=u.key, path=u.targetId, size=d.stat().st_size)
        for u, d in zip(urls, seeded.disks, strict=True)
    ]
    result = vcsim_si.content.ovfManager.CreateDescriptor(
        obj=vm, cdp=vim.OvfManager.CreateDescriptorParams(ovfFiles=files)
    )
    assert not result.error
    assert 'ovf:href="disk-1.vmdk"' in result.ovfDescriptor
    assert f'ovf:size="{seeded.disks[1].stat().st_size}"' in result.ovfDescriptor
    lease.HttpNfcLeaseComplete()

    running = vcsim_si.content.searchIndex.FindByInventoryPath("DC0/vm/DC0_H0_VM0")
    with pytest.raises(vim.fault.InvalidPowerState):
        running.ExportVm()


def test_seed_option_creates_vms_with_real_disks(vcsim_binary):
    from sim.vcsim import seed
    from sim.vcsim.process import parse_seed, seed_vms

    assert parse_seed("web:8,2") == ("web", [8 * 2**20, 2 * 2**20])
    assert parse_seed("db") == ("db", [16 * 2**20])
    with pytest.raises(ValueError, match="bad --seed"):
        parse_seed("x:0")
    sim = start_vcsim(binary=vcsim_binary)
    try:
        seed_vms(sim, ["web:8,2"])
        si = seed.connect(sim.host, sim.port, sim.username, sim.password)
        try:
            vm = si.content.searchIndex.FindByInventoryPath("DC0/vm/web")
            assert vm.runtime.powerState == "poweredOff"
            lease = vm.ExportVm()
            sizes = [len(_get(sim, u.url)) for u in lease.info.deviceUrl]
            lease.HttpNfcLeaseAbort()
            assert len(sizes) == 2
            assert all(s > 64 * 1024 for s in sizes)  # real VMDKs, not empty files
        finally:
            seed.disconnect(si)
    finally:
        sim.stop()


def test_vcsim_exits_and_cleans_up_when_its_parent_dies(vcsim_binary, tmp_path):
    import subprocess
    import sys
    import time

    script = (
        "from pathlib import Path\nfrom sim.vcsim.process import start_vcsim\n"
        f"s = start_vcsim(binary=Path({str(vcsim_binary)!r}))\n"
        "print(s.pid, s.workdir, flush=True)\n"
        "import os; os._exit(0)\n"  # dies without stop()
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    pid, workdir = out.split()
    deadline = time.monotonic() + 10
    while True:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "vcsim outlived its parent"
        time.sleep(0.05)
    assert not os.path.exists(workdir)
