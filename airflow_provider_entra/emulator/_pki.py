"""Keys and certificates the emulator needs, all generated locally with ``cryptography``.

- a CA (``ca.pem``) that clients trust through ``ca_bundle``; kept across restarts of the same data dir;
- a server certificate signed by that CA, issued at every start for ``localhost``, ``127.0.0.1`` and any
  advertised host name;
- a client certificate + key registered for the default app (certificate credentials);
- an RSA key that signs access tokens (the tenant's token-signing key, published as JWKS);
- an RSA key that signs federated identity tokens (a stand-in for a Kubernetes/GitHub OIDC issuer).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_KEY_SIZE = 2048
_CA_DAYS = 3650
_LEAF_DAYS = 825


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by the owner only."""
    path.write_bytes(data)
    os.chmod(path, 0o600)


def _load_or_create_key(path: Path, *, shared: bool = False) -> rsa.RSAPrivateKey:
    """Load a key, or create it.

    :param shared: a client credential other containers mount and read (the client certificate's key):
        written with the process umask instead of owner-only.
    """
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key
    key = _new_key()
    if shared:
        path.write_bytes(_key_pem(key))
    else:
        _write_private(path, _key_pem(key))
    return key


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Entra emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _certificate(
    subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey, days: int
) -> x509.CertificateBuilder:
    """A certificate of ``key`` valid from yesterday for ``days`` days, to extend and sign."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(days=1))
        .not_valid_after(_now() + dt.timedelta(days=days))
    )


def thumbprints(cert: x509.Certificate) -> tuple[str, str]:
    """Return the (SHA-1 hex, SHA-256 hex) thumbprints of a certificate, as Entra shows them."""
    der = cert.public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der).hexdigest().upper(), hashlib.sha256(der).hexdigest().upper()  # noqa: S324


def b64url_thumbprint(hex_thumbprint: str) -> str:
    """The ``x5t``/``x5t#S256`` header form of a hex thumbprint."""
    return base64.urlsafe_b64encode(bytes.fromhex(hex_thumbprint)).decode().rstrip("=")


@dataclass
class Pki:
    """Paths and in-memory keys of everything the emulator signs with."""

    ca_path: Path
    server_cert_path: Path
    server_key_path: Path
    client_cert_path: Path
    client_key_path: Path
    client_cert: x509.Certificate
    token_key: rsa.RSAPrivateKey
    token_kid: str
    issuer_key: rsa.RSAPrivateKey
    issuer_kid: str


def ensure_pki(data_dir: Path, hosts: list[str]) -> Pki:
    """Create (or reuse) the CA and keys in ``data_dir`` and issue a fresh server certificate for ``hosts``.

    :param data_dir: where the PEM files live; the CA, client certificate and signing keys are reused when
        present.
    :param hosts: DNS names or IP addresses the server certificate must be valid for.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    ca_path = data_dir / "ca.pem"
    ca_key_path = data_dir / "ca-key.pem"
    if ca_path.exists() and ca_key_path.exists():
        ca_cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
        ca_key = _load_or_create_key(ca_key_path)
    else:
        ca_key = _new_key()
        ca_name = _name("Entra emulator local CA")
        ca_cert = (
            _certificate(ca_name, ca_name, ca_key, _CA_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(ca_key_path, _key_pem(ca_key))
        ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    # Server certificate: always re-issued, so a new --advertise-host is covered.
    server_key_path = data_dir / "server-key.pem"
    server_key = _load_or_create_key(server_key_path)
    sans: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in ["localhost", "127.0.0.1", *hosts]:
        if not host or host in seen or host in ("0.0.0.0", "::"):  # noqa: S104
            continue
        seen.add(host)
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    server_cert = (
        _certificate(_name("Entra emulator"), ca_cert.subject, server_key, _LEAF_DAYS)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_cert_path = data_dir / "server-cert.pem"
    server_cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))

    # Client certificate for certificate credentials (self-signed, as Entra app certificates usually are).
    client_cert_path = data_dir / "client-cert.pem"
    client_key_path = data_dir / "client-key.pem"
    client_key = _load_or_create_key(client_key_path, shared=True)
    if client_cert_path.exists():
        client_cert = x509.load_pem_x509_certificate(client_cert_path.read_bytes())
    else:
        client_name = _name("entra-provisioning-client")
        client_cert = _certificate(client_name, client_name, client_key, _LEAF_DAYS).sign(
            client_key, hashes.SHA256()
        )
        client_cert_path.write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))

    token_key = _load_or_create_key(data_dir / "token-signing-key.pem")
    issuer_key = _load_or_create_key(data_dir / "federation-issuer-key.pem")
    return Pki(
        ca_path=ca_path.resolve(),
        server_cert_path=server_cert_path.resolve(),
        server_key_path=server_key_path.resolve(),
        client_cert_path=client_cert_path.resolve(),
        client_key_path=client_key_path.resolve(),
        client_cert=client_cert,
        token_key=token_key,
        token_kid=_kid(token_key),
        issuer_key=issuer_key,
        issuer_kid=_kid(issuer_key),
    )


def _kid(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:16]).decode().rstrip("=")


def jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    """Public JWK of an RSA key (for the tenant's ``jwks_uri``)."""
    numbers = key.public_key().public_numbers()

    def b64(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return {"kty": "RSA", "use": "sig", "kid": kid, "alg": "RS256", "n": b64(numbers.n), "e": b64(numbers.e)}
