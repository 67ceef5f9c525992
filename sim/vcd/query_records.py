"""Query records per type: the attribute dicts that the query service filters and renders.

Each builder yields ``(org_id, attrs)`` for every entity of its type; ``attrs`` are the
record's XML attributes (hrefs absolute, booleans as ``true``/``false``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sim.vcd.model import STATUS_NAMES, State, Status, Vm
from sim.vcd.render import Hrefs, urn

Records = Iterator[tuple[str, dict[str, str]]]
Builder = Callable[[Hrefs, State], Records]


def _b(value: bool) -> str:
    return "true" if value else "false"


def _status(code: int) -> str:
    return (
        STATUS_NAMES.get(Status(code), "UNKNOWN")
        if code in Status._value2member_map_
        else "UNKNOWN"
    )


def _owner(state: State, user_id: str) -> str:
    user = state.users.get(user_id)
    return user.name if user else ""


def catalogs(h: Hrefs, state: State) -> Records:
    for c in state.catalogs.values():
        items = [i for i in state.items.values() if i.catalog_id == c.id]
        yield (
            c.org_id,
            {
                "name": c.name,
                "href": h.catalog(c.id),
                "id": urn("catalog", c.id),
                "orgName": state.orgs[c.org_id].name,
                "org": h.org(c.org_id),
                "ownerName": "system",
                "isPublished": "false",
                "isShared": "false",
                "numberOfVAppTemplates": str(len(items)),
                "numberOfMedia": "0",
                "creationDate": c.created,
                "description": c.description,
            },
        )


def vdcs(h: Hrefs, state: State) -> Records:
    for v in state.vdcs.values():
        yield (
            v.org_id,
            {
                "name": v.name,
                "href": h.vdc(v.id),
                "id": urn("vdc", v.id),
                "orgName": state.orgs[v.org_id].name,
                "org": h.org(v.org_id),
                "status": "READY",
                "isEnabled": "true",
                "storageLimitMB": str((v.storage_quota_bytes or 0) // 2**20),
                "storageUsedMB": str(state.vdc_used_bytes(v.id) // 2**20),
            },
        )


def vapps(h: Hrefs, state: State) -> Records:
    for a in state.vapps.values():
        yield (
            a.org_id,
            {
                "name": a.name,
                "href": h.vapp(a.id),
                "id": urn("vapp", a.id),
                "vdc": h.vdc(a.vdc_id),
                "vdcName": state.vdcs[a.vdc_id].name,
                "org": h.org(a.org_id),
                "status": _status(a.status),
                "numberOfVMs": str(len(a.vms)),
                "isDeployed": _b(a.deployed),
                "isEnabled": "true",
                "ownerName": _owner(state, a.owner_id),
                "creationDate": a.created,
            },
        )


def templates(h: Hrefs, state: State) -> Records:
    for t in state.templates.values():
        item = state.items.get(t.catalog_item_id or "")
        catalog = state.catalogs.get(item.catalog_id) if item else None
        yield (
            t.org_id,
            {
                "name": t.name,
                "href": h.template(t.id),
                "id": urn("vapptemplate", t.id),
                "vdc": h.vdc(t.vdc_id),
                "vdcName": state.vdcs[t.vdc_id].name,
                "org": h.org(t.org_id),
                "catalogName": catalog.name if catalog else "",
                "catalog": h.catalog(catalog.id) if catalog else "",
                "catalogItem": h.item(item.id) if item else "",
                "status": _status(t.status),
                "ownerName": _owner(state, t.owner_id),
                "isGoldMaster": "false",
                "isEnabled": "true",
                "isDeployed": "false",
                "numberOfVMs": str(len(t.vms)),
                "storageKB": str(t.disk_bytes // 1024),
                "creationDate": t.created,
            },
        )


def catalog_items(h: Hrefs, state: State) -> Records:
    for i in state.items.values():
        c = state.catalogs[i.catalog_id]
        t = state.templates.get(i.template_id)
        yield (
            c.org_id,
            {
                "name": i.name,
                "href": h.item(i.id),
                "id": urn("catalogitem", i.id),
                "catalog": h.catalog(c.id),
                "catalogName": c.name,
                "entity": h.template(i.template_id),
                "entityName": t.name if t else "",
                "entityType": "vapptemplate",
                "org": h.org(c.org_id),
                "ownerName": _owner(state, t.owner_id) if t else "",
                "status": _status(t.status) if t else "UNKNOWN",
                "isPublished": "false",
                "creationDate": i.created,
            },
        )


def tasks(h: Hrefs, state: State) -> Records:
    kinds = {
        "vAppTemplate": (h.template, "vAppTemplate"),
        "vApp": (h.vapp, "vApp"),
        "catalogItem": (h.item, "catalogItem"),
    }
    for t in state.tasks.values():
        href_of, object_type = kinds[t.owner_kind]
        yield (
            t.org_id,
            {
                "name": t.operation_name,
                "href": h.task(t.id),
                "id": urn("task", t.id),
                "status": t.status,
                "operationFull": t.operation,
                "object": href_of(t.owner_id),
                "objectName": t.owner_name,
                "objectType": object_type,
                "org": h.org(t.org_id),
                "orgName": state.orgs[t.org_id].name if t.org_id in state.orgs else "",
                "ownerName": _owner(state, t.user_id),
                "startDate": t.start,
                "endDate": t.end or "",
            },
        )


def vms(h: Hrefs, state: State) -> Records:
    for a in state.vapps.values():
        for vm in a.vms:
            yield (
                a.org_id,
                _vm_record(h.vapp_vm(vm.id), vm, h.vapp(a.id), a.name, False, h.vdc(a.vdc_id)),
            )
    for t in state.templates.values():
        for vm in t.vms:
            yield (
                t.org_id,
                _vm_record(
                    h.template_vm(vm.id), vm, h.template(t.id), t.name, True, h.vdc(t.vdc_id)
                ),
            )


def _vm_record(
    href: str, vm: Vm, container: str, container_name: str, in_template: bool, vdc: str
) -> dict[str, str]:
    return {
        "name": vm.name,
        "href": href,
        "id": urn("vm", vm.id),
        "container": container,
        "containerName": container_name,
        "isVAppTemplate": _b(in_template),
        "vdc": vdc,
        "status": _status(vm.status),
        "numberOfCpus": str(vm.cpus),
        "memoryMB": str(vm.memory_mb),
        "networkName": vm.network or "",
    }


def networks(h: Hrefs, state: State) -> Records:
    for n in state.networks.values():
        vdc = next((v for v in state.vdcs.values() if n.id in v.network_ids), None)
        yield (
            n.org_id,
            {
                "name": n.name,
                "href": h.network(n.id),
                "id": urn("network", n.id),
                "vdc": h.vdc(vdc.id) if vdc else "",
                "vdcName": vdc.name if vdc else "",
                "linkType": "1" if n.fence_mode == "bridged" else "2",
                "isShared": "false",
            },
        )


# type → (record element base name, builder); admin types use "Admin" + base name.
TYPES: dict[str, tuple[str, Builder]] = {
    "catalog": ("Catalog", catalogs),
    "orgVdc": ("OrgVdc", vdcs),
    "vApp": ("VApp", vapps),
    "vAppTemplate": ("VAppTemplate", templates),
    "catalogItem": ("CatalogItem", catalog_items),
    "task": ("Task", tasks),
    "vm": ("VM", vms),
    "orgVdcNetwork": ("OrgVdcNetwork", networks),
}
ADMIN_TYPES = {
    "adminCatalog": "catalog",
    "adminOrgVdc": "orgVdc",
    "adminVApp": "vApp",
    "adminVAppTemplate": "vAppTemplate",
    "adminCatalogItem": "catalogItem",
    "adminVM": "vm",
    "adminOrgVdcNetwork": "orgVdcNetwork",
}
