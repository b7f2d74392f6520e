"""The manifest and refusals files: written as requests are accepted, read back by a retry."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import fsspec
import pandas as pd

from airflow_provider_entra._fsio import read_jsonl
from airflow_provider_entra.upload import (
    Earlier,
    LineWriter,
    PlanOptions,
    acceptance,
    external_ids_frame,
    plan_records,
)
from airflow_provider_entra.upload.manifest import accepted_line


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_local_line_is_in_the_file_at_once_and_owner_only(tmp_path: Path):
    path = tmp_path / "run" / "upload-manifest.jsonl"
    with LineWriter(path, sync_every=1000, sync_seconds=3600) as writer:
        writer.append({"seq": 0})
        # Before any sync another process (a killed task's retry) already reads the line.
        assert path.read_bytes() == b'{"seq":0}\n'
        writer.append({"seq": 1, "external_ids": ["Zoë"]})
        assert read_jsonl(path) == [{"seq": 0}, {"seq": 1, "external_ids": ["Zoë"]}]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_torn_last_line_is_skipped_and_the_next_line_starts_clean(tmp_path: Path):
    path = tmp_path / "upload-manifest.jsonl"
    path.write_bytes(b'{"seq":0}\n{"seq":1,"exter')  # a writer killed mid-line
    assert read_jsonl(path) == [{"seq": 0}]
    with LineWriter(path) as writer:
        writer.append({"seq": 1})
    assert read_jsonl(path) == [{"seq": 0}, {"seq": 1}]
    assert read_jsonl(tmp_path / "missing.jsonl", missing_ok=True) == []


def test_an_object_store_is_written_in_batches_not_once_per_line():
    url = "memory://upload-tests/batches/upload-manifest.jsonl"
    fs, inner = fsspec.core.url_to_fs(url)
    fs.pipe(inner, b'{"seq":0}')  # an earlier try's object, its last line torn
    clock = Clock()
    writer = LineWriter(url, sync_every=3, sync_seconds=60, clock=clock)
    writer.append({"seq": 1})
    writer.append({"seq": 2})
    assert fs.cat(inner) == b'{"seq":0}'  # not rewritten for each line
    writer.append({"seq": 3})  # the third line: one rewrite with all three
    assert [line["seq"] for line in read_jsonl(url)] == [0, 1, 2, 3]
    writer.append({"seq": 4})
    clock.now = 61  # or after sync_seconds
    writer.append({"seq": 5})
    assert [line["seq"] for line in read_jsonl(url)] == [0, 1, 2, 3, 4, 5]
    writer.append({"seq": 6})
    writer.close()  # and when closed
    assert [line["seq"] for line in read_jsonl(url)] == list(range(7))


def test_earlier_tries_are_read_by_fingerprint(tmp_path: Path, records):
    plan = plan_records(records, PlanOptions(bulk_id_prefix="e-", managers_first=False))
    first, second = plan.requests[:2]
    receipt = {
        "status_code": 202,
        "request_id": "r-1",
        "client_request_id": "c-1",
        "operation_count": first.operations,
        "submitted_at": "2026-03-02T01:00:00.5+00:00",
        "accepted_at": "2026-03-02T01:00:00+00:00",
    }
    manifest, refused = tmp_path / "upload-manifest.jsonl", tmp_path / "upload-refused.jsonl"
    with LineWriter(manifest) as writer:
        writer.append(accepted_line(first, receipt))
        writer.append(accepted_line(second, receipt, part_of="f" * 64))  # a part of another run's request
        writer.append({"seq": 9})  # no fingerprint: ignored
    earlier = Earlier.read(manifest, refused)
    assert set(earlier.accepted) == {first.fingerprint, second.fingerprint} and earlier.refused == {}
    assert earlier.counts(plan) == (2, 0, 0)
    line = earlier.accepted[first.fingerprint]
    assert line["external_ids"] == first.external_ids and line["operations"] == 50 and "part_of" not in line
    other = plan_records(records, PlanOptions(bulk_id_prefix="other-", managers_first=False))
    assert earlier.counts(other) == (0, 0, 2)


def test_acceptance_is_the_earliest_per_record_on_microsofts_clock():
    lines = [
        {"external_ids": ["1", "2"], "accepted_at": "2026-03-02T01:00:05+00:00"},
        {"external_ids": ["2"], "accepted_at": "2026-03-02T02:00:01+01:00"},  # 01:00:01 UTC: earlier
        {"external_ids": ["3"], "accepted_at": None},
    ]
    assert acceptance(lines) == {"1": "2026-03-02T01:00:05+00:00", "2": "2026-03-02T02:00:01+01:00"}


def test_external_ids_frame_lists_every_record_to_verify(records):
    plan = plan_records(records, PlanOptions(bulk_id_prefix="", max_operations=50))
    frame = external_ids_frame(plan)
    assert len(frame) == plan.records and list(frame.columns) == ["externalId", "seq", "stage", "accepted_at"]
    assert frame["accepted_at"].isna().all() and str(frame["accepted_at"].dt.tz) == "UTC"
    first = plan.requests[0].external_ids[0]
    done = external_ids_frame(
        plan, leave_out={first}, accepted_at={plan.requests[1].external_ids[0]: "2026-03-02T01:00:00Z"}
    )
    assert len(done) == plan.records - 1 and first not in set(done["externalId"])
    assert done["accepted_at"].notna().sum() == 1
    assert done.loc[done["accepted_at"].notna(), "accepted_at"].iloc[0] == pd.Timestamp(
        "2026-03-02T01:00:00Z"
    )
    assert json.loads(plan.requests[0].body)["Operations"][0]["data"]["externalId"] == first
