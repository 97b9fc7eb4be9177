"""Throwaway TLS material for the broker's TLS variant, made fresh at test time.

A private CA signs a server certificate for ``127.0.0.1`` and a client
certificate whose common name becomes the MQTT username (Mosquitto's
``use_identity_as_username``). Nothing is checked in, so nothing expires in the
repository; P-256 keys keep generation in the milliseconds.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files in one folder: the CA, the broker's pair and one client's pair."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    usage: x509.ObjectIdentifier | None,
    ip_address: str | None = None,
) -> x509.Certificate:
    """A certificate for ``subject``; a CA when ``usage`` is None, a leaf otherwise."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=usage is None, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if usage is None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if ip_address is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip_address))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_tls_files(folder: Path, *, server_ip: str, client_name: str) -> TlsFiles:
    """Write a CA, a server pair for ``server_ip`` and a client pair named ``client_name``."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("stovectl test CA")
    ca = _issue("stovectl test CA", ca_key, ca_name, ca_key, usage=None)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue(
        server_ip, server_key, ca_name, ca_key,
        usage=ExtendedKeyUsageOID.SERVER_AUTH, ip_address=server_ip,
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue(
        client_name, client_key, ca_name, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    files = TlsFiles(
        ca_cert=folder / "ca.crt",
        server_cert=folder / "server.crt",
        server_key=folder / "server.key",
        client_cert=folder / "client.crt",
        client_key=folder / "client.key",
    )
    for certificate, path in ((ca, files.ca_cert), (server, files.server_cert),
                              (client, files.client_cert)):
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, files.server_key)
    _write_key(client_key, files.client_key)
    return files
