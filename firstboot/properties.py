"""The vApp properties of the two appliances: what their OVF descriptors declare.

The descriptor generator (:mod:`firstboot.descriptor`) writes these into the ProductSection;
first boot (:mod:`firstboot.config`) reads them by key. A test checks that the two agree:
every declared key is read, and every key read is declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    SERVER = "server"
    NODE = "node"


@dataclass(frozen=True)
class Property:
    key: str
    label: str
    description: str
    default: str = ""
    password: bool = False
    choices: tuple[str, ...] = ()
    category: str = "Network"

    @property
    def qualifiers(self) -> str | None:
        if self.choices:
            return "ValueMap{" + ",".join(f'"{c}"' for c in self.choices) + "}"
        return None


COMMON: tuple[Property, ...] = (
    Property("hostname", "Host name", "Host name of the appliance (empty: keep the default)."),
    Property(
        "net.mode",
        "IP configuration",
        "dhcp, or static with the address, gateway and DNS below.",
        default="dhcp",
        choices=("dhcp", "static"),
    ),
    Property("net.address", "IP address", "Static only: address/prefix, e.g. 192.0.2.10/24."),
    Property("net.gateway", "Gateway", "Static only: default gateway, e.g. 192.0.2.1."),
    Property("net.dns", "DNS servers", "Comma-separated DNS server addresses."),
    Property("net.domain", "DNS search domains", "Comma-separated search domains."),
    Property("ntp.servers", "NTP servers", "Comma-separated NTP servers (empty: Debian's pool)."),
    Property(
        "admin.password",
        "Console password",
        "Password of the hccadmin account (console login, sudo). Set it or an SSH key.",
        password=True,
        category="Administration",
    ),
    Property(
        "admin.ssh_key",
        "SSH public key",
        "Public key(s) of hccadmin, one per line or separated by ';'. Opens SSH (22/tcp).",
        category="Administration",
    ),
)

SERVER: tuple[Property, ...] = (
    Property(
        "hcc.admin_password",
        "hcc admin password",
        "Password of the hcc user admin, set at the first start (empty: one is generated and "
        "written once to the journal of hcc-server).",
        password=True,
        category="hcc",
    ),
    Property(
        "hcc.public_url",
        "Public URL",
        "URL nodes and browsers reach this server at, e.g. http://hcc.example.com:8080 "
        "(empty: http://<address or host name>:8080). Nodes reach RabbitMQ on its host, 5672.",
        category="hcc",
    ),
)

NODE: tuple[Property, ...] = (
    Property(
        "hcc.node_id",
        "Node id",
        "The id given to hcc nodes add (lower case letters, digits, '-').",
        category="hcc",
    ),
    Property(
        "hcc.server_url", "Server URL", "The hcc server, e.g. http://hcc:8080.", category="hcc"
    ),
    Property(
        "hcc.enroll_token",
        "Enrollment token",
        "One-time token printed by hcc nodes add (used at the first start only).",
        password=True,
        category="hcc",
    ),
    Property(
        "hcc.receiver_url",
        "Receiver URL",
        "URL peer nodes reach this node at (empty: https://<address or host name>:8443).",
        category="hcc",
    ),
)


def properties_for(kind: Kind) -> tuple[Property, ...]:
    return COMMON + (SERVER if kind is Kind.SERVER else NODE)
