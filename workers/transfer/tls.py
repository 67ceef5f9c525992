"""The node's TLS certificate: made at first start, pinned by its SHA-256 fingerprint.

A node has one self-signed certificate (ECDSA P-256) in its data directory. The server
learns its fingerprint at enrollment and hands it to senders, which pin it
(:func:`client_fingerprint`); no CA is involved.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_FILE = "transfer-cert.pem"
KEY_FILE = "transfer-key.pem"


@dataclass(frozen=True)
class NodeCertificate:
    cert_path: Path
    key_path: Path
    fingerprint: str
    """Hex SHA-256 of the certificate's DER bytes (lower case, no colons)."""


def fingerprint_of(cert_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _san(node_id: str, hostnames: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in (node_id, "localhost", *hostnames):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    return x509.SubjectAlternativeName(names)


def ensure_certificate(
    directory: Path, node_id: str, hostnames: Sequence[str] = (), valid_days: int = 3650
) -> NodeCertificate:
    """Load the node's certificate from ``directory``, creating it on first start."""
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    if not (cert_path.exists() and key_path.exists()):
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"hcc-node {node_id}")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=valid_days))
            .add_extension(_san(node_id, hostnames), critical=False)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_atomic(key_path, key_pem, 0o600)
        _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return NodeCertificate(cert_path, key_path, fingerprint_of(cert_path.read_bytes()))


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def server_ssl_context(cert: NodeCertificate) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert.cert_path, cert.key_path)
    return ctx


def client_fingerprint(fingerprint_hex: str) -> aiohttp.Fingerprint:
    """Pin the receiver's certificate; aiohttp then checks nothing else (no CA, no name)."""
    clean = fingerprint_hex.replace(":", "").strip().lower()
    return aiohttp.Fingerprint(bytes.fromhex(clean))
