"""A first load larger than a day's quota (issue 16): carried over daily runs, nothing sent twice.

The emulator allows 10 bulkUpload calls a day (the connection says so too); the export has 2,000 employees
under a management tree, so the load takes 40-odd calls. ``entra_hr_provisioning`` runs under
``dag.test()`` once a day for five days: between runs the emulator starts its next day
(``POST /_emulator/new-day``) and the clock the shared daily record reads moves a day on with it. Each run
sends what the day allows, managers first, verifies and commits it, and ends as a partial load; the fifth
completes it.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from airflow.utils.state import DagRunState, TaskInstanceState

from airflow_provider_entra.staging import read_jsonl
from airflow_provider_entra.upload import quota

DAG_ID = "entra_hr_provisioning"
DAILY_QUOTA = 10
EMPLOYEES = 2000
DAYS = 5
#: Poll the logs every second, do not wait a minute for follow-up entries (as tests/dags/conftest.py's FAST).
FAST = {"verify_poke_interval": 1, "verify_settle_seconds": 2, "verify_timeout_minutes": 2}


def generated_export(sample: pd.DataFrame, rows: int) -> pd.DataFrame:
    """``rows`` active employees in the sample's layout: the sample's columns cycled, unique ids and names,
    a management tree 12 wide under one CEO (so 4 levels of managers), shuffled like a real export."""
    frame = sample.iloc[[i % len(sample) for i in range(rows)]].reset_index(drop=True)
    ids = [str(500000 + i) for i in range(rows)]
    frame["WorkerID"] = ids
    frame["WorkerStatus"] = "Active"
    frame["ManagerID"] = [""] + [ids[(i - 1) // 12] for i in range(1, rows)]
    frame["UserID"] = [f"emp{i:05d}" for i in range(rows)]
    frame["LastName"] = [f"{last}-{i:05d}" for i, last in enumerate(frame["LastName"])]
    frame["FullName"] = frame["FirstName"] + " " + frame["LastName"]
    frame["Email"] = [f"emp{i:05d}@contoso.com" for i in range(rows)]
    frame["HireDate"] = "2020-01-06"
    return frame.sample(frac=1, random_state=16).reset_index(drop=True)


@pytest.fixture
def tenant_day(entra_env, monkeypatch):
    """Start the tenant's next day: the emulator's daily window and the shared record's clock move on."""
    offset = [timedelta(0)]
    real_now = quota.now
    monkeypatch.setattr(quota, "now", lambda: real_now() + offset[0])

    def next_day() -> None:
        offset[0] += timedelta(days=1)
        assert entra_env.new_day()["daily_calls_used"] == 0

    return next_day


def test_a_first_load_larger_than_a_days_quota_completes_over_five_daily_runs(
    dags, entra_env, tmp_path, monkeypatch, tenant_day
):
    emulator = entra_env
    emulator.configure(daily_quota=DAILY_QUOTA)
    conn = json.loads(json.dumps(emulator.info["airflow_conn"]))
    conn["extra"]["daily_call_budget"] = DAILY_QUOTA
    monkeypatch.setenv("AIRFLOW_CONN_ENTRA_DEFAULT", json.dumps(conn))
    hr = generated_export(
        pd.read_csv(dags.data / "hr_employees.csv", dtype=str, keep_default_na=False), EMPLOYEES
    )
    export = tmp_path / "hr_first_load.csv"
    hr.to_csv(export, index=False)
    staging = tmp_path / "staging"
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(dags.data.parent / f"{DAG_ID}.py")).get_dag(DAG_ID)
    first_day = datetime(2026, 3, 2, tzinfo=timezone.utc)

    progress, manifests, calls = [], [], []
    for day in range(DAYS):
        if day:
            tenant_day()
        run = dag.test(
            logical_date=first_day + timedelta(days=day),
            run_conf={"staging_path": str(staging), "hr_path": str(export), **FAST},
        )
        assert run.state == DagRunState.SUCCESS, dags.states(run)
        assert dags.states(run)["verify"] == TaskInstanceState.SUCCESS
        uploaded, report = dags.xcom(run, "upload"), dags.xcom(run, "report")
        verified = dags.xcom(run, "verify")
        # What was sent is verified; what the day did not allow is neither failed nor missing.
        assert verified["records"] == uploaded["sent_records"] > 0
        assert verified["outcomes"]["success"] == uploaded["sent_records"]
        assert verified["missing"] == 0 and verified["failures"] == 0
        committed = dags.xcom(run, "commit")
        assert committed["verified"] == committed["sent"] == uploaded["sent_records"]
        assert committed["not_sent"] == uploaded["unsent_records"] and committed["not_verified"] == 0
        quota_used = uploaded["daily_quota"]
        assert quota_used["calls"] <= DAILY_QUOTA and quota_used["used_before"] == 0
        calls.append(quota_used["calls"])
        manifests.append(read_jsonl(uploaded["manifest_path"]))
        # Each run's report shows how far the load has come.
        load = report["progress"]
        assert load["total"] == EMPLOYEES and load["sent"] == EMPLOYEES - load["unsent"]
        assert load["unsent"] == uploaded["unsent_records"] == report["records_not_sent"]
        html = Path(report["files"]["report_html"].removeprefix("file://")).read_text()
        assert f"{load['sent']:,} of {EMPLOYEES:,} records sent" in html
        assert dags.read_summary(run)["progress"] == load
        progress.append(load)
        if not load["unsent"]:
            assert report["status"] == "done"
            break
        assert report["status"] == "partial" and quota_used["stopped"] == "allowance"
        assert quota_used["calls"] == DAILY_QUOTA and load["days_left"] >= 1
        assert f"about {load['days_left']} more day" in load["text"]
    else:
        pytest.fail(f"the load did not complete in {DAYS} days: {progress}")

    print(
        f"\nfirst load of {EMPLOYEES:,} at {DAILY_QUOTA} calls a day: "
        + "; ".join(p["text"] for p in progress)
    )
    assert len(progress) >= 4  # 2,000 records at 50 a call is 40 calls at least: four days or more
    assert [p["sent"] for p in progress] == sorted({p["sent"] for p in progress})  # it moves on every day
    # Every employee is in Entra, enabled, under the right manager.
    users = {u["employeeId"]: u for u in emulator.users()}
    assert len(users) == EMPLOYEES and all(u["accountEnabled"] for u in users.values())
    managers = hr.set_index("WorkerID")["ManagerID"]
    assert all(users[w]["managerEmployeeId"] == (managers[w] or None) for w in users)
    # Nothing was sent twice: each externalId in exactly one accepted bulkUpload, and the emulator agrees.
    accepted = Counter(ext for lines in manifests for line in lines for ext in line["external_ids"])
    assert len(accepted) == EMPLOYEES and set(accepted.values()) == {1}
    stats = emulator.stats()
    assert stats["operations_received"] == EMPLOYEES
    assert stats["calls"]["bulkUpload"] == sum(calls) == sum(len(lines) for lines in manifests)
    assert stats["throttled_total"] == 0  # stopped before the quota, never by running into it
    # The shared record counted the same calls; it keeps two days (the last two runs' files).
    record = [line for path in (staging / "quota").glob("*/*.jsonl") for line in read_jsonl(path)]
    assert sum(line["calls"] for line in record) == sum(calls[-2:])


def test_a_run_on_a_day_already_spent_sends_nothing_and_does_not_fail(dags, entra_env, tmp_path, monkeypatch):
    """Two runs the same day with 3 calls a day: the second finds the allowance spent by the first, makes no
    call, verifies nothing, and ends as a partial load with the same progress."""
    emulator = entra_env
    emulator.configure(daily_quota=3)
    conn = json.loads(json.dumps(emulator.info["airflow_conn"]))
    conn["extra"]["daily_call_budget"] = 3
    monkeypatch.setenv("AIRFLOW_CONN_ENTRA_DEFAULT", json.dumps(conn))
    first = dags.run(DAG_ID, tmp_path / "staging")
    assert first.state == DagRunState.SUCCESS, dags.states(first)
    before = dags.xcom(first, "report")["progress"]
    assert before["unsent"] > 0 and before["sent"] + before["unsent"] == before["total"] == 300

    second = dags.run(DAG_ID, tmp_path / "staging")
    assert second.state == DagRunState.SUCCESS, dags.states(second)
    uploaded, report = dags.xcom(second, "upload"), dags.xcom(second, "report")
    assert (uploaded["sent_records"], uploaded["unsent_records"]) == (0, before["unsent"])
    assert uploaded["daily_quota"] | {"frees_at": None} == {
        "daily_call_budget": 3,
        "used_before": 3,
        "calls": 0,
        "left": 0,
        "stopped": "allowance",
        "frees_at": None,
        "per_day": 3,
        "days_left": before["days_left"],
    }
    assert dags.xcom(second, "verify")["records"] == 0
    assert report["status"] == "partial" and report["progress"] == before
    assert emulator.stats()["calls"]["bulkUpload"] == 3 and emulator.stats()["throttled_total"] == 0
