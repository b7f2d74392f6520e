"""A 10,000-record upload through faults: 5xx, 429 bursts, dropped connections, latency spikes, 30 s tokens.

The emulator injects each fault into a request's first arrival only (``fault_first_attempt_only``), so every
request meets at most one fault; the client must then send it at most twice: once, and once more after the
fault. A client that retried twice per fault, resent after a 202, or resent a whole batch on a token renewal
would show up as a request arriving three times.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from airflow_provider_entra.operators.bulk_upload import MANIFEST_NAME, EntraBulkUploadOperator
from airflow_provider_entra.staging import read_jsonl

RECORDS = 10_000
REQUESTS = RECORDS // 50
TOKEN_LIFETIME = 30


def _burst_injector(emu, stop: threading.Event, after_requests: int) -> None:
    """Mid-run, plan a burst of 429s (on consecutive requests) and two responses lost after processing."""
    while not stop.is_set():
        if emu.stats()["status"].get("bulkUpload:202", 0) >= after_requests:
            emu.configure(
                faults=[
                    {"kind": "429", "endpoint": "bulkUpload", "count": 6, "retry_after": 2},
                    {"kind": "drop_after", "endpoint": "bulkUpload", "count": 2},
                ]
            )
            return
        stop.wait(0.2)


@pytest.mark.slow
def test_10000_records_through_faults_every_record_arrives_no_request_sent_more_than_twice(
    private_emulator, support, monkeypatch, tmp_path
):
    emu = private_emulator(processing_delay=0.5, token_lifetime=TOKEN_LIFETIME)
    emu.configure(
        fault_first_attempt_only=True,
        fault_rate=0.10,  # 500 or 503 (503 with Retry-After)
        drop_rate=0.03,  # connection dropped before the request is read
        slow_rate=0.03,  # latency spike
        slow_seconds=2.0,
    )
    support.use_emulator(monkeypatch, emu)
    path = support.stage_hr(tmp_path / "run", support.hr_frame(RECORDS))

    stop = threading.Event()
    injector = threading.Thread(target=_burst_injector, args=(emu, stop, REQUESTS // 2), daemon=True)
    injector.start()
    started = time.monotonic()
    try:
        summary = EntraBulkUploadOperator(
            task_id="upload", input_path=str(path), mapping=support.MAPPING, bulk_id_prefix="faults-"
        ).execute({"run_id": "manual__faults"})
    finally:
        stop.set()
        injector.join(5)
    elapsed = time.monotonic() - started

    # The run succeeded and recorded every request once.
    assert summary["records"] == RECORDS
    assert summary["requests"] == summary["sent_requests"] == REQUESTS
    manifest = read_jsonl(path.parent / MANIFEST_NAME)
    assert sorted(line["seq"] for line in manifest) == list(range(REQUESTS))

    stats = emu.stats()
    faults = Counter(stats["faults"])
    # The faults really happened, of every kind asked for.
    assert faults["500"] + faults["503"] >= 8, faults
    assert faults["drop"] >= 1 and faults["slow"] >= 1, faults
    assert faults["429"] == 6 and faults["drop_after"] == 2, faults
    # Tokens expired during the run and were renewed (msal asks again once one is near expiry).
    assert elapsed > TOKEN_LIFETIME
    assert stats["tokens_issued"]["default"] >= 2

    # No request was sent more than twice; a request was sent twice exactly when a fault failed it (a
    # latency spike delays a request but does not fail it).
    arrivals = support.arrivals_per_request(emu)
    assert len(arrivals) == REQUESTS
    assert max(arrivals.values()) <= 2, arrivals.most_common(3)
    log = emu.request_log("bulkUpload")
    faulted = {e["client_request_id"] for e in log if e["fault"] not in (None, "slow")}
    assert {rid for rid, n in arrivals.items() if n == 2} == faulted
    # Each request's records were accepted once, or twice when the 202 was lost on the way back.
    accepted = support.accepted_digests(emu)
    assert len(accepted) == REQUESTS
    assert sorted(accepted.values(), reverse=True)[:3] == [2, 2, 1]

    emu.process()
    employee_ids = {user["employeeId"] for user in emu.users()}
    assert employee_ids == set(support.hr_frame(RECORDS)["WorkerID"])
    print(
        f"\n{RECORDS:,} records, {REQUESTS} requests in {elapsed:.0f} s through faults {dict(faults)}; "
        f"{sum(arrivals.values())} arrivals, {stats['tokens_issued']['default']} tokens"
    )
