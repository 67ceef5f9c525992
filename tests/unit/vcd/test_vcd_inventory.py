"""Query records → inventory items: paths, parents, ids (hrefs or urns as references)."""

from __future__ import annotations

from protocol.messages import ObjectKind
from workers.clouds._vcd_inventory import OrgRef, Records, build

H = "https://vcd.example.com/api"
ORG = "11111111-0000-4000-8000-000000000001"
VDC = "22222222-0000-4000-8000-000000000002"
CAT = "33333333-0000-4000-8000-000000000003"
ITEM = "44444444-0000-4000-8000-000000000004"
TPL = "55555555-0000-4000-8000-000000000005"
VAPP = "66666666-0000-4000-8000-000000000006"
VM = "77777777-0000-4000-8000-000000000007"
TVM = "88888888-0000-4000-8000-000000000008"


def records(refs_as_urns: bool) -> Records:
    def ref(kind: str, path: str, uuid: str) -> str:
        return f"urn:vcloud:{kind}:{uuid}" if refs_as_urns else f"{H}/{path}{uuid}"

    return Records(
        orgs=[OrgRef("acme", f"urn:vcloud:org:{ORG}", f"{H}/org/{ORG}")],
        vdcs=[{"name": "acme-vdc", "href": f"{H}/vdc/{VDC}", "id": f"urn:vcloud:vdc:{VDC}",
               "orgName": "acme", "storageLimitMB": "100", "storageUsedMB": "40"}],
        catalogs=[{"name": "Templates", "href": f"{H}/catalog/{CAT}", "orgName": "acme"}],
        items=[{"name": "web", "href": f"{H}/catalogItem/{ITEM}",
                "id": f"urn:vcloud:catalogitem:{ITEM}",
                "catalog": ref("catalog", "catalog/", CAT)}],
        templates=[{"name": "web", "href": f"{H}/vAppTemplate/vappTemplate-{TPL}",
                    "id": f"urn:vcloud:vapptemplate:{TPL}", "vdc": ref("vdc", "vdc/", VDC),
                    "catalogItem": ref("catalogitem", "catalogItem/", ITEM),
                    "catalogName": "Templates", "status": "POWERED_OFF", "storageKB": "2"}],
        vapps=[{"name": "web-01", "href": f"{H}/vApp/vapp-{VAPP}", "id": f"urn:vcloud:vapp:{VAPP}",
                "vdc": ref("vdc", "vdc/", VDC), "status": "POWERED_ON"}],
        vms=[
            {"name": "vm1", "href": f"{H}/vApp/vm-{VM}", "id": f"urn:vcloud:vm:{VM}",
             "container": ref("vapp", "vApp/vapp-", VAPP), "isVAppTemplate": "false",
             "status": "POWERED_OFF", "numberOfCpus": "2", "memoryMB": "1024"},
            {"name": "tvm", "href": f"{H}/vAppTemplate/vm-{TVM}", "isVAppTemplate": "true",
             "container": ref("vapptemplate", "vAppTemplate/vappTemplate-", TPL)},
        ],
    )  # fmt: skip


def test_paths_parents_and_ids() -> None:
    for as_urns in (False, True):
        items = build(records(as_urns))
        by_path = {i.path: i for i in items}
        assert sorted(by_path) == [
            "acme",
            "acme/Templates",
            "acme/Templates/web",
            "acme/Templates/web/web",
            "acme/acme-vdc",
            "acme/acme-vdc/web-01",
            "acme/acme-vdc/web-01/vm1",
        ]  # fmt: skip  (template VMs are not listed)
        cat = by_path["acme/Templates"]
        assert cat.id == f"urn:vcloud:catalog:{CAT}"  # built from the href when no id is given
        assert cat.kind == ObjectKind.CATALOG
        tpl = by_path["acme/Templates/web/web"]
        assert tpl.parent_id == by_path["acme/Templates/web"].id
        assert tpl.attributes["vdc"] == f"urn:vcloud:vdc:{VDC}"
        assert tpl.capacity_bytes == 2048
        vdc = by_path["acme/acme-vdc"]
        assert (vdc.capacity_bytes, vdc.free_bytes) == (100 * 2**20, 60 * 2**20)
        vm = by_path["acme/acme-vdc/web-01/vm1"]
        assert (vm.power_state, vm.cpus, vm.memory_mib) == ("poweredOff", 2, 1024)
        assert by_path["acme/acme-vdc/web-01"].power_state == "poweredOn"


def test_unlimited_vdc_and_orphans() -> None:
    r = records(False)
    r.vdcs[0]["storageLimitMB"] = "0"
    r.vapps.append({"name": "lost", "href": f"{H}/vApp/vapp-x", "vdc": f"{H}/vdc/unknown"})
    items = build(r)
    vdc = next(i for i in items if i.kind == ObjectKind.VDC)
    assert (vdc.capacity_bytes, vdc.free_bytes) == (None, None)
    assert "lost" not in {i.name for i in items}  # no parent we can see: left out
