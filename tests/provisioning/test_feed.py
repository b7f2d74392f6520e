"""provisioning.feed: an HR export (a CSV, a SQL query) staged as text and mapped to SCIM records, bad rows
quarantined with a reason each."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_entra.provisioning import feed, guard

DATA = Path(__file__).resolve().parents[2] / "dags" / "data"


def test_extract_reads_what_spreadsheets_write_and_refuses_an_empty_export(tmp_path, steps):
    from airflow_provider_entra.provisioning.hr_source import HrSourceError

    hr = pd.read_csv(DATA / "hr_employees.csv", dtype=str, keep_default_na=False).head(20)
    excel = tmp_path / "excel.csv"
    excel.write_bytes(hr.to_csv(index=False, sep=";").encode("cp1252", errors="replace"))
    summary = feed.extract_csv(excel, tmp_path / "raw.parquet")
    assert summary["rows"] == 20 and summary["delimiter"] == ";" and summary["encoding"] != "utf-8"
    assert summary["warnings"]  # not UTF-8: said so
    assert pd.read_parquet(tmp_path / "raw.parquet")["WorkerID"].tolist() == hr["WorkerID"].tolist()

    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(hr.columns) + "\n")
    with pytest.raises(HrSourceError, match="header but no data rows"):
        feed.extract_csv(header_only, tmp_path / "raw2.parquet")
    assert not (tmp_path / "raw2.parquet").exists()


def test_sql_extract_through_a_dbapi_hook(tmp_path, steps):
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

    summary = feed.extract_sql(SqliteHook(), "SELECT * FROM hr_employees", tmp_path / "raw.parquet")
    staged = pd.read_parquet(tmp_path / "raw.parquet")
    assert summary["rows"] == 300 and summary["source"] == "SQL via SqliteHook"
    assert staged["WorkerID"].tolist() == rows["WorkerID"].tolist()  # integers back to their text
    assert (staged["CostCenter"] == "").all()  # NULL -> empty, as in a CSV
    transformed = feed.transform(
        tmp_path / "raw.parquet",
        DATA / "hr_mapping.yaml",
        tmp_path,
        upn_domain="contoso.com",
        ledger=tmp_path / "ledger",
    )
    assert transformed["mapped"] == 300


def test_quarantine_file_neutralises_formulas(tmp_path, steps):
    hr = pd.read_csv(DATA / "hr_employees.csv", dtype=str, keep_default_na=False).head(5)
    hr.loc[0, "WorkerID"] = "=1+2"
    hr.loc[0, "WorkerStatus"] = "on strike"
    export = tmp_path / "hr.csv"
    hr.to_csv(export, index=False)
    transformed, _ = steps.run(export, tmp_path, tmp_path / "ledger")
    text = Path(transformed["quarantine_path"]).read_text()
    assert "'=1+2" in text and ",=1+2" not in text
    assert "WorkerStatus: unknown value 'on strike'" in text
    assert transformed["mapped"] == 4


def test_sample1_conflicting_duplicates_are_quarantined(tmp_path, microsoft_sample, steps):
    export = microsoft_sample / "Sample1-employeeData.csv"
    transformed, planned = steps.run(
        export, tmp_path, tmp_path / "ledger", mapping=DATA / "csv2scim_mapping.yaml"
    )
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
    decision = guard.decide(planned, transform_summary=transformed)
    assert decision["proceed"] and decision["quality"]["percent"] == 28.01
    assert transformed["top_reasons"][0][0].startswith("WorkerID: '…' also appears in row(s)")
    # Managers outside the export are warnings, not rejections.
    assert transformed["warnings"] > 100


def test_map_export_is_extract_then_transform(tmp_path):
    summary = feed.map_export(
        DATA / "hr_employees.csv",
        DATA / "hr_mapping.yaml",
        tmp_path,
        upn_domain="contoso.com",
        ledger=tmp_path / "l",
    )
    assert summary["mapped"] == 300 and summary["source"] == str(DATA / "hr_employees.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "held.parquet",
        "hr_raw.parquet",
        "mapped.parquet",
        "normalised.parquet",
        "quarantine.csv",
        "warnings.csv",
    ]


def test_top_reasons_leave_the_values_out():
    quarantine = pd.DataFrame(
        {
            "reason": [
                "WorkerID: '12' also appears in row(s) 4, 9",
                "WorkerID: '13' also appears in row(s) 5",
                "HireDate: cannot read '31/02/2020' (expected YYYY-MM-DD)",
            ]
        }
    )
    assert feed.top_reasons(quarantine) == [
        ["WorkerID: '…' also appears in row(s) N", 2],
        ["HireDate: cannot read '…'", 1],
    ]
    assert feed.top_reasons(quarantine.iloc[:0]) == []
