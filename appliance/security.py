"""Passwords, bearer tokens, secrets at rest and the server's signing key.

- Passwords: argon2id (argon2-cffi).
- Bearer tokens: 32 random bytes, URL-safe; only their SHA-256 is stored.
- Cloud credentials: Fernet (AES-128-CBC + HMAC-SHA256) with a key file in the data
  dir, mode 0600, made at first start.
- Transfer tokens: the server's Ed25519 key (``transfer-signing.pem``, mode 0600); nodes
  get the public key at enrollment.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.tokens import issue_token

if TYPE_CHECKING:
    from appliance.tasks.copy import TokenSigner

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_hash(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a, b)


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 atomically (never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _load_or_create(path: Path, make: bytes) -> bytes:
    if not path.exists():
        _write_private(path, make)
    return path.read_bytes()


class SecretBox:
    """Encrypts cloud credentials at rest."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> SecretBox:
        return cls(_load_or_create(data_dir / "secrets.key", Fernet.generate_key()))

    def seal(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def open(self, sealed: bytes) -> str:
        try:
            return self._fernet.decrypt(sealed).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with this data dir's key") from exc


def load_signing_key(data_dir: Path) -> Ed25519PrivateKey:
    """The server's Ed25519 key for transfer capability tokens (made at first start)."""
    pem = _load_or_create(
        data_dir / "transfer-signing.pem",
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def public_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def transfer_signer(key: Ed25519PrivateKey, ttl_s: int) -> TokenSigner:
    """Signs capability tokens for sends: artifact, source node, destination node, expiry."""

    def sign(artifact_id: str, source_node: str, destination_node: str) -> str:
        return issue_token(
            key, artifact_id=artifact_id, source_node=source_node,
            destination_node=destination_node, now=int(time.time()), ttl_s=ttl_s,
        )  # fmt: skip

    return sign
