"""Identity: msal and requests, unpatched, obtain tokens over HTTPS trusting only the emulator's CA; Graph
answers 401 for missing, expired or forged tokens and 403 when the app lacks the role."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import jwt
import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from airflow_provider_entra.emulator.process import EmulatorProcess
from airflow_provider_entra.emulator.testing import GRAPH_SCOPE, Graph, bulk, user


@pytest.fixture
def http(emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> requests.Session:
    """A requests.Session configured with the emulator's CA bundle and nothing else.

    The CA environment variables of this machine are removed, because requests lets REQUESTS_CA_BUNDLE
    override a Session's own ``verify``.
    """
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    session = requests.Session()
    session.verify = emu.ca_bundle
    return session


def _authority(emu: EmulatorProcess) -> str:
    return f"{emu.info['authority_host']}/{emu.info['tenant_id']}"


def _cca(
    emu: EmulatorProcess, http: requests.Session, client_id: str, credential: object
) -> msal.ClientApplication:
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=_authority(emu),
        http_client=http,
        instance_discovery=False,
    )


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_msal_client_secret_gets_a_token_with_roles(emu: EmulatorProcess, http: requests.Session) -> None:
    result = _cca(emu, http, emu.info["client_id"], emu.info["client_secret"]).acquire_token_for_client(
        scopes=[GRAPH_SCOPE]
    )
    assert "access_token" in result, result
    claims = _claims(result["access_token"])
    assert claims["appid"] == emu.info["client_id"]
    assert claims["tid"] == emu.info["tenant_id"]
    assert claims["aud"] == "https://graph.microsoft.com"
    assert {"SynchronizationData-User.Upload", "AuditLog.Read.All", "Synchronization.ReadWrite.All"} <= set(
        claims["roles"]
    )
    assert claims["exp"] - claims["iat"] == 3600


def test_discovery_document_points_at_the_emulator(emu: EmulatorProcess, http: requests.Session) -> None:
    url = f"{_authority(emu)}/v2.0/.well-known/openid-configuration"
    doc = http.get(url).json()
    assert doc["token_endpoint"] == f"{_authority(emu)}/oauth2/v2.0/token"
    keys = http.get(doc["jwks_uri"]).json()["keys"]
    assert keys[0]["kty"] == "RSA"


def test_requests_alone_with_ca_bundle(emu: EmulatorProcess, http: requests.Session) -> None:
    graph = Graph(emu)
    graph.session = http
    assert graph.upload(bulk(user("1"))).status_code == 202


def test_unknown_ca_is_refused(emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{emu.info['graph_endpoint']}/_emulator/health", timeout=10)


def test_msal_certificate_with_sha1_thumbprint(emu: EmulatorProcess, http: requests.Session) -> None:
    cert = emu.info["certificate"]
    credential = {"private_key": Path(cert["private_key_path"]).read_text(), "thumbprint": cert["thumbprint"]}
    result = _cca(emu, http, cert["client_id"], credential).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" in result, result


def test_msal_certificate_with_public_certificate_ps256(emu: EmulatorProcess, http: requests.Session) -> None:
    cert = emu.info["certificate"]
    credential = {
        "private_key": Path(cert["private_key_path"]).read_text(),
        "public_certificate": Path(cert["certificate_path"]).read_text(),
    }
    result = _cca(emu, http, cert["client_id"], credential).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" in result, result


def _self_signed() -> tuple[str, str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not registered")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    thumb = cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode(), thumb


def test_unregistered_certificate_is_refused(emu: EmulatorProcess, http: requests.Session) -> None:
    key_pem, _, thumb = _self_signed()
    result = _cca(emu, http, emu.info["client_id"], {"private_key": key_pem, "thumbprint": thumb})
    answer = result.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert answer["error"] == "invalid_client"
    assert 700027 in answer["error_codes"]


def test_assertion_signed_by_another_key_with_registered_thumbprint_is_refused(
    emu: EmulatorProcess, http: requests.Session
) -> None:
    key_pem, _, _ = _self_signed()
    credential = {"private_key": key_pem, "thumbprint": emu.info["certificate"]["thumbprint"]}
    answer = _cca(emu, http, emu.info["client_id"], credential).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert answer["error"] == "invalid_client"
    assert "signature" in answer["error_description"]


def test_wrong_secret_is_invalid_client(emu: EmulatorProcess, http: requests.Session) -> None:
    answer = _cca(emu, http, emu.info["client_id"], "not-the-secret").acquire_token_for_client(
        scopes=[GRAPH_SCOPE]
    )
    assert answer["error"] == "invalid_client"
    assert answer["error_description"].startswith("AADSTS7000215")


def test_unknown_client_id(emu: EmulatorProcess, http: requests.Session) -> None:
    answer = _cca(emu, http, "11111111-1111-1111-1111-111111111111", "x").acquire_token_for_client(
        scopes=[GRAPH_SCOPE]
    )
    assert answer["error"] == "unauthorized_client"
    assert 700016 in answer["error_codes"]


def test_unknown_tenant_fails_discovery(emu: EmulatorProcess, http: requests.Session) -> None:
    with pytest.raises(ValueError, match="authority configuration"):
        msal.ConfidentialClientApplication(
            emu.info["client_id"],
            client_credential=emu.info["client_secret"],
            authority=f"{emu.info['authority_host']}/00000000-0000-0000-0000-000000000000",
            http_client=http,
            instance_discovery=False,
        )


def test_unknown_tenant_at_the_token_endpoint(emu: EmulatorProcess, http: requests.Session) -> None:
    response = http.post(
        f"{emu.info['authority_host']}/00000000-0000-0000-0000-000000000000/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": emu.info["client_id"], "scope": GRAPH_SCOPE},
    )
    assert response.status_code == 400
    assert response.json()["error_codes"] == [90002]


def test_scope_without_default_suffix_is_invalid_scope(emu: EmulatorProcess) -> None:
    response = Graph(emu).token_response(scope="https://graph.microsoft.com/User.Read")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_foreign_resource_is_refused(emu: EmulatorProcess) -> None:
    response = Graph(emu).token_response(scope="https://management.azure.com/.default")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_resource"


def test_managed_identity_through_msal(
    emu: EmulatorProcess, http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    mi = emu.info["managed_identity"]
    monkeypatch.setenv("IDENTITY_ENDPOINT", mi["identity_endpoint"])
    monkeypatch.setenv("IDENTITY_HEADER", mi["identity_header"])
    client = msal.ManagedIdentityClient(
        msal.UserAssignedManagedIdentity(client_id=mi["client_id"]), http_client=http
    )
    result = client.acquire_token_for_client(resource="https://graph.microsoft.com")
    assert "access_token" in result, result
    graph = Graph(emu)
    response = graph.upload(bulk(user("1")), token=result["access_token"])
    assert response.status_code == 202
    assert _claims(result["access_token"])["appid"] == mi["client_id"]


def test_managed_identity_system_assigned_and_wrong_header(
    emu: EmulatorProcess, http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    mi = emu.info["managed_identity"]
    monkeypatch.setenv("IDENTITY_ENDPOINT", mi["identity_endpoint"])
    monkeypatch.setenv("IDENTITY_HEADER", mi["identity_header"])
    client = msal.ManagedIdentityClient(msal.SystemAssignedManagedIdentity(), http_client=http)
    assert "access_token" in client.acquire_token_for_client(resource="https://graph.microsoft.com")
    monkeypatch.setenv("IDENTITY_HEADER", "wrong")
    client = msal.ManagedIdentityClient(msal.SystemAssignedManagedIdentity(), http_client=http)
    assert "access_token" not in client.acquire_token_for_client(resource="https://graph.microsoft.com")


def test_workload_identity_federation_through_msal(emu: EmulatorProcess, http: requests.Session) -> None:
    fed = emu.info["federated"]
    token_file = Path(fed["token_file"])
    result = _cca(emu, http, fed["client_id"], {"client_assertion": lambda: token_file.read_text()})
    answer = result.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" in answer, answer
    assert _claims(token_file.read_text())["aud"] == "api://AzureADTokenExchange"


def test_federated_token_with_another_subject_is_refused(
    emu: EmulatorProcess, http: requests.Session
) -> None:
    fed = emu.info["federated"]
    key = Path(emu.info["ca_bundle"]).with_name("federation-issuer-key.pem").read_bytes()
    now = int(time.time())
    forged = jwt.encode(
        {
            "iss": fed["issuer"],
            "sub": "system:serviceaccount:other:intruder",
            "aud": "api://AzureADTokenExchange",
            "iat": now,
            "exp": now + 600,
        },
        serialization.load_pem_private_key(key, None),
        algorithm="RS256",
    )
    answer = _cca(emu, http, fed["client_id"], {"client_assertion": lambda: forged}).acquire_token_for_client(
        scopes=[GRAPH_SCOPE]
    )
    assert 70021 in answer["error_codes"]


# ---------------------------------------------------------------------------------------------- Graph 401/403
def _signed(emu: EmulatorProcess, key: rsa.RSAPrivateKey | None = None, **claims: object) -> str:
    if key is None:
        pem = Path(emu.info["ca_bundle"]).with_name("token-signing-key.pem").read_bytes()
        key = serialization.load_pem_private_key(pem, None)  # type: ignore[assignment]
    now = int(time.time())
    body = {
        "aud": "https://graph.microsoft.com",
        "tid": emu.info["tenant_id"],
        "appid": emu.info["client_id"],
        "oid": emu.info["service_principal_id"],
        "roles": ["SynchronizationData-User.Upload", "AuditLog.Read.All", "Synchronization.ReadWrite.All"],
        "iat": now,
        "exp": now + 600,
    }
    body.update(claims)
    return jwt.encode(body, key, algorithm="RS256")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "empty"),
        ("garbage", "malformed"),
        ("forged", "signature"),
        ("expired", "expired"),
        ("other audience", "audience"),
        ("other tenant", "tenant"),
    ],
)
def test_bad_tokens_get_401_invalid_authentication_token(graph: Graph, case: str, message: str) -> None:
    emu = graph.emu
    headers = {
        "missing": {"Authorization": ""},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
        "forged": {"Authorization": "Bearer " + _signed(emu, rsa.generate_private_key(65537, 2048))},
        "expired": {"Authorization": "Bearer " + _signed(emu, exp=int(time.time()) - 5)},
        "other audience": {"Authorization": "Bearer " + _signed(emu, aud="https://management.azure.com")},
        "other tenant": {
            "Authorization": "Bearer " + _signed(emu, tid="00000000-0000-0000-0000-000000000000")
        },
    }[case]
    for response in (
        graph.upload(bulk(user("1")), headers=dict(headers)),
        graph.request("GET", graph.job_url, headers=dict(headers)),
    ):
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "InvalidAuthenticationToken"
        assert message in error["message"].lower()
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert graph.emu.stats()["uploads_accepted"] == 0


def test_an_expired_token_from_the_emulator_is_refused(tmp_path: Path) -> None:
    with EmulatorProcess(tmp_path, token_lifetime=1) as emu:
        emu.configure(log_rate_limit="1000/1")
        graph = Graph(emu)
        token = graph.token
        claims = _claims(token)
        assert claims["exp"] - claims["iat"] == 1
        while time.time() < claims["exp"] + 0.1:
            time.sleep(0.1)
        response = graph.upload(bulk(user("1")), token=token)
        assert response.status_code == 401
        assert "expired" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("roles", "allowed"),
    [
        (["SynchronizationData-User.Upload"], {"upload"}),
        (["AuditLog.Read.All"], {"logs"}),
        (["ProvisioningLog.Read.All"], {"logs"}),
        (["Synchronization.Read.All"], {"job"}),
        (["Synchronization.ReadWrite.All"], {"job", "start"}),
        (["User.ReadWrite.All", "Directory.ReadWrite.All"], set()),
    ],
)
def test_each_endpoint_needs_its_role(emu: EmulatorProcess, roles: list[str], allowed: set[str]) -> None:
    app = emu.create_app(f"limited-{'-'.join(roles)}", roles)
    graph = Graph(emu, app)
    answers = {
        "upload": graph.upload(bulk(user("1"))),
        "logs": graph.logs(),
        "job": graph.request("GET", graph.job_url),
        "start": graph.job_action("start"),
    }
    for name, response in answers.items():
        if name in allowed:
            assert response.status_code in (200, 202, 204), (name, response.text)
        else:
            assert response.status_code == 403, (name, response.text)
            error = response.json()["error"]
            assert error["code"] == "Authorization_RequestDenied"
            assert "Insufficient privileges" in error["message"]


def test_owned_by_upload_role_only_works_on_the_apps_own_job(emu: EmulatorProcess) -> None:
    app = emu.create_app("owner", ["SynchronizationData-User.Upload.OwnedBy"], own_job=True)
    own = Graph(emu, app)
    assert own.upload(bulk(user("1"))).status_code == 202
    other = Graph(
        emu, {**app, "service_principal_id": emu.info["service_principal_id"], "job_id": emu.info["job_id"]}
    )
    assert other.upload(bulk(user("1"))).status_code == 403
