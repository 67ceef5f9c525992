"""The query filter language as pyvcloud and go-vcloud-director send it."""

from __future__ import annotations

import urllib.parse

import pytest

from sim.vcd.errors import VcdError
from sim.vcd.query_filter import Term, matches, normalize, parse_filter, raw_params

UUID = "0f1c2d3e-4a5b-4c6d-8e9f-a0b1c2d3e4f5"
HREF = f"http://127.0.0.1:8443/api/vdc/{UUID}"


def test_raw_params_keep_values_encoded() -> None:
    params = raw_params("type=vApp&format=records&filter=name%3D%3Dx&filter=ignored")
    assert params == {"type": "vApp", "format": "records", "filter": "name%3D%3Dx"}


def test_api36_single_encoded_filter() -> None:
    raw = f"vdc=={urllib.parse.quote(HREF)};name==my%20app"
    assert parse_filter(raw, encoded=False) == [
        [Term("vdc", "==", HREF), Term("name", "==", "my app")]
    ]


def test_api32_double_encoded_filter() -> None:
    inner = f"vdc=={urllib.parse.quote(HREF)};name==a%2Cb"
    parsed = parse_filter(urllib.parse.quote(inner), encoded=True)
    assert parsed == [[Term("vdc", "==", HREF), Term("name", "==", "a,b")]]


def test_escaped_separators_stay_in_values() -> None:
    # pyvcloud >= 35 escapes ( ) , ; in values as %5C%28 ... i.e. a backslash escape
    parsed = parse_filter("name==a%5C%3Bb%5C%2Cc", encoded=False)
    assert parsed == [[Term("name", "==", "a;b,c")]]
    assert parse_filter(r"name==a\;b", encoded=False) == [[Term("name", "==", "a;b")]]


def test_or_groups_and_not_equal() -> None:
    parsed = parse_filter("name==a;status!=x,name==b", encoded=False)
    assert parsed == [
        [Term("name", "==", "a"), Term("status", "!=", "x")],
        [Term("name", "==", "b")],
    ]


def test_empty_filter_matches_everything() -> None:
    assert parse_filter(None, encoded=False) == []
    assert matches([], {"name": "x"})


def test_bad_term_is_400() -> None:
    with pytest.raises(VcdError) as err:
        parse_filter("name", encoded=False)
    assert err.value.status == 400


@pytest.mark.parametrize("value", [HREF, f"urn:vcloud:vdc:{UUID}", UUID, UUID.upper()])
def test_references_compare_by_uuid(value: str) -> None:
    assert normalize(value) == UUID
    assert matches([[Term("vdc", "==", value)]], {"vdc": HREF})


def test_wildcards_and_negation() -> None:
    record = {"name": "tpl-alpha"}
    assert matches([[Term("name", "==", "tpl-*")]], record)
    assert not matches([[Term("name", "!=", "tpl-*")]], record)
    assert not matches([[Term("name", "==", "tpl")]], record)


def test_unknown_attribute_is_400() -> None:
    with pytest.raises(VcdError) as err:
        matches([[Term("nope", "==", "x")]], {"name": "x"})
    assert (err.value.status, err.value.minor) == (400, "BAD_REQUEST")
