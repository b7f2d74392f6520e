"""Malformed HR exports (``tests/data/bad_inputs/``) through the pure pipeline: read, transform, plan, stages.

Each file has one defect and an expectation in ``cases.json`` (see ``make_corpus.py``): a clear error naming
the problem, or a quarantine reason per bad row while every good row goes through. Whatever happens, nothing
half-written is left behind, and the CSV files people open neutralise spreadsheet formulas.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from airflow_provider_entra.provisioning import pipeline
from airflow_provider_entra.provisioning.hr_source import HrSourceError, read_hr_csv
from airflow_provider_entra.provisioning.report import FORMULA_PREFIXES

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "bad_inputs"
MAPPING = REPO / "dags" / "data" / "hr_mapping.yaml"
CASES = json.loads((CORPUS / "cases.json").read_text(encoding="utf-8"))
HOSTILE = [c for c in CASES if c.get("hostile")]


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def run_pipeline(source: Path, work: Path) -> dict[str, Any]:
    """Read, stage, transform, plan and stage an export the way the example DAG does (no upload)."""
    result: dict[str, Any] = {"step": "read"}
    raw = read_hr_csv(source)
    result["read_warnings"] = raw.attrs["warnings"]
    run = work / "run"
    ledger = work / "ledger"
    result["step"] = "transform"
    pipeline.extract_frame(raw, run / pipeline.RAW_NAME, source=str(source))
    result["transform"] = pipeline.transform(
        run / pipeline.RAW_NAME, MAPPING, run, upn_domain="contoso.com", ledger=ledger
    )
    result["step"] = "plan"
    result["plan"] = pipeline.plan(
        result["transform"]["mapped_path"], ledger, run, held_path=result["transform"]["held_path"]
    )
    result["stages"] = pipeline.stages(result["plan"]["delta_path"], ledger, run)
    result["step"] = "done"
    return result


def csv_cells(path: str | Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files anywhere below ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and ".tmp" in p.name)


# --- the corpus itself --------------------------------------------------------------------------------------


def test_corpus_has_at_least_30_files_each_with_an_expectation():
    files = sorted(p.name for p in CORPUS.glob("*.csv"))
    assert len(files) >= 30
    assert sorted(c["file"] for c in CASES) == files
    kinds = {c["kind"] for c in CASES}
    assert kinds == {"ok", "quarantine", "error"}
    for case in CASES:
        assert case["defect"]
        if case["kind"] == "error":
            assert case["step"] in ("read", "transform") and case["message"]
        else:
            assert "passes" in case
        if case["kind"] == "quarantine":
            assert case["quarantined"]


def test_committed_corpus_matches_its_generator(tmp_path):
    _load_generator().write(tmp_path)
    for generated in sorted(tmp_path.iterdir()):
        assert generated.read_bytes() == (CORPUS / generated.name).read_bytes(), (
            f"{generated.name} is stale: run python tests/data/bad_inputs/make_corpus.py"
        )


# --- each file ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_bad_input(case: dict[str, Any], tmp_path: Path) -> None:
    source = CORPUS / case["file"]
    result: dict[str, Any] = {}
    error: Exception | None = None
    try:
        result = run_pipeline(source, tmp_path)
    except Exception as exc:  # the expectation says whether an error is right, and which
        error = exc
    assert leftovers(tmp_path) == []

    if case["kind"] == "error":
        assert error is not None, f"{case['file']} ({case['defect']}) went through"
        assert case["message"] in str(error), str(error)
        if case["step"] == "read":
            assert isinstance(error, HrSourceError)
            assert case["file"] in str(error)  # the message names the file
            assert not (tmp_path / "run").exists()  # nothing staged
        else:
            # Only the staged raw rows exist: no half set of transform outputs.
            assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [pipeline.RAW_NAME]
        return
    assert error is None, f"{case['file']}: {type(error).__name__}: {error}"

    transform = result["transform"]
    quarantine = pd.read_csv(transform["quarantine_path"], dtype=str, keep_default_na=False)
    found = {(int(r.row), str(r.stage)): str(r.reason) for r in quarantine.itertuples(index=False)}
    for cycle in result["stages"]["cycles"]:
        found[(-1, "stages:" + cycle["externalId"])] = cycle["reason"]
    expected = case.get("quarantined", [])
    for item in expected:
        if item["step"] == "stages":
            continue
        key = (item["row"], item["step"])
        assert key in found, f"row {item['row']} not quarantined by {item['step']}: {found}"
        assert item["reason"] in found[key], found[key]
    stage_rejects = [item for item in expected if item["step"] == "stages"]
    assert len(result["stages"]["cycles"]) == len(stage_rejects)
    for cycle in result["stages"]["cycles"]:
        assert "management cycle" in cycle["reason"]
    # No row was quarantined that the expectation does not name.
    assert len(quarantine) == len(expected) - len(stage_rejects), quarantine.to_dict("records")

    # Every good row goes through (cycle members are set aside by the upload's stages).
    delta = pd.read_parquet(result["plan"]["delta_path"])
    cycle_ids = {c["externalId"] for c in result["stages"]["cycles"]}
    sent = [i for i in delta["externalId"].astype(str) if i not in cycle_ids]
    assert sorted(sent) == sorted(case["passes"])

    if "read_warning" in case:
        assert any(case["read_warning"] in w for w in result["read_warnings"]), result["read_warnings"]
    if "warning" in case:
        warnings = pd.read_csv(transform["warnings_path"], dtype=str, keep_default_na=False)
        hits = warnings[warnings["externalId"] == case["warning"]["externalId"]]
        assert len(hits) == 1 and case["warning"]["reason"] in hits["reason"].iloc[0]

    # Files people open in a spreadsheet never start a text cell with a formula character.
    for path in (transform["quarantine_path"], transform["warnings_path"]):
        for cells in csv_cells(path)[1:]:
            for cell in cells:
                assert not cell.startswith(FORMULA_PREFIXES), f"{Path(path).name}: {cell!r}"


def test_quarantined_formula_id_is_shown_neutralised(tmp_path):
    result = run_pipeline(CORPUS / "csv_formula_strings.csv", tmp_path)
    rows = csv_cells(result["transform"]["quarantine_path"])
    header, body = rows[0], rows[1:]
    by_column = [dict(zip(header, r, strict=True)) for r in body]
    assert [r["externalId"] for r in by_column] == ["'@cmd"]
    assert by_column[0]["reason"].startswith("WorkerStatus: unknown value '=cmd|")


# --- reports: the hostile rows uploaded, verified from the logs, and reported -------------------------------


def test_reports_escape_html_and_neutralise_formulas_from_hostile_exports(entra_env, tmp_path):
    from airflow_provider_entra.hooks.entra import EntraHook
    from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator
    from airflow_provider_entra.provisioning.reconcile import reconcile
    from airflow_provider_entra.provisioning.report import write_report

    sent: list[str] = []
    for number, case in enumerate(HOSTILE + [c for c in CASES if c["file"] == "emoji_and_right_to_left.csv"]):
        work = tmp_path / f"case{number}"
        result = run_pipeline(CORPUS / case["file"], work)
        summary = EntraBulkUploadOperator(
            task_id="upload",
            input_path=result["plan"]["delta_path"],
            output_dir=str(work / "upload"),
            bulk_id_prefix=f"hostile{number}-",
        ).execute({"run_id": f"manual__hostile{number}"})
        assert summary["rejected"] == 0
        sent += pd.read_parquet(result["plan"]["delta_path"])["externalId"].astype(str).tolist()
    entra_env.process()

    entries = list(EntraHook().iter_provisioning_logs(page_size=500))
    outcomes = reconcile(entries, sent)
    assert "missing" not in set(outcomes["status"])  # every record sent has its outcome in the logs
    assert "<b>1008</b>" in set(outcomes["external_id"]) and "=1+2" in set(outcomes["external_id"])
    paths = write_report(outcomes, tmp_path / "report", run_id="manual__<script>alert('run')</script>")

    page = Path(paths.html).read_text(encoding="utf-8")
    for raw in ("<script", "<b>1008", "<img", "onerror=alert", "</td><b>"):
        assert raw not in page, raw
    assert "&lt;b&gt;1008&lt;/b&gt;" in page
    assert "&lt;script&gt;alert(&#x27;run&#x27;)&lt;/script&gt;" in page

    rows = csv_cells(paths.csv)
    header = rows[0]
    records = [dict(zip(header, r, strict=True)) for r in rows[1:]]
    for record in records:
        for column, cell in record.items():
            assert not cell.startswith(FORMULA_PREFIXES), (column, cell)
    ids = {r["external_id"] for r in records}
    assert "'=1+2" in ids and "<b>1008</b>" in ids  # shown, neutralised, not dropped
    frame = pd.read_csv(io.StringIO(Path(paths.csv).read_text(encoding="utf-8")), dtype=str)
    assert len(frame) == len(set(sent))
