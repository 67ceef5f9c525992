"""Capability tokens for node-to-node transfers (DESIGN.md §6), signed with Ed25519.

The server signs a token with its private key; the receiving node verifies it with the
server's public key (handed over at enrollment) and nothing else. A token allows exactly
one thing: the source node may push artifact ``artifact_id`` to ``destination_node``
until ``expires_at``. A token with ``access="read"`` (a download: ``source_node`` is the
node that holds the artifact, ``destination_node`` who reads it, e.g. ``operator``) allows
only reading that artifact's files from ``source_node``; receivers refuse it for writes.

Wire form: ``<base64url(claims JSON)>.<base64url(signature)>``, no padding. The
signature covers the first part's ASCII bytes, so the claims are checked byte for byte.

Pure: no I/O; the caller passes ``now``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.errors import ProtocolError

TOKEN_VERSION: Literal[1] = 1


class TokenError(ProtocolError):
    """A token that must be refused. ``code`` says why, for the HTTP answer."""

    code = "token-invalid"


class TokenExpired(TokenError):
    """Well signed but past its expiry: the sender should ask the server for a fresh one."""

    code = "token-expired"


class TokenClaims(BaseModel):
    """What a token allows. Times are Unix seconds (UTC)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = TOKEN_VERSION
    artifact_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    source_node: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    destination_node: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    issued_at: int = Field(ge=0)
    expires_at: int = Field(ge=0)
    access: Literal["read"] | None = None
    """None: the original push token (write to ``destination_node``). Omitted from the wire
    form when None, so push tokens are byte for byte what they always were."""


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise TokenError("token is not base64url") from exc


def sign_token(private_key: Ed25519PrivateKey, claims: TokenClaims) -> str:
    """The wire form of ``claims`` signed with the server's key."""
    body = _b64encode(claims.model_dump_json(exclude_none=True).encode())
    signature = private_key.sign(body.encode("ascii"))
    return f"{body}.{_b64encode(signature)}"


def issue_token(
    private_key: Ed25519PrivateKey,
    *,
    artifact_id: str,
    source_node: str,
    destination_node: str,
    now: int,
    ttl_s: int,
    access: Literal["read"] | None = None,
) -> str:
    """Convenience for the server: claims from parts, valid for ``ttl_s`` seconds."""
    claims = TokenClaims(
        artifact_id=artifact_id,
        source_node=source_node,
        destination_node=destination_node,
        issued_at=now,
        expires_at=now + ttl_s,
        access=access,
    )
    return sign_token(private_key, claims)


def verify_token(public_key: Ed25519PublicKey, token: str, *, now: float) -> TokenClaims:
    """Check the signature, then the claims' shape, then the expiry.

    Raises :class:`TokenError` (bad form or signature) or :class:`TokenExpired`.
    Which artifact and node the token is for is the caller's check (it knows both).
    """
    if len(token) > 4096 or token.count(".") != 1:
        raise TokenError("malformed token")
    body, _, signature = token.partition(".")
    try:
        public_key.verify(_b64decode(signature), body.encode("ascii"))
    except (InvalidSignature, UnicodeEncodeError) as exc:
        raise TokenError("bad token signature") from exc
    try:
        claims = TokenClaims.model_validate(json.loads(_b64decode(body)))
    except (ValueError, ValidationError) as exc:
        raise TokenError("malformed token claims") from exc
    if claims.expires_at <= now:
        raise TokenExpired("token expired")
    return claims


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_pem(key: Ed25519PublicKey) -> str:
    """PEM (SubjectPublicKeyInfo) text: what enrollment hands to a node."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """Parse a PEM public key and insist it is Ed25519."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise TokenError("the server key is not an Ed25519 public key")
    return key


def private_key_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def load_private_key(pem: str | bytes) -> Ed25519PrivateKey:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TokenError("not an Ed25519 private key")
    return key
