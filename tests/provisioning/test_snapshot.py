"""Snapshot: Parquet round trip, atomic writes (local and fsspec), and committing only verified records."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from upath import UPath

from airflow_provider_entra.provisioning.snapshot import (
    SNAPSHOT_DTYPES,
    active_count,
    commit_verified,
    empty_snapshot,
    read_snapshot,
    write_snapshot,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
T1 = T0 + timedelta(days=1)


def snapshot_of(rows: list[tuple[str, str, str, bool]]) -> pd.DataFrame:
    """(externalId, record_hash, UPN, active) rows stamped at T0."""
    return pd.DataFrame(
        {
            "externalId": [r[0] for r in rows],
            "record_hash": [r[1] for r in rows],
            "UserPrincipalName": [r[2] for r in rows],
            "active": [r[3] for r in rows],
            "last_sent_at": T0,
            "last_verified_at": T0,
        }
    )


def plan_frame(rows: list[tuple[str, str, str, bool, str]]) -> pd.DataFrame:
    """(externalId, record_hash, userName, active, change) rows, like DeltaPlan.frame."""
    return pd.DataFrame(
        {
            "externalId": [r[0] for r in rows],
            "record_hash": [r[1] for r in rows],
            "userName": [r[2] for r in rows],
            "active": [r[3] for r in rows],
            "change": [r[4] for r in rows],
        }
    )


def assert_dtypes(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == list(SNAPSHOT_DTYPES)
    for col, dtype in SNAPSHOT_DTYPES.items():
        assert frame[col].dtype == pd.api.types.pandas_dtype(dtype), col


def test_missing_file_reads_as_an_empty_snapshot(tmp_path: Path) -> None:
    snap = read_snapshot(tmp_path / "nope" / "snapshot.parquet")
    assert snap.empty
    assert_dtypes(snap)
    assert active_count(snap) == 0


def test_round_trip_keeps_columns_and_dtypes(tmp_path: Path) -> None:
    path = tmp_path / "state" / "snapshot.parquet"
    snap = snapshot_of([("2", "h2", "b@contoso.com", False), ("1", "h1", "a@contoso.com", True)])
    write_snapshot(snap, path)
    back = read_snapshot(path)
    assert_dtypes(back)
    assert back["externalId"].tolist() == ["1", "2"]  # sorted for stable files
    assert back["active"].tolist() == [True, False]
    assert back["last_sent_at"].iloc[0] == pd.Timestamp(T0)
    assert back["linked_external_id"].isna().all()
    assert active_count(back) == 1
    # Also accepts a str path, and leaves no temporary files behind.
    write_snapshot(back, str(path))
    assert sorted(p.name for p in path.parent.iterdir()) == ["snapshot.parquet"]


def test_a_failed_write_leaves_the_previous_snapshot_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "snapshot.parquet"
    write_snapshot(snapshot_of([("1", "h1", "a@contoso.com", True)]), path)

    def half_written(self: pd.DataFrame, fh, **kwargs) -> None:
        fh.write(b"PAR1 truncated")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_written)
    with pytest.raises(OSError, match="disk full"):
        write_snapshot(snapshot_of([("9", "h9", "z@contoso.com", True)]), path)
    monkeypatch.undo()
    assert read_snapshot(path)["externalId"].tolist() == ["1"]
    assert [p.name for p in tmp_path.iterdir()] == ["snapshot.parquet"]


def test_fsspec_url_round_trip() -> None:
    url = "memory://entra-tests/url/snapshot.parquet"
    assert read_snapshot(url).empty
    write_snapshot(snapshot_of([("1", "h1", "a@contoso.com", True)]), url)
    assert read_snapshot(url)["UserPrincipalName"].tolist() == ["a@contoso.com"]


def test_object_storage_path_round_trip() -> None:
    # upath.UPath is what Airflow's ObjectStoragePath builds on (an ``fs`` plus a ``path``).
    path = UPath("memory://entra-tests/upath/state/snapshot.parquet")
    write_snapshot(snapshot_of([("1", "h1", "a@contoso.com", True)]), path)
    write_snapshot(snapshot_of([("1", "h2", "a@contoso.com", False)]), path)
    back = read_snapshot(path)
    assert back[["record_hash", "active"]].values.tolist() == [["h2", False]]
    assert [p.name for p in path.parent.iterdir()] == ["snapshot.parquet"]


def test_invalid_snapshots_are_refused(tmp_path: Path) -> None:
    twice = snapshot_of([("1", "h", "a@x.com", True), ("1", "h", "a@x.com", True)])
    with pytest.raises(ValueError, match="repeated externalId"):
        write_snapshot(twice, tmp_path / "s.parquet")
    with pytest.raises(ValueError, match="missing column"):
        write_snapshot(twice.drop(columns="active"), tmp_path / "s.parquet")


def test_only_verified_records_update_the_snapshot() -> None:
    snapshot = snapshot_of(
        [
            ("1", "old1", "a@contoso.com", True),  # mover, succeeds
            ("2", "old2", "b@contoso.com", True),  # mover, fails
            ("3", "old3", "c@contoso.com", True),  # leaver, warning
            ("4", "old4", "d@contoso.com", True),  # mover, no log entry
            ("5", "old5", "e@contoso.com", True),  # not sent
        ]
    )
    plan = plan_frame(
        [
            ("1", "new1", "a@contoso.com", True, "mover"),
            ("2", "new2", "b@contoso.com", True, "mover"),
            ("3", "new3", "c@contoso.com", False, "leaver"),
            ("4", "new4", "d@contoso.com", True, "mover"),
            ("6", "new6", "f@contoso.com", True, "joiner"),  # succeeds
            ("7", "new7", "g@contoso.com", True, "joiner"),  # skipped
        ]
    )
    outcomes = pd.DataFrame(
        {
            "external_id": ["1", "2", "3", "4", "6", "7"],
            "status": ["success", "failure", "Warning", "missing", "success", "skipped"],
        }
    )
    new = commit_verified(snapshot, plan, outcomes, sent_at=T1, verified_at=T1 + timedelta(minutes=9))
    assert_dtypes(new)
    by_id = new.set_index("externalId")
    assert by_id["record_hash"].to_dict() == {
        "1": "new1",
        "2": "old2",
        "3": "new3",
        "4": "old4",
        "5": "old5",
        "6": "new6",
    }
    assert by_id["active"].to_dict() == {"1": True, "2": True, "3": False, "4": True, "5": True, "6": True}
    assert by_id.at["6", "UserPrincipalName"] == "f@contoso.com"
    assert by_id.at["1", "last_sent_at"] == pd.Timestamp(T1)
    assert by_id.at["1", "last_verified_at"] == pd.Timestamp(T1 + timedelta(minutes=9))
    assert by_id.at["2", "last_sent_at"] == pd.Timestamp(T0)
    # The input snapshot is not modified.
    assert snapshot["record_hash"].tolist() == ["old1", "old2", "old3", "old4", "old5"]


def test_commit_accepts_a_delta_plan_and_camel_case_outcomes() -> None:
    from airflow_provider_entra.provisioning.plan import plan_delta

    feed = pd.DataFrame(
        {"externalId": ["1"], "userName": ["a@contoso.com"], "active": [True], "record_hash": ["h1"]}
    )
    plan = plan_delta(feed, empty_snapshot())
    new = commit_verified(empty_snapshot(), plan, pd.DataFrame({"externalId": ["1"], "status": ["success"]}))
    assert new[["externalId", "record_hash", "UserPrincipalName", "active"]].values.tolist() == [
        ["1", "h1", "a@contoso.com", True]
    ]
    assert new["last_verified_at"].notna().all()


def test_missing_from_feed_disable_keeps_the_upn_and_hash() -> None:
    snapshot = snapshot_of([("2", "h2", "b@contoso.com", True)])
    plan = plan_frame([("2", "h2", "b@contoso.com", False, "missing_disable")])
    new = commit_verified(snapshot, plan, pd.DataFrame({"external_id": ["2"], "status": ["success"]}))
    assert new[["record_hash", "UserPrincipalName", "active"]].values.tolist() == [
        ["h2", "b@contoso.com", False]
    ]


def test_upn_falls_back_to_the_logged_one_then_the_old_one() -> None:
    snapshot = snapshot_of([("1", "h1", "a@contoso.com", True)])
    plan = plan_frame([("1", "h1b", None, True, "mover"), ("2", "h2", None, True, "joiner")])
    outcomes = pd.DataFrame(
        {"external_id": ["1", "2"], "status": ["success", "success"], "upn": [None, "b@x.com"]}
    )
    new = commit_verified(snapshot, plan, outcomes).set_index("externalId")
    assert new["UserPrincipalName"].to_dict() == {"1": "a@contoso.com", "2": "b@x.com"}


def test_admin_links_are_stored() -> None:
    plan = plan_frame([("A1", "h", "adm-a@contoso.com", True, "joiner")]).assign(LinkedWorkerID=["1"])
    new = commit_verified(
        empty_snapshot(), plan, pd.DataFrame({"external_id": ["A1"], "status": ["success"]})
    )
    assert new["linked_external_id"].tolist() == ["1"]


def test_commit_needs_ids_and_statuses() -> None:
    with pytest.raises(ValueError, match="external_id"):
        commit_verified(empty_snapshot(), plan_frame([]), pd.DataFrame({"status": []}))
    with pytest.raises(ValueError, match="'record_hash'"):
        commit_verified(empty_snapshot(), pd.DataFrame({"externalId": []}), pd.DataFrame())
