"""The OVF environment parser: what vSphere puts in guestinfo.ovfEnv, and what it must refuse."""

from __future__ import annotations

import pytest

from firstboot.ovfenv import OvfEnvError, parse_environment, parse_source
from tests.appliance.helpers import NODE_VALUES, environment


def test_vsphere_environment_gives_every_property():
    assert parse_environment(environment(NODE_VALUES)) == NODE_VALUES


def test_values_with_markup_and_quotes_come_back_verbatim():
    values = {"admin.password": "a<b>&\"c' d", "hostname": ""}
    assert parse_environment(environment(values, vmware=False)) == values


def test_nested_entities_of_a_vapp_are_not_ours():
    doc = environment({"hostname": "mine"}).replace(
        b"</Environment>",
        b'<Entity oe:id="other"><PropertySection>'
        b'<Property oe:key="hostname" oe:value="theirs"/></PropertySection></Entity></Environment>',
    )
    assert parse_environment(doc) == {"hostname": "mine"}


def test_no_property_section_means_no_values():
    doc = b'<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1"/>'
    assert parse_environment(doc) == {}


MALFORMED = {
    "empty": (b"  \n", "is empty"),
    "truncated": (environment(NODE_VALUES)[:200], "not well-formed XML"),
    "not xml": (b"<Environment oe:key=>", "not well-formed XML"),
    "wrong root": (
        b'<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"/>',
        "root element is '{http://schemas.dmtf.org/ovf/envelope/1}Envelope'",
    ),
    "no namespace": (b"<Environment><PropertySection/></Environment>", "root element"),
    "xxe": (
        b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/shadow">]>'
        b'<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1">&x;</Environment>',
        "forbidden XML",
    ),
    "billion laughs": (
        b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;">]>'
        b'<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1">&b;</Environment>',
        "forbidden XML",
    ),
    "duplicate key": (
        environment({"hostname": "a"}).replace(
            b"</PropertySection>", b'<Property oe:key="hostname" oe:value="b"/></PropertySection>'
        ),
        "'hostname' appears twice",
    ),
    "key missing": (
        environment({"hostname": "a"}).replace(b'oe:key="hostname" ', b""),
        "has no oe:key",
    ),
    "two sections": (
        environment({"hostname": "a"}).replace(
            b"</Environment>", b"<PropertySection/></Environment>"
        ),
        "more than one PropertySection",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_environment_is_refused_with_a_reason(case):
    data, reason = MALFORMED[case]
    with pytest.raises(OvfEnvError) as err:
        parse_environment(data)
    assert reason in str(err.value)


def test_oversized_environment_is_refused():
    with pytest.raises(OvfEnvError, match="larger than"):
        parse_environment(environment({"admin.ssh_key": "x" * 2_000_000}))


def test_properties_file_fallback():
    text = b"# written by hand\nhcc.node_id = n2\n\nhcc.server_url=http://s:8080\nhostname =\n"
    assert parse_source(text) == {"hcc.node_id": "n2", "hcc.server_url": "http://s:8080",
                                  "hostname": ""}  # fmt: skip
    assert parse_source(environment({"hostname": "x"})) == {"hostname": "x"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [(b"just words\n", "line 1: expected key = value"), (b"a=1\na=2\n", "line 2: 'a' is set twice"),
     (b"\xff\xfe=1", "not UTF-8")],
)  # fmt: skip
def test_bad_properties_file(text, reason):
    with pytest.raises(OvfEnvError) as err:
        parse_source(text)
    assert reason in str(err.value)
