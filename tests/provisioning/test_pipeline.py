"""provisioning.pipeline: the HR run's steps over staged files, called without Airflow's scheduler.

Runs the bundled sample (day one, then the next day's export) and Microsoft's Sample1 through every step,
with outcomes taken as Entra would log them, and checks the staging helpers on local paths and URLs.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import sys
from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_entra.provisioning import pipeline
from airflow_provider_entra.provisioning.ledger import read_ledger


def ledger_ids(ledger) -> set[str]:
    return set(read_ledger(ledger).state["externalId"])


REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "dags" / "data"


def _changes() -> dict[str, list[str]]:
    spec = importlib.util.spec_from_file_location("generate_hr_sample", DATA / "generate_hr_sample.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("generate_hr_sample", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.build_samples().changes


def _run(export: Path, run: Path, ledger: Path, mapping: Path = DATA / "hr_mapping.yaml", **plan_options):
    pipeline.extract_csv(export, run / pipeline.RAW_NAME)
    transformed = pipeline.transform(
        run / pipeline.RAW_NAME, mapping, run, upn_domain="contoso.com", ledger=ledger
    )
    planned = pipeline.plan(
        transformed["mapped_path"],
        ledger,
        run,
        held_path=transformed["held_path"],
        normalised_path=transformed["normalised_path"],
        **plan_options,
    )
    return transformed, planned


def _all_succeed(delta_path: str, run: Path, *, fail: tuple[str, ...] = ()) -> Path:
    """Outcomes as the verification writes them: every sent record succeeded, except ``fail``."""
    ids = pd.read_parquet(delta_path)["externalId"].astype(str)
    outcomes = pd.DataFrame(
        {"external_id": ids, "status": ["failure" if i in fail else "success" for i in ids]}
    )
    path = run / "outcomes.parquet"
    outcomes.to_parquet(path, index=False)
    return path


def test_run_ids_become_folder_names_and_staging_root_precedence(tmp_path):
    assert (
        pipeline.sanitise_run_id("manual__2026-03-02T01:00:00+00:00") == "manual__2026-03-02T01_00_00_00_00"
    )
    assert pipeline.sanitise_run_id("../../etc") == "etc"
    with pytest.raises(ValueError):
        pipeline.sanitise_run_id("///")
    assert pipeline.staging_root("s3://b/p/", "file:///var", tmp_path) == "s3://b/p"
    assert pipeline.staging_root(" ", "file:///var/x", tmp_path) == "file:///var/x"
    assert pipeline.staging_root(None, None, tmp_path) == f"file://{tmp_path.resolve()}/entra-staging"
    assert pipeline.run_dir("s3://b/p", "d", "r:1") == "s3://b/p/d/r_1"
    assert pipeline.snapshot_dir(str(tmp_path), "d") == str(tmp_path / "d" / "snapshot")
    assert pipeline.run_dir(tmp_path, "d", "r") == tmp_path / "d" / "r"


def test_day_one_then_unchanged_then_next_day(tmp_path):
    ledger = tmp_path / "ledger"
    current = tmp_path / "snapshot" / pipeline.HR_CURRENT_NAME

    transformed, planned = _run(DATA / "hr_employees.csv", tmp_path / "r1", ledger)
    assert transformed["input_rows"] == 300 and transformed["quarantined"] == 0
    assert planned["changes"]["joiner"] == 284 and planned["changes"]["inactive_new"] == 16
    assert planned["to_send"] == 300
    decision = pipeline.guard(planned)
    assert decision["proceed"] and not decision["tripped"]
    staged = pipeline.stages(planned["delta_path"], ledger, tmp_path / "r1")
    assert sum(staged["stage_sizes"]) == 300 and staged["stage_sizes"][0] == 1  # the CEO alone first
    committed = pipeline.commit(
        ledger,
        planned["delta_path"],
        _all_succeed(planned["delta_path"], tmp_path / "r1"),
        run_id="r1",
        normalised_path=transformed["normalised_path"],
        hr_current_path=current,
    )
    assert committed["verified"] == 300 and committed["active"] == 284
    assert len(pd.read_parquet(current)) == 300

    _, again = _run(DATA / "hr_employees.csv", tmp_path / "r2", ledger)
    assert again["to_send"] == 0 and again["changes"]["unchanged"] == 300
    staged = pipeline.stages(again["delta_path"], ledger, tmp_path / "r2")
    assert staged["stage_sizes"] == [] and len(pd.read_parquet(staged["known_ids_path"])) == 300

    expected = _changes()
    _, next_day = _run(DATA / "hr_employees_next_day.csv", tmp_path / "r3", ledger)
    changes = next_day["changes"]
    # The rehire was sent disabled on day one: now it is a rehire.
    assert changes["joiner"] == len(expected["joiners"])
    assert changes["rehire"] == len(expected["rehires"])
    assert changes["mover"] == len(expected["movers"])
    assert changes["leaver"] == len(expected["leavers"])
    assert changes["missing_disable"] == len(expected["missing"])
    delta = pd.read_parquet(next_day["delta_path"])
    assert set(delta["externalId"]) == {i for ids in expected.values() for i in ids}
    assert not delta.loc[delta["externalId"].isin(expected["leavers"] + expected["missing"]), "active"].any()
    assert next_day["disables"] == 4 and pipeline.guard(next_day)["proceed"]


def test_only_verified_records_are_committed(tmp_path):
    ledger = tmp_path / "ledger"
    _, planned = _run(DATA / "hr_employees.csv", tmp_path / "r1", ledger)
    failed = tuple(pd.read_parquet(planned["delta_path"])["externalId"].head(3))
    summary = pipeline.commit(
        ledger, planned["delta_path"], _all_succeed(planned["delta_path"], tmp_path, fail=failed), run_id="r1"
    )
    assert summary["verified"] == 297 and summary["not_verified"] == 3 and summary["failed"] == 3
    assert not set(failed) & ledger_ids(ledger)
    _, again = _run(DATA / "hr_employees.csv", tmp_path / "r2", ledger)
    assert set(pd.read_parquet(again["delta_path"])["externalId"]) == set(failed)
    # No outcomes file (verification never ran): nothing changes.
    before = read_ledger(ledger).state
    pipeline.commit(ledger, again["delta_path"], tmp_path / "absent.parquet", run_id="r2")
    pd.testing.assert_frame_equal(read_ledger(ledger).state, before)


def test_truncated_export_trips_the_guard(tmp_path):
    ledger = tmp_path / "ledger"
    _, planned = _run(DATA / "hr_employees.csv", tmp_path / "r1", ledger)
    pipeline.commit(ledger, planned["delta_path"], _all_succeed(planned["delta_path"], tmp_path), run_id="r1")
    _, truncated = _run(DATA / "hr_employees_truncated.csv", tmp_path / "r2", ledger)
    assert truncated["disables"] == truncated["changes"]["missing_disable"] > 100
    decision = pipeline.guard(truncated, max_disable_count=50, max_disable_percent=10)
    assert decision["tripped"] and not decision["proceed"]
    assert decision["limits"] == ["max_disable_count=50", "max_disable_percent=10"]
    assert f"disable {truncated['disables']} account(s) out of 284 active" in decision["message"]
    approved = pipeline.guard(truncated, max_disable_count=50, max_disable_percent=10, approved=True)
    assert approved["proceed"] and approved["approved"]
    assert pipeline.guard(truncated, max_disable_count=None, max_disable_percent=None)["proceed"]


def test_sample1_conflicting_duplicates_are_quarantined(tmp_path, microsoft_sample):
    export = microsoft_sample / "Sample1-employeeData.csv"
    transformed, planned = _run(export, tmp_path, tmp_path / "ledger", mapping=DATA / "csv2scim_mapping.yaml")
    hr = pd.read_csv(export, dtype=str, keep_default_na=False)
    quarantine = pd.read_csv(transformed["quarantine_path"], dtype=str)
    assert transformed["quarantined"] == len(quarantine) == 93
    assert quarantine["externalId"].nunique() == 44
    assert set(quarantine["stage"]) == {"validate"}
    # Rows are the export's 0-based data rows: each names its own WorkerID.
    rows = quarantine["row"].astype(int)
    assert (hr.loc[rows, "WorkerID"].to_numpy() == quarantine["externalId"].to_numpy()).all()
    assert transformed["mapped"] == 283 - 44
    assert planned["changes"]["joiner"] + planned["changes"]["inactive_new"] == planned["to_send"] == 283 - 44
    # 28% of the rows are quarantined: under the default data-quality gate (30%), so the run goes on.
    decision = pipeline.guard(planned, transform_summary=transformed)
    assert decision["proceed"] and decision["quality"]["percent"] == 28.01
    assert transformed["top_reasons"][0][0].startswith("WorkerID: '…' also appears in row(s)")
    # Managers outside the export are warnings, not rejections.
    assert transformed["warnings"] > 100


def test_quarantine_file_neutralises_formulas(tmp_path):
    hr = pd.read_csv(DATA / "hr_employees.csv", dtype=str, keep_default_na=False).head(5)
    hr.loc[0, "WorkerID"] = "=1+2"
    hr.loc[0, "WorkerStatus"] = "on strike"
    export = tmp_path / "hr.csv"
    hr.to_csv(export, index=False)
    transformed, _ = _run(export, tmp_path, tmp_path / "ledger")
    text = Path(transformed["quarantine_path"]).read_text()
    assert "'=1+2" in text and ",=1+2" not in text
    assert "WorkerStatus: unknown value 'on strike'" in text
    assert transformed["mapped"] == 4


def test_sql_extract_through_a_dbapi_hook(tmp_path):
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    database = tmp_path / "hr.db"
    rows = pd.read_csv(DATA / "hr_employees.csv", dtype=str, keep_default_na=False)
    with sqlite3.connect(database) as conn:
        frame = rows.assign(WorkerID=rows["WorkerID"].astype(int), CostCenter=None)
        frame.to_sql("hr_employees", conn, index=False)

    class SqliteHook(DbApiHook):
        conn_name_attr = "sqlite_conn_id"

        def get_conn(self):
            return sqlite3.connect(database)

    summary = pipeline.extract_sql(SqliteHook(), "SELECT * FROM hr_employees", tmp_path / "raw.parquet")
    staged = pd.read_parquet(tmp_path / "raw.parquet")
    assert summary["rows"] == 300 and summary["source"] == "SQL via SqliteHook"
    assert staged["WorkerID"].tolist() == rows["WorkerID"].tolist()  # integers back to their text
    assert (staged["CostCenter"] == "").all()  # NULL -> empty, as in a CSV
    transformed = pipeline.transform(
        tmp_path / "raw.parquet",
        DATA / "hr_mapping.yaml",
        tmp_path,
        upn_domain="contoso.com",
        ledger=tmp_path / "ledger",
    )
    assert transformed["mapped"] == 300


def test_staged_files_on_an_object_store_url(tmp_path):
    root = "memory://entra-pipeline-test"
    run = pipeline.run_dir(root, "dag", "run-1")
    ledger = pipeline.ledger_path(root, "API2AAD.job")
    assert ledger == f"{root}/ledger/API2AAD.job"
    pipeline.extract_csv(DATA / "hr_employees.csv", pipeline.join(run, pipeline.RAW_NAME))
    transformed = pipeline.transform(
        pipeline.join(run, pipeline.RAW_NAME),
        DATA / "hr_mapping.yaml",
        run,
        upn_domain="contoso.com",
        ledger=ledger,
    )
    assert transformed["mapped_path"] == f"{root}/dag/run-1/mapped.parquet"
    planned = pipeline.plan(transformed["mapped_path"], ledger, run)
    outcomes = pd.DataFrame({"external_id": pipeline.read_frame(planned["delta_path"])["externalId"]})
    outcomes["status"] = "success"
    outcomes_path = pipeline.join(run, "outcomes.parquet")
    pipeline._write_parquet(outcomes, outcomes_path)
    assert pipeline.commit(ledger, planned["delta_path"], outcomes_path, run_id="run-1")["verified"] == 300
    assert len(read_ledger(ledger).state) == 300
    summary = pipeline.write_run_summary(run, {"records_sent": 284})
    assert json.loads(pipeline._read_bytes(summary)) == {"records_sent": 284}


def test_on_demand_selection_adds_never_sent_managers(tmp_path):
    ledger = tmp_path / "ledger"
    transformed, _ = _run(DATA / "hr_employees.csv", tmp_path, ledger)
    hr = pd.read_csv(DATA / "hr_employees.csv", dtype=str, keep_default_na=False).set_index("WorkerID")
    worker = next(w for w in hr.index if hr.at[w, "ManagerID"] and hr.at[hr.at[w, "ManagerID"], "ManagerID"])
    chain = [hr.at[worker, "ManagerID"]]
    while hr.at[chain[-1], "ManagerID"]:
        chain.append(hr.at[chain[-1], "ManagerID"])

    chosen = pipeline.select_on_demand(transformed["mapped_path"], ledger, tmp_path, [worker, "x1", worker])
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
    again = pipeline.select_on_demand(transformed["mapped_path"], ledger, tmp_path, [worker])
    assert again["managers_added"] == chain[:-1]


def test_admin_accounts_are_derived_mapped_and_linked(tmp_path):
    transformed, _ = _run(DATA / "hr_employees.csv", tmp_path / "hr", tmp_path / "ledger")
    admin_ledger = tmp_path / "admin-ledger"
    derived = pipeline.derive_admins(
        transformed["normalised_path"],
        admin_ledger,
        DATA / "admin_mapping.yaml",
        tmp_path / "admin",
        upn_domain="contoso.onmicrosoft.com",
    )
    mapped = pd.read_parquet(derived["mapped_path"])
    assert derived["admins"] == derived["mapped"] == len(mapped) > 5 and derived["quarantined"] == 0
    assert mapped["externalId"].str.startswith("A").all()
    assert (mapped["externalId"].str[1:] == mapped["linked_external_id"]).all()
    assert mapped["userName"].str.match(r"^adm-[^@]+@contoso\.onmicrosoft\.com$").all()
    planned = pipeline.plan(derived["mapped_path"], admin_ledger, tmp_path / "admin")
    outcomes = _all_succeed(planned["delta_path"], tmp_path / "admin")
    pipeline.commit(admin_ledger, planned["delta_path"], outcomes, run_id="admin-1")
    linked = read_ledger(admin_ledger).state["linked_external_id"]
    assert linked.notna().all()


def test_log_review_summary(microsoft_sample):
    entries = json.loads((microsoft_sample / "provisioning-logs-response.json").read_text())["value"]
    outcomes, summary = pipeline.summarise_logs(entries)
    assert summary["entries"] == len(entries)
    assert summary["records"] == len(outcomes) == len({e["sourceIdentity"]["id"] for e in entries})
    assert sum(summary["outcomes"].values()) == summary["records"]
    assert summary["actions"]["total"]["total"] == summary["records"]
    json.dumps(summary)  # JSON-safe, for XCom


def test_extract_reads_what_spreadsheets_write_and_refuses_an_empty_export(tmp_path):
    from airflow_provider_entra.provisioning.hr_source import HrSourceError

    hr = pd.read_csv(DATA / "hr_employees.csv", dtype=str, keep_default_na=False).head(20)
    excel = tmp_path / "excel.csv"
    excel.write_bytes(hr.to_csv(index=False, sep=";").encode("cp1252", errors="replace"))
    summary = pipeline.extract_csv(excel, tmp_path / "raw.parquet")
    assert summary["rows"] == 20 and summary["delimiter"] == ";" and summary["encoding"] != "utf-8"
    assert summary["warnings"]  # not UTF-8: said so
    assert pd.read_parquet(tmp_path / "raw.parquet")["WorkerID"].tolist() == hr["WorkerID"].tolist()

    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(hr.columns) + "\n")
    with pytest.raises(HrSourceError, match="header but no data rows"):
        pipeline.extract_csv(header_only, tmp_path / "raw2.parquet")
    assert not (tmp_path / "raw2.parquet").exists()
