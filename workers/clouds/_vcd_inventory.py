"""vCD query records → :class:`InventoryItem` values (pure).

Paths (docs/vcd-adapter.md):

| kind | path | parent |
|---|---|---|
| org | ``acme`` | — |
| vdc | ``acme/acme-vdc`` | org |
| catalog | ``acme/Templates`` | org |
| catalog_item | ``acme/Templates/web`` | catalog |
| vapp_template | ``acme/Templates/web/web`` (its catalog item's path + its name) | catalog item |
| vapp | ``acme/acme-vdc/web-01`` | vdc |
| vm | ``acme/acme-vdc/web-01/vm1`` (VMs of vApps) | vapp |

Ids are vCD urns (``urn:vcloud:vapptemplate:<uuid>``). References between records are matched
by the UUID inside them, so hrefs and urns both work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from protocol.messages import InventoryItem, ObjectKind
from workers.clouds._vcd_xml import uuid_of

POWER = {"POWERED_ON": "poweredOn", "POWERED_OFF": "poweredOff", "SUSPENDED": "suspended"}
URN_KIND = {
    ObjectKind.ORG: "org",
    ObjectKind.VDC: "vdc",
    ObjectKind.CATALOG: "catalog",
    ObjectKind.CATALOG_ITEM: "catalogitem",
    ObjectKind.VAPP_TEMPLATE: "vapptemplate",
    ObjectKind.VAPP: "vapp",
    ObjectKind.VM: "vm",
}


@dataclass(frozen=True)
class OrgRef:
    name: str
    id: str
    href: str


@dataclass
class Records:
    """The raw query records per type (attribute dicts, as vCD sends them)."""

    orgs: list[OrgRef]
    vdcs: list[dict[str, str]] = field(default_factory=list)
    catalogs: list[dict[str, str]] = field(default_factory=list)
    items: list[dict[str, str]] = field(default_factory=list)
    templates: list[dict[str, str]] = field(default_factory=list)
    vapps: list[dict[str, str]] = field(default_factory=list)
    vms: list[dict[str, str]] = field(default_factory=list)


def _urn(kind: ObjectKind, rec: dict[str, str]) -> str:
    rid = rec.get("id", "")
    if rid.startswith("urn:vcloud:"):
        return rid
    return f"urn:vcloud:{URN_KIND[kind]}:{uuid_of(rec.get('href', '')) or rec.get('name', '')}"


def _mb(value: str | None) -> int | None:
    try:
        return int(value) * 1024 * 1024 if value else None
    except ValueError:
        return None


class _Builder:
    def __init__(self) -> None:
        self.items: list[InventoryItem] = []
        self.by_uuid: dict[str, InventoryItem] = {}
        self.by_org_name: dict[str, InventoryItem] = {}

    def add(self, item: InventoryItem, href: str) -> InventoryItem:
        self.items.append(item)
        key = uuid_of(item.id) or uuid_of(href)
        if key:
            self.by_uuid[key] = item
        return item

    def ref(self, *refs: str | None) -> InventoryItem | None:
        for r in refs:
            key = uuid_of(r or "")
            if key and key in self.by_uuid:
                return self.by_uuid[key]
        return None

    def org_of(self, rec: dict[str, str]) -> InventoryItem | None:
        return self.ref(rec.get("org")) or self.by_org_name.get(rec.get("orgName", ""))

    def child(
        self,
        kind: ObjectKind,
        rec: dict[str, str],
        parent: InventoryItem | None,
        attributes: dict[str, str] | None = None,
        **extra: Any,
    ) -> InventoryItem | None:
        if parent is None:
            return None
        name = rec.get("name", "")
        attrs = {"href": rec.get("href", "")}
        if rec.get("status"):
            attrs["status"] = rec["status"]
        attrs.update(attributes or {})
        item = InventoryItem(
            id=_urn(kind, rec),
            kind=kind,
            name=name,
            parent_id=parent.id,
            path=f"{parent.path}/{name}",
            attributes=attrs,
            **extra,
        )
        return self.add(item, rec.get("href", ""))


def build(r: Records) -> list[InventoryItem]:
    b = _Builder()
    for org in r.orgs:
        item = InventoryItem(
            id=org.id, kind=ObjectKind.ORG, name=org.name, path=org.name,
            attributes={"href": org.href},
        )  # fmt: skip
        b.add(item, org.href)
        b.by_org_name[org.name] = item
    for rec in r.vdcs:
        limit, used = _mb(rec.get("storageLimitMB")), _mb(rec.get("storageUsedMB"))
        capacity = limit or None
        free = capacity - (used or 0) if capacity is not None else None
        b.child(ObjectKind.VDC, rec, b.org_of(rec), capacity_bytes=capacity, free_bytes=free)
    for rec in r.catalogs:
        b.child(ObjectKind.CATALOG, rec, b.org_of(rec))
    for rec in r.items:
        b.child(ObjectKind.CATALOG_ITEM, rec, b.ref(rec.get("catalog")))
    _templates(b, r.templates)
    for rec in r.vapps:
        b.child(ObjectKind.VAPP, rec, b.ref(rec.get("vdc")),
                power_state=POWER.get(rec.get("status", "")))  # fmt: skip
    for rec in r.vms:
        if rec.get("isVAppTemplate") == "true":
            continue
        b.child(
            ObjectKind.VM, rec, b.ref(rec.get("container")),
            power_state=POWER.get(rec.get("status", "")),
            cpus=_int(rec.get("numberOfCpus")), memory_mib=_int(rec.get("memoryMB")),
        )  # fmt: skip
    return b.items


def _templates(b: _Builder, recs: Iterable[dict[str, str]]) -> None:
    for rec in recs:
        parent = b.ref(rec.get("catalogItem")) or b.ref(rec.get("vdc"))
        vdc = b.ref(rec.get("vdc"))
        attrs = {"vdc": vdc.id if vdc else "", "catalog": rec.get("catalogName", "")}
        kb = _int(rec.get("storageKB"))
        b.child(
            ObjectKind.VAPP_TEMPLATE, rec, parent, attributes=attrs,
            capacity_bytes=kb * 1024 if kb is not None else None,
        )  # fmt: skip


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
