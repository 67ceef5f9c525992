"""The capability token of a request to a node's transfer endpoints (upload or download)."""

from __future__ import annotations

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol.tokens import TokenClaims, TokenError, verify_token
from workers.transfer.errors import Unauthorized


def token_claims(request: web.Request, public_key: Ed25519PublicKey, *, now: float) -> TokenClaims:
    """The claims of the request's ``Authorization: Bearer`` token, verified against the
    server's key; :class:`Unauthorized` (with the token error's code) when there is none
    or it does not verify. What the claims must allow is the caller's to check."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise Unauthorized("a capability token is required")
    try:
        return verify_token(public_key, header[7:].strip(), now=now)
    except TokenError as exc:
        raise Unauthorized(str(exc), code=exc.code) from exc
