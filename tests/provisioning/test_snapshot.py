"""The state table: its columns, checks, and reading the first release's single-file snapshot."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from upath import UPath

from airflow_provider_entra.provisioning.snapshot import (
    SNAPSHOT_DTYPES,
    active_count,
    conform_snapshot,
    read_snapshot,
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


def assert_dtypes(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == list(SNAPSHOT_DTYPES)
    for col, dtype in SNAPSHOT_DTYPES.items():
        expected = pd.api.types.pandas_dtype(dtype)
        if isinstance(expected, pd.CategoricalDtype):  # attr_names: its categories are the texts it holds
            assert isinstance(frame[col].dtype, pd.CategoricalDtype), col
        else:
            assert frame[col].dtype == expected, col


def test_missing_file_reads_as_an_empty_snapshot(tmp_path: Path) -> None:
    snap = read_snapshot(tmp_path / "nope" / "snapshot.parquet")
    assert snap.empty
    assert_dtypes(snap)
    assert active_count(snap) == 0


def test_a_first_release_snapshot_reads_with_every_ledger_column(tmp_path: Path) -> None:
    path = tmp_path / "state" / "snapshot.parquet"
    path.parent.mkdir()
    snapshot_of([("2", "h2", "b@contoso.com", False), ("1", "h1", "a@contoso.com", True)]).to_parquet(path)
    back = read_snapshot(path)
    assert_dtypes(back)
    assert back["externalId"].tolist() == ["2", "1"]
    assert back["active"].tolist() == [False, True]
    assert back["last_sent_at"].iloc[0] == pd.Timestamp(T0)
    assert back["linked_external_id"].isna().all() and back["as_of"].isna().all()
    assert active_count(back) == 1


def test_object_storage_paths_read() -> None:
    # upath.UPath is what Airflow's ObjectStoragePath builds on (an ``fs`` plus a ``path``).
    path = UPath("memory://entra-tests/upath/state/snapshot.parquet")
    assert read_snapshot(path).empty
    with path.fs.open(path.path, "wb") as handle:
        snapshot_of([("1", "h1", "a@contoso.com", True)]).to_parquet(handle)
    assert read_snapshot(path)["UserPrincipalName"].tolist() == ["a@contoso.com"]
    assert read_snapshot(str(path))["externalId"].tolist() == ["1"]


def test_invalid_snapshots_are_refused() -> None:
    twice = snapshot_of([("1", "h", "a@x.com", True), ("1", "h", "a@x.com", True)])
    with pytest.raises(ValueError, match="repeated externalId"):
        conform_snapshot(twice)
    assert len(conform_snapshot(twice, unique=False)) == 2
    with pytest.raises(ValueError, match="missing column"):
        conform_snapshot(twice.drop(columns="active"))


def test_the_latest_row_of_each_id_in_id_order() -> None:
    from airflow_provider_entra.provisioning.snapshot import latest_rows

    t = pd.Timestamp("2026-01-02", tz="UTC")
    rows = conform_snapshot(
        pd.DataFrame(
            {
                "externalId": ["b", "a", "b", "c", "a"],
                "record_hash": ["b1", "a1", "b2", "c1", "a2"],
                "UserPrincipalName": ["b", "a", "b", "c", "a"],
                "active": True,
                "as_of": [t, t, t - pd.Timedelta(days=1), pd.NaT, t],  # a tie for a: the later row wins
                "last_verified_at": t,
            }
        ),
        unique=False,
    )
    assert rows["record_hash"].take(latest_rows(rows)).tolist() == ["a2", "b1", "c1"]
