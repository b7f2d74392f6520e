"""TLS verification cannot be silently turned off, and a missing CA gives a message that says what to do."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from airflow_provider_entra.exceptions import EntraAuthError
from airflow_provider_entra.hooks.entra import EntraHook, clear_msal_apps

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_entra"
#: Ways Python code turns TLS verification off (requests, urllib3, ssl, httpx, aiohttp).
DISABLING = re.compile(
    r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|_create_unverified_context"
    r"|disable_warnings\s*\(|InsecureRequestWarning|ssl\s*=\s*False|verify_ssl\s*=\s*False"
)


def test_the_package_never_disables_tls_verification():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if DISABLING.search(line):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_pattern_finds_what_it_looks_for():
    for line in ('requests.get(url, verify=False)', "ctx.verify_mode = ssl.CERT_NONE",
                 "ctx.check_hostname = False", "urllib3.disable_warnings()"):  # fmt: skip
        assert DISABLING.search(line), line


def test_the_session_builder_refuses_verify_false():
    from airflow_provider_entra.hooks._transport import build_session

    with pytest.raises(ValueError, match="cannot be disabled"):
        build_session(
            timeout=5,
            verify=False,
            proxies=None,
            max_retries=0,
            backoff_factor=0,
            retry_after_cap=1,
            total_backoff_cap=1,
        )


def _connection_without_ca(emulator, monkeypatch, **extra_changes):
    conn = json.loads(json.dumps(emulator.info["airflow_conn"]))
    conn["extra"].pop("ca_bundle")
    conn["extra"].update(extra_changes)
    monkeypatch.setenv("AIRFLOW_CONN_ENTRA_DEFAULT", json.dumps(conn))
    clear_msal_apps()


@pytest.mark.parametrize(
    ("extra", "env"),
    [
        ({}, {}),
        # what people try: extras that other providers read, and requests' environment variables
        ({"verify": False, "verify_ssl": False, "disable_ssl_verification": True}, {}),
        ({}, {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "", "PYTHONHTTPSVERIFY": "0"}),
    ],
    ids=["no-ca-bundle", "verify-false-extras", "empty-ca-env-vars"],
)
def test_connection_without_the_emulators_ca_fails_with_a_clear_tls_message(
    entra_env, monkeypatch, extra, env
):
    _connection_without_ca(entra_env, monkeypatch, **extra)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    hook = EntraHook()

    with pytest.raises(EntraAuthError) as raised:
        hook.get_token()

    message = str(raised.value)
    assert "TLS certificate verification failed" in message
    assert "'ca_bundle'" in message and "cannot be turned off" in message
    assert "Traceback" not in message and "HTTPSConnectionPool" not in message
    assert raised.value.error_code == "TlsVerificationFailed"
    assert entra_env.info["client_secret"] not in message
    ok, text = hook.test_connection()
    assert not ok and "TLS certificate verification failed" in text
    assert entra_env.stats()["tokens_issued"] == {}  # nothing was sent over an unverified channel


def test_a_ca_bundle_that_is_not_the_servers_ca_fails_the_same_way(entra_env, monkeypatch, tmp_path):
    import certifi  # the public CAs: trusted, but not the emulator's

    _connection_without_ca(entra_env, monkeypatch, ca_bundle=certifi.where())
    with pytest.raises(EntraAuthError, match="TLS certificate verification failed"):
        EntraHook().get_token()


def test_with_the_ca_bundle_the_same_connection_works(entra_env):
    assert EntraHook().get_token()
