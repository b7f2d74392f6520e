"""No secret (client secret, private key, federated assertion, token) reaches a log line at any level."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import LogCapture

from airflow_provider_entra.exceptions import EntraAuthError
from airflow_provider_entra.hooks import EntraHook
from airflow_provider_entra.hooks.entra import _msal_apps


@pytest.fixture
def every_log_line(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], str]]:
    """All stdlib records (urllib3, msal, requests, Airflow) and all structlog events (hook.log) at DEBUG."""
    old = structlog.get_config()
    captured = LogCapture()
    structlog.configure(
        processors=[captured],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    names = ("", "urllib3", "msal", "requests", "airflow", "airflow_provider_entra", "airflow.task")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)

    def text() -> str:
        lines = []
        for record in caplog.records:
            lines.append(f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text or ''}")
        lines += [json.dumps(entry, default=repr) for entry in captured.entries]
        return "\n".join(lines)

    yield text
    structlog.configure(**old)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def pem_body_lines(path: str) -> list[str]:
    return [line for line in Path(path).read_text().splitlines() if line and not line.startswith("-----")]


def test_no_secret_in_any_log_line(entra_env, every_log_line, bulk, use_connection):
    info = entra_env.info
    tokens: set[str] = set()

    # client secret: token, upload, logs, job, a refused token refreshed, a wrong secret
    hook = EntraHook()
    tokens.add(hook.get_token())
    hook.bulk_upload(bulk("701984", "902341"))
    entra_env.process()
    assert len(list(hook.iter_provisioning_logs(page_size=1))) >= 2
    app = _msal_apps[hook._msal_key()]
    for entry in list(app.token_cache.search(app.token_cache.CredentialType.ACCESS_TOKEN)):
        app.token_cache.modify(
            app.token_cache.CredentialType.ACCESS_TOKEN, entry, {"secret": entry["secret"] + "x"}
        )
        tokens.add(entry["secret"] + "x")
    hook.get_job()
    tokens.add(hook.get_token())
    wrong = use_connection("entra_wrong_secret", info["airflow_conn"], password="not-the-secret-42")
    with pytest.raises(EntraAuthError) as refused:
        wrong.get_token()
    failed_test = wrong.test_connection()

    # certificate with x5c, and workload identity federation
    cert = info["certificate"]
    cert_hook = use_connection(
        "entra_cert_logs",
        info["airflow_conn"],
        login=cert["client_id"],
        password=None,
        certificate_path=cert["certificate_path"],
        private_key_path=cert["private_key_path"],
        send_x5c=True,
    )
    tokens.add(cert_hook.get_token())
    cert_hook.bulk_upload(bulk("1"))
    federated = info["federated"]
    fed_hook = use_connection(
        "entra_fed_logs",
        info["airflow_conn"],
        login=federated["client_id"],
        password=None,
        federated_token_file=federated["token_file"],
    )
    tokens.add(fed_hook.get_token())

    logged = every_log_line()
    # the capture is real: each layer did log something at DEBUG
    assert "Starting new HTTPS connection" in logged  # urllib3
    assert "bulkUpload accepted" in logged  # the hook (structlog)
    assert "Token for client" in logged  # the hook, where a token came from
    assert "msal" in logged

    secrets = {
        "client secret": info["client_secret"],
        "wrong client secret": "not-the-secret-42",
        "federated assertion": Path(federated["token_file"]).read_text().strip(),
        **{f"private key line {i}": line for i, line in enumerate(pem_body_lines(cert["private_key_path"]))},
        **{f"token {i}": token for i, token in enumerate(sorted(tokens))},
    }
    assert len(tokens) >= 4
    outputs = {"logs": logged, "error": str(refused.value), "test_connection": failed_test[1]}
    for where, text in outputs.items():
        for what, secret in secrets.items():
            assert secret not in text, f"{what} found in {where}"
        # a JWT signature is the part that matters; no fragment of any token either
        for token in tokens:
            assert token.split(".")[2][:32] not in text, f"token signature found in {where}"
