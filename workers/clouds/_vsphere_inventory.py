"""vSphere inventory: one PropertyCollector pass over a ContainerView, then pure conversion.

:func:`collect` (blocking) asks RetrievePropertiesEx for a fixed set of properties of every
managed entity under the root folder, paging with ContinueRetrievePropertiesEx, and returns
:class:`RawObject` values. :func:`to_items` (pure) turns those into protocol InventoryItems
with slash paths like vCenter's inventory paths (``DC0/vm/web-01``, ``DC0/host/C0/H1``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyVmomi

from protocol.messages import DiskInfo, InventoryItem, ObjectKind
from workers.clouds._vsphere_session import vim, vmodl

PAGE_SIZE = 1000

# Managed object type -> properties read for it. Every type also gets name and parent.
PROPERTIES: dict[str, tuple[str, ...]] = {
    "Folder": ("childType",),
    "Datacenter": (),
    "ClusterComputeResource": (),
    "ComputeResource": (),
    "HostSystem": ("runtime.connectionState", "runtime.powerState"),
    "ResourcePool": (),
    "VirtualApp": ("parentFolder", "parentVApp"),
    "Datastore": ("summary.capacity", "summary.freeSpace", "summary.type"),
    "Network": (),
    "VirtualMachine": (
        "parentVApp",
        "config.template",
        "config.hardware.numCPU",
        "config.hardware.memoryMB",
        "config.hardware.device",
        "runtime.powerState",
    ),
}

KINDS: dict[str, ObjectKind] = {
    "Folder": ObjectKind.FOLDER,
    "Datacenter": ObjectKind.DATACENTER,
    "ClusterComputeResource": ObjectKind.CLUSTER,
    "HostSystem": ObjectKind.HOST,
    "ResourcePool": ObjectKind.RESOURCE_POOL,
    "VirtualApp": ObjectKind.VAPP,
    "Datastore": ObjectKind.DATASTORE,
    "Network": ObjectKind.NETWORK,
    "DistributedVirtualPortgroup": ObjectKind.NETWORK,
    "OpaqueNetwork": ObjectKind.NETWORK,
}


@dataclass(frozen=True)
class RawDisk:
    label: str
    capacity_bytes: int


@dataclass(frozen=True)
class RawObject:
    """One entity as the PropertyCollector returned it (references as moref values)."""

    moid: str
    type: str
    props: Mapping[str, Any] = field(default_factory=dict)


def _ref(value: Any) -> str | None:
    return None if value is None else str(value._moId)


def _disks(devices: Iterable[Any]) -> tuple[RawDisk, ...]:
    out = []
    for dev in devices or ():
        if isinstance(dev, vim.vm.device.VirtualDisk):
            capacity = dev.capacityInBytes or (dev.capacityInKB or 0) * 1024
            out.append(RawDisk(dev.deviceInfo.label if dev.deviceInfo else str(dev.key), capacity))
    return tuple(out)


def _plain(name: str, value: Any) -> Any:
    """Reference -> moid, device list -> RawDisks, anything else unchanged."""
    if name == "config.hardware.device":
        return _disks(value)
    if isinstance(value, pyVmomi.VmomiSupport.ManagedObject):
        return _ref(value)
    return value


def _filter_spec(view: Any) -> Any:
    traversal = vmodl.query.PropertyCollector.TraversalSpec(
        name="view", path="view", skip=False, type=vim.view.ContainerView
    )
    obj = vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traversal])
    prop_set = [
        vmodl.query.PropertyCollector.PropertySpec(
            type=getattr(vim, t), pathSet=["name", "parent", *props]
        )
        for t, props in PROPERTIES.items()
    ]
    return vmodl.query.PropertyCollector.FilterSpec(objectSet=[obj], propSet=prop_set)


def collect(si: Any) -> list[RawObject]:
    """Read every entity's properties in pages (blocking)."""
    content = si.content
    view = content.viewManager.CreateContainerView(
        content.rootFolder, [getattr(vim, t) for t in PROPERTIES], True
    )
    try:
        pc = content.propertyCollector
        options = vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=PAGE_SIZE)
        result = pc.RetrievePropertiesEx([_filter_spec(view)], options)
        # A ContainerView lists what is inside the root folder, not the folder itself.
        root = RawObject(str(content.rootFolder._moId), "Folder", {"name": "", "parent": None})
        out: list[RawObject] = [root]
        while result is not None:
            for oc in result.objects:
                props = {p.name: _plain(p.name, p.val) for p in oc.propSet or ()}
                out.append(
                    RawObject(str(oc.obj._moId), type(oc.obj).__name__.split(".")[-1], props)
                )
            if not result.token:
                break
            result = pc.ContinueRetrievePropertiesEx(result.token)
        return out
    finally:
        view.DestroyView()


def retrieve(si: Any, objs: Sequence[Any], kind: Any, paths: Sequence[str]) -> list[dict[str, Any]]:
    """Properties of several objects of one type in one RetrievePropertiesEx (order kept;
    references come back as moref values, like :func:`collect`)."""
    if not objs:
        return []
    pq = vmodl.query.PropertyCollector
    spec = pq.FilterSpec(
        objectSet=[pq.ObjectSpec(obj=o, skip=False) for o in objs],
        propSet=[pq.PropertySpec(type=kind, pathSet=list(paths))],
    )
    pc = si.content.propertyCollector
    result = pc.RetrievePropertiesEx([spec], pq.RetrieveOptions())
    found: dict[str, dict[str, Any]] = {}
    while result is not None:
        for oc in result.objects:
            found[str(oc.obj._moId)] = {p.name: _plain(p.name, p.val) for p in oc.propSet or ()}
        if not result.token:
            break
        result = pc.ContinueRetrievePropertiesEx(result.token)
    return [found.get(str(o._moId), {}) for o in objs]


def _kind(obj: RawObject) -> ObjectKind | None:
    if obj.type == "VirtualMachine":
        return ObjectKind.TEMPLATE if obj.props.get("config.template") else ObjectKind.VM
    return KINDS.get(obj.type)


def _parent(obj: RawObject) -> str | None:
    """Folder parent first for vApps (they are listed under DC/vm like vCenter's VM view);
    VMs inside a vApp may have no folder parent, then the vApp is their parent."""
    parent = obj.props.get("parentFolder") or obj.props.get("parent")
    if parent is None:
        parent = obj.props.get("parentVApp")
    return parent if isinstance(parent, str) else None


def paths(objects: Iterable[RawObject]) -> dict[str, str]:
    """moid -> inventory path. The root folder (no parent) is not part of any path; an object
    whose parent chain does not reach the root (created or moved mid-snapshot) has none."""
    by_id = {o.moid: o for o in objects}
    cache: dict[str, str | None] = {}

    def path_of(moid: str, depth: int = 0) -> str | None:
        if moid in cache:
            return cache[moid]
        obj = by_id.get(moid)
        if obj is None or depth > 64:
            return None
        parent = _parent(obj)
        name = str(obj.props.get("name", moid)).replace("/", "%2f")
        if parent is None:  # the root folder
            cache[moid] = ""
            return ""
        base = path_of(parent, depth + 1)
        cache[moid] = None if base is None else f"{base}/{name}" if base else name
        return cache[moid]

    return {moid: p for moid in by_id if (p := path_of(moid)) is not None}


def _item(obj: RawObject, kind: ObjectKind, path: str, parent_id: str | None) -> InventoryItem:
    p = obj.props
    disks = tuple(
        DiskInfo(label=d.label, capacity_bytes=d.capacity_bytes)
        for d in p.get("config.hardware.device", ())
    )
    attributes = {"type": obj.type}
    if p.get("parentVApp") and obj.type == "VirtualMachine":
        attributes["vapp"] = str(p["parentVApp"])
    if obj.type == "Datastore" and p.get("summary.type"):
        attributes["datastore_type"] = str(p["summary.type"])
    if obj.type == "HostSystem" and p.get("runtime.connectionState"):
        attributes["connection_state"] = str(p["runtime.connectionState"])
    return InventoryItem(
        id=obj.moid,
        kind=kind,
        name=str(p.get("name", obj.moid)),
        parent_id=parent_id,
        path=path,
        power_state=p.get("runtime.powerState") if obj.type == "VirtualMachine" else None,
        cpus=p.get("config.hardware.numCPU"),
        memory_mib=p.get("config.hardware.memoryMB"),
        disks=disks,
        capacity_bytes=p.get("summary.capacity"),
        free_bytes=p.get("summary.freeSpace"),
        attributes=attributes,
    )


def to_items(objects: Iterable[RawObject]) -> list[InventoryItem]:
    """Protocol items, sorted by path. Entities of other kinds (standalone compute resources,
    the root folder) shape paths but are not listed; an item's parent is its nearest listed
    ancestor."""
    objs = list(objects)
    by_id = {o.moid: o for o in objs}
    where = paths(objs)
    items = []
    for obj in objs:
        kind = _kind(obj)
        if kind is None or not where.get(obj.moid):
            continue
        parent = _parent(obj)
        while (
            parent is not None
            and parent in by_id
            and (_kind(by_id[parent]) is None or not where.get(parent))
        ):
            parent = _parent(by_id[parent])
        parent_id = parent if parent in by_id else None
        items.append(_item(obj, kind, where[obj.moid], parent_id))
    return sorted(items, key=lambda i: (i.path, i.id))


def vapp_in(si: Any, folder: Any, name: str) -> Any:
    """The vApp named ``name`` whose parentFolder is ``folder``, or None (blocking; a search
    index lookup does not look at vApps in VM folders on vcsim)."""
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualApp], True)
    try:
        for app in view.view:
            parent = app.parentFolder
            if app.name == name and parent is not None and parent._moId == folder._moId:
                return app
    finally:
        view.DestroyView()
    return None
