"""provisioning.summary: what a run leaves for people (report, run summary) and the provisioning-log
review."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from airflow_provider_entra.provisioning import guard, summary
from airflow_provider_entra.provisioning.reconcile import reconcile
from airflow_provider_entra.provisioning.verdict import Tally, verdict


def test_log_review_summary(microsoft_sample):
    entries = json.loads((microsoft_sample / "provisioning-logs-response.json").read_text())["value"]
    outcomes, found = summary.summarise_logs(entries)
    assert found["entries"] == len(entries)
    assert found["records"] == len(outcomes) == len({e["sourceIdentity"]["id"] for e in entries})
    assert sum(found["outcomes"].values()) == found["records"]
    assert found["actions"]["total"]["total"] == found["records"]
    json.dumps(found)  # JSON-safe, for XCom


def test_the_review_writes_its_report_and_judges_by_the_one_verdict(tmp_path, microsoft_sample):
    entries = json.loads((microsoft_sample / "provisioning-logs-response.json").read_text())["value"]
    since = datetime(2000, 1, 1, tzinfo=timezone.utc)
    found = summary.review_logs(
        entries, f"file://{tmp_path}/run", since=since, job_id="job", dag_id="review", run_id="r1"
    )
    files = found["files"]
    assert Path(files["report_html"]) == tmp_path / "run" / "report.html"  # local: a local path
    assert json.loads(Path(files["run_summary"]).read_text())["records"] == found["records"]
    assert found["failures"] == found["outcomes"]["failure"] and found["missing"] == 0
    if found["failures"]:
        assert verdict(Tally.of(found), max_failures=0)
    assert verdict(Tally.of(found), max_failures=None) is None


def test_a_stopped_run_says_what_to_do_and_leaves_its_report(tmp_path):
    planned = {"disables": 80, "active": 100, "held": 0, "held_ids": [], "stuck": []}
    transformed = {"quarantined": 0, "input_rows": 100, "mapped": 100, "quarantine_path": "q.csv"}
    decision = guard.decide(planned, transform_summary=transformed)
    stop = summary.write_stopped_run(
        tmp_path,
        dag_id="d",
        run_id="r1",
        decision=decision,
        approval_minutes=60,
        transformed=transformed,
        planned=planned,
    )
    assert stop["status"] == "guard_tripped" and stop["ask_approval"]
    assert "approve the 'approve_disables' task of this run in the UI" in stop["message"]
    assert stop["report_html"] == str(tmp_path / "report.html")
    written = json.loads((tmp_path / "run-summary.json").read_text())
    assert written["status"] == "guard_tripped" and written["records_sent"] == 0
    assert written["message"] == stop["message"] and written["files"]["quarantine"] == "q.csv"

    # Without a transform summary (the admin accounts' guard): the run summary alone.
    admin = tmp_path / "admin"
    stop = summary.write_stopped_run(admin, dag_id="a", run_id="r2", decision=decision)
    assert not stop["ask_approval"] and stop["report_html"] is None
    assert "trigger the DAG again with the Param approve_disables: true." in stop["message"]
    assert sorted(p.name for p in admin.iterdir()) == ["run-summary.json"]


def test_the_run_report_joins_what_was_sent(tmp_path):
    sent = pd.DataFrame(
        {
            "externalId": ["1", "2"],
            "displayName": ["Ada Lovelace", "Alan Turing"],
            "change": ["joiner", "mover"],
        }
    )
    sent.to_parquet(tmp_path / "delta.parquet")
    outcomes = reconcile([], ["1", "2"])  # neither has a log entry yet
    outcomes.to_parquet(tmp_path / "outcomes.parquet")
    files = summary.write_run_report(
        tmp_path,
        run_id="r1",
        sent_path=tmp_path / "delta.parquet",
        outcomes_path=tmp_path / "outcomes.parquet",
    )
    assert files == {
        "report_html": str(tmp_path / "report.html"),
        "report_csv": str(tmp_path / "outcomes.csv"),
    }
    html = (tmp_path / "report.html").read_text()
    assert "Ada Lovelace" in html and "mover" in html
