"""A disk that fills up mid-write (a file-size limit in a child process): nothing is left half-written.

The ledger, the staged transform outputs and the report are written to a temporary file and renamed, so a
failed write leaves the previous file (or none) and no temporary file. The upload manifest is appended line
by line; a torn last line is skipped when the task is retried, which resends at most that one request.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_entra.operators.bulk_upload import MANIFEST_NAME, EntraBulkUploadOperator
from airflow_provider_entra.provisioning import pipeline
from airflow_provider_entra.provisioning.ledger import commit, read_ledger
from airflow_provider_entra.staging import read_jsonl

CHILD = Path(__file__).with_name("_disk_full_child.py")
REPO = Path(__file__).resolve().parents[2]


def run_with_file_limit(limit: int, scenario: str, **args: object) -> str:
    done = subprocess.run(
        [sys.executable, str(CHILD), str(limit), scenario, json.dumps(args, default=str)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    assert done.returncode in (0, 3), done.stderr[-2000:]
    return last


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file() and ".tmp" in p.name)


def test_ledger_commit_that_fills_the_disk_keeps_the_previous_ledger(tmp_path):
    path = tmp_path / "ledger" / "job"
    previous = pd.DataFrame(
        {"externalId": ["1", "2"], "record_hash": ["a", "b"], "userName": ["a@x.io", "b@x.io"]}
    ).assign(active=True)
    commit(path, previous, pd.DataFrame({"external_id": ["1", "2"], "status": "success"}), run_id="before")
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    outcome = run_with_file_limit(64 * 1024, "ledger", path=path, rows=50_000)

    assert outcome.startswith("error: OSError") and "File too large" in outcome, outcome
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert read_ledger(path).state["externalId"].tolist() == ["1", "2"]
    assert temp_files(tmp_path) == []


def test_transform_that_fills_the_disk_leaves_only_whole_files(tmp_path):
    sample = pd.read_csv(REPO / "dags" / "data" / "hr_employees.csv", dtype=str, keep_default_na=False)
    copies = []
    for k in range(40):  # 12,000 rows: the sample with fresh ids and no managers
        copy = sample.assign(WorkerID=[str(int(w) + 1_000_000 * (k + 1)) for w in sample["WorkerID"]])
        copies.append(copy.assign(ManagerID=""))
    run = tmp_path / "run"
    pipeline.extract_frame(pd.concat(copies, ignore_index=True), run / pipeline.RAW_NAME, source="test")
    raw_size = (run / pipeline.RAW_NAME).stat().st_size

    # Room for a file as big as the raw rows: the normalised rows (more columns) do not fit.
    outcome = run_with_file_limit(
        raw_size + 1024, "transform", run=run, mapping=REPO / "dags/data/hr_mapping.yaml"
    )

    assert outcome.startswith("error: OSError"), outcome
    assert temp_files(tmp_path) == []
    for path in run.iterdir():  # whatever exists is whole
        if path.suffix == ".parquet":
            assert len(pd.read_parquet(path)) == 12_000
        else:
            pd.read_csv(path)
    assert not (run / pipeline.NORMALISED_NAME).exists()


def test_report_that_fills_the_disk_leaves_no_partial_report(tmp_path):
    out = tmp_path / "report"
    outcome = run_with_file_limit(32 * 1024, "report", out=out, rows=20_000)
    assert outcome.startswith("error: OSError"), outcome
    assert temp_files(tmp_path) == []
    assert not (out / "report.html").exists()
    # outcomes.csv is written first; if it exists it is whole.
    if (out / "outcomes.csv").exists():
        assert len(pd.read_csv(out / "outcomes.csv")) == 20_000


@pytest.mark.slow
def test_manifest_torn_by_a_full_disk_is_resumed_resending_at_most_one_request(entra_env, support, tmp_path):
    emulator = entra_env
    records = 2500  # 50 requests; each manifest line holds 50 externalIds
    path = support.stage_hr(tmp_path / "run", support.hr_frame(records))
    out = tmp_path / "run" / "out"
    limit = 24 * 1024
    outcome = run_with_file_limit(limit, "upload", input=path, mapping=support.MAPPING, out=out)
    manifest = out / MANIFEST_NAME
    assert outcome.startswith("error: OSError"), outcome
    size = manifest.stat().st_size
    assert size == limit  # the last line was cut where the disk filled up
    assert not manifest.read_bytes().endswith(b"\n")
    kept = read_jsonl(manifest)  # the torn line is skipped
    assert 0 < len(kept) < records // 50

    summary = EntraBulkUploadOperator(
        task_id="upload",
        input_path=str(path),
        mapping=support.MAPPING,
        output_dir=str(out),
        bulk_id_prefix="diskfull-",
    ).execute({"run_id": "manual__disk_full"})

    assert summary["resumed_requests"] == len(kept)
    assert summary["sent_requests"] == records // 50 - len(kept)
    lines = read_jsonl(manifest)
    assert sorted(line["seq"] for line in lines) == list(range(records // 50))
    accepted = support.accepted_digests(emulator)
    assert len(accepted) == records // 50
    assert sum(n - 1 for n in accepted.values()) <= 1
    emulator.process()
    assert len(emulator.users()) == records
