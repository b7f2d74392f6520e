"""A joiner whose derived UPN already belongs to an account Entra holds (created by hand, or by another job).

Entra refuses the create (``AzureActiveDirectoryInvalidUserPrincipalName``); the outcome names the colliding
UPN and the fix, and the mapping's chosen strategy applies on the next run without editing code: ``suffix``
(the default) gives the person the next free UPN, ``fail`` keeps sending it until it is stuck and reported.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml
from airflow.utils.state import DagRunState

from airflow_provider_entra.emulator.testing import bulk, user
from airflow_provider_entra.hooks.entra import EntraHook

DAG_ID = "entra_hr_provisioning"


def _occupy(emulator, upn: str) -> None:
    """An account Entra holds under ``upn`` that our job never provisioned (the admin app's job here)."""
    EntraHook("entra_admin").bulk_upload(bulk(user("OTHER-1", upn)))
    emulator.process()
    assert any(u["userPrincipalName"] == upn for u in emulator.users())


def _outcome(dags, run, worker: str) -> pd.Series:
    frame = pd.read_parquet(dags.xcom(run, "verify")["outcomes_path"].removeprefix("file://"))
    return frame.set_index("external_id").loc[worker]


def test_the_next_run_gives_the_joiner_the_next_free_upn(dags, entra_env, tmp_path):
    emulator = entra_env
    hr = pd.read_csv(dags.data / "hr_employees.csv", dtype=str, keep_default_na=False)
    worker = hr.loc[hr["WorkerStatus"] == "Active", "WorkerID"].iloc[3]
    first, last = hr.set_index("WorkerID").loc[worker, ["FirstName", "LastName"]]
    taken = f"{first}.{last}@contoso.com".lower()
    _occupy(emulator, taken)

    staging = tmp_path / "staging"
    run = dags.run(DAG_ID, staging)
    assert run.state == DagRunState.SUCCESS, dags.states(run)  # one failure is under max_failure_percent
    failed = _outcome(dags, run, worker)
    assert (
        failed["status"] == "failure"
        and failed["error_code"] == "AzureActiveDirectoryInvalidUserPrincipalName"
    )
    assert taken in failed["reason"]  # Entra's reason names the colliding account's UPN
    html = Path(dags.xcom(run, "report")["files"]["report_html"].removeprefix("file://")).read_text()
    assert "source.upn.overrides" in html  # the fix, in the report

    again = dags.run(DAG_ID, staging)
    assert again.state == DagRunState.SUCCESS, dags.states(again)
    assert dags.xcom(again, "report")["records_sent"] == 1
    created = _outcome(dags, again, worker)
    assert (created["status"], created["action"]) == ("success", "create")
    mine = {u["employeeId"]: u for u in emulator.users()}[worker]
    assert mine["userPrincipalName"] == taken.replace("@", "2@")


def test_an_override_in_the_mapping_applies_on_the_next_run(dags, entra_env, tmp_path):
    emulator = entra_env
    hr = pd.read_csv(dags.data / "hr_employees.csv", dtype=str, keep_default_na=False)
    worker = hr.loc[hr["WorkerStatus"] == "Active", "WorkerID"].iloc[3]
    first, last = hr.set_index("WorkerID").loc[worker, ["FirstName", "LastName"]]
    _occupy(emulator, f"{first}.{last}@contoso.com".lower())
    mapping = yaml.safe_load((dags.data / "hr_mapping.yaml").read_text())
    mapping.setdefault("source", {"id": "WorkerID"})
    mapping["source"]["upn"] = {"collisions": "fail", "overrides": {worker: "chosen.by.hand@contoso.com"}}
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(mapping, sort_keys=False))

    run = dags.run(DAG_ID, tmp_path / "staging", mapping_path=str(path))
    assert run.state == DagRunState.SUCCESS, dags.states(run)
    mine = {u["employeeId"]: u for u in emulator.users()}[worker]
    assert mine["userPrincipalName"] == "chosen.by.hand@contoso.com"
