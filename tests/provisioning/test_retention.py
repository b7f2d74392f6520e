"""provisioning.retention: personal data of old runs deleted, counts, snapshots and the ledger kept."""

from __future__ import annotations

import json
import os
import stat
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from airflow_provider_entra.provisioning import pipeline
from airflow_provider_entra.provisioning.retention import (
    KEPT_NAMES,
    PERSONAL_DATA_NAMES,
    RETAINED_NAME,
    purge_personal_data,
)

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=timezone.utc)
RETENTION = timedelta(days=30)
DAG = "entra_hr_provisioning"
#: What a finished HR run leaves in its folder (a few bytes each stand for the real content).
PERSONAL = {
    "hr_raw.parquet": b"WorkerID,FirstName\n1001,Ada\n",
    "normalised.parquet": b"ada.lovelace@contoso.com",
    "mapped.parquet": b"Ada Lovelace, 1 Main Street",
    "quarantine.csv": b"row,externalId,stage,reason\n3,1003,validate,bad phone +44 20 7946 0000\n",
    "warnings.csv": b"row,externalId\n",
    "delta.parquet": b"1001",
    "known-ids.parquet": b"1001",
    "upload-manifest.jsonl": b'{"external_ids":["1001"]}\n',
    "sent-external-ids.parquet": b"1001",
    "provisioning-log-entries.jsonl": b'{"sourceIdentity":{"id":"1001","displayName":"Ada Lovelace"}}\n',
    "provisioning-log-entries.jsonl.state.json": b'{"polls":3}',
    "outcomes.parquet": b"1001 success",
    "outcomes.csv": b"external_id,display_name\n1001,Ada Lovelace\n",
    "report.html": b"<td>Ada Lovelace</td>",
    ".hr_raw.parquet.x1y2.tmp": b"left by a killed writer",
}


def _summary(finished_at: datetime | None) -> bytes:
    summary = {"dag_id": DAG, "status": "done", "records_sent": 1, "outcomes": {"success": 1}}
    if finished_at is not None:
        summary["finished_at"] = finished_at.isoformat(timespec="seconds")
    return json.dumps(summary).encode()


def _make_run(folder: Path, *, finished_at: datetime | None, mtime: datetime | None = None) -> None:
    folder.mkdir(parents=True)
    for name, data in PERSONAL.items():
        (folder / name).write_bytes(data)
    (folder / "extra").mkdir()
    (folder / "extra" / "dry-run-requests.jsonl").write_bytes(b'{"displayName":"Ada Lovelace"}\n')
    if finished_at is not None:
        (folder / pipeline.RUN_SUMMARY_NAME).write_bytes(_summary(finished_at))
    if mtime is not None:
        for path in [folder, *folder.rglob("*")]:
            os.utime(path, (mtime.timestamp(), mtime.timestamp()))


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    """A staging root with an old run, a recent run, the snapshot and the ledger (all files old)."""
    root = tmp_path / "staging"
    long_ago = NOW - timedelta(days=90)
    _make_run(root / DAG / "scheduled__old", finished_at=NOW - timedelta(days=40), mtime=long_ago)
    _make_run(root / DAG / "manual__recent", finished_at=NOW - timedelta(days=2), mtime=long_ago)
    snapshot = root / DAG / "snapshot"
    snapshot.mkdir()
    (snapshot / pipeline.SNAPSHOT_NAME).write_bytes(b"Ada Lovelace")
    (snapshot / pipeline.HR_CURRENT_NAME).write_bytes(b"Ada Lovelace")
    ledger = root / "ledger" / DAG
    ledger.mkdir(parents=True)
    (ledger / "jobs.jsonl").write_bytes(b'{"externalId":"1001"}\n')
    (ledger / pipeline.RAW_NAME).write_bytes(b"a ledger file named like a staged one")
    for path in [*snapshot.rglob("*"), *ledger.parent.rglob("*")]:
        os.utime(path, (long_ago.timestamp(), long_ago.timestamp()))
    return root


def test_old_run_loses_its_personal_data_and_keeps_its_counts(staging: Path) -> None:
    recent = _tree(staging / DAG / "manual__recent")
    kept_elsewhere = {**_tree(staging / DAG / "snapshot"), **_tree(staging / "ledger")}
    old = staging / DAG / "scheduled__old"
    expected_bytes = sum(len(data) for data in PERSONAL.values()) + len(b'{"displayName":"Ada Lovelace"}\n')

    result = purge_personal_data(staging, DAG, older_than=RETENTION, now=NOW)

    assert result["runs_examined"] == 2
    assert result["runs_purged"] == 1
    assert result["files_deleted"] == len(PERSONAL) + 1
    assert result["bytes_freed"] == expected_bytes
    assert result["purged"] == [str(old)]
    assert result["dry_run"] is False
    assert sorted(p.name for p in old.iterdir()) == [RETAINED_NAME, pipeline.RUN_SUMMARY_NAME]
    assert json.loads((old / pipeline.RUN_SUMMARY_NAME).read_bytes())["outcomes"] == {"success": 1}
    note = json.loads((old / RETAINED_NAME).read_bytes())
    (purge,) = note["purges"]
    assert purge["purged_at"] == "2026-06-30T12:00:00+00:00"
    assert purge["retention_days"] == 30
    assert purge["run_time"] == "2026-05-21T12:00:00+00:00"
    assert purge["bytes_freed"] == expected_bytes
    assert {f["name"] for f in purge["files_deleted"]} == {*PERSONAL, "extra/dry-run-requests.jsonl"}
    assert b"Ada" not in (old / RETAINED_NAME).read_bytes()
    # The recent run, the snapshot and the ledger are as they were.
    assert _tree(staging / DAG / "manual__recent") == recent
    assert {**_tree(staging / DAG / "snapshot"), **_tree(staging / "ledger")} == kept_elsewhere


def test_a_second_purge_finds_nothing_more(staging: Path) -> None:
    purge_personal_data(staging, DAG, older_than=RETENTION, now=NOW)
    again = purge_personal_data(staging, DAG, older_than=RETENTION, now=NOW + timedelta(days=1))
    assert again["runs_examined"] == 2 and again["runs_purged"] == 0 and again["files_deleted"] == 0
    assert len(json.loads((staging / DAG / "scheduled__old" / RETAINED_NAME).read_bytes())["purges"]) == 1


def test_dry_run_deletes_nothing_and_reports_the_same(staging: Path) -> None:
    before = _tree(staging)
    planned = purge_personal_data(staging, DAG, older_than=RETENTION, now=NOW, dry_run=True)
    assert _tree(staging) == before
    done = purge_personal_data(staging, DAG, older_than=RETENTION, now=NOW)
    assert planned["dry_run"] is True
    assert {k: v for k, v in planned.items() if k != "dry_run"} == {
        k: v for k, v in done.items() if k != "dry_run"
    }


def test_age_from_finished_at_else_newest_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    old_files = NOW - timedelta(days=60)
    # Files old, but the summary says the run finished yesterday: kept.
    _make_run(root / DAG / "rerun", finished_at=NOW - timedelta(days=1), mtime=old_files)
    # No summary (the run failed early): the files' age decides.
    _make_run(root / DAG / "failed_old", finished_at=None, mtime=old_files)
    _make_run(root / DAG / "failed_new", finished_at=None, mtime=old_files)
    os.utime(root / DAG / "failed_new" / "hr_raw.parquet", (NOW.timestamp(), NOW.timestamp()))

    result = purge_personal_data(root, DAG, older_than=RETENTION, now=NOW)

    assert result["purged"] == [str(root / DAG / "failed_old")]
    assert [p.name for p in (root / DAG / "failed_old").iterdir()] == [RETAINED_NAME]
    assert (root / DAG / "rerun" / "hr_raw.parquet").exists()
    assert (root / DAG / "failed_new" / "mapped.parquet").exists()


def test_every_dag_or_one_and_foreign_folders_untouched(tmp_path: Path) -> None:
    root = tmp_path / "root"
    finished = NOW - timedelta(days=45)
    _make_run(root / "dag_a" / "r1", finished_at=finished)
    _make_run(root / "dag_b" / "r1", finished_at=finished)
    foreign = root / "dags" / "notes"  # not a run folder: none of the pipeline's files
    foreign.mkdir(parents=True)
    (foreign / "todo.txt").write_text("keep me")
    os.utime(foreign / "todo.txt", (0, 0))

    only_a = purge_personal_data(root, "dag_a", older_than=RETENTION, now=NOW)
    assert only_a["purged"] == [str(root / "dag_a" / "r1")]
    assert (root / "dag_b" / "r1" / "hr_raw.parquet").exists()

    every = purge_personal_data(str(root), None, older_than=RETENTION, now=NOW)
    assert every["purged"] == [str(root / "dag_b" / "r1")]
    assert every["runs_examined"] == 2
    assert (foreign / "todo.txt").read_text() == "keep me"
    assert purge_personal_data(tmp_path / "missing", None, older_than=RETENTION)["runs_examined"] == 0


def test_a_link_out_of_the_run_folder_is_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "hr_raw.parquet").write_bytes(b"not ours")
    _make_run(root / DAG / "old", finished_at=NOW - timedelta(days=40))
    (root / DAG / "old" / "link").symlink_to(outside, target_is_directory=True)
    (root / DAG / "linked_run").symlink_to(outside, target_is_directory=True)

    purge_personal_data(root, DAG, older_than=RETENTION, now=NOW)

    assert (outside / "hr_raw.parquet").read_bytes() == b"not ours"
    assert not (root / DAG / "old" / "hr_raw.parquet").exists()


def test_retained_note_is_owner_only(staging: Path) -> None:
    previous = os.umask(0o022)
    try:
        purge_personal_data(staging, DAG, older_than=RETENTION, now=NOW)
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((staging / DAG / "scheduled__old" / RETAINED_NAME).stat().st_mode)
    assert mode == 0o600


def test_memory_filesystem() -> None:
    fs = fsspec.filesystem("memory")
    base = f"/retention-{uuid.uuid4().hex}"
    try:
        for run, finished in (("old", NOW - timedelta(days=31)), ("new", NOW - timedelta(days=29))):
            for name, data in PERSONAL.items():
                fs.pipe_file(f"{base}/{DAG}/{run}/{name}", data)
            fs.pipe_file(f"{base}/{DAG}/{run}/{pipeline.RUN_SUMMARY_NAME}", _summary(finished))
        fs.pipe_file(f"{base}/{DAG}/unfinished/{pipeline.RAW_NAME}", b"Ada")  # written just now
        fs.pipe_file(f"{base}/{DAG}/snapshot/{pipeline.SNAPSHOT_NAME}", b"Ada")
        fs.pipe_file(f"{base}/ledger/{DAG}/jobs.jsonl", b"{}")

        url = f"memory://{base}"
        dry = purge_personal_data(url, None, older_than=RETENTION, now=NOW, dry_run=True)
        assert dry["runs_purged"] == 1 and fs.exists(f"{base}/{DAG}/old/{pipeline.RAW_NAME}")

        result = purge_personal_data(url, None, older_than=RETENTION, now=NOW)

        assert result["runs_examined"] == 3
        assert result["purged"] == [f"{url}/{DAG}/old"]
        assert result["files_deleted"] == len(PERSONAL)
        assert result["bytes_freed"] == sum(len(d) for d in PERSONAL.values())
        assert sorted(fs.ls(f"{base}/{DAG}/old", detail=False)) == [
            f"{base}/{DAG}/old/{RETAINED_NAME}",
            f"{base}/{DAG}/old/{pipeline.RUN_SUMMARY_NAME}",
        ]
        assert len(fs.ls(f"{base}/{DAG}/new", detail=False)) == len(PERSONAL) + 1
        assert fs.exists(f"{base}/{DAG}/unfinished/{pipeline.RAW_NAME}")
        assert fs.cat_file(f"{base}/{DAG}/snapshot/{pipeline.SNAPSHOT_NAME}") == b"Ada"
        assert fs.cat_file(f"{base}/ledger/{DAG}/jobs.jsonl") == b"{}"
    finally:
        if fs.exists(base):
            fs.rm(base, recursive=True)


def test_object_storage_path(staging: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    result = purge_personal_data(ObjectStoragePath(f"file://{staging}"), DAG, older_than=RETENTION, now=NOW)

    assert result["purged"] == [f"file://{staging}/{DAG}/scheduled__old"]
    assert sorted(p.name for p in (staging / DAG / "scheduled__old").iterdir()) == [
        RETAINED_NAME,
        pipeline.RUN_SUMMARY_NAME,
    ]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="negative"):
        purge_personal_data("/nowhere", DAG, older_than=timedelta(days=-1))
    for dag_id in ("", "a/b", "..", "ledger", "snapshot"):
        with pytest.raises(ValueError, match="DAG folder"):
            purge_personal_data("/nowhere", dag_id, older_than=RETENTION)


def test_file_names_match_the_writers() -> None:
    """The names spelled out in retention (the sensor and trigger import Airflow) are the ones they write."""
    from airflow_provider_entra.sensors import provisioning_logs

    written = {
        provisioning_logs.ENTRIES_NAME,
        f"{provisioning_logs.ENTRIES_NAME}.state.json",
        provisioning_logs.OUTCOMES_NAME,
    }
    assert written <= PERSONAL_DATA_NAMES
    assert not PERSONAL_DATA_NAMES & KEPT_NAMES


def test_the_ledger_keeps_working_after_a_purge(tmp_path: Path) -> None:
    """A real run commits to the job's ledger; once its folder is purged, the next run still plans from it."""
    from airflow_provider_entra.provisioning.reconcile import reconcile

    root = tmp_path / "staging"
    export = Path(__file__).resolve().parents[2] / "dags" / "data"
    ledger = pipeline.ledger_path(str(root), "API2AAD.tenant.job")

    def run(name: str) -> tuple[Path, dict]:
        folder = Path(pipeline.run_dir(root, DAG, name))
        pipeline.extract_csv(export / "hr_employees.csv", folder / pipeline.RAW_NAME)
        transformed = pipeline.transform(
            folder / pipeline.RAW_NAME,
            export / "hr_mapping.yaml",
            folder,
            upn_domain="contoso.com",
            ledger=ledger,
        )
        return folder, pipeline.plan(transformed["mapped_path"], ledger, folder)

    first, planned = run("scheduled__day1")
    ids = pd.read_parquet(planned["delta_path"])["externalId"].astype(str)
    entries = [
        {
            "id": f"entry-{i}",
            "activityDateTime": "2026-05-01T01:05:00Z",
            "sourceIdentity": {"id": i},
            "provisioningAction": "create",
            "provisioningStatusInfo": {"status": "success"},
        }
        for i in ids
    ]
    outcomes = first / "outcomes.parquet"
    reconcile(entries, ids).to_parquet(outcomes, index=False)
    committed = pipeline.commit(ledger, planned["delta_path"], outcomes, run_id="scheduled__day1")
    assert committed["verified"] == planned["to_send"] > 0
    pipeline.write_run_summary(first, {"dag_id": DAG, "finished_at": "2026-05-01T02:00:00+00:00"})
    ledger_files = _tree(root / "ledger")

    result = purge_personal_data(root, DAG, older_than=RETENTION, now=NOW)

    assert result["purged"] == [str(first)]
    assert not (first / pipeline.MAPPED_NAME).exists()
    assert _tree(root / "ledger") == ledger_files
    _, again = run("scheduled__day2")
    assert again["to_send"] == 0, again["changes"]
