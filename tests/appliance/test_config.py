"""vApp property values → appliance settings and the files first boot writes."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firstboot.config import ConfigError, Reader, build_config
from firstboot.properties import Kind
from firstboot.render import env_file, files_for, network_file, nftables_file, timesyncd_file
from tests.appliance.helpers import NODE_VALUES, SERVER_VALUES


def node(**changes: str):
    return build_config(Kind.NODE, Reader({**NODE_VALUES, **changes}))


def test_node_static_network_and_hcc_environment():
    cfg = node()
    assert (cfg.hostname, cfg.domain, cfg.fqdn) == ("node-a", "example.net", "node-a.example.net")
    assert cfg.network.address == ipaddress.ip_interface("192.0.2.10/24")
    assert cfg.ntp == ("ntp1.example.net", "192.0.2.123")
    assert cfg.hcc_env == {
        "HCC_NODE_ID": "n1",
        "HCC_SERVER": "http://hcc.example.net:8080",
        "HCC_ENROLL_TOKEN": "tok-AbC_123",
        "HCC_LISTEN": "0.0.0.0:8443",
        "HCC_DATA_DIR": "/var/lib/hcc-node",
        "HCC_TRANSFER_DIR": "/var/lib/hcc-node/transfer",
        "HCC_RECEIVER_URL": "https://192.0.2.10:8443",
    }
    assert network_file(cfg).splitlines()[4:] == [
        "[Network]", "Address=192.0.2.10/24", "Gateway=192.0.2.1", "DNS=192.0.2.53",
        "DNS=192.0.2.54", "Domains=example.net",
    ]  # fmt: skip
    assert timesyncd_file(cfg).endswith("[Time]\nNTP=ntp1.example.net 192.0.2.123\n")
    assert "password" not in repr(cfg).lower().replace("admin_password", "")


def test_receiver_url_defaults_to_the_host_name_with_dhcp():
    cfg = node(**{"net.mode": "dhcp", "net.address": "", "net.gateway": ""})
    assert cfg.hcc_env["HCC_RECEIVER_URL"] == "https://node-a.example.net:8443"
    assert "DHCP=yes" in network_file(cfg)
    assert "UseDNS=no" in network_file(cfg)  # the DNS given wins over DHCP's
    given = node(**{"hcc.receiver_url": "https://203.0.113.7:443"})
    assert given.hcc_env["HCC_RECEIVER_URL"] == "https://203.0.113.7:443"


def test_server_environment():
    cfg = build_config(Kind.SERVER, Reader(SERVER_VALUES))
    assert cfg.hcc_env == {
        "HCC_LISTEN": "0.0.0.0:8080",
        "HCC_DATA_DIR": "/var/lib/hcc",
        "HCC_PUBLIC_URL": "https://hcc.example.net:8080",
        "HCC_BROKER_USERS": "rabbitmqctl",
        "HCC_NODE_AMQP_URL": "amqp://hcc.example.net:5672/",
        "HCC_ADMIN_PASSWORD": "Adm1n-secret",
    }
    assert cfg.warnings == (
        "neither admin.password nor admin.ssh_key is set: no administrator login",
    )
    no_url = build_config(Kind.SERVER, Reader({**SERVER_VALUES, "hcc.public_url": ""}))
    assert no_url.hcc_env["HCC_PUBLIC_URL"] == "http://hcc.example.net:8080"
    v6 = {"net.mode": "static", "net.address": "2001:db8::5/64", "hcc.public_url": ""}
    cfg6 = build_config(Kind.SERVER, Reader({**SERVER_VALUES, **v6}))
    assert cfg6.hcc_env["HCC_NODE_AMQP_URL"] == "amqp://[2001:db8::5]:5672/"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hcc.node_id": ""}, "hcc.node_id: missing"),
        ({"hcc.node_id": "N_1"}, "hcc.node_id: 'N_1' is not a node id"),
        ({"hcc.server_url": ""}, "hcc.server_url: missing"),
        ({"hcc.server_url": "hcc:8080"}, "hcc.server_url: 'hcc:8080' is not a http/https URL"),
        ({"hcc.enroll_token": ""}, "hcc.enroll_token: missing"),
        ({"hcc.receiver_url": "http://x:8443"}, "hcc.receiver_url: 'http://x:8443' is not a https"),
        ({"net.mode": "manual"}, "net.mode: 'manual' is neither dhcp nor static"),
        ({"net.address": "192.0.2.10"}, "net.address: static needs an address with its prefix"),
        ({"net.address": "192.0.2.300/24"}, "net.address/net.gateway:"),
        ({"net.gateway": "198.51.100.1"}, "net.gateway: 198.51.100.1 is not in 192.0.2.0/24"),
        ({"net.dns": "192.0.2.53,dns.example"}, "net.dns:"),
        ({"hostname": "bad_name"}, "hostname: 'bad_name' is not a valid host name"),
        ({"ntp.servers": "ntp..x"}, "ntp.servers:"),
        ({"admin.ssh_key": "AAAA not a key"}, "admin.ssh_key:"),
        ({"hcc.node_id": "n1\nHCC_AMQP_URL=x"}, "hcc.node_id: control characters"),
        (
            {"hostname": "", "net.mode": "dhcp", "net.address": ""},
            "hcc.receiver_url: set it, or a static net.address, or a hostname",
        ),
    ],
)
def test_bad_values_name_the_property(changes, message):
    with pytest.raises(ConfigError) as err:
        node(**changes)
    assert message in str(err.value)


def test_enrolled_node_no_longer_needs_its_token():
    cfg = build_config(Kind.NODE, Reader({**NODE_VALUES, "hcc.enroll_token": ""}), enrolled=True)
    assert "HCC_ENROLL_TOKEN" not in cfg.hcc_env


def test_unknown_properties_are_warned_about_not_fatal():
    cfg = node(**{"guestinfo.extra": "1"})
    assert "property 'guestinfo.extra' is not used by this appliance" in cfg.warnings


def test_ssh_keys_several_and_firewall_opens_ssh_only_with_keys():
    keys = "ssh-ed25519 AAAAC3Nz a@b; ecdsa-sha2-nistp256 AAAAE2Vj c@d\nssh-rsa AAAAB3Nz"
    cfg = node(**{"admin.ssh_key": keys})
    assert len(cfg.ssh_keys) == 3
    files = {f.path: f for f in files_for(cfg)}
    assert files["/home/hccadmin/.ssh/authorized_keys"].content.count("\n") == 3
    assert "tcp dport 22 accept" in files["/etc/nftables.conf"].content
    no_keys = node(**{"admin.ssh_key": ""})
    nft = {f.path: f for f in files_for(no_keys)}["/etc/nftables.conf"].content
    assert "dport 22" not in nft
    assert "tcp dport 8443 accept" in nft
    assert "policy drop" in nft


def test_env_file_quoting_round_trips_systemd_rules():
    text = env_file({"A": "plain", "B": 'it\'s $HOME "q" \\ `x`', "C": ""})
    lines = text.splitlines()[1:]
    assert lines == ["A='plain'", 'B="it\'s \\$HOME \\"q\\" \\\\ \\`x\\`"', "C=''"]
    with pytest.raises(ConfigError):
        env_file({"A": "two\nlines"})


def test_secret_files_are_private():
    modes = {f.path: f.mode for f in files_for(node())}
    assert modes["/etc/hcc/node.env"] == 0o600
    assert modes["/home/hccadmin/.ssh/authorized_keys"] == 0o600
    assert nftables_file(Kind.SERVER, ssh=False).count("accept comment") == 3  # 2 ports + DHCPv6


def test_a_node_maps_443_to_its_receiver():
    node_rules = nftables_file(Kind.NODE, ssh=False)
    assert "tcp dport 443 redirect to :8443" in node_rules
    assert "dport 443 accept" not in node_rules  # redirected before input: 8443 is accepted
    assert "redirect" not in nftables_file(Kind.SERVER, ssh=False)


def test_env_files_are_what_hcc_settings_read(monkeypatch):
    """Every HCC_ name first boot writes is a setting of the process it is for (pydantic-settings
    ignores unknown names, so a typo would pass silently), and the values parse."""
    from pathlib import Path

    from appliance.settings import ServerSettings
    from workers.settings import NodeSettings

    node_env = node().hcc_env
    assert {k.removeprefix("HCC_").lower() for k in node_env} <= set(NodeSettings.model_fields)
    for key, value in node_env.items():
        monkeypatch.setenv(key, value)
    ns = NodeSettings()
    assert (ns.node_id, ns.host_port) == ("n1", ("0.0.0.0", 8443))
    assert ns.storage_dir == Path("/var/lib/hcc-node/transfer")
    assert ns.advertised_url == "https://192.0.2.10:8443"
    assert ns.enroll_token is not None
    assert ns.enroll_token.get_secret_value() == "tok-AbC_123"

    server_env = build_config(Kind.SERVER, Reader(SERVER_VALUES)).hcc_env
    server_env["HCC_AMQP_URL"] = "amqp://hcc-server:pw@127.0.0.1:5672/"  # broker.env
    assert {k.removeprefix("HCC_").lower() for k in server_env} <= set(ServerSettings.model_fields)
    for key, value in server_env.items():
        monkeypatch.setenv(key, value)
    ss = ServerSettings()
    assert ss.broker_users == "rabbitmqctl"
    assert ss.nodes_amqp_url == "amqp://hcc.example.net:5672/"
    assert ss.host_port == ("0.0.0.0", 8080)
    assert ss.admin_password is not None


def systemd_env_value(text: str) -> str:
    """A quoted value as systemd.exec(5) documents EnvironmentFile= parsing: single quotes keep
    everything verbatim; in double quotes a backslash before one of "\\`$ keeps that character
    and before anything else is kept with it."""
    if text[0] == "'":
        assert text[-1] == "'"
        assert "'" not in text[1:-1]
        return text[1:-1]
    assert text[0] == text[-1] == '"'
    out, i, body = [], 0, text[1:-1]
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(nxt if nxt in '"\\`$' else c + nxt)
            i += 2
            continue
        assert c != '"', "an unescaped double quote ends the value early"
        out.append(c)
        i += 1
    return "".join(out)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=40))
def test_env_values_survive_systemd_parsing(value):
    from firstboot.render import env_value

    assert systemd_env_value(env_value(value)) == value


def test_a_given_url_is_enough_with_dhcp_and_no_host_name():
    dhcp = {"hostname": "", "net.mode": "dhcp", "net.address": "", "net.gateway": ""}
    cfg = node(**dhcp, **{"hcc.receiver_url": "https://203.0.113.9:8443"})
    assert cfg.hcc_env["HCC_RECEIVER_URL"] == "https://203.0.113.9:8443"
    assert cfg.hostname == "hcc-node"
    server = build_config(Kind.SERVER, Reader({**SERVER_VALUES, **dhcp}))
    assert server.hcc_env["HCC_NODE_AMQP_URL"] == "amqp://hcc.example.net:5672/"
    with pytest.raises(ConfigError, match=r"hcc\.public_url: set it"):
        build_config(Kind.SERVER, Reader({**SERVER_VALUES, **dhcp, "hcc.public_url": ""}))
