"""The VMware Cloud Director adapter (async REST, aiohttp), implementing
:class:`workers.clouds.base.CloudAdapter`. See docs/vcd-adapter.md.

``CloudConfig``: ``endpoint`` is the vCD base URL (``https://vcd.example.com``), ``username``
and ``password`` a vCD user of ``org`` (``System``: a provider login), ``insecure`` or
``thumbprint`` (SHA-256) for TLS. Options (strings): ``api_version`` (skip negotiation),
``ca_file``, ``timeout_s`` (60), ``task_timeout_s`` (3600), ``upload_chunk_mib`` (32),
``retries`` (8: failed PUTs/GETs of one file before giving up), ``capture_catalog`` (where a
vApp is captured before its export; default the vApp org's first catalog).

References (``ref`` of export, ``template_ref`` of deploy) may be a urn
(``urn:vcloud:vapptemplate:…``, ``…catalogitem…``, ``…vapp…``), an API href, or an
inventory path (``acme/Templates/web``).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from xml.etree.ElementTree import Element

import structlog

from protocol.messages import CloudKind, DeploySpec, InventoryItem, ObjectKind, Target
from workers.clouds import _vcd_xml as x
from workers.clouds._vcd_download import Downloader
from workers.clouds._vcd_inventory import OrgRef, Records, build
from workers.clouds._vcd_session import VcdSession
from workers.clouds._vcd_upload import Uploader, open_package
from workers.clouds.base import (
    OPERATOR_CANCEL,
    CloudConfig,
    CloudConflict,
    CloudError,
    CloudNotFound,
    CloudQuotaExceeded,
    DeployResult,
    ExportResult,
    ImportResult,
    Progress,
    ProgressFn,
    unless_retryable,
)

log = structlog.get_logger()
POWER = {"4": "poweredOn", "8": "poweredOff", "3": "suspended"}
ALL_QUERIES = ("orgVdc", "catalog", "catalogItem", "vAppTemplate", "vApp", "vm")
QUERY_FIELDS = {"orgVdc": "vdcs", "catalog": "catalogs", "catalogItem": "items",
                "vAppTemplate": "templates", "vApp": "vapps", "vm": "vms"}  # fmt: skip
_TEMPLATES = ("orgVdc", "catalog", "catalogItem", "vAppTemplate")
NEEDS: dict[ObjectKind, tuple[str, ...]] = {
    ObjectKind.ORG: (),
    ObjectKind.VDC: ("orgVdc",),
    ObjectKind.CATALOG: ("catalog",),
    ObjectKind.CATALOG_ITEM: _TEMPLATES,
    ObjectKind.VAPP_TEMPLATE: _TEMPLATES,
    ObjectKind.VAPP: ("orgVdc", "vApp"),
    ObjectKind.VM: ("orgVdc", "vApp", "vm"),
}
"""The queries whose records build items of a kind (with their parents)."""


class VcdAdapter:
    """One vCD organization (or, logged in as System, all of them) as seen by a node."""

    def __init__(self, config: CloudConfig) -> None:
        if config.kind != CloudKind.VCD:
            raise CloudError(f"not a vCD cloud: {config.kind}", code="bad-config")
        self._config = config
        self.session = VcdSession(config)
        opts = config.options
        self._chunk_bytes = int(float(opts.get("upload_chunk_mib", "32")) * 1024 * 1024)
        self._retries = int(opts.get("retries", "8"))

    # --- basics ---------------------------------------------------------------------

    def _admin(self, qtype: str) -> str:
        if not self.session.is_system:
            return qtype
        return "adminVM" if qtype == "vm" else "admin" + qtype[0].upper() + qtype[1:]

    async def check(self) -> None:
        await self.session.ensure_login()
        await self.session.get_xml("/api/session", "check")

    async def close(self) -> None:
        await self.session.close()

    async def _orgs(self) -> list[OrgRef]:
        await self.session.ensure_login()
        s = self.session
        if s.is_system:
            org_list = await s.get_xml("/api/org/", "GET /api/org/")
            hrefs = [o.get("href", "") for o in org_list.iter(x.V + "Org")]
        else:
            assert s.session_xml is not None
            href = x.find_link(s.session_xml, "down", x.MT_ORG)
            if href is None:
                raise x.VcdXmlError("the vCD session has no org link")
            hrefs = [href]
        orgs = [await s.get_xml(h, "GET org") for h in hrefs]
        return [OrgRef(o.get("name", ""), o.get("id", ""), o.get("href", "")) for o in orgs]

    async def inventory(self) -> list[InventoryItem]:
        items = await self._collect(ALL_QUERIES)
        log.info("vcd.inventory", items=len(items))
        return items

    async def _collect(self, types: tuple[str, ...]) -> list[InventoryItem]:
        """Inventory items from the orgs and the query ``types`` only (a lookup of a catalog
        does not need every VM)."""
        orgs = await self._orgs()
        rows = await asyncio.gather(*(self.session.query(self._admin(t)) for t in types))
        return build(
            Records(orgs, **{QUERY_FIELDS[t]: r for t, r in zip(types, rows, strict=True)})
        )

    async def _of_kinds(self, kinds: tuple[ObjectKind, ...]) -> list[InventoryItem]:
        types = sorted({t for k in kinds for t in NEEDS[k]}, key=ALL_QUERIES.index)
        return [i for i in await self._collect(tuple(types)) if i.kind in kinds]

    async def _find(self, ref: str, kinds: tuple[ObjectKind, ...]) -> InventoryItem:
        """An inventory item by urn, href or path (one of ``kinds``); an org user may leave
        the org out of the path (``Templates/web`` = ``acme/Templates/web``)."""
        key = x.uuid_of(ref) if ref.startswith(("urn:", "http")) else None
        paths = {ref} if self.session.is_system else {ref, f"{self.session.org}/{ref}"}
        for item in await self._of_kinds(kinds):
            if item.path in paths or item.id == ref or (key and x.uuid_of(item.id) == key):
                return item
        wanted = " or ".join(k.value for k in kinds)
        raise CloudNotFound(f"no {wanted} {ref!r} in this vCD")

    async def _template_href(self, ref: str | InventoryItem) -> tuple[str, str]:
        """(template href, name) for a template or catalog item reference."""
        kinds = (ObjectKind.VAPP_TEMPLATE, ObjectKind.CATALOG_ITEM)
        item = ref if isinstance(ref, InventoryItem) else await self._find(ref, kinds)
        if item.kind == ObjectKind.CATALOG_ITEM:
            ci = await self.session.get_xml(item.attributes["href"], "GET catalog item")
            entity = ci.find(x.V + "Entity")
            if entity is None:
                raise CloudNotFound(f"catalog item {item.path!r} holds no vApp template")
            return entity.get("href", ""), entity.get("name", item.name)
        return item.attributes["href"], item.name

    def _split(self, ref: str) -> tuple[str | None, str]:
        """``org/name`` → (org, name); ``name`` → (None, name)."""
        org, _, name = ref.rpartition("/")
        return (org or None), name

    async def _container(self, kind: ObjectKind, ref: str) -> InventoryItem:
        """A catalog or VDC by name (in the login org) or ``org/name`` path."""
        org, name = self._split(ref)
        org = org or (None if self.session.is_system else self.session.org)
        hits = [
            i
            for i in await self._of_kinds((kind,))
            if i.name == name and (org is None or i.path == f"{org}/{name}")
        ]
        if len(hits) != 1:
            where = f" in org {org!r}" if org else ""
            many = " (several match: name the org)" if hits else ""
            raise CloudNotFound(f"no {kind.value} {name!r}{where}{many}")
        return hits[0]

    # --- import ---------------------------------------------------------------------

    async def import_package(
        self, package_dir: Path, target: Target, progress: ProgressFn, *, streaming: bool = False
    ) -> ImportResult:
        if not target.catalog:
            raise CloudNotFound("a vCD import needs a target catalog")
        find_catalog = self._container(ObjectKind.CATALOG, target.catalog)
        # looked up before the package is there: a missing catalog fails the copy at once
        catalog = await unless_retryable(find_catalog, f"catalog {target.catalog}")
        pkg = await open_package(package_dir, streaming=streaming)
        if catalog is None:
            catalog = await self._container(ObjectKind.CATALOG, target.catalog)
        profile = await self._storage_profile(target.vdc, pkg.total_bytes) if target.vdc else None
        up = Uploader(self.session, pkg, self._chunk_bytes, self._retries)
        name, found = await self._name_for(catalog, target, up)
        log.info("vcd.import_start", catalog=catalog.path, name=name, bytes=pkg.total_bytes,
                 resumed=up.resumed, found=found)  # fmt: skip
        if found == "stale":  # our own upload that cannot finish: start it over
            await up.discard()
            up.item_href = up.template_href = ""
        if found not in ("resume", "done"):
            if streaming and pkg.desc.files:
                # vCD ends an upload left idle for its transfer timeout: open one once the
                # first file is here, not while that file is still being exported and sent
                async def waiting(name: str) -> None:
                    await progress(Progress(0, pkg.total_bytes, f"waiting for {name}"))

                await pkg.file(pkg.desc.files[0].href, waiting)
            await up.start(catalog.attributes["href"], name, profile)
        try:
            if found != "done":
                await up.put_descriptor()
                files = await up.wait_files()
                await up.upload_files(files, progress)
            await pkg.verify()
            tpl = await up.finish()
        except CloudError as exc:
            if not exc.retryable:  # retryable: keep it, the next attempt resumes it
                await asyncio.shield(up.discard())
            raise
        except asyncio.CancelledError as exc:
            if OPERATOR_CANCEL in exc.args:  # a cancelled copy leaves no half-made template
                await asyncio.shield(up.discard())  # (a shutdown keeps it for the resume)
            raise
        await progress(Progress(pkg.total_bytes, pkg.total_bytes, "imported"))
        log.info("vcd.import_done", name=name, id=tpl.get("id"), sent=up.sent_bytes)
        attrs = {"href": tpl.get("href", ""), "catalog": catalog.path,
                 "catalog_item": up.item_href, "sent_bytes": str(up.sent_bytes)}  # fmt: skip
        return ImportResult(tpl.get("id", ""), name, "vapp_template", attrs)

    async def _name_for(
        self, catalog: InventoryItem, target: Target, up: Uploader
    ) -> tuple[str, str | None]:
        """``target.name`` (and what an earlier attempt left there, see Uploader.adopt),
        unless taken by something else: then fail (on_conflict=fail), or take the first
        -N that is free or this import's own."""
        cat = await self.session.get_xml(catalog.attributes["href"], "GET catalog")
        taken = {
            i.get("name", ""): i.get("href", "")
            for i in cat.iterfind(f"{x.V}CatalogItems/{x.V}CatalogItem")
        }
        if target.name not in taken:
            return target.name, None
        found = await up.adopt(taken[target.name])
        if found is not None:
            return target.name, found
        if target.on_conflict == "fail":
            raise CloudConflict(f"catalog {catalog.path} already has an item named {target.name!r}")
        n = 2
        while (name := f"{target.name}-{n}") in taken:
            found = await up.adopt(taken[name])  # an earlier attempt may have suffixed too
            if found is not None:
                return name, found
            n += 1
        return name, None

    async def _storage_profile(self, vdc_ref: str, needed: int) -> str | None:
        """The target VDC's storage profile href; refuses early when its quota is too small."""
        vdc = await self._container(ObjectKind.VDC, vdc_ref)
        if vdc.free_bytes is not None and needed > vdc.free_bytes:
            raise CloudQuotaExceeded(
                f"VDC {vdc.path} has {vdc.free_bytes} bytes of storage quota left, "
                f"the package needs {needed}"
            )
        el = await self.session.get_xml(vdc.attributes["href"], "GET vdc")
        prof = el.find(f"{x.V}VdcStorageProfiles/{x.V}VdcStorageProfile")
        return prof.get("href") if prof is not None else None

    # --- deploy ---------------------------------------------------------------------

    async def deploy(
        self, template_ref: str, spec: DeploySpec, progress: ProgressFn
    ) -> DeployResult:
        href, _ = await self._template_href(template_ref)
        tpl = await self.session.get_xml(href, "GET vAppTemplate")
        if tpl.get("status") != "8":
            raise CloudError(f"template {tpl.get('name')} is not ready (status "
                             f"{tpl.get('status')})", code="vcd-not-ready")  # fmt: skip
        if spec.vdc:
            vdc_href = (await self._container(ObjectKind.VDC, spec.vdc)).attributes["href"]
        else:
            vdc_href = x.find_link(tpl, "up", x.MT + "vdc+xml") or ""
        vdc = await self.session.get_xml(vdc_href, "GET vdc")
        network = self._network(vdc, spec.network)
        mark = f"deployed by hcc from {tpl.get('id', href)}"
        what = f"instantiate {spec.name!r}"
        vapp = await self._own_vapp(vdc, spec.name, mark)
        if vapp is None:
            vms = [(v.get("href", ""), v.get("name", "")) for v in x.children_vms(tpl)]
            body = x.instantiate_params(spec.name, href, vms, network, spec.power_on, mark)
            add = x.find_link(vdc, "add", x.MT_INSTANTIATE_PARAMS)
            add = add or f"{vdc_href}/action/instantiateVAppTemplate"
            vapp = await self.session.send_xml("POST", add, body, x.MT_INSTANTIATE_PARAMS, what)
            if vapp is None:
                raise x.VcdXmlError(f"{what}: vCD answered no vApp")
        await progress(Progress(0, None, "instantiating"))
        task = x.running_task(vapp)
        if task:
            await self.session.wait_task(task, what)
        vapp = await self.session.get_xml(vapp.get("href", ""), "GET vApp")
        if spec.power_on and vapp.get("status") != "4":  # a taken-up vApp made powered off
            on = x.find_link(vapp, "power:powerOn") or f"{vapp.get('href')}/power/action/powerOn"
            data = await self.session.call("POST", on, f"power on {spec.name!r}")
            started = x.parse(data, "power on task") if data.strip() else None
            if started is not None and started.get("href"):
                await self.session.wait_task(started.get("href", ""), f"power on {spec.name!r}")
            vapp = await self.session.get_xml(vapp.get("href", ""), "GET vApp")
        state = POWER.get(vapp.get("status", ""), vapp.get("status"))
        log.info("vcd.deployed", name=spec.name, id=vapp.get("id"), power=state)
        return DeployResult(vapp.get("id", ""), spec.name, state)

    async def _own_vapp(self, vdc: Element, name: str, mark: str) -> Element | None:
        """The vApp ``name`` in ``vdc`` if an earlier attempt of this deploy made it (its
        description is ``mark``: a step resumed after its node died mid-deploy takes it up);
        None when there is none (or it is someone else's: the instantiate then conflicts)."""
        for entity in vdc.iterfind(f"{x.V}ResourceEntities/{x.V}ResourceEntity"):
            if entity.get("name") != name or "vApp+xml" not in entity.get("type", ""):
                continue
            vapp = await self.session.get_xml(entity.get("href", ""), "GET vApp")
            if vapp.findtext(x.V + "Description") == mark:
                log.info("vcd.deploy_taken_up", name=name, id=vapp.get("id"))
                return vapp
        return None

    def _network(self, vdc: Element, name: str | None) -> x.Network | None:
        nets = [
            x.Network(n.get("name", ""), n.get("href", ""))
            for n in vdc.iterfind(f"{x.V}AvailableNetworks/{x.V}Network")
        ]
        if name is None:
            return nets[0] if nets else None
        for net in nets:
            if net.name == name:
                return net
        raise CloudNotFound(f"no network {name!r} available in VDC {vdc.get('name')}")

    # --- export ---------------------------------------------------------------------

    async def export(self, ref: str, dest: Path, progress: ProgressFn) -> ExportResult:
        kinds = (ObjectKind.VAPP_TEMPLATE, ObjectKind.CATALOG_ITEM, ObjectKind.VAPP)
        item = await self._find(ref, kinds)
        captured: str | None = None
        if item.kind == ObjectKind.VAPP:
            captured = await self._capture(item)
            href, name = captured, item.name
        else:
            href, name = await self._template_href(item)
        down = Downloader(self.session, href, dest, self._retries)
        log.info("vcd.export_start", ref=ref, name=name, dest=str(dest))
        try:
            result = await down.run(name, progress)
        finally:
            if captured is not None:
                await asyncio.shield(self._delete_template(captured))
        log.info("vcd.export_done", ref=ref, files=len(result.files))
        return result

    async def _capture(self, vapp: InventoryItem) -> str:
        """captureVApp into a catalog; the new template's href."""
        org = vapp.path.split("/", 1)[0]
        cat_ref = self._config.options.get("capture_catalog")
        if cat_ref:
            catalog = await self._container(ObjectKind.CATALOG, cat_ref)
        else:
            cats = [i for i in await self._of_kinds((ObjectKind.CATALOG,))
                    if i.path.startswith(org + "/")]  # fmt: skip
            if not cats:
                raise CloudNotFound(f"org {org} has no catalog to capture vApp {vapp.name} into")
            catalog = cats[0]
        el = await self.session.get_xml(catalog.attributes["href"], "GET catalog")
        add = x.find_link(el, "add", x.MT_CAPTURE_PARAMS)
        add = add or f"{catalog.attributes['href']}/action/captureVApp"
        name = f"{vapp.name}-hcc-export-{uuid.uuid4().hex[:8]}"
        body = x.capture_params(
            name, "temporary capture for an hcc export", vapp.attributes["href"]
        )
        what = f"capture vApp {vapp.name!r}"
        tpl = await self.session.send_xml("POST", add, body, x.MT_CAPTURE_PARAMS, what)
        if tpl is None or not tpl.get("href"):
            raise x.VcdXmlError(f"{what}: vCD answered no template")
        task = x.running_task(tpl)
        try:
            if task:
                await self.session.wait_task(task, what)
        except BaseException:
            await asyncio.shield(self._delete_template(tpl.get("href", "")))
            raise
        return tpl.get("href", "")

    async def _delete_template(self, href: str) -> None:
        try:
            data = await self.session.call("DELETE", href, "delete captured template")
            task = x.parse(data, "delete task") if data.strip() else None
            if task is not None and task.get("href"):
                await self.session.wait_task(task.get("href", ""), "delete captured template")
        except CloudError as exc:
            log.warning("vcd.capture_cleanup_failed", template=href, error=str(exc))
