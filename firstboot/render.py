"""Settings → the contents of the files first boot writes. Pure.

Ports: the ones README.md's Operations table names (8080 and 5672 on the server, 8443 on a
node), plus 22 when an SSH key is set. Everything else coming in is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from firstboot.config import BROKER_PORT, RECEIVER_PORT, SERVER_PORT, ApplianceConfig, ConfigError
from firstboot.properties import Kind

ADMIN_USER = "hccadmin"
SSH_PORT = 22
PORTS: dict[Kind, dict[int, str]] = {
    Kind.SERVER: {SERVER_PORT: "hcc API and UI", BROKER_PORT: "RabbitMQ (nodes)"},
    Kind.NODE: {RECEIVER_PORT: "hcc transfer receiver"},
}
ENV_FILE = {Kind.SERVER: "/etc/hcc/server.env", Kind.NODE: "/etc/hcc/node.env"}


@dataclass(frozen=True)
class FileSpec:
    path: str
    content: str
    mode: int = 0o644
    owner: str | None = None
    """User (and group) to own the file; None: root."""


def env_value(value: str) -> str:
    """One value of a systemd EnvironmentFile: single-quoted (verbatim) when it can be,
    else double-quoted with the four characters systemd unescapes there."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise ConfigError("environment values cannot span lines")
    if "'" not in value:
        return f"'{value}'"
    escaped = "".join("\\" + c if c in '"\\`$' else c for c in value)
    return f'"{escaped}"'


def env_file(env: dict[str, str]) -> str:
    lines = ["# Written by hcc-firstboot at every boot from the vApp properties; edits are lost."]
    lines += [f"{key}={env_value(value)}" for key, value in sorted(env.items())]
    return "\n".join(lines) + "\n"


def network_file(cfg: ApplianceConfig) -> str:
    net = cfg.network
    lines = ["# Written by hcc-firstboot from the vApp properties net.*", "[Match]"]
    lines += ["Name=en* eth*", "", "[Network]"]
    if net.dhcp:
        lines.append("DHCP=yes")
    else:
        lines.append(f"Address={net.address}")
        if net.gateway is not None:
            lines.append(f"Gateway={net.gateway}")
    lines += [f"DNS={d}" for d in net.dns]
    if net.domains:
        lines.append("Domains=" + " ".join(net.domains))
    if net.dhcp:
        lines += ["", "[DHCPv4]", "UseHostname=no"]
        if net.dns:  # the DNS servers given replace the ones DHCP offers
            lines += ["UseDNS=no", "", "[DHCPv6]", "UseDNS=no"]
    return "\n".join(lines) + "\n"


def timesyncd_file(cfg: ApplianceConfig) -> str:
    servers = " ".join(cfg.ntp)
    head = "# Written by hcc-firstboot from the vApp property ntp.servers\n[Time]\n"
    return head + (f"NTP={servers}\n" if servers else "")


def hosts_file(cfg: ApplianceConfig) -> str:
    names = f"{cfg.fqdn} {cfg.hostname}" if cfg.domain else cfg.hostname
    return (
        "127.0.0.1\tlocalhost\n"
        f"127.0.1.1\t{names}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    )


def nftables_file(kind: Kind, *, ssh: bool) -> str:
    ports = dict(PORTS[kind])
    if ssh:
        ports[SSH_PORT] = "SSH (admin.ssh_key is set)"
    accepts = [
        f'\t\ttcp dport {port} accept comment "{what}"' for port, what in sorted(ports.items())
    ]
    return "\n".join(
        [
            "#!/usr/sbin/nft -f",
            f"# hcc-{kind.value}: written by hcc-firstboot; only the ports in docs/appliances.md",
            "flush ruleset",
            "",
            "table inet hcc {",
            "\tchain input {",
            "\t\ttype filter hook input priority filter; policy drop;",
            "\t\tct state established,related accept",
            "\t\tct state invalid drop",
            '\t\tiifname "lo" accept',
            "\t\tmeta l4proto { icmp, ipv6-icmp } accept",
            '\t\tudp sport 547 udp dport 546 accept comment "DHCPv6 replies"',
            *accepts,
            "\t}",
            "\tchain forward {",
            "\t\ttype filter hook forward priority filter; policy drop;",
            "\t}",
            "}",
            *(_https_map() if kind is Kind.NODE else []),
            "",
        ]
    )


def _https_map() -> list[str]:
    """A node also answers on 443 (redirected to the receiver's 8443 before the input chain,
    so 8443 is still the only port accepted): for sites whose firewalls pass only HTTPS."""
    return [
        "",
        "table inet hcc_nat {",
        "\tchain prerouting {",
        "\t\ttype nat hook prerouting priority dstnat; policy accept;",
        f'\t\ttcp dport 443 redirect to :{RECEIVER_PORT} comment "443 is the receiver too"',
        "\t}",
        "}",
    ]


def files_for(cfg: ApplianceConfig) -> list[FileSpec]:
    """Every file first boot writes, with its mode and owner."""
    keys = "".join(k + "\n" for k in cfg.ssh_keys)
    return [
        FileSpec(ENV_FILE[cfg.kind], env_file(cfg.hcc_env), 0o600),
        FileSpec("/etc/systemd/network/10-hcc.network", network_file(cfg)),
        FileSpec("/etc/systemd/timesyncd.conf.d/hcc.conf", timesyncd_file(cfg)),
        FileSpec("/etc/hostname", cfg.hostname + "\n"),
        FileSpec("/etc/hosts", hosts_file(cfg)),
        FileSpec("/etc/nftables.conf", nftables_file(cfg.kind, ssh=bool(cfg.ssh_keys)), 0o755),
        FileSpec(f"/home/{ADMIN_USER}/.ssh/authorized_keys", keys, 0o600, ADMIN_USER),
    ]
