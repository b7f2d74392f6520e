"""Staged files hold personal data: under a permissive umask every file and folder is still owner-only.

The pipeline's real steps run on the sample export (300 people: names, addresses, phone numbers) and commit
to the job's ledger; the files the upload operator, the log trigger and the sensor write are made through the
same staging helpers they call, and the report is written the way the sensor and the review DAG write it.
Nothing under the staging root may be readable, writable or searchable by group or others.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_entra import staging
from airflow_provider_entra._atomic import atomic_write_bytes, open_private_append, private_mkdir
from airflow_provider_entra.provisioning import pipeline
from airflow_provider_entra.provisioning.reconcile import reconcile
from airflow_provider_entra.provisioning.report import write_report

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "dags" / "data"
DAG = "entra_hr_provisioning"

#: Who writes what, named in the failure message so the offending call site is found at once.
WRITERS = {
    pipeline.RAW_NAME: "provisioning/feed.py extract_csv -> _fsio.write_frame",
    pipeline.NORMALISED_NAME: "provisioning/feed.py transform -> _fsio.write_frame",
    pipeline.MAPPED_NAME: "provisioning/feed.py transform -> _fsio.write_frame",
    pipeline.QUARANTINE_NAME: "provisioning/feed.py transform -> _fsio.write_frame",
    pipeline.WARNINGS_NAME: "provisioning/feed.py transform -> _fsio.write_frame",
    pipeline.DELTA_NAME: "provisioning/sync.py plan -> _fsio.write_frame",
    pipeline.KNOWN_IDS_NAME: "provisioning/sync.py stages -> _fsio.write_frame",
    pipeline.HR_CURRENT_NAME: "provisioning/sync.py commit -> _fsio.write_frame",
    pipeline.RUN_SUMMARY_NAME: "provisioning/summary.py write_run_summary -> _fsio.write_bytes",
    "upload-manifest.jsonl": "upload/manifest.py LineWriter -> _fsio.write_bytes_on",
    "upload-refused.jsonl": "upload/manifest.py LineWriter -> _fsio.write_bytes_on",
    "sent-external-ids.parquet": "upload/run.py -> _fsio.write_frame",
    "dry-run-requests.jsonl": "upload/run.py -> _fsio.write_bytes",
    "dry-run-summary.json": "upload/run.py -> _fsio.write_bytes",
    "provisioning-log-entries.jsonl": "triggers/provisioning_logs.py -> _fsio.append_jsonl",
    "provisioning-log-entries.jsonl.state.json": "triggers/provisioning_logs.py -> _fsio.write_bytes",
    "outcomes.parquet": "sensors/provisioning_logs.py -> _fsio.write_frame",
    "outcomes.csv": "provisioning/report.py write_report -> _fsio.write_bytes",
    "report.html": "provisioning/report.py write_report -> _fsio.write_bytes",
}


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _open_to_others(root: Path) -> list[str]:
    """Every path at or under ``root`` that group or others may access, with its mode and writer."""
    found = []
    for path in [root, *sorted(root.rglob("*"))]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            if path.name in WRITERS:
                writer = WRITERS[path.name]
            elif "ledger" in path.relative_to(root).parts:
                writer = "provisioning/ledger.py -> _fsio.write_bytes"
            else:
                writer = "a folder created on the way" if path.is_dir() else "unknown"
            found.append(f"{path.relative_to(root.parent)} {oct(mode)} (written by {writer})")
    return found


def _files(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*") if p.is_file()}


def test_a_whole_run_stages_owner_only_files(tmp_path: Path, permissive_umask: None) -> None:
    root = tmp_path / "entra-staging"  # created by the first write, as on a fresh deployment
    run = staging.to_path(str(pipeline.run_dir(str(root), DAG, "manual__2026-06-01T01:00:00+00:00")))
    snap = staging.to_path(str(pipeline.snapshot_dir(str(root), DAG)))
    ledger = staging.to_path(str(pipeline.ledger_path(str(root), "API2AAD.tenant.job")))

    # The example DAG's steps, on the files and paths it uses (ObjectStoragePath file://).
    pipeline.extract_csv(staging.to_path(str(DATA / "hr_employees.csv")), run / pipeline.RAW_NAME)
    transformed = pipeline.transform(
        run / pipeline.RAW_NAME,
        staging.to_path(str(DATA / "hr_mapping.yaml")),
        run,
        upn_domain="contoso.com",
        ledger=ledger,
    )
    planned = pipeline.plan(staging.to_path(transformed["mapped_path"]), ledger, run)
    pipeline.stages(staging.to_path(planned["delta_path"]), ledger, run)

    # What the upload operator, the trigger and the sensor stage, through the helpers they call.
    ids = pipeline.read_frame(planned["delta_path"])["externalId"].astype(str)
    staging.append_jsonl(run / "upload-manifest.jsonl", [{"seq": 0, "external_ids": list(ids[:50])}])
    staging.append_jsonl(run / "upload-manifest.jsonl", [{"seq": 1, "external_ids": list(ids[50:100])}])
    staging.write_frame(pd.DataFrame({"externalId": ids}), run / "sent-external-ids.parquet")
    staging.append_jsonl(run / "upload-refused.jsonl", [{"external_ids": [ids[0]], "status_code": 400}])
    staging.write_jsonl(run / "dry-run-requests.jsonl", [{"displayName": "Ada Lovelace"}])
    staging.write_bytes(run / "dry-run-summary.json", b"{}")
    entries = [
        {
            "id": f"entry-{i}",
            "activityDateTime": "2026-06-01T01:05:00Z",
            "sourceIdentity": {"id": i, "displayName": "someone"},
            "provisioningAction": "create",
            "provisioningStatusInfo": {"status": "success"},
        }
        for i in ids[:200]
    ]
    staging.append_jsonl(run / "provisioning-log-entries.jsonl", entries)
    staging.write_bytes(run / "provisioning-log-entries.jsonl.state.json", b'{"polls": 1}')
    outcomes = reconcile(entries, ids)
    outcomes_path = staging.write_frame(outcomes, run / "outcomes.parquet")
    write_report(outcomes, staging.local_path(run), run_id="manual__2026-06-01T01:00:00+00:00")

    committed = pipeline.commit(
        ledger,
        staging.to_path(planned["delta_path"]),
        outcomes_path,
        run_id="manual__2026-06-01T01:00:00+00:00",
        normalised_path=staging.to_path(transformed["normalised_path"]),
        hr_current_path=snap / pipeline.HR_CURRENT_NAME,
    )
    assert committed["verified"] == 200
    pipeline.write_run_report(
        run,
        run_id="manual__2026-06-01T01:00:00+00:00",
        sent_path=staging.to_path(planned["delta_path"]),
        outcomes_path=outcomes_path,
        transformed=transformed,
        planned=planned,
    )
    pipeline.write_run_summary(run, {"dag_id": DAG, "status": "done"})

    staged = _files(root)
    assert {*WRITERS} <= staged, f"the run did not stage {sorted({*WRITERS} - staged)}"
    assert any((root / "ledger").rglob("*.parquet")), "the commit wrote no ledger file"
    offenders = _open_to_others(root)
    assert not offenders, "staged files or folders readable by group or others:\n" + "\n".join(offenders)


def test_a_report_into_a_new_folder_is_owner_only(tmp_path: Path, permissive_umask: None) -> None:
    """The review DAG writes its report first, into a run folder that does not exist yet."""
    root = tmp_path / "entra-staging"
    run = pipeline.run_dir(root, "entra_provisioning_review", "manual__1")
    write_report(reconcile([], ["1001"]), run, run_id="manual__1")
    offenders = _open_to_others(root)
    assert not offenders, "staged files or folders readable by group or others:\n" + "\n".join(offenders)


def test_helpers_are_owner_only_whatever_the_umask(tmp_path: Path, permissive_umask: None) -> None:
    atomic_write_bytes(tmp_path / "a" / "b" / "file.bin", b"x")
    with open_private_append(tmp_path / "c" / "log.jsonl") as handle:
        handle.write(b"{}\n")
    private_mkdir(tmp_path / "d" / "e")
    os.umask(0o777)  # even a umask that removes the owner's own bits
    private_mkdir(tmp_path / "f")
    offenders = _open_to_others(tmp_path)[1:]  # tmp_path itself is pytest's
    assert not offenders, offenders
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b" / "file.bin").stat().st_mode) == 0o600


def test_folders_that_exist_keep_their_mode(tmp_path: Path, permissive_umask: None) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)  # noqa: S103 - a folder shared on purpose, not ours to narrow
    atomic_write_bytes(shared / "run" / "file.bin", b"x")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert stat.S_IMODE((shared / "run").stat().st_mode) == 0o700


def test_an_older_world_readable_append_file_is_narrowed(tmp_path: Path, permissive_umask: None) -> None:
    manifest = tmp_path / "upload-manifest.jsonl"
    manifest.write_text('{"seq": 0}')  # an older version's file, its writer killed before the newline
    os.chmod(manifest, 0o644)
    staging.append_jsonl(manifest, [{"seq": 1}])
    staging.append_jsonl(manifest, [{"seq": 2}])
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o600
    assert manifest.read_text() == '{"seq": 0}\n{"seq":1}\n{"seq":2}\n'
