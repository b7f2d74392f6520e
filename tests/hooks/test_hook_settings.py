"""The ``entra`` connection: what is required, what is derived, and how bad values are reported."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from airflow_provider_entra.exceptions import EntraConnectionConfigError
from airflow_provider_entra.hooks import EntraHook
from airflow_provider_entra.hooks._settings import parse_connection

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "99999999-8888-7777-6666-555555555555"
SECRET = "s3cret-value"
BASE = {"tenant_id": TENANT, "service_principal_id": "sp-1", "job_id": "API2AAD.1111.2222"}


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A self-signed certificate and its key, as separate and combined PEM files."""
    folder = tmp_path_factory.mktemp("cert")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "entra-test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    (folder / "cert.pem").write_text(cert_pem)
    (folder / "key.pem").write_text(key_pem)
    (folder / "both.pem").write_text(cert_pem + key_pem)
    return {
        "cert": str(folder / "cert.pem"),
        "key": str(folder / "key.pem"),
        "both": str(folder / "both.pem"),
        "cert_pem": cert_pem,
        "key_pem": key_pem,
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303
    }


def parse(extra: dict, login: str | None = CLIENT, password: str | None = SECRET):
    return parse_connection("entra_test", login, password, extra)


def test_secret_connection_defaults_to_global_cloud_v1():
    s = parse(dict(BASE))
    assert s.credential_type == "client_secret"
    assert s.authority == f"https://login.microsoftonline.com/{TENANT}"
    assert s.graph_endpoint == "https://graph.microsoft.com"
    assert s.scope == "https://graph.microsoft.com/.default"
    assert s.api_version == "v1.0"
    assert s.is_microsoft_authority
    assert (s.calls_per_window, s.window_seconds, s.daily_call_budget) == (40, 5, 6000)
    assert (s.log_calls_per_window, s.log_window_seconds) == (5, 10)
    assert s.verify is True


@pytest.mark.parametrize(
    ("cloud", "authority", "graph"),
    [
        ("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
        ("usgov-dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
        ("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
    ],
)
def test_sovereign_clouds_map_authority_graph_and_scope(cloud, authority, graph):
    s = parse({**BASE, "cloud": cloud})
    assert (s.authority_host, s.graph_endpoint, s.scope) == (authority, graph, f"{graph}/.default")
    assert s.is_microsoft_authority


def test_explicit_hosts_override_the_cloud_and_skip_instance_discovery():
    s = parse(
        {**BASE, "authority_host": "https://127.0.0.1:8443/", "graph_endpoint": "https://127.0.0.1:8443"}
    )
    assert s.authority == f"https://127.0.0.1:8443/{TENANT}"
    assert s.graph_endpoint == "https://127.0.0.1:8443"
    assert s.scope == "https://graph.microsoft.com/.default"  # the audience stays the cloud's Graph
    assert not s.is_microsoft_authority
    us = parse(
        {
            **BASE,
            "cloud": "usgov",
            "authority_host": "https://a.example",
            "graph_endpoint": "https://g.example",
        }
    )
    assert us.scope == "https://graph.microsoft.us/.default"
    assert parse({**BASE, "scope": "api://custom/.default"}).scope == "api://custom/.default"


@pytest.mark.parametrize(
    ("extra", "login", "password", "field"),
    [
        ({"service_principal_id": "sp", "job_id": "j"}, CLIENT, "x", "'tenant_id'"),
        (BASE, None, "x", "'login'"),
        (BASE, CLIENT, None, "'password'"),
        ({**BASE, "cloud": "mars"}, CLIENT, "x", "'cloud'"),
        ({**BASE, "api_version": "v2.0"}, CLIENT, "x", "'api_version'"),
        ({**BASE, "authority_host": "https://login.example"}, CLIENT, "x", "'graph_endpoint'"),
        ({**BASE, "graph_endpoint": "https://graph.example"}, CLIENT, "x", "'authority_host'"),
        (
            {**BASE, "authority_host": "http://a", "graph_endpoint": "https://g"},
            CLIENT,
            "x",
            "'authority_host'",
        ),
        ({**BASE, "calls_per_window": "many"}, CLIENT, "x", "'calls_per_window'"),
        ({**BASE, "daily_call_budget": 0}, CLIENT, "x", "'daily_call_budget'"),
        ({**BASE, "proxies": "not json"}, CLIENT, "x", "'proxies'"),
        ({**BASE, "ca_bundle": "/nonexistent/ca.pem"}, CLIENT, "x", "'ca_bundle'"),
        ({**BASE, "send_x5c": "maybe"}, CLIENT, "x", "'send_x5c'"),
        ({**BASE, "federated_token_file": "$ENTRA_TEST_UNSET_VAR"}, CLIENT, None, "'federated_token_file'"),
        (
            {**BASE, "managed_identity": True, "federated_token_file": "/t"},
            CLIENT,
            None,
            "'federated_token_file'",
        ),
    ],
)
def test_bad_or_missing_field_is_named(extra, login, password, field, monkeypatch):
    monkeypatch.delenv("ENTRA_TEST_UNSET_VAR", raising=False)
    with pytest.raises(EntraConnectionConfigError, match=field) as info:
        parse(extra, login, password)
    assert "Connection 'entra_test'" in str(info.value)


def test_missing_job_fails_only_the_calls_that_need_it():
    s = parse({"tenant_id": TENANT})
    assert s.job_id is None
    with pytest.raises(EntraConnectionConfigError, match="extra field 'job_id' is required"):
        s.require("job_id")


def test_certificate_from_one_file_with_computed_thumbprint(cert_files):
    s = parse({**BASE, "certificate_path": cert_files["both"]}, password=None)
    assert s.credential_type == "certificate"
    assert s.certificate_thumbprint == cert_files["thumbprint"]
    assert "PRIVATE KEY" in s.private_key_pem
    assert "CERTIFICATE" in s.certificate_pem
    assert not s.send_x5c


def test_certificate_from_separate_files_or_inline(cert_files):
    files = parse({**BASE, "certificate_path": cert_files["cert"], "private_key_path": cert_files["key"]})
    inline = parse(
        {
            **BASE,
            "certificate": cert_files["cert_pem"],
            "private_key": cert_files["key_pem"],
            "send_x5c": "true",
        }
    )
    assert files.credential_type == inline.credential_type == "certificate"
    assert files.certificate_thumbprint == inline.certificate_thumbprint == cert_files["thumbprint"]
    assert inline.send_x5c is True
    assert (
        files.credential_fingerprint()
        == parse({**BASE, "certificate_path": cert_files["both"]}).credential_fingerprint()
    )


def test_certificate_without_key_names_the_key_field(cert_files):
    with pytest.raises(EntraConnectionConfigError, match="'private_key_path'"):
        parse({**BASE, "certificate_path": cert_files["cert"]})


def test_managed_identity_needs_no_secret_and_takes_user_assigned_id():
    system = parse({**BASE, "managed_identity": True}, login=None, password=None)
    user = parse({**BASE, "managed_identity": "true", "managed_identity_client_id": "mi-client"}, login=None)
    assert system.credential_type == user.credential_type == "managed_identity"
    assert system.managed_identity_client_id is None
    assert user.managed_identity_client_id == user.client_id == "mi-client"


def test_federated_token_file_expands_environment(tmp_path, monkeypatch):
    token_file = tmp_path / "token"
    token_file.write_text("eyJ.assertion.sig")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    s = parse({**BASE, "federated_token_file": "$AZURE_FEDERATED_TOKEN_FILE"}, password=None)
    assert s.credential_type == "workload_identity"
    assert s.federated_token_file == str(token_file)


def test_ui_strings_are_coerced_and_old_prefixed_extras_accepted():
    s = parse(
        {
            "extra__entra__tenant_id": TENANT,
            "calls_per_window": "20",
            "window_seconds": "2.5",
            "proxies": '{"https": "http://proxy:3128"}',
            "send_x5c": "",
        }
    )
    assert s.tenant_id == TENANT
    assert (s.calls_per_window, s.window_seconds) == (20, 2.5)
    assert s.proxies == {"https": "http://proxy:3128"}
    assert s.send_x5c is False


def test_secrets_stay_out_of_repr_and_fingerprint(cert_files):
    s = parse({**BASE, "certificate_path": cert_files["both"], "private_key_passphrase": "pass-phrase-1"})
    text = repr(s) + s.credential_fingerprint()
    assert "BEGIN" not in text and "pass-phrase-1" not in text
    assert SECRET not in repr(parse(dict(BASE)))


def test_env_connection_works_without_metadata_db(monkeypatch, tmp_path: Path):
    conn = {
        "conn_type": "entra",
        "login": CLIENT,
        "password": "pw-123456",
        "extra": {**BASE, "api_version": "beta"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_ENTRA_SETTINGS_TEST", json.dumps(conn))
    hook = EntraHook("entra_settings_test")
    assert (hook.tenant_id, hook.job_id, hook.service_principal_id) == (TENANT, "API2AAD.1111.2222", "sp-1")
    assert hook.api_version == "beta"
    assert hook.graph_endpoint == "https://graph.microsoft.com"
    assert hook.portal_logs_url().startswith("https://portal.azure.com/#view/")


def test_env_connection_missing_field_names_connection_and_field(monkeypatch):
    conn = {"conn_type": "entra", "login": CLIENT, "password": "pw-123456", "extra": {"job_id": "j"}}
    monkeypatch.setenv("AIRFLOW_CONN_ENTRA_SETTINGS_BAD", json.dumps(conn))
    with pytest.raises(
        EntraConnectionConfigError, match="Connection 'entra_settings_bad': extra field 'tenant_id'"
    ):
        EntraHook("entra_settings_bad").get_token()
    ok, message = EntraHook("entra_settings_bad").test_connection()
    assert not ok and message.startswith("connection: ") and "'tenant_id'" in message
