from __future__ import annotations

from typing import Any

from protocol.messages import ObjectKind
from workers.clouds._vsphere_inventory import RawDisk, RawObject, paths, to_items


def raw(moid: str, type_: str, name: str, parent: str | None = None, **props: Any) -> RawObject:
    return RawObject(moid, type_, {"name": name, "parent": parent, **props})


OBJECTS = [
    raw("group-d1", "Folder", "Datacenters"),
    raw("datacenter-2", "Datacenter", "DC0", "group-d1"),
    raw("group-v3", "Folder", "vm", "datacenter-2"),
    raw("group-h4", "Folder", "host", "datacenter-2"),
    raw("group-s5", "Folder", "datastore", "datacenter-2"),
    raw("domain-s6", "ComputeResource", "esx1", "group-h4"),
    raw("host-7", "HostSystem", "esx1", "domain-s6", **{"runtime.connectionState": "connected"}),
    raw("resgroup-8", "ResourcePool", "Resources", "domain-s6"),
    raw("resgroup-v9", "VirtualApp", "shop", "resgroup-8", parentFolder="group-v3"),
    raw(
        "vm-10",
        "VirtualMachine",
        "web/01",
        "group-v3",
        **{
            "runtime.powerState": "poweredOff",
            "config.template": False,
            "config.hardware.numCPU": 2,
            "config.hardware.memoryMB": 2048,
            "config.hardware.device": (RawDisk("Hard disk 1", 10 * 2**30),),
        },
    ),
    raw("vm-11", "VirtualMachine", "tmpl", "group-v3", **{"config.template": True}),
    raw("vm-12", "VirtualMachine", "in-vapp", None, parentVApp="resgroup-v9"),
    raw(
        "datastore-13",
        "Datastore",
        "ds1",
        "group-s5",
        **{"summary.capacity": 100, "summary.freeSpace": 40, "summary.type": "VMFS"},
    ),
]


def test_paths_follow_parents_and_skip_the_root_folder():
    where = paths(OBJECTS)
    assert where["group-d1"] == ""
    assert where["datacenter-2"] == "DC0"
    assert where["host-7"] == "DC0/host/esx1/esx1"
    assert where["resgroup-8"] == "DC0/host/esx1/Resources"
    assert where["resgroup-v9"] == "DC0/vm/shop"  # vApps appear in the VM folder view
    assert where["vm-10"] == "DC0/vm/web%2f01"  # a slash in a name is escaped as vCenter does
    assert where["vm-12"] == "DC0/vm/shop/in-vapp"


def test_items_kinds_parents_and_values():
    items = {i.id: i for i in to_items(OBJECTS)}
    assert "group-d1" not in items  # the root folder
    assert "domain-s6" not in items  # a standalone host's compute resource only shapes paths
    assert items["host-7"].parent_id == "group-h4"
    assert items["host-7"].attributes["connection_state"] == "connected"
    assert items["resgroup-8"].parent_id == "group-h4"
    vm = items["vm-10"]
    assert (vm.kind, vm.power_state, vm.cpus, vm.memory_mib) == (
        ObjectKind.VM,
        "poweredOff",
        2,
        2048,
    )
    assert [(d.label, d.capacity_bytes) for d in vm.disks] == [("Hard disk 1", 10 * 2**30)]
    assert items["vm-11"].kind is ObjectKind.TEMPLATE
    assert items["vm-12"].parent_id == "resgroup-v9"
    assert items["vm-12"].attributes["vapp"] == "resgroup-v9"
    assert items["resgroup-v9"].kind is ObjectKind.VAPP
    ds = items["datastore-13"]
    assert (ds.capacity_bytes, ds.free_bytes, ds.attributes["datastore_type"]) == (100, 40, "VMFS")


def test_items_are_sorted_by_path_and_orphans_are_dropped():
    orphan = raw("vm-99", "VirtualMachine", "lost", "group-gone")
    items = to_items([*OBJECTS, orphan])
    assert [i.path for i in items] == sorted(i.path for i in items)
    assert "vm-99" not in {i.id for i in items}
