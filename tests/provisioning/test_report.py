"""The per-run CSV and HTML report."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from airflow_provider_entra.provisioning.reconcile import outcome_summary, reconcile
from airflow_provider_entra.provisioning.report import (
    CSV_NAME,
    HTML_NAME,
    neutralise_formulas,
    render_html,
    write_report,
)

SAMPLE_IDS = ["10015", "10016", "10017", "10018", "10019", "10020", "1514131211"]
EVIL_NAME = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("http://x","y")'
GENERATED = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def _entry(
    external_id: str, *, status: str = "success", error: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": f"log-{external_id}",
        "activityDateTime": "2026-03-02T08:05:00Z",
        "cycleId": "cycle-1",
        "changeId": f"change-{external_id}",
        "provisioningAction": "create",
        "sourceIdentity": {"id": external_id},
        "targetIdentity": {"id": "", "details": {"UserPrincipalName": f"{external_id}@contoso.com"}},
        "provisioningStatusInfo": {"status": status, "errorInformation": error},
    }


@pytest.fixture(scope="module")
def sample_outcomes(microsoft_sample: Path) -> pd.DataFrame:
    entries = json.loads((microsoft_sample / "provisioning-logs-response.json").read_text())["value"]
    return reconcile(entries, [*SAMPLE_IDS, "missing-1"])


@pytest.fixture
def hostile_outcomes() -> pd.DataFrame:
    failure = _entry(
        EVIL_NAME,
        status="failure",
        error={
            "errorCode": FORMULA,
            "reason": "Name <img src=x onerror=alert(2)> & co",
            "recommendedAction": "@SUM(1+1)",
        },
    )
    return reconcile([failure, _entry("+15551234")], [EVIL_NAME, "+15551234", "-1"])


class _Collector(HTMLParser):
    """Tags, attributes and text of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(document: str) -> _Collector:
    collector = _Collector()
    collector.feed(document)
    return collector


# --- escaping and formula injection -------------------------------------------------------------------------


def test_html_escapes_everything_it_shows(hostile_outcomes: pd.DataFrame) -> None:
    document = render_html(
        hostile_outcomes,
        run_id='"><script>alert(3)</script>',
        summary={"note": "<iframe src=//evil>", "<b>key</b>": "v"},
        generated_at=GENERATED,
    )
    parsed = parse(document)
    assert {tag for tag, _ in parsed.tags}.isdisjoint({"script", "img", "iframe", "b"})
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "&lt;img src=x onerror=alert(2)&gt; &amp; co" in document
    # The escaped text reads back as the original value.
    assert EVIL_NAME in "".join(parsed.text)
    for _, attrs in parsed.tags:
        for value in attrs.values():
            assert "<" not in (value or "")


def test_html_is_self_contained(sample_outcomes: pd.DataFrame) -> None:
    document = render_html(sample_outcomes, run_id="r1", generated_at=GENERATED)
    parsed = parse(document)
    tags = {tag for tag, _ in parsed.tags}
    assert "script" not in tags and "link" not in tags and "img" not in tags
    assert "svg" in tags and "style" in tags
    for _, attrs in parsed.tags:
        assert "src" not in attrs and "href" not in attrs


def test_csv_neutralises_formulas(tmp_path: Path, hostile_outcomes: pd.DataFrame) -> None:
    paths = write_report(hostile_outcomes, tmp_path, run_id="r1")
    rows = list(csv.DictReader(io.StringIO(paths.csv.read_text(encoding="utf-8"))))
    by_id = {row["external_id"]: row for row in rows}
    assert set(by_id) == {EVIL_NAME, "'+15551234", "'-1"}
    assert by_id[EVIL_NAME]["error_code"] == "'" + FORMULA
    assert by_id[EVIL_NAME]["recommended_action"] == "'@SUM(1+1)"
    assert by_id[EVIL_NAME]["upn"] == f"{EVIL_NAME}@contoso.com"
    # Numeric and boolean columns are written as they are.
    assert by_id["'-1"]["entries"] == "0" and by_id["'-1"]["status"] == "missing"
    assert by_id["'+15551234"]["resolved_later"] == "False"


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_neutralise_formulas_each_prefix(prefix: str) -> None:
    frame = pd.DataFrame({"text": [f"{prefix}cmd", "plain", None], "number": [-5, 3, 0]})
    safe = neutralise_formulas(frame)
    assert safe["text"].iloc[0] == f"'{prefix}cmd"
    assert safe["text"].iloc[1] == "plain"
    assert pd.isna(safe["text"].iloc[2])
    assert safe["number"].tolist() == [-5, 3, 0]
    assert frame["text"].iloc[0] == f"{prefix}cmd"  # the input is not modified


def test_secrets_in_summary_are_redacted(tmp_path: Path, sample_outcomes: pd.DataFrame) -> None:
    summary = {
        "client_secret": "s3cr3t-value",
        "access_token": "eyJabc",
        "Private key": "-----BEGIN",
        "dag": "d",
    }
    document = write_report(sample_outcomes, tmp_path, run_id="r1", summary=summary).html.read_text()
    for secret in ("s3cr3t-value", "eyJabc", "-----BEGIN"):
        assert secret not in document
    assert document.count("[redacted]") == 3


# --- content ------------------------------------------------------------------------------------------------


def test_sample_report_contains_every_external_id(tmp_path: Path, sample_outcomes: pd.DataFrame) -> None:
    paths = write_report(sample_outcomes, tmp_path, run_id="sample")
    document = paths.html.read_text(encoding="utf-8")
    text = "".join(parse(document).text)
    for external_id in [*SAMPLE_IDS, "missing-1"]:
        assert external_id in text
    written = pd.read_csv(paths.csv, dtype={"external_id": str})
    assert written["external_id"].tolist() == [*SAMPLE_IDS, "missing-1"]
    assert written["activity_time"].iloc[3] == "2023-01-03T22:40:50Z"


def test_counts_in_html_match_the_frame(sample_outcomes: pd.DataFrame) -> None:
    document = render_html(sample_outcomes, run_id="sample", generated_at=GENERATED)
    tags = parse(document).tags
    cards = {a["data-status"]: int(a["data-count"]) for t, a in tags if t == "div" and "data-count" in a}
    expected = sample_outcomes["status"].value_counts().to_dict()
    assert cards["total"] == len(sample_outcomes) == 8
    for status in ("success", "warning", "failure", "skipped", "missing"):
        assert cards[status] == expected.get(status, 0)
    assert (cards["success"], cards["warning"], cards["missing"]) == (6, 1, 1)

    cells = re.findall(r'data-action="([^"]+)" data-status="([^"]+)">(\d+)<', document)
    table = outcome_summary(sample_outcomes)
    assert len(cells) == table.size
    for action, status, count in cells:
        assert table.loc[action, status] == int(count)
    resolved = [a for t, a in tags if a.get("id") == "resolved-later"]
    assert int(resolved[0]["data-count"]) == int(sample_outcomes["resolved_later"].sum()) == 5


def test_failures_section_shows_reason_and_recommended_action() -> None:
    error = {
        "errorCode": "AzureActiveDirectoryInvalidUserPrincipalName",
        "reason": "The userPrincipalName is already in use.",
        "recommendedAction": "Give the user a unique userPrincipalName.",
    }
    outcomes = reconcile([_entry("7", status="failure", error=error)], ["7", "8"])
    document = render_html(outcomes, run_id="r", generated_at=GENERATED)
    failures = document.split('id="failures"')[1].split("</section>")[0]
    assert "AzureActiveDirectoryInvalidUserPrincipalName" in failures
    assert "already in use" in failures and "Give the user a unique userPrincipalName." in failures
    missing = document.split('id="missing"')[1].split("</section>")[0]
    assert '<li class="id">8</li>' in missing
    assert "2 of 2 records will be sent again next run" in document


def test_long_sections_are_capped(sample_outcomes: pd.DataFrame) -> None:
    outcomes = reconcile([], [str(i) for i in range(30)])
    document = render_html(outcomes, run_id="r", generated_at=GENERATED, max_rows=10)
    missing = document.split('id="missing"')[1].split("</section>")[0]
    assert missing.count("<li") == 10
    assert f"20 more in {CSV_NAME}" in missing


def test_timings_show_submit_to_log_delays(sample_outcomes: pd.DataFrame) -> None:
    timings = {
        "submitted_at": datetime(2023, 1, 3, 20, 35, 0, tzinfo=timezone.utc),
        "upload_duration": timedelta(seconds=73),
    }
    document = render_html(sample_outcomes, run_id="r", timings=timings, generated_at=GENERATED)
    section = document.split('id="timing"')[1].split("</section>")[0]
    assert "First submit" in section and "2023-01-03 20:35:00 UTC" in section
    assert "First log entry</th><td>2023-01-03 20:40:45 UTC" in section
    assert "First submit → first log entry</th><td>5 min 45 s" in section
    assert "First submit → last log entry</th><td>2 h 05 min" in section
    assert "Upload duration</th><td>1 min 13 s" in section


def test_all_good_and_empty_runs() -> None:
    ok = render_html(reconcile([_entry("1")], ["1"]), run_id="r", generated_at=GENERATED)
    assert "All 1 records were provisioned." in ok
    empty = render_html(reconcile([], []), run_id="r", generated_at=GENERATED)
    assert "No records were sent in this run." in empty


# --- writing ------------------------------------------------------------------------------------------------


def test_atomic_write_leaves_no_temporary_file(tmp_path: Path, sample_outcomes: pd.DataFrame) -> None:
    out = tmp_path / "runs" / "r1"
    first = write_report(sample_outcomes, str(out), run_id="r1")
    assert first.html == out / HTML_NAME and first.csv == out / CSV_NAME
    second = write_report(sample_outcomes.head(2), out, run_id="r1-again")
    assert sorted(os.listdir(out)) == [CSV_NAME, HTML_NAME]
    assert "r1-again" in second.html.read_text(encoding="utf-8")
    assert len(pd.read_csv(second.csv)) == 2


def test_failed_write_removes_its_temporary_file(tmp_path: Path, sample_outcomes: pd.DataFrame) -> None:
    (tmp_path / HTML_NAME).mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(OSError):
        write_report(sample_outcomes, tmp_path, run_id="r1")
    assert sorted(os.listdir(tmp_path)) == [CSV_NAME, HTML_NAME]
    assert (tmp_path / HTML_NAME).is_dir()


def test_object_storage_path(tmp_path: Path, sample_outcomes: pd.DataFrame) -> None:
    from airflow.sdk import ObjectStoragePath

    remote = ObjectStoragePath("memory://entra-reports/run-1")
    paths = write_report(sample_outcomes, remote, run_id="r1")
    assert "10018" in paths.html.read_text()
    assert paths.csv.read_text().startswith("external_id,status,")

    local = ObjectStoragePath(f"file://{tmp_path}/osp")
    paths = write_report(sample_outcomes, local, run_id="r1")
    assert isinstance(paths.html, ObjectStoragePath)
    assert sorted(os.listdir(tmp_path / "osp")) == [CSV_NAME, HTML_NAME]
