"""Import of an OVF package into a catalog and deploy of a vApp, and every bad input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from protocol.messages import DeploySpec, Target
from sim.vcd.model import TaskError
from sim.vcd.seed import Seed
from sim.vcd.web import TASKS
from tests.integration.vcd.conftest import (
    AdapterFactory,
    ProgressLog,
    Sim,
    disk_bytes,
    make_package,
    start_sim,
)
from workers.clouds.base import (
    CloudConflict,
    CloudError,
    CloudNotFound,
    CloudQuotaExceeded,
    InvalidPackage,
    Progress,
)

MIB = 1024 * 1024


def template_of(sim: Sim, name: str) -> str:
    return next(t.id for t in sim.store.state.templates.values() if t.name == name)


async def test_import_then_deploy(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    disks = {"web-disk1.vmdk": disk_bytes(300_000, 1), "web-disk2.vmdk": disk_bytes(5_000, 2)}
    pkg = make_package(tmp_path, "web", disks)
    adapter = make_adapter(sim, upload_chunk_mib=str(100_000 / MIB))
    result = await adapter.import_package(pkg, Target(catalog="Templates", name="web"), progress)

    tid = template_of(sim, "web")
    assert (result.kind, result.name, result.object_id) == (
        "vapp_template", "web", f"urn:vcloud:vapptemplate:{tid}"
    )  # fmt: skip
    for name, data in disks.items():
        assert sim.store.file_path(tid, name).read_bytes() == data
    # ranged PUTs of at most 100 000 bytes, in order, none repeated
    ranges = [p.content_range for p in sim.puts if p.path.endswith("web-disk1.vmdk")]
    assert ranges == [
        "bytes 0-99999/300000", "bytes 100000-199999/300000", "bytes 200000-299999/300000"
    ]  # fmt: skip
    assert progress.events[-1].bytes_done == progress.events[-1].bytes_total == 305_000
    done = [p.bytes_done for p in progress.events]
    assert done == sorted(done)

    deployed = await adapter.deploy(result.object_id, DeploySpec(name="web-01"), progress)
    vapp = next(a for a in sim.store.state.vapps.values() if a.name == "web-01")
    assert deployed.object_id == f"urn:vcloud:vapp:{vapp.id}"
    assert deployed.power_state == "poweredOn"
    assert vapp.network_names == ["acme-net"]  # the org's (VDC's) first network by default
    assert [vm.name for vm in vapp.vms] == ["web-vm"]


async def test_deploy_by_path_powered_off_on_a_named_network(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    adapter = make_adapter(sim)
    pkg = make_package(tmp_path, "db", {"db.vmdk": disk_bytes(10_000, 3)})
    await adapter.import_package(pkg, Target(catalog="acme/Templates", name="db"), progress)
    spec = DeploySpec(name="db-01", vdc="acme-vdc", network="acme-net", power_on=False)
    deployed = await adapter.deploy("Templates/db", spec, progress)  # the org may be left out
    assert deployed.power_state == "poweredOff"
    # the catalog item's path names the same template: its vApp is taken up, not made again
    again = await adapter.deploy("acme/Templates/db/db", spec, progress)
    assert again.object_id == deployed.object_id
    with pytest.raises(CloudNotFound, match="no network 'nope'"):
        await adapter.deploy("acme/Templates/db", spec.model_copy(update={"name": "x",
                             "network": "nope"}), progress)  # fmt: skip


async def test_a_deploy_again_takes_up_the_vapp_it_made(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    """A deploy step resumed after its node died mid-instantiate finds its own vApp (same
    name, made from the same template) and powers it on when asked; a vApp of that name made
    from another template is still a conflict."""
    adapter = make_adapter(sim)
    pkg = make_package(tmp_path, "db", {"db.vmdk": disk_bytes(10_000, 3)})
    tpl = await adapter.import_package(pkg, Target(catalog="Templates", name="db"), progress)
    spec = DeploySpec(name="db-01", power_on=False)
    first = await adapter.deploy(tpl.object_id, spec, progress)
    assert first.power_state == "poweredOff"
    again = await adapter.deploy(tpl.object_id, spec.model_copy(update={"power_on": True}),
                                 progress)  # fmt: skip
    assert (again.object_id, again.power_state) == (first.object_id, "poweredOn")
    assert [a.name for a in sim.store.state.vapps.values()] == ["db-01"]
    other = make_package(tmp_path, "web", {"web.vmdk": disk_bytes(10_000, 4)})
    tpl2 = await adapter.import_package(other, Target(catalog="Templates", name="web"), progress)
    with pytest.raises(CloudConflict, match="db-01"):
        await adapter.deploy(tpl2.object_id, spec, progress)


async def test_name_already_in_the_catalog(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    adapter = make_adapter(sim)
    pkg = make_package(tmp_path, "app", {"app.vmdk": disk_bytes(1000, 4)})
    await adapter.import_package(pkg, Target(catalog="Templates", name="app"), progress)
    puts = len(sim.puts)
    other = shutil.copytree(pkg, tmp_path / "app-again")  # the same package, another task
    with pytest.raises(CloudConflict, match="Templates already has an item named 'app'") as exc:
        await adapter.import_package(other, Target(catalog="Templates", name="app"), progress)
    assert exc.value.code == "name-conflict"
    assert len(sim.puts) == puts  # refused before anything was sent
    suffixed = Target(catalog="Templates", name="app", on_conflict="suffix")
    result = await adapter.import_package(other, suffixed, progress)
    assert result.name == "app-2"


async def test_the_same_artifact_again_is_the_template_it_made(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    """A node killed after vCD finished the upload but before the step reported resumes the
    step: importing the same artifact again answers the template it made, uploads nothing."""
    adapter = make_adapter(sim)
    pkg = make_package(tmp_path, "app", {"app.vmdk": disk_bytes(1000, 4)})
    for on_conflict in ("fail", "suffix"):
        target = Target(catalog="Templates", name="app", on_conflict=on_conflict)
        first = await adapter.import_package(pkg, target, progress)
        puts = len(sim.puts)
        again = await adapter.import_package(pkg, target, progress)
        assert (again.object_id, again.name) == (first.object_id, first.name)
        assert again.attributes["sent_bytes"] == "0"
        assert len(sim.puts) == puts
        if on_conflict == "fail":
            pkg = shutil.copytree(pkg, tmp_path / "app-next")  # another artifact: app-2
    assert sorted(i.name for i in sim.store.state.items.values()) == ["app", "app-2"]


async def test_a_suffixed_upload_is_resumed_under_its_suffix(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    adapter = make_adapter(sim)
    first = make_package(tmp_path, "app", {"app.vmdk": disk_bytes(1000, 4)})
    await adapter.import_package(first, Target(catalog="Templates", name="app"), progress)
    pkg = make_package(tmp_path / "b", "app", {"app.vmdk": disk_bytes(300_000, 5)})
    target = Target(catalog="Templates", name="app", on_conflict="suffix")
    sim.faults.update({"drop_upload_after_bytes": 100_000, "drop_upload_count": None})
    with pytest.raises(CloudError) as exc:
        await make_adapter(sim, retries="0").import_package(pkg, target, progress)
    assert exc.value.retryable
    sim.faults.update({"drop_upload_after_bytes": None, "drop_upload_count": 1})
    result = await adapter.import_package(pkg, target, progress)
    assert result.name == "app-2"
    assert int(result.attributes["sent_bytes"]) == 200_000  # resumed at vCD's offset
    assert sorted(i.name for i in sim.store.state.items.values()) == ["app", "app-2"]


async def test_an_upload_of_the_artifact_that_cannot_finish_is_made_again(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    """The earlier attempt's upload task failed (its template is in status -1) and the node
    died before it deleted it: the next attempt deletes it and uploads under the same name."""
    data = disk_bytes(200_000, 6)
    pkg = make_package(tmp_path, "s", {"s.vmdk": data})
    target = Target(catalog="Templates", name="s")
    sim.faults.update({"drop_upload_after_bytes": 50_000, "drop_upload_count": None})
    with pytest.raises(CloudError):
        await make_adapter(sim, retries="0").import_package(pkg, target, progress)
    sim.faults.update({"drop_upload_after_bytes": None, "drop_upload_count": 1})
    broken = template_of(sim, "s")
    task = next(t for t in sim.store.state.running_tasks(broken))
    sim.app[TASKS].fail(task, TaskError(message="simulated"))
    assert sim.store.state.templates[broken].status == -1

    result = await make_adapter(sim).import_package(pkg, target, progress)
    assert result.name == "s"
    assert broken not in sim.store.state.templates
    assert [i.name for i in sim.store.state.items.values()] == ["s"]
    assert sim.store.file_path(template_of(sim, "s"), "s.vmdk").read_bytes() == data
    assert int(result.attributes["sent_bytes"]) == len(data)


async def test_unknown_catalog_and_vdc(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    adapter = make_adapter(sim)
    pkg = make_package(tmp_path, "p", {"p.vmdk": disk_bytes(1000, 5)})
    with pytest.raises(CloudNotFound, match="no catalog 'Nope' in org 'acme'"):
        await adapter.import_package(pkg, Target(catalog="Nope", name="p"), progress)
    with pytest.raises(CloudNotFound, match="no catalog 'Templates' in org 'other'"):
        await adapter.import_package(pkg, Target(catalog="other/Templates", name="p"), progress)
    target = Target(catalog="Templates", vdc="nope-vdc", name="p")
    with pytest.raises(CloudNotFound, match="no vdc 'nope-vdc'"):
        await adapter.import_package(pkg, target, progress)
    with pytest.raises(CloudNotFound):
        await adapter.deploy("acme/Templates/missing", DeploySpec(name="x"), progress)
    assert not sim.store.state.items


QUOTA_SEED = {
    "orgs": [
        {
            "name": "acme",
            "users": [
                {
                    "name": "acme-admin",
                    "password": "hcc-demo-password",
                    "role": "Organization Administrator",
                }
            ],
            "networks": [{"name": "acme-net", "fence_mode": "bridged"}],
            "vdcs": [{"name": "acme-vdc", "storage_quota_bytes": 2 * MIB}],
            "catalogs": [{"name": "Templates", "vdc": "acme-vdc"}],
        }
    ]
}


@pytest.mark.parametrize("name_vdc", [False, True])
async def test_quota_exceeded(
    tmp_path: Path, make_adapter: AdapterFactory, progress: ProgressLog, name_vdc: bool
) -> None:
    sim = await start_sim(tmp_path / "sim", Seed.model_validate(QUOTA_SEED))
    try:
        adapter = make_adapter(sim)
        pkg = make_package(tmp_path, "big", {"big.vmdk": disk_bytes(3 * MIB, 6)})
        target = Target(catalog="Templates", name="big", vdc="acme-vdc" if name_vdc else None)
        with pytest.raises(CloudQuotaExceeded, match="quota") as exc:
            await adapter.import_package(pkg, target, progress)
        assert exc.value.code == "quota-exceeded"
        assert not sim.store.state.items  # the half-made item is gone
        assert not [p for p in sim.puts if p.path.endswith("big.vmdk")]
    finally:
        await sim.runner.cleanup()


async def test_upload_task_ends_in_error(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    sim.faults.update({"fail_operations": ["vdcUploadOvfContents"], "fail_count": 1,
                       "fail_message": "Datastore ds-7 is read-only."})  # fmt: skip
    adapter = make_adapter(sim)
    pkg = make_package(tmp_path, "t", {"t.vmdk": disk_bytes(2000, 7)})
    with pytest.raises(CloudError, match="Datastore ds-7 is read-only") as exc:
        await adapter.import_package(pkg, Target(catalog="Templates", name="t"), progress)
    assert exc.value.code == "vcd-task-failed"
    assert not sim.store.state.items


async def test_deploy_task_ends_in_error(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    adapter = make_adapter(sim)
    pkg = make_package(tmp_path, "t", {"t.vmdk": disk_bytes(2000, 8)})
    result = await adapter.import_package(pkg, Target(catalog="Templates", name="t"), progress)
    sim.faults.update({"fail_operations": ["vdcInstantiateVapp"], "fail_count": 1,
                       "fail_message": "No host has enough memory."})  # fmt: skip
    with pytest.raises(CloudError, match="vdcInstantiateVapp failed: No host has enough memory"):
        await adapter.deploy(result.object_id, DeploySpec(name="t-01"), progress)


async def test_dropped_connection_resumes_without_duplicate_bytes(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    data = disk_bytes(3 * MIB, 9)
    pkg = make_package(tmp_path, "r", {"r.vmdk": data})
    sim.faults.update({"drop_upload_after_bytes": 1_500_000, "drop_upload_count": 1})
    adapter = make_adapter(sim, upload_chunk_mib="2")
    result = await adapter.import_package(pkg, Target(catalog="Templates", name="r"), progress)

    assert sim.store.file_path(template_of(sim, "r"), "r.vmdk").read_bytes() == data
    ranges = [p.content_range for p in sim.puts if p.path.endswith("r.vmdk")]
    # the first PUT was cut after 1 500 000 bytes; the next one starts exactly there
    assert ranges[0] == f"bytes 0-{2 * MIB - 1}/{3 * MIB}"
    starts = [int(re.findall(r"bytes (\d+)-", r or "")[0]) for r in ranges]
    assert starts[1] == 1_500_000
    assert starts == sorted(set(starts))
    # after the drop every byte went on the wire once: sent = total + unread tail of the cut PUT
    assert int(result.attributes["sent_bytes"]) == 3 * MIB + (2 * MIB - 1_500_000)


async def test_upload_expired_while_idle_starts_the_file_over(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    data = disk_bytes(1 * MIB, 10)
    pkg = make_package(tmp_path, "e", {"e.vmdk": data})
    # cut the first PUT, and let vCD forget the partial file before the resume
    sim.faults.update({"drop_upload_after_bytes": 400_000, "upload_idle_timeout_s": 0.3})
    adapter = make_adapter(sim, upload_chunk_mib="0.5")
    await adapter.import_package(pkg, Target(catalog="Templates", name="e"), progress)
    assert sim.store.file_path(template_of(sim, "e"), "e.vmdk").read_bytes() == data
    ranges = [p.content_range for p in sim.puts if p.path.endswith("e.vmdk")]
    assert (ranges[1], sim.puts[-3].status) == (f"bytes 400000-{400_000 + MIB // 2 - 1}/{MIB}", 416)
    assert ranges[2:] == [f"bytes 0-{MIB // 2 - 1}/{MIB}", f"bytes {MIB // 2}-{MIB - 1}/{MIB}"]


HOSTILE = {
    "xxe": b"""<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">&x;</Envelope>""",
    "billion-laughs": b"""<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">&c;</Envelope>""",
    "malformed": b"<Envelope xmlns='http://schemas.dmtf.org/ovf/envelope/1'><References>",
    "traversal": b"""<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
 xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"><References>
<File ovf:id="f" ovf:href="../../etc/shadow" ovf:size="1"/></References>
<VirtualSystem ovf:id="v"/></Envelope>""",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
async def test_hostile_descriptor_is_refused(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog, kind: str
) -> None:
    pkg = make_package(tmp_path, "h", {"h.vmdk": b"x"}, descriptor=HOSTILE[kind])
    with pytest.raises(InvalidPackage) as exc:
        await make_adapter(sim).import_package(pkg, Target(catalog="Templates", name="h"), progress)
    assert exc.value.code == "invalid-package"
    assert not sim.store.state.items
    assert not sim.puts


async def test_corrupt_disk_fails_the_manifest(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    pkg = make_package(tmp_path, "c", {"c.vmdk": disk_bytes(1000, 11)})
    (pkg / "c.vmdk").write_bytes(disk_bytes(1000, 12))
    with pytest.raises(InvalidPackage, match=r"SHA256 of c\.vmdk"):
        await make_adapter(sim).import_package(pkg, Target(catalog="Templates", name="c"), progress)
    (pkg / ".hcc-exporting").touch()
    with pytest.raises(InvalidPackage, match="still being written"):
        await make_adapter(sim).import_package(pkg, Target(catalog="Templates", name="c"), progress)


async def test_a_later_attempt_resumes_the_unfinished_upload(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    """The first attempt loses vCD mid-file (every PUT cut) and gives up with a retryable
    error; the catalog item stays, and the next attempt continues at vCD's offset."""
    data = disk_bytes(2 * MIB, 13)
    pkg = make_package(tmp_path, "s", {"s.vmdk": data})
    sim.faults.update({"drop_upload_after_bytes": 300_000, "drop_upload_count": None})
    target = Target(catalog="Templates", name="s")
    with pytest.raises(CloudError) as exc:
        await make_adapter(sim, retries="1").import_package(pkg, target, progress)
    assert exc.value.retryable
    held = sim.store.state.templates[template_of(sim, "s")].file("s.vmdk")
    assert held is not None
    assert held.bytes_transferred == 600_000  # two cut PUTs of 300 000 bytes each
    sim.faults.update({"drop_upload_after_bytes": None, "drop_upload_count": 1})
    puts = len(sim.puts)
    result = await make_adapter(sim).import_package(pkg, target, progress)

    assert result.name == "s"
    assert len(sim.store.state.items) == 1
    assert sim.store.file_path(template_of(sim, "s"), "s.vmdk").read_bytes() == data
    assert sim.puts[puts].content_range == f"bytes 600000-{2 * MIB - 1}/{2 * MIB}"
    assert int(result.attributes["sent_bytes"]) == 2 * MIB - 600_000


async def test_an_item_not_made_by_hcc_is_not_resumed(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    first = make_package(tmp_path / "a", "same", {"x.vmdk": disk_bytes(1000, 14)})
    second = make_package(tmp_path / "b", "same", {"x.vmdk": disk_bytes(1000, 15)})
    sim.faults.update({"drop_upload_after_bytes": 10, "drop_upload_count": None})
    target = Target(catalog="Templates", name="same")
    with pytest.raises(CloudError):
        await make_adapter(sim, retries="0").import_package(first, target, progress)
    sim.faults.update({"drop_upload_after_bytes": None, "drop_upload_count": 1})
    with pytest.raises(CloudConflict):  # an unfinished upload, but of another package
        await make_adapter(sim).import_package(second, target, progress)


async def test_system_administrator_imports_and_deploys_into_a_tenant(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path, progress: ProgressLog
) -> None:
    admin = make_adapter(sim, user="administrator", org="System")
    pkg = make_package(tmp_path, "sys", {"sys.vmdk": disk_bytes(4000, 18)})
    result = await admin.import_package(pkg, Target(catalog="acme/Templates", name="sys"), progress)
    spec = DeploySpec(name="sys-01", vdc="acme/acme-vdc")
    deployed = await admin.deploy(result.object_id, spec, progress)
    vapp = next(a for a in sim.store.state.vapps.values() if a.name == "sys-01")
    assert deployed.object_id == f"urn:vcloud:vapp:{vapp.id}"
    assert sim.store.state.orgs[vapp.org_id].name == "acme"


async def test_item_deleted_by_someone_else_during_the_upload(
    sim: Sim, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    adapter = make_adapter(sim)
    pkg = make_package(tmp_path, "gone", {"gone.vmdk": disk_bytes(10_000, 19)})

    async def delete_item(p: Progress) -> None:
        item = next((i for i in sim.store.state.items.values() if i.name == "gone"), None)
        if item is not None:  # the first event comes before the first disk PUT
            await adapter.session.call("DELETE", f"/api/catalogItem/{item.id}?force=true", "rm")

    with pytest.raises(CloudNotFound, match=r"upload gone\.vmdk: .*transfer session"):
        await adapter.import_package(pkg, Target(catalog="Templates", name="gone"), delete_item)
    assert [p.status for p in sim.puts if p.path.endswith("gone.vmdk")] == [404]
