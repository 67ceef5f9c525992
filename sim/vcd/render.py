"""XML for the navigation resources: Session, OrgList, Org, Vdc, Catalog, CatalogItem, Task.

Shapes follow shared/vcd-api.md §2c, §4 and §6 (real vCD 10.x captures and VMware's docs).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from sim.vcd.model import Catalog, CatalogItem, Org, State, Task, Vdc
from sim.vcd.xmlgen import (
    MT_ADMIN,
    MT_CAPTURE_PARAMS,
    MT_CATALOG,
    MT_CATALOG_ITEM,
    MT_ENTITY,
    MT_INSTANTIATE_PARAMS,
    MT_MEDIA,
    MT_METADATA,
    MT_NETWORK,
    MT_ORG,
    MT_ORG_LIST,
    MT_QUERY_LIST,
    MT_RECORDS,
    MT_SESSION,
    MT_TASK,
    MT_TASKS_LIST,
    MT_TEMPLATE,
    MT_UPLOAD_PARAMS,
    MT_USER,
    MT_VAPP,
    MT_VDC,
    MT_VDC_STORAGE_PROFILE,
    el,
    link,
    ref,
    text_el,
)


@dataclass(frozen=True)
class Hrefs:
    """Real vCD URL shapes (shared/vcd-api.md §3)."""

    base: str

    @property
    def api(self) -> str:
        return self.base + "/api"

    def org(self, oid: str) -> str:
        return f"{self.api}/org/{oid}"

    def vdc(self, vid: str) -> str:
        return f"{self.api}/vdc/{vid}"

    def catalog(self, cid: str) -> str:
        return f"{self.api}/catalog/{cid}"

    def item(self, iid: str) -> str:
        return f"{self.api}/catalogItem/{iid}"

    def template(self, tid: str) -> str:
        return f"{self.api}/vAppTemplate/vappTemplate-{tid}"

    def template_vm(self, mid: str) -> str:
        return f"{self.api}/vAppTemplate/vm-{mid}"

    def vapp(self, aid: str) -> str:
        return f"{self.api}/vApp/vapp-{aid}"

    def vapp_vm(self, mid: str) -> str:
        return f"{self.api}/vApp/vm-{mid}"

    def task(self, kid: str) -> str:
        return f"{self.api}/task/{kid}"

    def network(self, nid: str) -> str:
        return f"{self.api}/network/{nid}"

    def user(self, uid: str) -> str:
        return f"{self.api}/admin/user/{uid}"

    def transfer(self, xid: str, name: str) -> str:
        return f"{self.base}/transfer/{xid}/{name}"


def urn(kind: str, ident: str) -> str:
    return f"urn:vcloud:{kind}:{ident}"


def session(h: Hrefs, org: Org, user_name: str, user_id: str, role: str) -> ET.Element:
    return el(
        "Session",
        {
            "org": org.name,
            "user": user_name,
            "userId": urn("user", user_id),
            "roles": role,
            "locationId": f"{org.id}@sim",
            "href": f"{h.api}/session",
            "type": MT_SESSION,
        },
        link("down", f"{h.api}/org/", MT_ORG_LIST),
        link("remove", f"{h.api}/session"),
        link("down", f"{h.api}/admin/", MT_ADMIN),
        link("down", h.org(org.id), MT_ORG, org.name),
        link("down", f"{h.api}/query", MT_QUERY_LIST),
        link("entityResolver", f"{h.api}/entity/", MT_ENTITY),
        link("openapi", f"{h.base}/cloudapi", "application/json"),
    )


def org_list(h: Hrefs, orgs: list[Org]) -> ET.Element:
    root = el("OrgList", {"href": f"{h.api}/org/", "type": MT_ORG_LIST})
    for org in orgs:
        root.append(ref("Org", h.org(org.id), MT_ORG, org.name))
    return root


def org(h: Hrefs, o: Org, state: State, version: float) -> ET.Element:
    """API >= 33: no catalog/VDC links, but records-query links (pyvcloud matches the
    substrings ``catalog`` and ``vdc`` in their hrefs); API <= 32: direct down links."""
    root = el(
        "Org",
        {"name": o.name, "id": urn("org", o.id), "href": h.org(o.id), "type": MT_ORG},
    )
    if version < 33:
        for cat in _org_catalogs(state, o.id):
            root.append(link("down", h.catalog(cat.id), MT_CATALOG, cat.name))
        for vdc_ in _org_vdcs(state, o.id):
            root.append(link("down", h.vdc(vdc_.id), MT_VDC, vdc_.name))
    root.append(link("down", f"{h.api}/tasksList/{o.id}", MT_TASKS_LIST))
    for net in sorted(state.networks.values(), key=lambda n: n.name):
        if net.org_id == o.id:
            root.append(link("down", h.network(net.id), MT_NETWORK, net.name))
    root.append(link("down", f"{h.org(o.id)}/metadata", MT_METADATA))
    if version >= 33:
        flt = f"org=={urn('org', o.id)}"
        root.append(
            link("down", f"{h.api}/query?type=catalog&format=records&filter={flt}", MT_RECORDS)
        )
        root.append(
            link("down", f"{h.api}/query?type=orgVdc&format=records&filter={flt}", MT_RECORDS)
        )
    root.append(text_el("Description", o.description))
    root.append(text_el("FullName", o.full_name or o.name))
    return root


def _org_catalogs(state: State, org_id: str) -> list[Catalog]:
    return sorted((c for c in state.catalogs.values() if c.org_id == org_id), key=lambda c: c.name)


def _org_vdcs(state: State, org_id: str) -> list[Vdc]:
    return sorted((v for v in state.vdcs.values() if v.org_id == org_id), key=lambda v: v.name)


def vdc(h: Hrefs, v: Vdc, state: State) -> ET.Element:
    root = el(
        "Vdc",
        {
            "status": "1",
            "name": v.name,
            "id": urn("vdc", v.id),
            "href": h.vdc(v.id),
            "type": MT_VDC,
        },
        link("up", h.org(v.org_id), MT_ORG),
        link("add", f"{h.vdc(v.id)}/action/instantiateVAppTemplate", MT_INSTANTIATE_PARAMS),
        link("down", f"{h.vdc(v.id)}/metadata", MT_METADATA),
        text_el("Description", ""),
        text_el("AllocationModel", "AllocationVApp"),
    )
    storage = el("StorageCapacity")
    storage.extend(
        [
            text_el("Units", "MB"),
            text_el("Allocated", (v.storage_quota_bytes or 0) // 2**20),
            text_el("Limit", (v.storage_quota_bytes or 0) // 2**20),
            text_el("Used", state.vdc_used_bytes(v.id) // 2**20),
            text_el("Overhead", 0),
        ]
    )
    root.append(storage)
    entities = el("ResourceEntities")
    for t in sorted(state.templates.values(), key=lambda t: t.name):
        if t.vdc_id == v.id:
            entities.append(ref("ResourceEntity", h.template(t.id), MT_TEMPLATE, t.name))
    for a in sorted(state.vapps.values(), key=lambda a: a.name):
        if a.vdc_id == v.id:
            entities.append(ref("ResourceEntity", h.vapp(a.id), MT_VAPP, a.name))
    root.append(entities)
    networks = el("AvailableNetworks")
    for nid in v.network_ids:
        networks.append(ref("Network", h.network(nid), MT_NETWORK, state.networks[nid].name))
    root.append(networks)
    for tag in ("NicQuota", "NetworkQuota", "UsedNetworkCount", "VmQuota"):
        root.append(text_el(tag, 0))
    root.append(text_el("IsEnabled", True))
    profiles = el("VdcStorageProfiles")
    profiles.append(
        ref("VdcStorageProfile", f"{h.api}/vdcStorageProfile/{v.id}", MT_VDC_STORAGE_PROFILE, "*")
    )
    root.append(profiles)
    return root


def catalog(h: Hrefs, c: Catalog, state: State) -> ET.Element:
    href = h.catalog(c.id)
    root = el(
        "Catalog",
        {"name": c.name, "id": urn("catalog", c.id), "href": href, "type": MT_CATALOG},
        link("up", h.org(c.org_id), MT_ORG),
        link("down", f"{href}/metadata", MT_METADATA),
        link("add", f"{href}/catalogItems", MT_CATALOG_ITEM),
        link("add", f"{href}/action/upload", MT_MEDIA),
        link("add", f"{href}/action/upload", MT_UPLOAD_PARAMS),
        link("add", f"{href}/action/captureVApp", MT_CAPTURE_PARAMS),
        text_el("Description", c.description),
    )
    items = el("CatalogItems")
    for item in sorted(state.items.values(), key=lambda i: i.created):
        if item.catalog_id == c.id:
            items.append(
                el(
                    "CatalogItem",
                    {
                        "type": MT_CATALOG_ITEM,
                        "name": item.name,
                        "id": item.id,
                        "href": h.item(item.id),
                    },
                )
            )
    root.append(items)
    root.append(text_el("IsPublished", False))
    root.append(text_el("DateCreated", c.created))
    root.append(text_el("VersionNumber", c.version))
    return root


def catalog_item(h: Hrefs, item: CatalogItem, state: State) -> ET.Element:
    href = h.item(item.id)
    template = state.templates[item.template_id]
    return el(
        "CatalogItem",
        {
            "size": str(template.disk_bytes),
            "name": item.name,
            "id": urn("catalogitem", item.id),
            "href": href,
            "type": MT_CATALOG_ITEM,
        },
        link("up", h.catalog(item.catalog_id), MT_CATALOG),
        link("down", f"{href}/metadata", MT_METADATA),
        link("edit", href, MT_CATALOG_ITEM),
        link("remove", href),
        text_el("Description", item.description),
        ref("Entity", h.template(template.id), MT_TEMPLATE, template.name),
        text_el("DateCreated", item.created),
        text_el("VersionNumber", 1),
    )


_OWNER_TYPES = {"vAppTemplate": MT_TEMPLATE, "vApp": MT_VAPP, "catalogItem": MT_CATALOG_ITEM}


def _owner_href(h: Hrefs, t: Task) -> str:
    return {
        "vAppTemplate": h.template,
        "vApp": h.vapp,
        "catalogItem": h.item,
    }[t.owner_kind](t.owner_id)


def task(h: Hrefs, t: Task, state: State) -> ET.Element:
    """Child order per the schema: Link, Owner, Error, User, Organization, Progress, Details."""
    attrs = {
        "cancelRequested": "true" if t.cancel_requested else "false",
        "expiryTime": "2099-01-01T00:00:00.000Z",
        "operation": t.operation,
        "operationName": t.operation_name,
        "serviceNamespace": "com.vmware.vcloud",
        "startTime": t.start,
        "endTime": t.end,
        "status": t.status,
        "name": "task",
        "id": urn("task", t.id),
        "href": h.task(t.id),
        "type": MT_TASK,
    }
    root = el("Task", attrs)
    if not t.done:
        root.append(link("task:cancel", f"{h.task(t.id)}/action/cancel"))
    root.append(ref("Owner", _owner_href(h, t), _OWNER_TYPES[t.owner_kind], t.owner_name))
    if t.error is not None:
        root.append(
            el(
                "Error",
                {
                    "majorErrorCode": str(t.error.major),
                    "minorErrorCode": t.error.minor,
                    "message": t.error.message,
                },
            )
        )
    user = state.users.get(t.user_id)
    root.append(ref("User", h.user(t.user_id), MT_USER, user.name if user else None))
    o = state.orgs.get(t.org_id)
    root.append(ref("Organization", h.org(t.org_id), MT_ORG, o.name if o else None))
    root.append(text_el("Progress", t.progress))
    root.append(el("Details"))
    return root


def tasks_in_progress(h: Hrefs, state: State, owner_id: str) -> ET.Element | None:
    running = state.running_tasks(owner_id)
    if not running:
        return None
    tasks = el("Tasks")
    for t in running:
        tasks.append(task(h, t, state))
    return tasks
