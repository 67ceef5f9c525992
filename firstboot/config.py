"""vApp property values → validated appliance settings. Pure; errors name the property.

:class:`Reader` records every key it is asked for, so tests can check that first boot reads
exactly the properties the descriptor declares.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from firstboot.properties import Kind

NODE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
SSH_KEY = re.compile(
    r"^(?:(?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp(?:256|384|521)"
    r"|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3})(?: .*)?$"
)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
DEFAULT_HOSTNAME = {Kind.SERVER: "hcc-server", Kind.NODE: "hcc-node"}
SERVER_PORT = 8080
BROKER_PORT = 5672
RECEIVER_PORT = 8443
SERVER_DATA_DIR = "/var/lib/hcc"
NODE_DATA_DIR = "/var/lib/hcc-node"


class ConfigError(ValueError):
    """A property value is missing or invalid; the message names the property."""


class Reader:
    """Property values by key; remembers which keys were read."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.read: set[str] = set()

    def get(self, key: str, *, multiline: bool = False) -> str:
        self.read.add(key)
        value = self._values.get(key, "").strip()
        if not multiline and CONTROL.search(value):
            raise ConfigError(f"{key}: control characters are not allowed")
        return value

    def unknown(self) -> list[str]:
        return sorted(set(self._values) - self.read)


@dataclass(frozen=True)
class Network:
    dhcp: bool = True
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface | None = None
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    dns: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApplianceConfig:
    kind: Kind
    hostname: str
    domain: str | None
    network: Network
    ntp: tuple[str, ...]
    admin_password: str | None = field(repr=False)
    ssh_keys: tuple[str, ...]
    hcc_env: dict[str, str] = field(repr=False)
    """The hcc unit's environment (HCC_* names), secrets included."""
    warnings: tuple[str, ...] = ()

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.domain}" if self.domain else self.hostname


def _split(value: str, *, seps: str = ",; ") -> list[str]:
    return [p for p in re.split(f"[{re.escape(seps)}]+", value) if p]


def check_hostname(name: str, key: str) -> str:
    if len(name) > 253 or not all(LABEL.match(p) for p in name.split(".")):
        raise ConfigError(f"{key}: {name!r} is not a valid host name")
    return name.lower()


def _network(r: Reader) -> Network:
    mode = r.get("net.mode") or "dhcp"
    if mode not in ("dhcp", "static"):
        raise ConfigError(f"net.mode: {mode!r} is neither dhcp nor static")
    address_text, gateway_text = r.get("net.address"), r.get("net.gateway")
    try:
        dns = tuple(str(ipaddress.ip_address(a)) for a in _split(r.get("net.dns")))
    except ValueError as exc:
        raise ConfigError(f"net.dns: {exc}") from exc
    domains = tuple(check_hostname(d, "net.domain") for d in _split(r.get("net.domain")))
    if mode == "dhcp":
        return Network(True, None, None, dns, domains)
    if "/" not in address_text:
        raise ConfigError("net.address: static needs an address with its prefix, e.g. 10.0.0.5/24")
    try:
        address = ipaddress.ip_interface(address_text)
        gateway = ipaddress.ip_address(gateway_text) if gateway_text else None
    except ValueError as exc:
        raise ConfigError(f"net.address/net.gateway: {exc}") from exc
    if gateway is not None and gateway not in address.network:
        raise ConfigError(f"net.gateway: {gateway} is not in {address.network}")
    return Network(False, address, gateway, dns, domains)


def _ssh_keys(r: Reader) -> tuple[str, ...]:
    lines = [k.strip() for k in re.split(r"[\n;]", r.get("admin.ssh_key", multiline=True))]
    keys = tuple(k for k in lines if k)
    for k in keys:
        if CONTROL.search(k) or not SSH_KEY.match(k):
            raise ConfigError(f"admin.ssh_key: {k[:24]!r}... is not an OpenSSH public key")
    return keys


def _ntp_server(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return check_hostname(value, "ntp.servers")


def check_url(value: str, key: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{key}: {value!r} is not a {'/'.join(schemes)} URL with a host")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from exc
    return value.rstrip("/")


def _reachable_host(net: Network, hostname: str | None, domain: str | None) -> str | None:
    """What peers can reach this appliance by when no URL is given (None: nothing known)."""
    if net.address is not None:
        ip = net.address.ip
        return f"[{ip}]" if ip.version == 6 else str(ip)
    if hostname:
        return f"{hostname}.{domain}" if domain else hostname
    return None


def _default_url(scheme: str, host: str | None, port: int, key: str) -> str:
    if host is None:
        raise ConfigError(f"{key}: set it, or a static net.address, or a hostname (with DHCP)")
    return f"{scheme}://{host}:{port}"


def _server_env(r: Reader, default_host: str | None) -> dict[str, str]:
    public = r.get("hcc.public_url")
    if public:
        public = check_url(public, "hcc.public_url", ("http", "https"))
    else:
        public = _default_url("http", default_host, SERVER_PORT, "hcc.public_url")
    host = urlsplit(public).hostname or ""
    broker_host = f"[{host}]" if ":" in host else host
    env = {
        "HCC_LISTEN": f"0.0.0.0:{SERVER_PORT}",
        "HCC_DATA_DIR": SERVER_DATA_DIR,
        "HCC_PUBLIC_URL": public,
        "HCC_BROKER_USERS": "rabbitmqctl",
        "HCC_NODE_AMQP_URL": f"amqp://{broker_host}:{BROKER_PORT}/",
    }
    password = r.get("hcc.admin_password")
    if password:
        env["HCC_ADMIN_PASSWORD"] = password
    return env


def _node_env(r: Reader, default_host: str | None, enrolled: bool) -> dict[str, str]:
    node_id = r.get("hcc.node_id")
    if not NODE_ID.match(node_id):
        raise ConfigError(
            f"hcc.node_id: {node_id!r} is not a node id (a-z, 0-9 and '-', at most 63)"
            if node_id
            else "hcc.node_id: missing (the id given to `hcc nodes add`)"
        )
    server = r.get("hcc.server_url")
    if not server:
        raise ConfigError("hcc.server_url: missing (the hcc server, e.g. http://hcc:8080)")
    token = r.get("hcc.enroll_token")
    if not token and not enrolled:
        raise ConfigError("hcc.enroll_token: missing (printed by `hcc nodes add`)")
    receiver = r.get("hcc.receiver_url")
    env = {
        "HCC_NODE_ID": node_id,
        "HCC_SERVER": check_url(server, "hcc.server_url", ("http", "https")),
        "HCC_LISTEN": f"0.0.0.0:{RECEIVER_PORT}",
        "HCC_DATA_DIR": NODE_DATA_DIR,
        "HCC_TRANSFER_DIR": f"{NODE_DATA_DIR}/transfer",
        "HCC_RECEIVER_URL": check_url(receiver, "hcc.receiver_url", ("https",))
        if receiver
        else _default_url("https", default_host, RECEIVER_PORT, "hcc.receiver_url"),
    }
    if token:
        env["HCC_ENROLL_TOKEN"] = token
    return env


def build_config(kind: Kind, reader: Reader, *, enrolled: bool = False) -> ApplianceConfig:
    """Everything first boot needs. ``enrolled``: the node already holds its credentials, so
    an enrollment token is no longer required."""
    name = reader.get("hostname")
    fqdn = check_hostname(name, "hostname") if name else None
    hostname, _, domain = (fqdn or DEFAULT_HOSTNAME[kind]).partition(".")
    net = _network(reader)
    domain = domain or (net.domains[0] if net.domains else "")
    ntp = tuple(_ntp_server(s) for s in _split(reader.get("ntp.servers")))
    password = reader.get("admin.password") or None
    keys = _ssh_keys(reader)
    host = _reachable_host(net, fqdn and hostname, domain or None)
    env = _server_env(reader, host) if kind is Kind.SERVER else _node_env(reader, host, enrolled)
    warnings = [f"property {k!r} is not used by this appliance" for k in reader.unknown()]
    if password is None and not keys:
        warnings.append("neither admin.password nor admin.ssh_key is set: no administrator login")
    return ApplianceConfig(
        kind, hostname, domain or None, net, ntp, password, keys, env, tuple(warnings)
    )
