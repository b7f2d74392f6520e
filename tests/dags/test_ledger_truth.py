"""What Entra holds, not what we hoped (issue 11): the cases found with exports and usage we did not write.

Each test drives the example DAGs under ``dag.test()`` against the emulator and checks the directory itself
(``emulator.users()``), not only our bookkeeping. Every one of them failed on the first release:

1. a leaver provisioned by ``entra_on_demand`` was left enabled (the HR run never learnt of them);
2. records Entra answered ``skipped`` (nothing to change) were sent again on every run;
3. active employees whose rows were quarantined were disabled as "missing from the export";
4. Excel-mangled ids created accounts, disabled the real people, and made every worker a mover;
6. a run in which every row was quarantined finished green;
7. inactive workers were never sent, so leavers with existing accounts stayed enabled.

(Case 5, another run's log entries credited, is ``test_verification_window.py``.)
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pandas as pd
from airflow.utils.state import DagRunState, TaskInstanceState

HR_DAG = "entra_hr_provisioning"
ON_DEMAND = "entra_on_demand"


def users(emulator) -> dict[str, dict]:
    return {u["employeeId"]: u for u in emulator.users()}


def enabled(emulator) -> set[str]:
    return {worker for worker, user in users(emulator).items() if user["accountEnabled"]}


def bulk_calls(emulator) -> int:
    return int(emulator.stats()["calls"].get("bulkUpload", 0))


def export(frame: pd.DataFrame, path: Path, **to_csv) -> str:
    frame.to_csv(path, index=False, **to_csv)
    return str(path)


def sample(dags) -> pd.DataFrame:
    return pd.read_csv(dags.data / "hr_employees.csv", dtype=str, keep_default_na=False)


def test_a_leaver_provisioned_on_demand_is_disabled_by_the_hr_run(dags, entra_env, tmp_path):
    """Case 1: two employees provisioned on demand, then HR runs; one of them leaves."""
    emulator = entra_env
    staging = tmp_path / "staging"
    hr = sample(dags)
    top = hr.loc[(hr["ManagerID"] == "") & (hr["WorkerStatus"] == "Active"), "WorkerID"].iloc[0]
    reports = (
        hr.loc[(hr["ManagerID"] == top) & (hr["WorkerStatus"] == "Active"), "WorkerID"].iloc[:2].tolist()
    )
    on_demand = dags.run(ON_DEMAND, staging, employee_ids=reports)
    assert on_demand.state == DagRunState.SUCCESS, dags.states(on_demand)
    assert set(reports) <= enabled(emulator)

    for _ in range(2):
        run = dags.run(HR_DAG, staging)
        assert run.state == DagRunState.SUCCESS, dags.states(run)
        committed = dags.xcom(run, "commit")
        assert committed["not_verified"] == 0, committed  # nothing left "to send again next run"
    # The second HR run sends nothing: the ledger holds everybody, including the on-demand pair.
    assert dags.xcom(run, "report")["records_sent"] == 0

    leaver = reports[0]
    gone = export(
        hr.assign(WorkerStatus=hr["WorkerStatus"].where(hr["WorkerID"] != leaver, "Inactive")),
        tmp_path / "leaver.csv",
    )
    run = dags.run(HR_DAG, staging, hr_path=gone)
    assert run.state == DagRunState.SUCCESS, dags.states(run)
    plan = dags.xcom(run, "plan")
    assert plan["changes"]["leaver"] == 1 and plan["to_send"] == 1
    assert users(emulator)[leaver]["accountEnabled"] is False
    assert reports[1] in enabled(emulator)


def test_skips_that_prove_entra_holds_the_record_are_committed_once(dags, entra_env, tmp_path):
    """Case 2: the ledger is lost; Entra answers every record 'skipped' (redundant): committed, not resent."""
    emulator = entra_env
    staging = tmp_path / "staging"
    first = dags.run(HR_DAG, staging)
    assert first.state == DagRunState.SUCCESS, dags.states(first)
    shutil.rmtree(staging / "ledger")  # lost: a new staging volume, a restore from backup, a new DAG

    again = dags.run(HR_DAG, staging)
    assert again.state == DagRunState.SUCCESS, dags.states(again)
    committed = dags.xcom(again, "commit")
    assert committed["sent"] == 300 and committed["proven_by_skip"] == 300 and committed["not_verified"] == 0
    calls = bulk_calls(emulator)
    third = dags.run(HR_DAG, staging)
    assert third.state == DagRunState.SUCCESS, dags.states(third)
    assert dags.xcom(third, "report")["records_sent"] == 0 and bulk_calls(emulator) == calls


def test_a_quarantined_row_holds_its_person(dags, entra_env, tmp_path):
    """Case 3: a ';' re-save with quoted newlines in three active employees' addresses."""
    emulator = entra_env
    staging = tmp_path / "staging"
    assert dags.run(HR_DAG, staging).state == DagRunState.SUCCESS
    before = enabled(emulator)
    hr = sample(dags)
    broken = hr.index[hr["WorkerStatus"] == "Active"][:3]
    hr.loc[broken, "StreetAddress"] = hr.loc[broken, "StreetAddress"] + "\nBuilding 2"
    hr.loc[broken, "JobTitle"] = "Changed, but the row is rejected"
    path = export(hr, tmp_path / "resaved.csv", sep=";", quoting=csv.QUOTE_MINIMAL)

    run = dags.run(HR_DAG, staging, hr_path=path)
    assert run.state == DagRunState.SUCCESS, dags.states(run)
    plan = dags.xcom(run, "plan")
    held = set(hr.loc[broken, "WorkerID"])
    assert plan["held"] == 3 and set(plan["held_ids"]) == held
    assert plan["changes"]["missing_disable"] == 0 and plan["to_send"] == 0
    assert enabled(emulator) == before  # nobody disabled
    assert all(users(emulator)[w]["jobTitle"] != "Changed, but the row is rejected" for w in held)
    html = Path(dags.xcom(run, "report")["files"]["report_html"].removeprefix("file://")).read_text()
    assert 'id="held"' in html and 'id="quarantine"' in html and "StreetAddress" in html


def test_excel_mangled_ids_neither_create_nor_disable_nor_move(dags, entra_env, tmp_path):
    """Case 4: five WorkerIDs re-saved in scientific notation, every ManagerID as '123456.0'."""
    emulator = entra_env
    staging = tmp_path / "staging"
    assert dags.run(HR_DAG, staging).state == DagRunState.SUCCESS
    accounts, before = set(users(emulator)), enabled(emulator)
    hr = sample(dags)
    mangled = hr.index[hr["WorkerStatus"] == "Active"][10:15]
    real = set(hr.loc[mangled, "WorkerID"])
    hr.loc[mangled, "WorkerID"] = [f"{int(w):.5E}".replace("E+0", "E+") for w in hr.loc[mangled, "WorkerID"]]
    hr["ManagerID"] = hr["ManagerID"].where(hr["ManagerID"] == "", hr["ManagerID"] + ".0")
    path = export(hr, tmp_path / "excel.csv")

    run = dags.run(HR_DAG, staging, hr_path=path)
    assert run.state == DagRunState.SUCCESS, dags.states(run)
    transformed, plan = dags.xcom(run, "transform"), dags.xcom(run, "plan")
    assert transformed["quarantined_by_stage"] == {"ids": 5}
    assert transformed["ids_restored"]["float_suffix"] == int((hr["ManagerID"] != "").sum()) - sum(
        hr.loc[mangled, "ManagerID"] != ""
    )
    assert plan["to_send"] == 0 and plan["changes"]["mover"] == 0  # no manager "changed"
    assert real <= set(plan["held_ids"])
    assert set(users(emulator)) == accounts  # no account for a mangled id
    assert enabled(emulator) == before  # the five real people are not disabled


def test_a_run_that_rejects_every_row_is_never_green(dags, entra_env, tmp_path):
    """Case 6: every row quarantined (300 bad emails): the run fails and its report says why."""
    emulator = entra_env
    hr = sample(dags).assign(Email="not-an-email")
    run = dags.run(HR_DAG, tmp_path / "staging", hr_path=export(hr, tmp_path / "bad.csv"))
    assert run.state == DagRunState.FAILED
    states = dags.states(run)
    assert (
        states["guard"] == TaskInstanceState.FAILED and states["upload"] == TaskInstanceState.UPSTREAM_FAILED
    )
    assert bulk_calls(emulator) == 0
    decision = dags.xcom(run, "guard", key="decision")
    assert decision["quality"]["nothing_valid"] and decision["quality"]["quarantined"] == 300
    summary = dags.read_summary(run)
    assert summary["status"] == "rejected" and summary["records_sent"] == 0
    html = Path(summary["files"]["report_html"].removeprefix("file://")).read_text()
    assert "every one of the 300 HR row(s) was quarantined" in html
    assert "is not an email address" in html


def test_too_many_quarantined_rows_stop_the_run_until_approved(dags, entra_env, tmp_path):
    """The data-quality gate: 60 of 300 rows rejected (20%) against a 10% limit."""
    emulator = entra_env
    hr = sample(dags)
    hr.loc[hr.index[:60], "HireDate"] = "31/31/2020"
    path = export(hr, tmp_path / "dates.csv")
    stopped = dags.run(
        HR_DAG, tmp_path / "staging", hr_path=path, max_quarantine_percent=10, approval_timeout_minutes=0
    )
    assert stopped.state == DagRunState.FAILED and bulk_calls(emulator) == 0
    decision = dags.xcom(stopped, "guard", key="decision")
    assert decision["quality"]["tripped"] and decision["quality"]["limits"] == ["max_quarantine_percent=10"]
    summary = dags.read_summary(stopped)
    assert summary["status"] == "guard_tripped" and "approve_quarantine: true" in summary["message"]
    approved = dags.run(
        HR_DAG, tmp_path / "staging", hr_path=path, max_quarantine_percent=10, approve_quarantine=True
    )
    assert approved.state == DagRunState.SUCCESS, dags.states(approved)
    assert dags.xcom(approved, "report")["records_sent"] == 240


def test_a_mixed_day_ends_with_every_leaver_disabled_and_nothing_to_send(dags, entra_env, tmp_path):
    """HR run; two on-demand runs seconds apart; HR run; a leaver; HR run; an unchanged HR run sends 0."""
    emulator = entra_env
    staging = tmp_path / "staging"
    hr = sample(dags)
    newcomer = hr.iloc[[0]].assign(
        WorkerID="999001",
        FirstName="Nia",
        LastName="New",
        FullName="Nia New",
        Email="nia.new@contoso.com",
        UserID="nnew",
        ManagerID=hr.loc[hr["ManagerID"] == "", "WorkerID"].iloc[0],
        WorkerStatus="Active",
    )
    day_two = pd.concat([hr, newcomer], ignore_index=True)
    path = export(day_two, tmp_path / "day2.csv")

    assert dags.run(HR_DAG, staging).state == DagRunState.SUCCESS
    first = dags.run(ON_DEMAND, staging, employee_ids=["999001"], hr_path=path)
    second = dags.run(ON_DEMAND, staging, employee_ids=["999001"], hr_path=path)
    assert first.state == second.state == DagRunState.SUCCESS
    own = []
    for run in (first, second):
        frame = pd.read_parquet(dags.xcom(run, "verify")["outcomes_path"].removeprefix("file://"))
        own.append(tuple(frame.loc[frame["external_id"] == "999001", ["status", "action"]].iloc[0]))
    assert own == [("success", "create"), ("skipped", "other")]  # each run its own outcome

    run = dags.run(HR_DAG, staging, hr_path=path)
    assert run.state == DagRunState.SUCCESS, dags.states(run)
    assert dags.xcom(run, "report")["records_sent"] == 0  # the newcomer is in the ledger already

    leavers = ["999001", hr.loc[hr["WorkerStatus"] == "Active", "WorkerID"].iloc[5]]
    left = day_two.assign(
        WorkerStatus=day_two["WorkerStatus"].where(~day_two["WorkerID"].isin(leavers), "Inactive")
    )
    left_path = export(left, tmp_path / "day3.csv")
    run = dags.run(HR_DAG, staging, hr_path=left_path)
    assert run.state == DagRunState.SUCCESS, dags.states(run)
    assert dags.xcom(run, "plan")["changes"]["leaver"] == 2
    assert not {leavers[0], leavers[1]} & enabled(emulator)

    calls = bulk_calls(emulator)
    final = dags.run(HR_DAG, staging, hr_path=left_path)
    assert final.state == DagRunState.SUCCESS, dags.states(final)
    assert dags.xcom(final, "report")["records_sent"] == 0 and bulk_calls(emulator) == calls


def test_records_entra_skips_run_after_run_become_a_visible_problem(dags, entra_env, tmp_path):
    """Out-of-scope skips (an app whose scoping skips inactive records) are not resent forever."""
    emulator = entra_env
    emulator.configure(create_inactive=False)  # Entra answers NotEffectivelyEntitled for unknown inactive
    staging = tmp_path / "staging"
    inactive = int((sample(dags)["WorkerStatus"] != "Active").sum())
    for _ in range(2):  # sent, skipped; sent once more, skipped the same way
        run = dags.run(HR_DAG, staging)
        assert run.state == DagRunState.SUCCESS, dags.states(run)
        assert dags.xcom(run, "commit")["skipped"] == inactive
    calls = bulk_calls(emulator)
    stuck = dags.run(HR_DAG, staging)
    assert stuck.state == DagRunState.FAILED  # a visible problem, not a silent resend
    assert dags.states(stuck)["report"] == TaskInstanceState.FAILED, dags.states(stuck)
    plan = dags.xcom(stuck, "plan")
    assert plan["changes"]["stuck"] == inactive and plan["to_send"] == 0 and bulk_calls(emulator) == calls
    assert {s["reason"] for s in plan["stuck"]} == {"NotEffectivelyEntitled"}
    assert all("inactive_scope_days" in s["action"] for s in plan["stuck"])
    html = Path(dags.read_summary(stuck)["files"]["report_html"].removeprefix("file://")).read_text()
    assert 'id="stuck"' in html and "NotEffectivelyEntitled" in html
    # The identity team decides these workers are out of scope: the run is green again, nothing sent.
    scoped = dags.run(HR_DAG, staging, inactive_scope_days=0)
    assert scoped.state == DagRunState.SUCCESS, dags.states(scoped)
    assert dags.xcom(scoped, "plan")["changes"]["out_of_scope"] == inactive and bulk_calls(emulator) == calls
