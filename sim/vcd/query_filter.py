"""The query service's filter language, as clients send it (shared/vcd-api.md §4c). Pure.

``filter`` is taken from the *raw* query string. With ``filterEncoded=true`` (pyvcloud at
API < 35) the whole filter is URL-decoded once first. Then ``,`` separates OR groups and
``;`` separates AND terms inside a group; each term is ``attr==value`` or ``attr!=value``
(``*`` in a value is a wildcard); a value is URL-decoded and ``\\`` escapes are dropped.
Entity references compare by their UUID, so an href, a urn:vcloud id and a bare id match.
"""

from __future__ import annotations

import fnmatch
import re
import urllib.parse
from dataclasses import dataclass

from sim.vcd.errors import bad_request

_UUID_TAIL = re.compile(
    r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})/?$"
)
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True)
class Term:
    attr: str
    op: str
    """``==`` or ``!=``."""
    value: str


Filter = list[list[Term]]
"""OR of ANDs."""


def raw_params(raw_query: str) -> dict[str, str]:
    """Split a raw query string without decoding the values (first occurrence wins)."""
    params: dict[str, str] = {}
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        params.setdefault(urllib.parse.unquote_plus(key), value)
    return params


def parse_filter(raw: str | None, encoded: bool) -> Filter:
    if not raw:
        return []
    text = urllib.parse.unquote(raw) if encoded else raw
    groups: Filter = []
    for group in _split_unescaped(text, ","):
        terms = [_term(t) for t in _split_unescaped(group, ";") if t]
        if terms:
            groups.append(terms)
    return groups


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _term(text: str) -> Term:
    text = text.strip("()")
    for op in ("==", "!="):
        attr, found, value = text.partition(op)
        if found and attr:
            decoded = _ESCAPE.sub(r"\1", urllib.parse.unquote(value))
            return Term(attr=urllib.parse.unquote(attr), op=op, value=decoded)
    raise bad_request(f"Invalid query filter term {text!r}.")


def normalize(value: str) -> str:
    """An href, urn or bare id of an entity → its UUID (lowercase); other values as they are."""
    match = _UUID_TAIL.search(value)
    return match.group(1).lower() if match else value


def term_matches(term: Term, record: dict[str, str]) -> bool:
    actual = record.get(term.attr)
    if actual is None:
        raise bad_request(f"Unknown query attribute {term.attr!r}.")
    a, want = normalize(actual), normalize(term.value)
    hit = fnmatch.fnmatchcase(a, want) if "*" in want else a == want
    return hit if term.op == "==" else not hit


def matches(flt: Filter, record: dict[str, str]) -> bool:
    if not flt:
        return True
    return any(all(term_matches(t, record) for t in group) for group in flt)
