"""The initial inventory: the default demo seed, or a YAML/JSON file given with ``--seed``.

Seed file shape (YAML or JSON)::

    orgs:
      - name: acme
        full_name: ACME Corporation
        users: [{name: acme-admin, password: hcc-demo-password}]
        networks: [{name: acme-net}]
        vdcs: [{name: acme-vdc, storage_quota_bytes: null, networks: [acme-net]}]
        catalogs: [{name: Templates, vdc: acme-vdc}]
      - name: System
        users: [{name: administrator, password: hcc-demo-password, role: System Administrator}]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

from sim.vcd.model import Catalog, Network, Org, State, User, Vdc

DEMO_PASSWORD = "hcc-demo-password"


class SeedUser(BaseModel):
    name: str
    password: str
    role: str = "Organization Administrator"


class SeedNetwork(BaseModel):
    name: str
    fence_mode: str = "bridged"


class SeedVdc(BaseModel):
    name: str
    storage_quota_bytes: int | None = None
    networks: list[str] | None = None
    """Org networks available in this VDC; None: all of the org's networks."""


class SeedCatalog(BaseModel):
    name: str
    vdc: str | None = None
    """The VDC that backs uploads into this catalog; None: the org's first VDC."""
    description: str = ""


class SeedOrg(BaseModel):
    name: str
    full_name: str = ""
    users: list[SeedUser] = Field(default_factory=list)
    networks: list[SeedNetwork] = Field(default_factory=list)
    vdcs: list[SeedVdc] = Field(default_factory=list)
    catalogs: list[SeedCatalog] = Field(default_factory=list)


class Seed(BaseModel):
    orgs: list[SeedOrg]


DEFAULT_SEED = Seed(
    orgs=[
        SeedOrg(
            name="acme",
            full_name="ACME Corporation",
            users=[SeedUser(name="acme-admin", password=DEMO_PASSWORD)],
            networks=[SeedNetwork(name="acme-net")],
            vdcs=[SeedVdc(name="acme-vdc")],
            catalogs=[SeedCatalog(name="Templates", vdc="acme-vdc")],
        ),
        SeedOrg(
            name="System",
            full_name="VMware Cloud Director System",
            users=[
                SeedUser(name="administrator", password=DEMO_PASSWORD, role="System Administrator")
            ],
        ),
    ]
)


def load_seed(path: Path) -> Seed:
    """Read a seed file: JSON when it ends in .json, else YAML (a superset of JSON)."""
    text = path.read_text(encoding="utf-8")
    data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return Seed.model_validate(data)


def build_state(seed: Seed) -> State:
    state = State()
    for s_org in seed.orgs:
        org = Org(name=s_org.name, full_name=s_org.full_name or s_org.name)
        state.orgs[org.id] = org
        for s_user in s_org.users:
            user = User(name=s_user.name, org_id=org.id, password=s_user.password, role=s_user.role)
            state.users[user.id] = user
        nets = {
            n.name: Network(name=n.name, org_id=org.id, fence_mode=n.fence_mode)
            for n in s_org.networks
        }
        state.networks.update({n.id: n for n in nets.values()})
        vdcs: dict[str, Vdc] = {}
        for s_vdc in s_org.vdcs:
            names = s_vdc.networks if s_vdc.networks is not None else list(nets)
            unknown = [n for n in names if n not in nets]
            if unknown:
                raise ValueError(f"VDC {s_vdc.name}: unknown networks {unknown}")
            vdc = Vdc(
                name=s_vdc.name,
                org_id=org.id,
                storage_quota_bytes=s_vdc.storage_quota_bytes,
                network_ids=[nets[n].id for n in names],
            )
            vdcs[vdc.name] = vdc
        state.vdcs.update({v.id: v for v in vdcs.values()})
        for s_cat in s_org.catalogs:
            vdc_name = s_cat.vdc or next(iter(vdcs), None)
            if vdc_name is None or vdc_name not in vdcs:
                raise ValueError(f"catalog {s_cat.name}: no VDC {vdc_name!r} in org {org.name}")
            cat = Catalog(
                name=s_cat.name,
                org_id=org.id,
                vdc_id=vdcs[vdc_name].id,
                description=s_cat.description,
            )
            state.catalogs[cat.id] = cat
    return state
