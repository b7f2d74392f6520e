"""Every example DAG imports cleanly and runs green under dag.test() against the emulator.

entra_hr_provisioning's behaviour has its own module (test_entra_hr_provisioning.py); here: the imports and
Params, the quickstart, the admin accounts DAG (after an HR run, and its stricter guard), on-demand
provisioning and the daily review.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from airflow.utils.state import DagRunState, TaskInstanceState

from airflow_provider_entra.emulator.testing import bulk, user
from airflow_provider_entra.hooks.entra import EntraHook

EXAMPLE_DAGS = {
    "entra_quickstart",
    "entra_hr_provisioning",
    "entra_admin_accounts",
    "entra_on_demand",
    "entra_provisioning_review",
}


def test_every_example_dag_imports_with_documented_params(dags):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags.data.parent))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) >= EXAMPLE_DAGS
    for dag_id in EXAMPLE_DAGS:
        dag = bag.get_dag(dag_id)
        assert dag.doc_md and len(dag.doc_md) > 200, dag_id
        for name, param in dag.params.items():
            assert param.description, f"{dag_id}: Param {name} has no description"
        assert Path(dag.fileloc).name == f"{dag_id}.py"
    hr = bag.get_dag("entra_hr_provisioning")
    assert {
        "hr_path",
        "mapping_path",
        "dry_run",
        "full_sync",
        "max_disable_count",
        "max_disable_percent",
    } <= set(hr.params)
    assert bag.get_dag("entra_on_demand").params.get_param("employee_ids").schema["type"] == "array"
    assert bag.get_dag("entra_on_demand").schedule is None  # manual only


def test_quickstart_provisions_the_sample_and_proves_it(dags, entra_env, tmp_path):
    emulator = entra_env
    dag_run = dags.run("entra_quickstart", tmp_path / "staging")
    assert dag_run.state == DagRunState.SUCCESS, dags.states(dag_run)
    assert set(dags.states(dag_run)) == {"preflight", "prepare", "upload", "verify"}
    hr = pd.read_csv(dags.data / "hr_employees.csv", dtype=str, keep_default_na=False)
    verified = dags.xcom(dag_run, "verify")
    assert verified["records"] == len(hr) and verified["outcomes"]["success"] == len(hr)
    users = {u["employeeId"]: u for u in emulator.users()}
    assert set(users) == set(hr["WorkerID"])
    assert Path(verified["report_html"].removeprefix("file://")).is_file()


def test_example_dags_share_one_meaning_per_param(dags):
    """A Param name means the same in every example DAG: one description (airflow_provider_entra.params)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags.data.parent))
    described: dict[str, set[str]] = {}
    for dag_id in EXAMPLE_DAGS:
        for name, param in bag.get_dag(dag_id).params.items():
            described.setdefault(name, set()).add(param.description)
    assert {name: texts for name, texts in described.items() if len(texts) > 1} == {}
    assert {"staging_path", "retention_days", "dry_run"} <= set(described)


def test_admin_accounts_follow_the_hr_snapshot(dags, entra_env, tmp_path):
    emulator = entra_env
    staging = tmp_path / "staging"
    assert dags.run("entra_hr_provisioning", staging).state == DagRunState.SUCCESS
    dag_run = dags.run("entra_admin_accounts", staging)
    assert dag_run.state == DagRunState.SUCCESS, dags.states(dag_run)

    derived = dags.xcom(dag_run, "derive")
    admins = pd.read_parquet(derived["admins_path"].removeprefix("file://"))
    active = admins.loc[admins["WorkerStatus"] == "Active"]
    assert len(active) > 5
    admin_job = emulator.info["apps"]["admin"]["job_id"]
    accounts = {u["employeeId"]: u for u in emulator.users() if admin_job in u["provisionedByJobs"]}
    # Every admin account is in the admin job: enabled for active admins, disabled for the others (an admin
    # account of an inactive person may exist already: unknown is not absent).
    assert set(accounts) == set(admins["WorkerID"])
    assert all(a.startswith("A") and accounts[a]["userPrincipalName"].startswith("adm-") for a in accounts)
    assert {a for a in accounts if accounts[a]["accountEnabled"]} == set(active["WorkerID"])
    report = dags.xcom(dag_run, "report")
    assert report["records_sent"] == len(admins) and report["outcomes"]["success"] == len(admins)

    # People leaving IT would disable more admin accounts than the stricter guard allows: nothing is sent.
    hr = pd.read_parquet(derived["source"].removeprefix("file://"))
    feed = staging / "hr_without_it.parquet"  # under the staging root: where a committed feed may be read
    hr[hr["Department"] != "IT"].to_parquet(feed, index=False)
    calls = emulator.stats()["calls"].get("bulkUpload", 0)
    stopped = dags.run("entra_admin_accounts", staging, hr_current_path=str(feed))
    assert stopped.state == DagRunState.FAILED
    assert dags.states(stopped)["guard"] == TaskInstanceState.FAILED
    assert dags.states(stopped)["upload"] == TaskInstanceState.UPSTREAM_FAILED
    assert emulator.stats()["calls"].get("bulkUpload", 0) == calls
    assert dags.read_summary(stopped, "derive")["status"] == "guard_tripped"


def test_on_demand_sends_the_employee_and_never_sent_managers(dags, entra_env, tmp_path, caplog):
    emulator = entra_env
    hr = pd.read_csv(dags.data / "hr_employees.csv", dtype=str, keep_default_na=False).set_index("WorkerID")
    # An active employee three levels below the top: their manager and the manager's manager come along.
    worker = next(
        w
        for w in hr.index
        if hr.at[w, "WorkerStatus"] == "Active"
        and hr.at[w, "ManagerID"]
        and hr.at[hr.at[w, "ManagerID"], "ManagerID"]
        and hr.at[hr.at[hr.at[w, "ManagerID"], "ManagerID"], "ManagerID"]
    )
    chain = [hr.at[worker, "ManagerID"]]
    while hr.at[chain[-1], "ManagerID"]:
        chain.append(hr.at[chain[-1], "ManagerID"])

    dag_run = dags.run("entra_on_demand", tmp_path, employee_ids=[worker, "NO-SUCH-ID"])
    # The unknown id fails the run, after the known employee was sent.
    assert dag_run.state == DagRunState.FAILED
    assert dags.states(dag_run)["outcomes"] == TaskInstanceState.FAILED
    assert dags.states(dag_run)["verify"] == TaskInstanceState.SUCCESS
    selected = dags.xcom(dag_run, "select")
    assert selected["unknown"] == ["NO-SUCH-ID"] and selected["managers_added"] == chain
    users = {u["employeeId"]: u for u in emulator.users()}
    assert set(users) == {worker, *chain}
    assert users[worker]["managerEmployeeId"] == chain[0]
    out = caplog.text
    assert f"EMP {worker}: success (create) upn={users[worker]['userPrincipalName']}" in out
    assert "NO-SUCH-ID" in out

    # The run committed what the logs proved to the job's ledger: the managers are known now, so a second run
    # sends the employee alone (Entra answers it is already up to date).
    again = dags.run("entra_on_demand", tmp_path, employee_ids=[worker])
    assert again.state == DagRunState.SUCCESS, dags.states(again)
    assert dags.xcom(again, "select")["managers_added"] == []
    assert dags.xcom(again, "outcomes")["sent"] == 1
    assert dags.xcom(again, "commit")["proven_by_skip"] == 1


def test_review_summarises_the_logs_and_fails_past_the_threshold(dags, entra_env, tmp_path):
    emulator = entra_env
    hook = EntraHook()
    hook.bulk_upload(
        bulk(
            user("r1", "ria.one@contoso.com"),
            user("r2", "ria.two@contoso.com"),
            user("r3", "ria.two@contoso.com"),  # the same UPN: Entra fails this create
        )
    )
    emulator.process()

    failing = dags.run("entra_provisioning_review", tmp_path)
    assert failing.state == DagRunState.FAILED
    tis = dags.states(failing)
    assert tis["job_health"] == TaskInstanceState.SUCCESS
    assert tis["review_logs"] == TaskInstanceState.FAILED

    tolerant = dags.run("entra_provisioning_review", tmp_path, max_failures=1)
    assert tolerant.state == DagRunState.SUCCESS, dags.states(tolerant)
    summary = dags.xcom(tolerant, "review_logs")
    assert summary["records"] == 3
    assert summary["outcomes"]["success"] == 2 and summary["outcomes"]["failure"] == 1
    assert summary["actions"]["create"]["failure"] == 1
    (reason, count), *_ = summary["failure_reasons"]
    assert count == 1 and reason
    assert Path(summary["files"]["report_html"]).read_text().count("r3") >= 1
