"""EntraJobHealthOperator against the emulator's real job states (rules: tests/upload/test_job_health.py)."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_provider_entra._constants import BULK_REQUEST_SCHEMA, CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA
from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.operators.job_health import EntraJobHealthOperator


def _bulk(*records: tuple[str, str, bool]) -> dict:
    return {
        "schemas": [BULK_REQUEST_SCHEMA],
        "Operations": [
            {
                "method": "POST",
                "bulkId": f"b{i}",
                "path": "/Users",
                "data": {
                    "schemas": [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
                    "externalId": ext,
                    "userName": upn,
                    "active": active,
                    "displayName": f"User {ext}",
                },
            }
            for i, (ext, upn, active) in enumerate(records)
        ],
        "failOnErrors": None,
    }


def _op(**kwargs) -> EntraJobHealthOperator:
    return EntraJobHealthOperator(task_id="preflight", **kwargs)


def test_active_job_passes_with_a_small_summary(entra_env):
    result = _op().execute({})
    assert result["status"] == "Active"
    assert result["job_id"] == entra_env.info["job_id"]
    assert result["started"] is False
    assert result["warnings"] == []


def test_paused_job_fails_and_says_how_to_start_it(entra_env):
    entra_env.configure_job(entra_env.info["job_id"], status="Paused")
    with pytest.raises(AirflowException) as raised:
        _op().execute({})
    message = str(raised.value)
    assert "paused" in message
    assert "start_job()" in message and "start_if_paused=True" in message
    assert EntraHook().get_job()["status"]["code"] == "Paused"


def test_paused_job_is_started_once_when_asked(entra_env):
    entra_env.configure_job(entra_env.info["job_id"], status="Paused")
    result = _op(start_if_paused=True).execute({})
    assert result["started"] is True
    assert result["status"] == "Active"
    assert EntraHook().get_job()["status"]["code"] == "Active"
    assert entra_env.stats()["status"].get("job:204") == 1  # started once, no loop


def test_quarantine_names_reason_next_attempt_and_restart_call(entra_env):
    hook = EntraHook()
    entra_env.configure_job(entra_env.info["job_id"], delete_threshold=1)
    people = [(f"q{i}", f"q{i}@contoso.com") for i in range(3)]
    hook.bulk_upload(_bulk(*[(ext, upn, True) for ext, upn in people]))
    entra_env.process()
    hook.bulk_upload(_bulk(*[(ext, upn, False) for ext, upn in people]))  # three disables: over the threshold
    entra_env.process()
    job = hook.get_job()
    assert job["status"]["code"] == "Quarantine"

    with pytest.raises(AirflowException) as raised:
        _op().execute({})
    message = str(raised.value)
    assert "quarantine" in message and "TooManyDeletes" in message
    assert job["status"]["quarantine"]["nextAttempt"] in message
    assert "QuarantineState" in message and "restart_job(reset_scope=" in message
    assert "ForceDeletes" in message  # the reason-specific remedy


def test_entry_level_errors_warn_but_pass(entra_env, capsys):
    hook = EntraHook()
    # Two records claiming the same UPN: the second create fails, the cycle ends with EntryLevelErrors.
    hook.bulk_upload(_bulk(("d1", "same@contoso.com", True), ("d2", "same@contoso.com", True)))
    entra_env.process()
    result = _op().execute({})
    assert result["last_execution_state"] == "EntryLevelErrors"
    assert any("entry-level errors" in w for w in result["warnings"])
    assert "entry-level errors" in capsys.readouterr().out  # Airflow's task logger writes to stdout here
