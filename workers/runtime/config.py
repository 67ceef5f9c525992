"""The node config file: what enrollment returned, kept in the data dir with mode 0600.

``<data_dir>/node.json``::

    {"node_id": "n1", "server_url": "http://127.0.0.1:8080", "node_token": "...",
     "amqp_url": "amqp://hcc-node-n1:...@127.0.0.1:5672/", "server_public_key": "-----BEGIN...",
     "clouds": [{"cloud_id": "onprem", "kind": "vsphere", "endpoint": "...", "username": "...",
                 "password": "...", "org": null, "insecure": false, "thumbprint": null,
                 "options": {}}],
     "enrolled_at": "2026-11-25T15:00:00Z"}

It holds secrets (broker password, node token, cloud credentials): written atomically with
mode 0600 and never logged. Tests that run without a server write it with :func:`save_config`.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from protocol.messages import CloudKind
from workers.clouds.base import CloudConfig

CONFIG_FILE = "node.json"


class CloudEntry(BaseModel):
    """A cloud as the server sends it (enrollment answer and GET /api/v1/node/config)."""

    model_config = ConfigDict(extra="ignore")

    cloud_id: str
    kind: CloudKind
    endpoint: str
    username: str
    password: str = Field(repr=False)
    org: str | None = None
    insecure: bool = False
    thumbprint: str | None = None
    options: dict[str, str] = Field(default_factory=dict)

    def to_config(self) -> CloudConfig:
        return CloudConfig(
            cloud_id=self.cloud_id,
            kind=self.kind,
            endpoint=self.endpoint,
            username=self.username,
            password=self.password,
            org=self.org,
            insecure=self.insecure,
            thumbprint=self.thumbprint,
            options=dict(self.options),
        )


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    node_id: str
    server_url: str | None = None
    node_token: str = Field("", repr=False)
    amqp_url: str = Field(repr=False)
    server_public_key: str = ""
    """PEM of the server's Ed25519 public key (checks transfer capability tokens)."""
    clouds: list[CloudEntry] = Field(default_factory=list)
    enrolled_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def cloud_configs(self) -> dict[str, CloudConfig]:
        return {entry.cloud_id: entry.to_config() for entry in self.clouds}


def config_path(data_dir: Path) -> Path:
    return data_dir / CONFIG_FILE


def load_config(data_dir: Path) -> NodeConfig | None:
    """The saved config, or None before enrollment."""
    path = config_path(data_dir)
    if not path.exists():
        return None
    return NodeConfig.model_validate_json(path.read_bytes())


def save_config(data_dir: Path, config: NodeConfig) -> Path:
    """Write ``node.json`` atomically with mode 0600 (temp file, fsync, rename).

    Each save has a temp file of its own, so saves that overlap (two inventory refreshes
    each fetching the clouds) never rename each other's file away.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = config_path(data_dir)
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=path.name + ".", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, config.model_dump_json(indent=2).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
