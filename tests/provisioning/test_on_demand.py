"""provisioning.on_demand: chosen employees with their never-sent managers, one line per outcome, and why
a run fails."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from airflow_provider_entra.provisioning import on_demand, pipeline

DATA = Path(__file__).resolve().parents[2] / "dags" / "data"


def test_on_demand_selection_adds_never_sent_managers(tmp_path, steps):
    ledger = tmp_path / "ledger"
    transformed, _ = steps.run(DATA / "hr_employees.csv", tmp_path, ledger)
    hr = pd.read_csv(DATA / "hr_employees.csv", dtype=str, keep_default_na=False).set_index("WorkerID")
    worker = next(w for w in hr.index if hr.at[w, "ManagerID"] and hr.at[hr.at[w, "ManagerID"], "ManagerID"])
    chain = [hr.at[worker, "ManagerID"]]
    while hr.at[chain[-1], "ManagerID"]:
        chain.append(hr.at[chain[-1], "ManagerID"])

    chosen = on_demand.select_on_demand(transformed["mapped_path"], ledger, tmp_path, [worker, "x1", worker])
    assert chosen["found"] == [worker] and chosen["unknown"] == ["x1"]
    assert chosen["managers_added"] == chain
    assert pd.read_parquet(chosen["selected_path"])["externalId"].tolist() == [worker, *chain]

    # Once the top manager was sent, the walk stops below them.
    sent = pd.read_parquet(transformed["mapped_path"])
    sent = sent[sent["externalId"] == chain[-1]]
    sent_path = tmp_path / "sent.parquet"
    sent.to_parquet(sent_path, index=False)
    outcomes = tmp_path / "outcomes.parquet"
    pd.DataFrame({"external_id": [chain[-1]], "status": ["success"]}).to_parquet(outcomes)
    pipeline.commit(ledger, sent_path, outcomes, run_id="on-demand")
    again = on_demand.select_on_demand(transformed["mapped_path"], ledger, tmp_path, [worker])
    assert again["managers_added"] == chain[:-1]


def test_one_line_per_record_and_the_reasons_a_run_fails():
    outcomes = pd.DataFrame(
        {
            "external_id": ["1513", "1959", "2001"],
            "status": ["success", "success", "failure"],
            "action": ["create", "create", None],
            "upn": ["ginnie.fadiman@contoso.com", "kim.larsen@contoso.com", None],
            "error_code": [None, None, "AzureActiveDirectoryConflictEncountered"],
            "reason": [None, None, "another object has the same value"],
        }
    )
    assert on_demand.outcome_lines(outcomes, ["1959"]) == [
        "EMP 1513: success (create) upn=ginnie.fadiman@contoso.com",
        "EMP 1959: success (create) upn=kim.larsen@contoso.com [manager, never sent before]",
        "EMP 2001: failure (no log entry) upn=None error=AzureActiveDirectoryConflictEncountered: another "
        "object has the same value",
    ]
    selected = {"unknown": ["NO-SUCH-ID"], "run_dir": "file:///staging/entra_on_demand/run"}
    assert on_demand.problems(selected, outcomes) == (
        "record(s) 2001 failed or have no log entry; employee id(s) not in the HR export (or quarantined "
        "there, see file:///staging/entra_on_demand/run/quarantine.csv): NO-SUCH-ID. The others were sent."
    )
    assert on_demand.problems({"unknown": [], "run_dir": "r"}, outcomes.head(2)) is None
    assert on_demand.problems({"unknown": [], "run_dir": "r"}, None) is None  # a dry run verifies nothing
