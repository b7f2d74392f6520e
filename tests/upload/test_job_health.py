"""assess_job on Microsoft-shaped job resources: pure rules, no Airflow, no emulator."""

from __future__ import annotations

from airflow_provider_entra.upload.job_health import assess_job


def test_not_configured_job_fails_with_setup_steps():
    health = assess_job({"id": "API2AAD.x.y", "status": {"code": "NotConfigured"}}, conn_id="hr")
    assert not health.healthy
    assert "NotConfigured" in health.errors[0] and "job_id" in health.errors[0]


def test_failed_last_execution_warns_or_fails_on_request():
    job = {
        "id": "API2AAD.x.y",
        "status": {
            "code": "Active",
            "lastExecution": {
                "state": "Failed",
                "timeEnded": "2026-03-02T01:00:00Z",
                "error": {
                    "code": "SystemForCrossDomainIdentityManagementServiceIncompatible",
                    "message": "x",
                },
            },
        },
    }
    lenient = assess_job(job)
    assert lenient.healthy and "last execution failed" in lenient.warnings[0]
    assert "SystemForCrossDomainIdentityManagementServiceIncompatible" in lenient.warnings[0]
    strict = assess_job(job, fail_on_last_execution_failed=True)
    assert not strict.healthy and "2026-03-02T01:00:00Z" in strict.errors[0]


def test_quarantine_names_reason_since_next_attempt_and_the_remedy():
    job = {
        "id": "API2AAD.x.y",
        "status": {
            "code": "Quarantine",
            "quarantine": {
                "reason": "EncounteredEscrowProportionThreshold",
                "currentBegan": "2026-03-02T01:00:00Z",
                "nextAttempt": "2026-03-02T13:00:00Z",
            },
        },
    }
    health = assess_job(job, conn_id="hr")
    assert (
        not health.healthy and health.to_dict()["quarantine_reason"] == "EncounteredEscrowProportionThreshold"
    )
    error = health.errors[0]
    assert "since 2026-03-02T01:00:00Z" in error and "next attempt 2026-03-02T13:00:00Z" in error
    assert "provisioning logs" in error and "EntraHook('hr').restart_job(reset_scope=" in error


def test_paused_and_not_run_jobs_are_errors_active_is_healthy():
    for code in ("Paused", "NotRun"):
        health = assess_job({"id": "j", "status": {"code": code}}, conn_id="hr")
        assert not health.healthy and "EntraHook('hr').start_job()" in health.errors[0]
    active = assess_job({"id": "j", "status": {"code": "Active", "lastExecution": {"countExported": 3}}})
    assert active.healthy and active.warnings == [] and active.counts == {"countExported": 3}
    unknown = assess_job({"id": "j", "status": {"code": "Sleeping"}})
    assert unknown.healthy and "unknown status code 'Sleeping'" in unknown.warnings[0]
