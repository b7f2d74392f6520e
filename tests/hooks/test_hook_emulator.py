"""EntraHook against the local Entra emulator over HTTPS: tokens, uploads, retries, budgets, logs, the job."""

from __future__ import annotations

import json
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_entra.emulator.process import EmulatorProcess
from airflow_provider_entra.exceptions import (
    EntraApiError,
    EntraAuthError,
    EntraPayloadRejectedError,
    EntraQuotaExhaustedError,
    EntraThrottledError,
)
from airflow_provider_entra.hooks import BulkUploadReceipt, EntraHook, clear_msal_apps
from airflow_provider_entra.hooks.entra import _http_date, _msal_apps


def calls(emulator: EmulatorProcess, endpoint: str) -> int:
    return emulator.stats()["calls"].get(endpoint, 0)


def status_count(emulator: EmulatorProcess, endpoint: str, status: int) -> int:
    return emulator.stats()["status"].get(f"{endpoint}:{status}", 0)


# --- tokens ---------------------------------------------------------------------------------------


def test_token_by_secret_is_cached_across_calls_and_hooks(entra_env):
    first = EntraHook().get_token()
    second = EntraHook().get_token()
    assert first == second and first.count(".") == 2  # a JWT, the same one from msal's cache
    assert entra_env.stats()["tokens_issued"] == {"default": 1}
    clear_msal_apps()
    assert EntraHook().get_token() != first  # a cleared registry starts a new msal app and cache
    assert entra_env.stats()["tokens_issued"] == {"default": 2}


@pytest.mark.parametrize("send_x5c", [False, True])
def test_token_by_certificate(entra_env, send_x5c, use_connection):
    cert = entra_env.info["certificate"]
    hook = use_connection(
        "entra_cert",
        entra_env.info["airflow_conn"],
        login=cert["client_id"],
        password=None,
        certificate_path=cert["certificate_path"],
        private_key_path=cert["private_key_path"],
        send_x5c=send_x5c,
    )
    assert hook.settings.credential_type == "certificate"
    assert hook.settings.certificate_thumbprint == cert["thumbprint"].upper()
    hook.get_token()
    hook.get_token()
    assert sum(entra_env.stats()["tokens_issued"].values()) == 1
    assert hook.get_job()["id"] == hook.job_id


def test_token_by_workload_identity_federation(entra_env, monkeypatch, use_connection):
    federated = entra_env.info["federated"]
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", federated["token_file"])
    hook = use_connection(
        "entra_federated",
        entra_env.info["airflow_conn"],
        login=federated["client_id"],
        password=None,
        federated_token_file="$AZURE_FEDERATED_TOKEN_FILE",
    )
    assert hook.get_token().count(".") == 2
    assert sum(entra_env.stats()["tokens_issued"].values()) == 1


@pytest.mark.parametrize("user_assigned", [False, True])
def test_token_by_managed_identity(entra_env, monkeypatch, user_assigned, use_connection):
    mi = entra_env.info["managed_identity"]
    # msal finds the App Service managed identity endpoint through these two variables
    monkeypatch.setenv("IDENTITY_ENDPOINT", mi["identity_endpoint"])
    monkeypatch.setenv("IDENTITY_HEADER", mi["identity_header"])
    hook = use_connection(
        "entra_mi",
        entra_env.info["airflow_conn"],
        login=None,
        password=None,
        managed_identity=True,
        managed_identity_client_id=mi["client_id"] if user_assigned else None,
    )
    hook.get_token()
    hook.get_token()
    assert sum(entra_env.stats()["tokens_issued"].values()) == 1


def test_wrong_secret_is_an_auth_error_naming_tenant_and_client(entra_env, use_connection):
    info = entra_env.info
    hook = use_connection("entra_wrong", info["airflow_conn"], password="wrong-secret-0123456789")
    with pytest.raises(EntraAuthError) as caught:
        hook.get_token()
    error = caught.value
    message = str(error)
    assert info["tenant_id"] in message and info["client_id"] in message
    assert "client secret" in message
    assert error.error_code.startswith("AADSTS")
    assert "wrong-secret-0123456789" not in message
    assert "msal" not in message.lower() and "Traceback" not in message
    assert error.__cause__ is None and error.__context__ is None  # no chain of msal exceptions
    assert not any("/msal/" in frame.filename for frame in traceback.extract_tb(error.__traceback__))
    ok, text = hook.test_connection()
    assert not ok and text.startswith("token: ")


def test_test_connection_reports_the_failing_step(entra_env, use_connection):
    ok, text = EntraHook().test_connection()
    assert ok, text
    assert entra_env.info["job_id"] in text and "Active" in text
    hook = use_connection("entra_nojob", entra_env.info["airflow_conn"], job_id="API2AAD.nope.nope")
    ok, text = hook.test_connection()
    assert not ok and text.startswith("job: ") and "404" in text


def test_missing_permission_names_the_permission(entra_env, bulk, use_connection):
    app = entra_env.create_app("logs-only", roles=["AuditLog.Read.All"])
    hook = use_connection("entra_logs_only", app["airflow_conn"])
    with pytest.raises(EntraAuthError) as caught:
        hook.bulk_upload(bulk("1"))
    assert caught.value.status_code == 403
    assert "SynchronizationData-User.Upload.OwnedBy" in str(caught.value)
    assert caught.value.request_id


def test_a_token_refused_mid_run_is_refreshed_once(entra_env):
    hook = EntraHook()
    hook.get_job()
    # Simulate a token revoked server-side: msal still holds it as valid, the emulator refuses its signature.
    app = _msal_apps[hook._msal_key()]
    for entry in list(app.token_cache.search(app.token_cache.CredentialType.ACCESS_TOKEN)):
        app.token_cache.modify(
            app.token_cache.CredentialType.ACCESS_TOKEN, entry, {"secret": entry["secret"] + "x"}
        )
    assert hook.get_job()["id"] == hook.job_id
    assert status_count(entra_env, "job", 401) == 1
    assert entra_env.stats()["tokens_issued"] == {"default": 2}


# --- bulkUpload -----------------------------------------------------------------------------------


def test_bulk_upload_receipt(entra_env, bulk):
    hook = EntraHook()
    before = datetime.now(timezone.utc)
    receipt = hook.bulk_upload(bulk("701984", "902341"))
    assert receipt.status_code == 202
    assert receipt.operation_count == 2
    assert receipt.request_id and receipt.client_request_id
    assert (
        receipt.location and "auditLogs/provisioning" in receipt.location and hook.job_id in receipt.location
    )
    assert receipt.submitted_at.tzinfo is not None and receipt.submitted_at >= before
    as_dict = receipt.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert BulkUploadReceipt.from_dict(as_dict) == receipt
    assert entra_env.stats()["operations_received"] == 2
    with pytest.raises(AttributeError):
        receipt.status_code = 200  # frozen


def test_receipt_carries_graphs_acceptance_time_and_no_entry_predates_it(entra_env, bulk):
    entra_env.configure(processing_delay=0.0)
    hook = EntraHook()
    before = datetime.now(timezone.utc)
    receipt = hook.bulk_upload(bulk("701984", "902341"))
    after = datetime.now(timezone.utc)
    accepted = receipt.accepted_at
    assert accepted is not None and accepted.utcoffset() == timedelta(0)
    assert before.replace(microsecond=0) <= accepted <= after  # the 202's Date: whole seconds
    as_dict = receipt.to_dict()
    assert as_dict["accepted_at"] == accepted.isoformat()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert BulkUploadReceipt.from_dict(as_dict) == receipt
    entra_env.process()
    entries = list(hook.iter_provisioning_logs(since=accepted))
    assert {e["sourceIdentity"]["id"] for e in entries} == {"701984", "902341"}
    assert all(datetime.fromisoformat(e["activityDateTime"]) >= accepted for e in entries)


def test_receipt_without_acceptance_time_still_round_trips():
    old = {
        "status_code": 202,
        "request_id": "r",
        "client_request_id": "c",
        "location": None,
        "submitted_at": "2026-03-02T10:00:00.250000+00:00",
        "operation_count": 1,
    }
    receipt = BulkUploadReceipt.from_dict(old)
    assert receipt.accepted_at is None
    assert BulkUploadReceipt.from_dict(receipt.to_dict()) == receipt


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Sun, 06 Dec 2026 00:38:17 GMT", datetime(2026, 12, 6, 0, 38, 17, tzinfo=timezone.utc)),
        ("Sun, 06 Dec 2026 01:38:17 +0100", datetime(2026, 12, 6, 0, 38, 17, tzinfo=timezone.utc)),
        (None, None),
        ("", None),
        ("yesterday", None),
    ],
)
def test_date_header_parsing(header, expected):
    parsed = _http_date(header)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo == timezone.utc


def test_payload_over_50_operations_is_refused_before_sending(entra_env, bulk):
    with pytest.raises(EntraPayloadRejectedError, match="51 operations"):
        EntraHook().bulk_upload(bulk(*(str(i) for i in range(51))))
    assert calls(entra_env, "bulkUpload") == 0
    EntraHook().bulk_upload(bulk(*(str(i) for i in range(50))))
    assert status_count(entra_env, "bulkUpload", 202) == 1


def test_graph_400_is_a_payload_rejection_with_request_id(entra_env, bulk):
    payload = bulk("1")
    payload["Operations"][0]["method"] = "DELETE"
    with pytest.raises(EntraPayloadRejectedError) as caught:
        EntraHook().bulk_upload(payload)
    assert caught.value.status_code == 400 and caught.value.request_id and caught.value.error_code


def test_429_with_retry_after_is_waited_out(entra_env, bulk):
    entra_env.configure(faults=[{"kind": "429", "endpoint": "bulkUpload", "count": 1, "retry_after": 1}])
    hook = EntraHook()
    receipt = hook.bulk_upload(bulk("1"))
    assert receipt.status_code == 202
    assert status_count(entra_env, "bulkUpload", 429) == 1
    assert status_count(entra_env, "bulkUpload", 202) == 1
    assert hook.calls_made == 2  # the retry went through the limiter too


def test_503_twice_then_success(entra_env, bulk):
    entra_env.configure(faults=[{"kind": "503", "endpoint": "bulkUpload", "count": 2, "retry_after": 0}])
    receipt = EntraHook().bulk_upload(bulk("1"))
    assert receipt.status_code == 202
    assert status_count(entra_env, "bulkUpload", 503) == 2


def test_dropped_connection_is_retried(entra_env, bulk):
    entra_env.configure(faults=[{"kind": "drop", "endpoint": "bulkUpload", "count": 1}])
    assert EntraHook().bulk_upload(bulk("1")).status_code == 202
    assert calls(entra_env, "bulkUpload") == 2


def test_persistent_5xx_gives_up_after_max_retries(entra_env, bulk, use_connection):
    entra_env.configure(faults=[{"kind": "500", "endpoint": "bulkUpload", "count": 10}])
    hook = use_connection(
        "entra_few_retries", entra_env.info["airflow_conn"], max_retries=2, backoff_factor=0.05
    )
    with pytest.raises(EntraApiError) as caught:
        hook.bulk_upload(bulk("1"))
    assert caught.value.status_code == 500 and caught.value.error_code == "InternalServerError"
    assert calls(entra_env, "bulkUpload") == 3


def test_total_wait_is_capped_and_a_burst_429_stays_a_throttle_error(entra_env, bulk, use_connection):
    entra_env.configure(faults=[{"kind": "429", "endpoint": "bulkUpload", "count": 10, "retry_after": 1}])
    hook = use_connection("entra_capped", entra_env.info["airflow_conn"], total_backoff_cap=1.5)
    with pytest.raises(EntraThrottledError) as caught:
        hook.bulk_upload(bulk("1"))
    assert not isinstance(caught.value, EntraQuotaExhaustedError)
    assert caught.value.status_code == 429 and caught.value.retry_after == 1
    assert calls(entra_env, "bulkUpload") == 2  # one wait of 1 s; a second would pass the 1.5 s cap


def test_the_hook_counts_every_attempt_and_keeps_no_daily_count(entra_env, bulk, use_connection):
    """The daily allowance is the upload's, shared through the staging root (``upload/quota.py``); the hook
    only counts the attempts it makes, retries included, for it."""
    entra_env.configure(faults=[{"kind": "503", "endpoint": "bulkUpload", "count": 1}])
    hook = use_connection("entra_budget", entra_env.info["airflow_conn"], daily_call_budget=1)
    for i in range(2):
        hook.bulk_upload(bulk(str(i)))  # past the budget: the hook does not refuse
    assert hook.calls_made == calls(entra_env, "bulkUpload") == 3  # the 503 was retried once


def test_server_daily_quota_429_is_a_quota_error_not_hours_of_sleep(entra_env, bulk):
    entra_env.configure(daily_quota=2)
    hook = EntraHook()
    hook.bulk_upload(bulk("1"))
    hook.bulk_upload(bulk("2"))
    with pytest.raises(EntraQuotaExhaustedError) as caught:
        hook.bulk_upload(bulk("3"))
    error = caught.value
    assert isinstance(error, EntraThrottledError)
    assert error.status_code == 429 and error.retry_after > hook.settings.retry_after_cap
    assert calls(entra_env, "bulkUpload") == 3  # not retried


def test_limiter_keeps_parallel_hooks_under_40_calls_per_5_seconds(entra_env, bulk, use_connection):
    """100 uploads from 4 threads, each with its own hook: the emulator (40/5 s) never answers 429."""
    assert entra_env.control("GET", "config")["rate_limit"] == "40/5"
    use_connection("entra_no_retry", entra_env.info["airflow_conn"], max_retries=0)
    hooks = [EntraHook("entra_no_retry") for _ in range(4)]
    counter = iter(range(100))
    lock = threading.Lock()

    def work(hook: EntraHook) -> int:
        sent = 0
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return sent
            hook.bulk_upload(bulk(str(n)))
            sent += 1

    with ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(work, hooks)) == 100
    stats = entra_env.stats()
    assert stats["throttled"].get("bulkUpload", 0) == 0
    assert stats["calls"]["bulkUpload"] == 100
    assert hooks[0].limiter is hooks[3].limiter
    limiter = hooks[0].limiter.stats()
    assert limiter["calls"] == 100 and limiter["waits"] > 0
    assert sum(h.calls_made for h in hooks) == 100


# --- provisioning logs ----------------------------------------------------------------------------


def test_logs_follow_next_link_over_several_pages(entra_env, bulk):
    hook = EntraHook()
    sent = [str(1000 + i) for i in range(12)]
    hook.bulk_upload(bulk(*sent))
    entra_env.process()
    entries = list(hook.iter_provisioning_logs(page_size=5))
    assert {e["sourceIdentity"]["id"] for e in entries} == set(sent)
    assert all(e["jobId"] == hook.job_id for e in entries)
    assert calls(entra_env, "provisioningLogs") >= 3  # 12+ entries at 5 per page
    future = list(hook.iter_provisioning_logs(since=datetime(2999, 1, 1, tzinfo=timezone.utc)))
    assert future == []
    failures = list(hook.iter_provisioning_logs(filter="provisioningStatusInfo/status eq 'failure'"))
    assert failures == []


def test_log_reads_are_paced(entra_env, bulk, use_connection):
    """With the emulator and the hook both at 5 reads per second, a dozen pages never meet a 429."""
    entra_env.configure(log_rate_limit="5/1")
    hook = use_connection(
        "entra_fast_logs",
        entra_env.info["airflow_conn"],
        log_calls_per_window=5,
        log_window_seconds=1,
        max_retries=0,
    )
    hook.bulk_upload(bulk(*(str(2000 + i) for i in range(12))))
    entra_env.process()
    entries = list(hook.iter_provisioning_logs(page_size=1))
    assert len(entries) >= 12
    assert calls(entra_env, "provisioningLogs") >= 12  # one page per entry
    assert entra_env.stats()["throttled"].get("provisioningLogs", 0) == 0
    assert hook.log_limiter.stats()["waits"] > 0


# --- the job --------------------------------------------------------------------------------------


def test_job_pause_start_restart(entra_env):
    hook = EntraHook()
    assert hook.get_job()["status"]["code"] == "Active"
    hook.pause_job()
    assert hook.get_job()["status"]["code"] == "Paused"
    hook.start_job()
    assert hook.get_job()["status"]["code"] == "Active"
    hook.restart_job()
    hook.restart_job(reset_scope="Watermark, Escrows, QuarantineState, ForceDeletes")
    assert status_count(entra_env, "job", 204) == 4
    with pytest.raises(EntraApiError) as caught:
        hook.restart_job(reset_scope="Everything")
    assert caught.value.status_code == 400


def test_portal_link_for_the_emulator_is_the_logs_query(entra_env):
    url = EntraHook().portal_logs_url()
    assert url.startswith(entra_env.info["graph_endpoint"] + "/v1.0/auditLogs/provisioning?$filter=")
    assert "jobid" in url
