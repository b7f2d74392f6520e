"""The identity half of the emulator: client authentication, access tokens, managed and federated identities.

Mirrors login.microsoftonline.com for the client-credentials grant (``/{tenant}/oauth2/v2.0/token``) with a
client secret, a certificate-signed client assertion (RS256 with ``x5t`` or PS256 with ``x5t#S256``, as msal
sends), or a federated identity token (workload identity federation); and the App Service managed-identity
endpoint. Errors follow Entra's shape (``error``, ``error_description`` starting with an ``AADSTS`` code,
``error_codes``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from airflow_provider_entra.emulator._pki import b64url_thumbprint, thumbprints
from airflow_provider_entra.emulator._protocol import (
    FEDERATED_AUDIENCE,
    GRAPH_APP_ID,
    GRAPH_RESOURCE,
    JWT_BEARER,
)

# Graph resources in every national cloud: a token for any of them is accepted by the emulator's Graph.
GRAPH_RESOURCES = {
    GRAPH_RESOURCE,
    "https://graph.microsoft.us",
    "https://dod-graph.microsoft.us",
    "https://microsoftgraph.chinacloudapi.cn",
    GRAPH_APP_ID,
}
_ASSERTION_ALGORITHMS = ["RS256", "PS256"]
_CLOCK_SKEW = 300


@dataclass
class App:
    """An app registration (client) and the provisioning job its service principal owns."""

    name: str
    client_id: str
    client_secret: str | None
    service_principal_id: str
    job_id: str
    roles: list[str]
    certificates: list[str] = field(default_factory=list)  # PEM texts
    federated: list[dict[str, str]] = field(default_factory=list)  # issuer/subject/audience
    kind: str = "client"  # client | managed_identity | federated

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> App:
        return cls(**data)


class OAuthError(Exception):
    """A token-endpoint error in Entra's shape."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def body(self) -> dict[str, Any]:
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.description} Trace ID: {trace} Correlation ID: {corr} Timestamp: "
                f"{stamp}"
            ),
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }


class TokenError(Exception):
    """An access token presented to Graph is missing, malformed, forged or expired."""


def _cert_thumbprints(pem: str) -> tuple[str, str, x509.Certificate]:
    cert = x509.load_pem_x509_certificate(pem.encode())
    sha1, sha256 = thumbprints(cert)
    return b64url_thumbprint(sha1), b64url_thumbprint(sha256), cert


class Identity:
    """Issues and checks tokens for one tenant."""

    def __init__(
        self,
        tenant_id: str,
        token_key: rsa.RSAPrivateKey,
        token_kid: str,
        issuer_key: rsa.RSAPrivateKey,
        issuer_kid: str,
        federation_issuer: str,
    ) -> None:
        self.tenant_id = tenant_id
        self._token_key = token_key
        self._token_public = token_key.public_key()
        self.token_kid = token_kid
        self._issuer_key = issuer_key
        self._issuer_public = issuer_key.public_key()
        self.issuer_kid = issuer_kid
        self.federation_issuer = federation_issuer
        self.token_issuer = f"https://sts.windows.net/{tenant_id}/"

    # -- access tokens -------------------------------------------------------------------------------------
    def issue(self, app: App, lifetime: int, resource: str = GRAPH_RESOURCE) -> str:
        """Sign a Graph access token for ``app`` carrying its roles."""
        now = int(time.time())
        claims = {
            "aud": resource,
            "iss": self.token_issuer,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": app.client_id,
            "app_displayname": app.name,
            "idp": self.token_issuer,
            "idtyp": "app",
            "oid": app.service_principal_id,
            "sub": app.service_principal_id,
            "roles": list(app.roles),
            "tid": self.tenant_id,
            "uti": uuid.uuid4().hex,
            "ver": "1.0",
        }
        return jwt.encode(claims, self._token_key, algorithm="RS256", headers={"kid": self.token_kid})

    def verify(self, authorization: str | None) -> dict[str, Any]:
        """Validate an ``Authorization`` header; return the token's claims.

        :raises TokenError: with Graph's message for the failure.
        """
        if not authorization or not authorization.strip():
            raise TokenError("Access token is empty.")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenError("Access token is empty.")
        try:
            claims = jwt.decode(
                token.strip(),
                self._token_public,
                algorithms=["RS256"],
                options={"verify_aud": False, "require": ["exp", "aud", "tid"]},
                leeway=0,
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("Lifetime validation failed, the token is expired.") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenError("Access token validation failure: signature validation failed.") from exc
        except jwt.PyJWTError as exc:
            raise TokenError("Invalid JWT token. The token is malformed or could not be validated.") from exc
        if claims.get("aud", "").rstrip("/") not in GRAPH_RESOURCES:
            raise TokenError("Access token validation failure. Invalid audience.")
        if claims.get("tid") != self.tenant_id:
            raise TokenError("Access token validation failure: the token was issued for another tenant.")
        return claims

    # -- client authentication -----------------------------------------------------------------------------
    def authenticate(self, form: dict[str, str], apps: dict[str, App], token_endpoint_path: str) -> App:
        """Authenticate a client-credentials request.

        :param form: the form fields of the token request.
        :param apps: registered apps by client id.
        :param token_endpoint_path: ``/{tenant}/oauth2/v2.0/token`` as requested (an assertion's ``aud`` must
            end so).
        :raises OAuthError: in Entra's shape.
        """
        grant = form.get("grant_type")
        if grant != "client_credentials":
            raise OAuthError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'; only client_credentials is "
                "emulated.",
            )
        client_id = form.get("client_id", "")
        assertion = form.get("client_assertion")
        if not client_id and assertion:
            try:
                client_id = jwt.decode(assertion, options={"verify_signature": False}).get("iss", "")
            except jwt.PyJWTError:
                client_id = ""
        app = apps.get(client_id)
        if app is None or app.kind == "managed_identity":
            raise OAuthError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'.",
            )
        secret = form.get("client_secret")
        if secret is not None:
            if app.client_secret and hmac.compare_digest(secret.encode(), app.client_secret.encode()):
                return app
            raise OAuthError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                "secret "
                f"value, not the client secret ID, for a secret added to app '{client_id}'.",
            )
        if assertion is None:
            raise OAuthError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        if form.get("client_assertion_type") != JWT_BEARER:
            raise OAuthError(
                400,
                "invalid_request",
                90014,
                "The request body must contain the following parameter: 'client_assertion_type' = "
                f"'{JWT_BEARER}'.",
            )
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise OAuthError(
                401, "invalid_client", 50027, "Invalid JWT token: the client assertion is malformed."
            ) from exc
        if unverified.get("iss") == self.federation_issuer or unverified.get("aud") == FEDERATED_AUDIENCE:
            self._check_federated(app, assertion)
        else:
            self._check_certificate(app, assertion, header, token_endpoint_path)
        return app

    def _check_certificate(self, app: App, assertion: str, header: dict, endpoint_path: str) -> None:
        # msal pads the base64url thumbprints with "="; RFC 7515 does not. Accept both.
        x5t = (header.get("x5t") or "").rstrip("=")
        x5t256 = (header.get("x5t#S256") or "").rstrip("=")
        candidates = []
        for pem in app.certificates:
            sha1, sha256, cert = _cert_thumbprints(pem)
            if (x5t and x5t == sha1) or (x5t256 and x5t256 == sha256) or (not x5t and not x5t256):
                candidates.append(cert)
        if not candidates:
            raise OAuthError(
                401,
                "invalid_client",
                700027,
                f"The certificate with identifier used to sign the client assertion is not registered on "
                f"application '{app.client_id}'.",
            )
        last: Exception | None = None
        for cert in candidates:
            try:
                claims = jwt.decode(
                    assertion,
                    cert.public_key(),  # type: ignore[arg-type]
                    algorithms=_ASSERTION_ALGORITHMS,
                    options={"verify_aud": False, "require": ["exp", "iss", "sub", "aud"]},
                    leeway=_CLOCK_SKEW,
                )
            except jwt.ExpiredSignatureError as exc:
                raise OAuthError(
                    401, "invalid_client", 700024, "Client assertion is not within its valid time range."
                ) from exc
            except jwt.PyJWTError as exc:
                last = exc
                continue
            aud = claims.get("aud")
            auds = aud if isinstance(aud, list) else [aud]
            if not any(
                isinstance(a, str) and a.rstrip("/").endswith(endpoint_path.rstrip("/")) for a in auds
            ):
                raise OAuthError(
                    401,
                    "invalid_client",
                    50013,
                    f"Assertion audience does not match the token endpoint: got {aud!r}.",
                )
            if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
                raise OAuthError(
                    401,
                    "invalid_client",
                    700023,
                    "Client assertion audience claim does not match: the iss and sub claims must be the "
                    "client id.",
                )
            return
        raise OAuthError(
            401,
            "invalid_client",
            700027,
            f"Client assertion failed signature validation ({type(last).__name__}).",
        )

    def _check_federated(self, app: App, assertion: str) -> None:
        try:
            claims = jwt.decode(
                assertion,
                self._issuer_public,
                algorithms=["RS256"],
                audience=FEDERATED_AUDIENCE,
                options={"require": ["exp", "iss", "sub", "aud"]},
                leeway=_CLOCK_SKEW,
            )
        except jwt.ExpiredSignatureError as exc:
            raise OAuthError(
                400, "invalid_request", 700024, "Client assertion is not within its valid time range."
            ) from exc
        except jwt.PyJWTError as exc:
            raise OAuthError(
                401, "invalid_client", 700211, f"The federated identity token could not be validated: {exc}."
            ) from exc
        for cred in app.federated:
            if cred["issuer"] == claims["iss"] and cred["subject"] == claims["sub"]:
                return
        raise OAuthError(
            400,
            "invalid_request",
            70021,
            f"No matching federated identity record found for presented assertion. Assertion Issuer: "
            f"'{claims['iss']}'. Assertion Subject: '{claims['sub']}'. Assertion Audience: "
            f"'{FEDERATED_AUDIENCE}'.",
        )

    # -- workload identity -----------------------------------------------------------------------------------
    def write_federated_token(self, path: Path, subject: str, lifetime: int = 24 * 3600) -> None:
        """Write a projected service-account-style token, as a Kubernetes kubelet would."""
        now = int(time.time())
        token = jwt.encode(
            {
                "iss": self.federation_issuer,
                "sub": subject,
                "aud": FEDERATED_AUDIENCE,
                "iat": now,
                "nbf": now,
                "exp": now + lifetime,
            },
            self._issuer_key,
            algorithm="RS256",
            headers={"kid": self.issuer_kid},
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_text(token)
        tmp.replace(path)


def scope_resource(scope: str | None) -> str:
    """Return the resource of a ``<resource>/.default`` scope, or raise :class:`OAuthError`."""
    scopes = (scope or "").split()
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        raise OAuthError(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
            "value "
            f"with /.default suffixed to the resource identifier (application ID URI).",
        )
    return scopes[0][: -len("/.default")]


def b64_secret() -> str:
    """A client secret in Entra's style (40 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes[:14]).decode()[:40]
