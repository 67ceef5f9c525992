"""Node settings: one pydantic-settings object, HCC_ environment names, built in the CLI."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


class NodeSettings(BaseSettings):
    """Everything a node process needs before it has talked to anyone.

    What enrollment returns (broker user, server key, cloud credentials) is not here: it lives
    in the node config file in ``data_dir`` (see :mod:`workers.runtime.config`).
    """

    model_config = SettingsConfigDict(env_prefix="HCC_", extra="ignore")

    node_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="HCC_NODE_ID")
    server: str | None = Field(None, description="The server's base URL (enrollment, config)")
    enroll_token: SecretStr | None = Field(None, description="One-time enrollment token")
    data_dir: Path = Field(Path("/var/lib/hcc-node"), description="Config, journal, storage")
    listen: str = Field(
        "127.0.0.1:8443", description="HOST:PORT of /metrics, /healthz (+ transfer)"
    )
    receiver_url: str | None = Field(
        None, description="URL peers reach this node at; default https://<listen>"
    )
    amqp_url: str | None = Field(
        None, description="Broker URL; overrides the one enrollment returned"
    )
    transfer_dir: Path | None = Field(
        None, description="Transfer storage; default <data_dir>/transfer"
    )
    tls: bool = Field(True, description="Serve HTTPS with the node's certificate (pinned by peers)")
    quota_bytes: int | None = Field(None, gt=0, description="Cap on transfer storage")
    reserve_bytes: int = Field(0, ge=0, description="Disk space the receiver always leaves free")
    heartbeat_interval_s: float = Field(10.0, gt=0)
    prefetch: int = Field(8, ge=1, le=1000, description="Unacked deliveries at most")
    progress_interval_s: float = Field(1.0, ge=0, description="Progress events at most this often")
    shutdown_grace_s: float = Field(10.0, ge=0)
    cloud_check_timeout_s: float = Field(5.0, gt=0)
    log_level: str = "info"

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "127.0.0.1", int(port)

    @property
    def storage_dir(self) -> Path:
        return self.transfer_dir or self.data_dir / "transfer"

    @property
    def advertised_url(self) -> str:
        if self.receiver_url:
            return self.receiver_url
        host, port = self.host_port
        return f"{'https' if self.tls else 'http'}://{host}:{port}"
