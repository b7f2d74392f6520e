"""Read and check an ``entra`` Airflow connection into one immutable settings object.

Kept apart from the hook so every rule about the connection sits in one place. Errors name the connection and
the field (``Connection 'entra_default': extra field 'tenant_id' is required``) and never echo a secret value.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_entra._constants import (
    API_VERSIONS,
    CLOUDS,
    DEFAULT_API_VERSION,
    DEFAULT_CALLS_PER_WINDOW,
    DEFAULT_CLOUD,
    DEFAULT_DAILY_CALL_BUDGET,
    DEFAULT_WINDOW_SECONDS,
    GRAPH_SCOPE_SUFFIX,
    LOG_API_CALLS,
    LOG_API_WINDOW_SECONDS,
    MICROSOFT_AUTHORITY_HOSTS,
)
from airflow_provider_entra.exceptions import EntraConnectionConfigError

CREDENTIAL_SECRET = "client_secret"  # noqa: S105 - a credential kind
CREDENTIAL_CERTIFICATE = "certificate"
CREDENTIAL_MANAGED_IDENTITY = "managed_identity"
CREDENTIAL_FEDERATED = "workload_identity"

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 6
#: A ``Retry-After`` longer than this is not slept through (it is the daily quota, not a burst).
DEFAULT_RETRY_AFTER_CAP = 120.0
#: All retry waits of one call together stay below this, well under a typical task timeout.
DEFAULT_TOTAL_BACKOFF_CAP = 300.0
DEFAULT_BACKOFF_FACTOR = 0.5
DEFAULT_BACKOFF_MAX = 30.0


@dataclass(frozen=True)
class EntraSettings:
    """Everything the hook needs from one connection, checked. Secrets are kept out of ``repr``."""

    conn_id: str
    credential_type: str
    client_id: str | None
    tenant_id: str | None
    authority_host: str
    graph_endpoint: str
    scope: str
    api_version: str
    cloud: str | None
    service_principal_id: str | None = None
    job_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    certificate_pem: str | None = field(default=None, repr=False)
    private_key_pem: str | None = field(default=None, repr=False)
    private_key_passphrase: str | None = field(default=None, repr=False)
    certificate_thumbprint: str | None = None
    send_x5c: bool = False
    managed_identity_client_id: str | None = None
    federated_token_file: str | None = None
    ca_bundle: str | None = None
    proxies: dict[str, str] | None = None
    calls_per_window: int = DEFAULT_CALLS_PER_WINDOW
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    log_calls_per_window: int = LOG_API_CALLS
    log_window_seconds: float = LOG_API_WINDOW_SECONDS
    daily_call_budget: int = DEFAULT_DAILY_CALL_BUDGET
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP
    total_backoff_cap: float = DEFAULT_TOTAL_BACKOFF_CAP
    backoff_factor: float = DEFAULT_BACKOFF_FACTOR

    @property
    def authority(self) -> str:
        """The msal authority URL, ``{authority_host}/{tenant}``."""
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def is_microsoft_authority(self) -> bool:
        """Whether the sign-in host is one of Microsoft's (msal's instance discovery only works there)."""
        return self.authority_host in MICROSOFT_AUTHORITY_HOSTS

    @property
    def verify(self) -> str | bool:
        """``requests``' ``verify``: the CA bundle path, or ``True`` for the system CAs. Never ``False``."""
        return self.ca_bundle or True

    def credential_fingerprint(self) -> str:
        """A one-way digest of the credential material: keys the msal app registry without holding secrets."""
        digest = hashlib.sha256()
        for part in (
            self.credential_type,
            self.client_secret,
            self.certificate_pem,
            self.private_key_pem,
            self.private_key_passphrase,
            self.certificate_thumbprint,
            str(self.send_x5c),
            self.managed_identity_client_id,
            self.federated_token_file,
        ):
            digest.update(b"\0" + (part or "").encode())
        return digest.hexdigest()

    def require(self, name: str) -> str:
        """Return a field only some calls need (``job_id``, ``service_principal_id``), or fail naming it."""
        value = getattr(self, name)
        if not value:
            raise EntraConnectionConfigError(f"Connection '{self.conn_id}': extra field '{name}' is required")
        return value


class _Reader:
    """Looks fields up in a connection's extras, accepting the ``extra__entra__`` prefix too: connections
    saved by the Airflow 2 UI before 2.3 still carry it, and Airflow 2.11 is supported."""

    def __init__(self, conn_id: str, extra: dict[str, Any]) -> None:
        self.conn_id = conn_id
        self.extra = extra

    def error(self, name: str, problem: str) -> EntraConnectionConfigError:
        return EntraConnectionConfigError(f"Connection '{self.conn_id}': extra field '{name}' {problem}")

    def raw(self, name: str) -> Any:
        for key in (name, f"extra__entra__{name}"):
            value = self.extra.get(key)
            if isinstance(value, str):
                value = value.strip()
            if value not in (None, ""):
                return value
        return None

    def text(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, got {type(value).__name__}")
        return value

    def flag(self, name: str) -> bool:
        value = self.raw(name)
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "1", "yes", "on", "false", "0", "no", "off"}:
            return value.lower() in {"true", "1", "yes", "on"}
        raise self.error(name, "must be true or false")

    def number(self, name: str, default: float, *, integer: bool, minimum: float) -> Any:
        value = self.raw(name)
        if value is None:
            return default
        try:
            if isinstance(value, bool):
                raise ValueError
            number = int(value) if integer else float(value)
        except (TypeError, ValueError):
            kind = "an integer" if integer else "a number"
            raise self.error(name, f"must be {kind}, got {value!r}") from None
        if number < minimum:
            raise self.error(name, f"must be at least {minimum:g}, got {number}")
        return number

    def url(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.netloc:
            raise self.error(name, f"must be an https:// URL, got {value!r}")
        return value.rstrip("/")

    def file(self, name: str, value: str | None = None) -> str | None:
        value = value if value is not None else self.text(name)
        if value is None:
            return None
        path = Path(os.path.expandvars(os.path.expanduser(value)))
        if "$" in str(path):
            raise self.error(name, f"refers to an unset environment variable: {value!r}")
        if not path.is_file():
            raise self.error(name, f"points to a file that does not exist: {str(path)!r}")
        return str(path)

    def read_pem(self, name: str, path: str) -> str:
        try:
            return Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise self.error(name, f"cannot be read: {type(exc).__name__}") from None


def _split_pem(text: str) -> tuple[str | None, str | None]:
    """Split a PEM blob into (certificate blocks, private key block); either may be ``None``."""
    certs: list[str] = []
    key: str | None = None
    block: list[str] = []
    for line in text.splitlines():
        if line.startswith("-----BEGIN "):
            block = [line]
        elif block:
            block.append(line)
            if line.startswith("-----END "):
                pem = "\n".join(block) + "\n"
                if "PRIVATE KEY" in block[0]:
                    key = pem
                elif "CERTIFICATE" in block[0]:
                    certs.append(pem)
                block = []
    return ("".join(certs) or None), key


def sha1_thumbprint(certificate_pem: str) -> str:
    """SHA-1 thumbprint (upper-case hex) of the first certificate in a PEM text, as Entra shows it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - the thumbprint Entra matches, not a MAC


def parse_connection(
    conn_id: str, login: str | None, password: str | None, extra: dict[str, Any]
) -> EntraSettings:
    """Check an ``entra`` connection and return its settings.

    :param conn_id: the Airflow connection id, named in error messages.
    :param login: the connection's login (the app's client id).
    :param password: the connection's password (the client secret), if the credential is a secret.
    :param extra: the connection's extras (``Connection.extra_dejson``).
    :raises EntraConnectionConfigError: naming the missing or invalid field.
    """
    r = _Reader(conn_id, extra or {})
    login = (login or "").strip() or None
    password = password or None

    # Where to sign in and which Graph to call.
    cloud = r.text("cloud")
    authority_host = r.url("authority_host")
    graph_endpoint = r.url("graph_endpoint")
    if authority_host and not graph_endpoint:
        raise r.error("graph_endpoint", "is required when 'authority_host' is set")
    if graph_endpoint and not authority_host:
        raise r.error("authority_host", "is required when 'graph_endpoint' is set")
    if cloud is not None and cloud not in CLOUDS:
        raise r.error("cloud", f"must be one of {', '.join(CLOUDS)}, got {cloud!r}")
    cloud = cloud or DEFAULT_CLOUD
    if not authority_host:
        authority_host, graph_endpoint = CLOUDS[cloud].authority_host, CLOUDS[cloud].graph_endpoint
    assert graph_endpoint is not None
    # The token's audience is the cloud's Graph resource even when requests go to an explicit endpoint
    # (a private endpoint, a proxy, the local emulator).
    scope = r.text("scope") or CLOUDS[cloud].graph_endpoint + GRAPH_SCOPE_SUFFIX
    api_version = r.text("api_version") or DEFAULT_API_VERSION
    if api_version not in API_VERSIONS:
        raise r.error("api_version", f"must be one of {', '.join(API_VERSIONS)}, got {api_version!r}")

    # Which credential.
    managed_identity = r.flag("managed_identity")
    federated_token_file = r.text("federated_token_file")
    certificate_path = r.file("certificate_path")
    private_key_path = r.file("private_key_path")
    inline_certificate = r.text("certificate")
    inline_key = r.text("private_key")
    has_certificate = any((certificate_path, private_key_path, inline_certificate, inline_key))
    chosen_kinds = [
        name
        for name, present in (
            ("managed_identity", managed_identity),
            ("federated_token_file", federated_token_file),
            ("certificate", has_certificate),
        )
        if present
    ]
    if len(chosen_kinds) > 1:
        raise r.error(chosen_kinds[1], f"cannot be combined with '{chosen_kinds[0]}': choose one credential")

    tenant_id = r.text("tenant_id")
    certificate_pem = private_key_pem = thumbprint = None
    mi_client_id = None
    client_secret = None
    if managed_identity:
        credential_type = CREDENTIAL_MANAGED_IDENTITY
        mi_client_id = r.text("managed_identity_client_id") or login
    else:
        if not tenant_id:
            raise r.error("tenant_id", "is required")
        if not login:
            raise EntraConnectionConfigError(
                f"Connection '{conn_id}': field 'login' (the client id) is required"
            )
        if federated_token_file:
            credential_type = CREDENTIAL_FEDERATED
            federated_token_file = r.file("federated_token_file", federated_token_file)
        elif has_certificate:
            credential_type = CREDENTIAL_CERTIFICATE
            certs: list[str] = []
            keys: list[str] = []
            for name, text in (
                ("certificate_path", certificate_path and r.read_pem("certificate_path", certificate_path)),
                ("private_key_path", private_key_path and r.read_pem("private_key_path", private_key_path)),
                ("certificate", inline_certificate),
                ("private_key", inline_key),
            ):
                if not text:
                    continue
                cert, key = _split_pem(text)
                if not cert and not key:
                    raise r.error(name, "holds no PEM certificate or private key")
                certs += [cert] if cert else []
                keys += [key] if key else []
            if not keys:
                raise r.error(
                    "private_key_path", "is required: no PEM private key found in the certificate fields"
                )
            if not certs:
                raise r.error(
                    "certificate_path", "is required: no PEM certificate found in the certificate fields"
                )
            certificate_pem, private_key_pem = certs[0], keys[0]
            try:
                thumbprint = r.text("certificate_thumbprint") or sha1_thumbprint(certificate_pem)
            except ValueError:
                raise r.error("certificate_path", "holds a certificate that cannot be parsed") from None
            thumbprint = thumbprint.replace(":", "").upper()
        else:
            credential_type = CREDENTIAL_SECRET
            if not password:
                raise EntraConnectionConfigError(
                    f"Connection '{conn_id}': field 'password' (the client secret) is required, "
                    "or set a certificate, managed identity or federated token file in the extras"
                )
            client_secret = password

    proxies_raw = r.raw("proxies")
    proxies: dict[str, str] | None = None
    if proxies_raw is not None:
        if isinstance(proxies_raw, str):
            try:
                proxies_raw = json.loads(proxies_raw)
            except ValueError:
                raise r.error("proxies", "must be a JSON object") from None
        if not isinstance(proxies_raw, dict) or not all(isinstance(v, str) for v in proxies_raw.values()):
            raise r.error("proxies", 'must be a JSON object such as {"https": "http://proxy:3128"}')
        proxies = {str(k): v for k, v in proxies_raw.items()}

    return EntraSettings(
        conn_id=conn_id,
        credential_type=credential_type,
        client_id=login if not managed_identity else mi_client_id,
        tenant_id=tenant_id,
        authority_host=authority_host,
        graph_endpoint=graph_endpoint,
        scope=scope,
        api_version=api_version,
        cloud=cloud,
        service_principal_id=r.text("service_principal_id"),
        job_id=r.text("job_id"),
        client_secret=client_secret,
        certificate_pem=certificate_pem,
        private_key_pem=private_key_pem,
        private_key_passphrase=r.text("private_key_passphrase"),
        certificate_thumbprint=thumbprint,
        send_x5c=r.flag("send_x5c"),
        managed_identity_client_id=mi_client_id,
        federated_token_file=federated_token_file,
        ca_bundle=r.file("ca_bundle"),
        proxies=proxies,
        calls_per_window=r.number("calls_per_window", DEFAULT_CALLS_PER_WINDOW, integer=True, minimum=1),
        window_seconds=r.number("window_seconds", DEFAULT_WINDOW_SECONDS, integer=False, minimum=0.001),
        log_calls_per_window=r.number("log_calls_per_window", LOG_API_CALLS, integer=True, minimum=1),
        log_window_seconds=r.number(
            "log_window_seconds", LOG_API_WINDOW_SECONDS, integer=False, minimum=0.001
        ),
        daily_call_budget=r.number("daily_call_budget", DEFAULT_DAILY_CALL_BUDGET, integer=True, minimum=1),
        timeout=r.number("timeout", DEFAULT_TIMEOUT, integer=False, minimum=0.001),
        max_retries=r.number("max_retries", DEFAULT_MAX_RETRIES, integer=True, minimum=0),
        retry_after_cap=r.number("retry_after_cap", DEFAULT_RETRY_AFTER_CAP, integer=False, minimum=0),
        total_backoff_cap=r.number("total_backoff_cap", DEFAULT_TOTAL_BACKOFF_CAP, integer=False, minimum=0),
        backoff_factor=r.number("backoff_factor", DEFAULT_BACKOFF_FACTOR, integer=False, minimum=0),
    )
