"""Server settings: one pydantic-settings object, HCC_ environment names, built in the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HCC_", extra="ignore")

    listen: str = Field("127.0.0.1:8080", description="HOST:PORT of the API and UI")
    data_dir: Path = Field(Path("/var/lib/hcc"), description="Database, keys, audit")
    db_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite+aiosqlite:///<data_dir>/hcc.db"
    )
    amqp_url: str = Field(DEFAULT_AMQP_URL, description="The broker the fleet talks through")
    node_amqp_url: str | None = Field(
        None,
        description="Broker URL as nodes reach it (their own user is put in); default amqp_url",
    )
    public_url: str | None = Field(
        None, description="URL nodes and browsers reach the server at; default http://<listen>"
    )
    admin_password: SecretStr | None = Field(
        None, description="Bootstrap password of user admin; generated and printed when unset"
    )
    broker_users: Literal["auto", "rabbitmqctl", "none"] = Field(
        "auto",
        description=(
            "How node broker users are made: rabbitmqctl (the broker runs on this machine), "
            "none (nodes get the server's own AMQP URL: all-in-one demo on loopback only), "
            "auto (rabbitmqctl when present, else none)"
        ),
    )
    token_ttl_s: int = Field(12 * 3600, description="Lifetime of a login token")
    transfer_token_ttl_s: int = Field(
        3600, gt=0, description="Lifetime of a send's capability token (nodes renew it)"
    )
    heartbeat_timeout_s: float = Field(
        30.0, description="A node with no heartbeat for this long is shown offline (3 beats)"
    )
    outbox_poll_s: float = Field(1.0, description="Outbox relay poll interval when idle")
    events_prefetch: int = Field(
        1000,
        ge=1,
        le=5000,
        description="Unacked node events the events worker takes at once (bounds a batch)",
    )
    events_worker_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Scheduling niceness of the events worker: the API answers first",
    )
    tls_cert: Path | None = Field(None, description="PEM certificate: serve HTTPS (with tls_key)")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    log_level: str = "info"

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite+aiosqlite:///{self.data_dir / 'hcc.db'}"

    @property
    def nodes_amqp_url(self) -> str:
        return self.node_amqp_url or self.amqp_url

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "127.0.0.1", int(port)
