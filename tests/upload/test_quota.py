"""The tenant's daily allowance record (``upload/quota.py``): shared by tasks, on a clock the test moves."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_entra._fsio import read_jsonl
from airflow_provider_entra.upload import QuotaSpent
from airflow_provider_entra.upload.quota import DailyUsage, days_left, record_name

START = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)


class Clock:
    """UTC time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def usage(folder, name: str, budget: int, clock: Clock) -> DailyUsage:
    return DailyUsage(folder, name, budget=budget, clock=clock).open()


def test_two_tasks_share_the_count_and_the_window_rolls(tmp_path: Path) -> None:
    clock = Clock()
    with usage(tmp_path, "a.jsonl", 5, clock) as first:
        first.spend(2)
        clock.advance(hours=1)
        first.spend(1)
    with usage(tmp_path, "b.jsonl", 5, clock) as second:
        assert (second.used_before, second.left) == (3, 2)
        second.spend(2)
        assert second.left == 0
        with pytest.raises(QuotaSpent, match="daily_call_budget 5") as spent:
            second.check()
        assert second.stopped == "allowance"
        # the first 2 calls leave the window 24 h after they were made: 23 h from now
        assert spent.value.retry_after == pytest.approx(23 * 3600)
        assert second.frees_at() == START + timedelta(hours=24)
    clock.advance(hours=23)
    with usage(tmp_path, "c.jsonl", 5, clock) as third:
        assert (third.used_before, third.left) == (3, 2)  # 1 + 2 still within 24 h
        third.check()


def test_microsofts_429_stops_every_task_until_its_retry_after(tmp_path: Path) -> None:
    clock = Clock()
    with usage(tmp_path, "a.jsonl", 2000, clock) as first:
        first.spend(3)
        error = first.refused(retry_after=3600)
        assert error.by_microsoft and first.stopped == "microsoft"
        assert first.calls_per_day() == 3  # the tenant's quota looks like 3 a day, not 2000
    clock.advance(minutes=30)
    with usage(tmp_path, "b.jsonl", 2000, clock) as second:
        assert second.left == 0 and second.frees_at() == START + timedelta(hours=1)
        with pytest.raises(QuotaSpent, match="Microsoft said"):
            second.check()
    clock.advance(minutes=31)
    with usage(tmp_path, "c.jsonl", 2000, clock) as third:
        assert third.left == 2000 - 3


def test_old_records_are_deleted_and_torn_or_foreign_files_do_not_count(tmp_path: Path) -> None:
    clock = Clock()
    with usage(tmp_path, "old.jsonl", 10, clock) as old:
        old.spend(4)
    (tmp_path / "torn.jsonl").write_text('{"at": "2026-03-02T01:00:00+00:00", "calls": 1}\n{"at": "2026-')
    (tmp_path / "notes.txt").write_text("not a record")
    with usage(tmp_path, "x.jsonl", 10, clock) as now:
        assert now.used_before == 5  # the torn line is skipped, the whole line before it counts
    clock.advance(hours=49)
    with usage(tmp_path, "y.jsonl", 10, clock) as later:
        assert later.used_before == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # x and y wrote nothing


def test_the_record_works_on_an_object_store() -> None:
    folder = f"memory://quota-{uuid.uuid4().hex}/tenant"
    clock = Clock()
    with usage(folder, "a.jsonl", 3, clock) as first:
        first.spend(1)
        first.spend(1)
    assert read_jsonl(f"{folder}/a.jsonl") == [
        {"at": START.isoformat(), "calls": 1},
        {"at": START.isoformat(), "calls": 1},
    ]
    with usage(folder, "b.jsonl", 3, clock) as second:
        assert second.left == 1


def test_another_process_sees_the_calls_this_one_made(tmp_path: Path) -> None:
    with DailyUsage(tmp_path, "parent.jsonl", budget=10).open() as parent:
        parent.spend(4)
    child = (
        "import sys; from airflow_provider_entra.upload.quota import DailyUsage\n"
        "with DailyUsage(sys.argv[1], 'child.jsonl', budget=10).open() as u:\n"
        "    print(u.used_before, u.left); u.spend(u.left)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", child, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4", "6"]
    with DailyUsage(tmp_path, "again.jsonl", budget=10).open() as again:
        assert again.left == 0


def test_names_and_days() -> None:
    assert record_name("entra_hr", "scheduled__2026-03-02T00:00:00+00:00", "upload", "-1") == (
        "entra_hr__scheduled__2026-03-02T00_00_00_00_00__upload__-1.jsonl"
    )
    assert [days_left(n, 10) for n in (0, 1, 10, 11)] == [0, 1, 1, 2]
    with pytest.raises(ValueError):
        DailyUsage("/tmp/x", "a.jsonl", budget=0)


def test_an_upload_stops_mid_split_and_the_next_day_carries_on_without_resending(tmp_path: Path) -> None:
    """Budget 4 a day, 120 records in 3 requests, record 10 bad: the first request is refused whole and
    split; the allowance runs out among its parts. The run ends cleanly with what is left unsent and out of
    the ids file; the next day the same plan resumes from the manifest and refusals, probing nothing twice."""
    from airflow_provider_entra.upload import EXTERNAL_IDS_NAME, PlanOptions, Refused, plan_payloads
    from airflow_provider_entra.upload.run import UploadRun

    records = [
        {"externalId": str(5000 + i), "userName": f"u{i}@contoso.com", "active": True} for i in range(120)
    ]
    records[10]["active"] = "yes"
    plan = plan_payloads(records, PlanOptions(bulk_id_prefix="p-"))
    clock, posted = Clock(), []

    def upload_day() -> dict:
        with usage(tmp_path / "quota", "upload.jsonl", 4, clock) as allowance:

            def post(request) -> dict:
                allowance.check()
                allowance.spend(1)
                posted.append(request.fingerprint)
                if "5010" in request.external_ids:
                    raise Refused("BadRequest", "active: must be a boolean")
                stamp = clock().isoformat()
                return {"status_code": 202, "submitted_at": stamp, "accepted_at": stamp}

            run = UploadRun(tmp_path, plan)
            return run.send(post, run.start())

    first = upload_day()
    assert len(posted) == 4 and first["stopped_by_quota"]
    # depth first: 50 (0-49), 25 (0-24) and 13 (0-12) refused (5010 is in each), then 0-6 accepted
    assert (first["sent_records"], first["unsent_records"], first["unsent_requests"]) == (7, 113, 3)
    ids = set(pd.read_parquet(tmp_path / EXTERNAL_IDS_NAME)["externalId"])
    assert ids == {str(5000 + i) for i in range(7)}

    clock.advance(days=1)
    second = upload_day()
    assert len(set(posted)) == len(posted)  # nothing posted twice
    assert second["stopped_by_quota"] and second["resumed_requests"] == 1 and second["sent_records"] > 7
    for _ in range(5):
        if not second["stopped_by_quota"]:
            break
        clock.advance(days=1)
        second = upload_day()
    assert second["stopped_by_quota"] is None and second["unsent_records"] == 0
    assert (second["sent_records"], second["rejected_by_graph"]) == (119, 1)
    assert len(set(posted)) == len(posted)
    assert set(pd.read_parquet(tmp_path / EXTERNAL_IDS_NAME)["externalId"]) == {
        r["externalId"] for r in records
    } - {"5010"}
