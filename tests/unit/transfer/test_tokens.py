import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.tokens import (
    TokenClaims,
    TokenError,
    TokenExpired,
    generate_private_key,
    issue_token,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    sign_token,
    verify_token,
)

NOW = 1_800_000_000


def _token(key: Ed25519PrivateKey | None = None) -> tuple[Ed25519PrivateKey, str]:
    key = key or generate_private_key()
    tok = issue_token(
        key, artifact_id="vm-1", source_node="n1", destination_node="n2", now=NOW, ttl_s=600
    )
    return key, tok


def test_round_trip_gives_the_claims():
    key, tok = _token()
    claims = verify_token(key.public_key(), tok, now=NOW + 1)
    assert (claims.artifact_id, claims.source_node, claims.destination_node) == (
        "vm-1",
        "n1",
        "n2",
    )
    assert claims.expires_at == NOW + 600


def test_expired_token_is_refused_as_expired():
    key, tok = _token()
    with pytest.raises(TokenExpired):
        verify_token(key.public_key(), tok, now=NOW + 600)


def test_foreign_key_is_refused():
    _, tok = _token()
    other = generate_private_key()
    with pytest.raises(TokenError) as info:
        verify_token(other.public_key(), tok, now=NOW)
    assert not isinstance(info.value, TokenExpired)


def test_tampered_claims_are_refused():
    key, tok = _token()
    forged_claims = TokenClaims(
        artifact_id="vm-2",
        source_node="n1",
        destination_node="n2",
        issued_at=NOW,
        expires_at=NOW + 600,
    )
    forged_body = sign_token(generate_private_key(), forged_claims).split(".")[0]
    forged = forged_body + "." + tok.split(".")[1]
    with pytest.raises(TokenError, match="signature"):
        verify_token(key.public_key(), forged, now=NOW)


@pytest.mark.parametrize("bad", ["", "abc", "a.b.c", "!!!.???", "x" * 5000])
def test_garbage_is_refused(bad):
    key = generate_private_key()
    with pytest.raises(TokenError):
        verify_token(key.public_key(), bad, now=NOW)


def test_keys_round_trip_through_pem():
    key = generate_private_key()
    again = load_private_key(private_key_pem(key))
    pub = load_public_key(public_key_pem(key.public_key()))
    _, tok = _token(again)
    assert verify_token(pub, tok, now=NOW).artifact_id == "vm-1"


def test_non_ed25519_public_key_is_refused():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(TokenError):
        load_public_key(pem)
