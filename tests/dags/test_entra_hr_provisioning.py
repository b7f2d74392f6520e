"""entra_hr_provisioning under dag.test() against the emulator.

Deltas (an unchanged export sends nothing, one changed row sends one record), Microsoft's Sample1 export,
and the deletion guard (a truncated export stops before any upload; approval by Param and in the UI).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd
import pytest
from airflow.utils.state import DagRunState, TaskInstanceState

DAG_ID = "entra_hr_provisioning"


def bulk_calls(emulator) -> int:
    return int(emulator.stats()["calls"].get("bulkUpload", 0))


def directory(emulator) -> dict[str, dict]:
    return {u["employeeId"]: u for u in emulator.users()}


def test_unchanged_export_sends_nothing_and_one_changed_row_sends_one(dags, entra_env, tmp_path):
    emulator = entra_env
    first = dags.run(DAG_ID, tmp_path / "staging")
    assert first.state == DagRunState.SUCCESS, dags.states(first)
    summary = dags.xcom(first, "report")
    # 284 active joiners, and 16 inactive workers sent disabled (their accounts may exist already).
    assert summary["changes"]["joiner"] == 284 and summary["changes"]["inactive_new"] == 16
    assert summary["records_sent"] == 300
    assert summary["outcomes"]["success"] == 300 and summary["committed"] == 300
    users = directory(emulator)
    assert len(users) == 300 and sum(u["accountEnabled"] for u in users.values()) == 284
    # Managers first: every provisioned employee whose manager is provisioned has that manager set.
    hr = pd.read_csv(dags.data / "hr_employees.csv", dtype=str, keep_default_na=False).set_index("WorkerID")
    for worker, user in users.items():
        if hr.at[worker, "ManagerID"] in users:
            assert user["managerEmployeeId"] == hr.at[worker, "ManagerID"], worker
    calls, operations = bulk_calls(emulator), emulator.stats()["operations_received"]

    second = dags.run(DAG_ID, tmp_path / "staging")
    assert second.state == DagRunState.SUCCESS, dags.states(second)
    assert dags.xcom(second, "report")["records_sent"] == 0
    assert dags.xcom(second, "plan")["changes"]["unchanged"] == 300
    assert bulk_calls(emulator) == calls and emulator.stats()["operations_received"] == operations
    assert dags.states(second)["verify"] == TaskInstanceState.SUCCESS

    changed = hr.reset_index()
    worker = changed.loc[changed["WorkerStatus"] == "Active", "WorkerID"].iloc[0]
    changed.loc[changed["WorkerID"] == worker, "JobTitle"] = "Chief Tea Officer"
    export = tmp_path / "hr_changed.csv"
    changed.to_csv(export, index=False)
    third = dags.run(DAG_ID, tmp_path / "staging", hr_path=str(export))
    assert third.state == DagRunState.SUCCESS, dags.states(third)
    report = dags.xcom(third, "report")
    assert report["records_sent"] == 1 and report["changes"]["mover"] == 1
    # The report names what changed.
    html = Path(report["files"]["report_html"].removeprefix("file://")).read_text()
    assert "title" in html and "mover" in html
    assert emulator.stats()["operations_received"] == operations + 1
    assert bulk_calls(emulator) == calls + 1
    assert directory(emulator)[worker]["jobTitle"] == "Chief Tea Officer"
    # The run's summary file says the same as the task.
    assert dags.read_summary(third)["records_sent"] == 1


def test_microsoft_sample1_export(dags, entra_env, tmp_path, microsoft_sample):
    """332 rows, 283 distinct WorkerIDs (44 repeat with different values), managers mostly elsewhere."""
    emulator = entra_env
    export = microsoft_sample / "Sample1-employeeData.csv"
    dag_run = dags.run(
        DAG_ID, tmp_path, hr_path=str(export), mapping_path=str(dags.data / "csv2scim_mapping.yaml")
    )
    assert dag_run.state == DagRunState.SUCCESS, dags.states(dag_run)

    hr = pd.read_csv(export, dtype=str, keep_default_na=False)
    differing = hr.groupby("WorkerID").nunique().max(axis=1) > 1
    conflicting = set(differing[differing].index)
    assert len(conflicting) == 44
    valid = hr[~hr["WorkerID"].isin(conflicting)].drop_duplicates("WorkerID").set_index("WorkerID")
    active = set(valid.index[valid["WorkerStatus"] == "Active"])
    users = directory(emulator)
    # Every distinct valid WorkerID is in Entra: the active ones enabled, the 123 inactive ones disabled
    # (as Microsoft's CSV2SCIM sends them: their accounts may already exist and must not stay enabled).
    assert set(users) == set(valid.index) and len(users) == 239
    assert {w for w, u in users.items() if u["accountEnabled"]} == active
    assert len(valid) - len(active) == 123
    plan = dags.xcom(dag_run, "plan")
    assert plan["changes"]["joiner"] == len(active)
    assert plan["changes"]["inactive_new"] == len(valid) - len(active)

    quarantine = pd.read_csv(
        dags.xcom(dag_run, "transform")["quarantine_path"].removeprefix("file://"), dtype=str
    )
    assert set(quarantine["externalId"]) == conflicting
    assert len(quarantine) == int(hr["WorkerID"].isin(conflicting).sum())
    assert quarantine["reason"].str.contains("with different values").all()
    assert dags.read_summary(dag_run)["transform"]["quarantined"] == len(quarantine)

    resolved = inside = 0
    for worker, user in users.items():
        manager = valid.at[worker, "ManagerID"]
        if manager in users:
            inside += 1
            resolved += user["managerEmployeeId"] == manager
        else:
            assert user["managerEmployeeId"] is None, worker
    assert inside == 73 and resolved >= 0.95 * inside
    outcomes = dags.xcom(dag_run, "verify")["outcomes"]
    assert outcomes["failure"] == 0 and outcomes["missing"] == 0
    # Managers outside the file cannot resolve: Entra writes the user and logs the unresolved reference.
    assert outcomes["warning"] == len(valid) - inside - int((valid["ManagerID"] == "").sum())

    # An unchanged re-run sends nothing: the unresolvable managers are not retried forever.
    calls = bulk_calls(emulator)
    again = dags.run(
        DAG_ID, tmp_path, hr_path=str(export), mapping_path=str(dags.data / "csv2scim_mapping.yaml")
    )
    assert again.state == DagRunState.SUCCESS, dags.states(again)
    assert dags.xcom(again, "report")["records_sent"] == 0 and bulk_calls(emulator) == calls


def _truncated(data: Path, tmp_path: Path) -> Path:
    hr = pd.read_csv(data / "hr_employees.csv", dtype=str, keep_default_na=False)
    path = tmp_path / "hr_truncated.csv"
    hr.iloc[: len(hr) // 2].to_csv(path, index=False)
    return path


class ApprovalResponder(threading.Thread):
    """Answers the run's approval task through the REST API the UI uses, once the task waits for input."""

    def __init__(self, answer: str, monkeypatch) -> None:
        super().__init__(daemon=True)
        from airflow.api_fastapi.app import create_app
        from fastapi.testclient import TestClient

        monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
        self.client = TestClient(create_app(apps="core"))
        self.answer = answer
        self.detail: dict | None = None
        self.status: int | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            waiting = self.client.get("/api/v2/dags/~/dagRuns/~/hitlDetails", params={"dag_id": DAG_ID})
            for detail in waiting.json().get("hitl_details", []):
                ti = detail["task_instance"]
                if detail.get("response_received") or ti["state"] != "awaiting_input":
                    continue
                self.detail = detail
                response = self.client.patch(
                    f"/api/v2/dags/{DAG_ID}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/"
                    f"{ti['map_index']}/hitlDetails",
                    json={"chosen_options": [self.answer]},
                )
                self.status = response.status_code
                return


@pytest.mark.filterwarnings("ignore")  # starlette's TestClient deprecation, Airflow's short test JWT key
def test_truncated_export_stops_at_the_guard_until_approved(dags, entra_env, tmp_path, monkeypatch):
    emulator = entra_env
    staging = tmp_path / "staging"
    assert dags.run(DAG_ID, staging).state == DagRunState.SUCCESS
    calls, enabled = bulk_calls(emulator), {u["employeeId"] for u in emulator.users() if u["accountEnabled"]}
    truncated = _truncated(dags.data, tmp_path)

    # 1. Without a UI approval task: the guard fails the run before any upload, and says how to approve.
    stopped = dags.run(DAG_ID, staging, hr_path=str(truncated), approval_timeout_minutes=0)
    assert stopped.state == DagRunState.FAILED
    tis = dags.states(stopped)
    assert tis["guard"] == TaskInstanceState.FAILED
    assert tis["upload"] == TaskInstanceState.UPSTREAM_FAILED
    assert bulk_calls(emulator) == calls
    assert {u["employeeId"] for u in emulator.users() if u["accountEnabled"]} == enabled
    decision = dags.xcom(stopped, "guard", key="decision")
    assert decision["tripped"] and decision["disables"] > 50 and decision["limits"]
    summary = dags.read_summary(stopped)
    assert summary["status"] == "guard_tripped" and summary["records_sent"] == 0
    assert "To go ahead, trigger the DAG again with the Param approve_disables: true." in summary["message"]

    # 2. With the approval task: a person rejects it in the UI; nothing is sent.
    responder = ApprovalResponder("Reject", monkeypatch)
    responder.start()
    rejected = dags.run(DAG_ID, staging, hr_path=str(truncated))
    responder.stop.set()
    assert responder.status == 200 and responder.detail is not None
    assert "would disable" in responder.detail["body"]
    tis = dags.states(rejected)
    assert rejected.state == DagRunState.FAILED
    assert tis["approve_disables"] == TaskInstanceState.FAILED
    assert tis["upload"] == TaskInstanceState.UPSTREAM_FAILED
    assert bulk_calls(emulator) == calls

    # 3. Approved in the UI: the disables go out.
    responder = ApprovalResponder("Approve", monkeypatch)
    responder.start()
    approved = dags.run(DAG_ID, staging, hr_path=str(truncated))
    responder.stop.set()
    assert responder.status == 200
    assert approved.state == DagRunState.SUCCESS, dags.states(approved)
    report = dags.xcom(approved, "report")
    assert report["records_sent"] == decision["disables"]
    still_enabled = {u["employeeId"] for u in emulator.users() if u["accountEnabled"]}
    assert still_enabled == enabled - set(
        pd.read_parquet(dags.xcom(approved, "plan")["delta_path"].removeprefix("file://"))["externalId"]
    )


def test_dry_run_sends_nothing(dags, entra_env, tmp_path):
    dag_run = dags.run(DAG_ID, tmp_path, dry_run=True)
    assert dag_run.state == DagRunState.SUCCESS, dags.states(dag_run)
    tis = dags.states(dag_run)
    assert tis["verify"] == TaskInstanceState.SKIPPED and tis["commit"] == TaskInstanceState.SKIPPED
    assert entra_env.stats()["calls"].get("bulkUpload", 0) == 0
    summary = dags.xcom(dag_run, "report")
    assert summary["status"] == "dry_run" and summary["records_sent"] == 0
    requests = Path(summary["files"]["dry_run_requests"].removeprefix("file://")).read_text().splitlines()
    assert sum(len(json.loads(line)["Operations"]) for line in requests) == 300
    assert not (tmp_path / "ledger").exists()  # nothing committed


def test_sql_source_reads_the_export_from_a_database(dags, entra_env, tmp_path, monkeypatch):
    """hr_source sql: the rows come from an Airflow SQL connection (SQLite here) instead of the CSV."""
    import sqlite3

    # A subset of the bundled export, so a run that read the default CSV instead would be told apart.
    hr = pd.read_csv(dags.data / "hr_employees.csv", dtype=str, keep_default_na=False).iloc[:120]
    database = tmp_path / "hr.db"
    with sqlite3.connect(database) as db:
        hr.to_sql("employees", db, index=False)
    monkeypatch.setenv("AIRFLOW_CONN_HR_DB", json.dumps({"conn_type": "sqlite", "host": str(database)}))

    run = dags.run(
        DAG_ID,
        tmp_path / "staging",
        hr_source="sql",
        sql_conn_id="hr_db",
        sql_query="SELECT * FROM employees",
    )
    assert run.state == DagRunState.SUCCESS, dags.states(run)
    extract = dags.xcom(run, "extract")
    assert extract["rows"] == len(hr) and "hr_db" in extract["source"]
    active = set(hr.loc[hr["WorkerStatus"] == "Active", "WorkerID"])
    users = directory(entra_env)
    assert set(users) == set(hr["WorkerID"])
    assert {w for w, u in users.items() if u["accountEnabled"]} == active
