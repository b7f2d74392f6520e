"""The job's ledger: what enters it, how overlapping runs share it, local disks and object stores."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from upath import UPath

from airflow_provider_entra.provisioning import ledger
from airflow_provider_entra.provisioning.ledger import (
    COMPACT_AFTER_FILES,
    STUCK_AFTER_RUNS,
    adopt_legacy_snapshot,
    apply_outcomes,
    commit,
    compact,
    ledger_dir,
    read_ledger,
)
from airflow_provider_entra.provisioning.snapshot import SNAPSHOT_DTYPES, empty_snapshot

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
T1 = T0 + timedelta(days=1)


def sent(rows: list[tuple[str, str, str | None, bool, str]]) -> pd.DataFrame:
    """(externalId, record_hash, userName, active, change) rows, like a plan's delta."""
    return pd.DataFrame(
        {
            "externalId": [r[0] for r in rows],
            "record_hash": [r[1] for r in rows],
            "userName": [r[2] for r in rows],
            "active": [r[3] for r in rows],
            "change": [r[4] for r in rows],
            "displayName": [f"Person {r[0]}" for r in rows],
        }
    )


def outcomes(rows: list[tuple[str, str, str | None, datetime | None]]) -> pd.DataFrame:
    """(external_id, status, error_code, activity_time) rows, like reconcile()'s frame."""
    return pd.DataFrame(
        {
            "external_id": [r[0] for r in rows],
            "status": [r[1] for r in rows],
            "error_code": [r[2] for r in rows],
            "reason": [f"reason of {r[2]}" if r[2] else None for r in rows],
            "activity_time": pd.to_datetime([r[3] for r in rows], utc=True),
            "upn": [None] * len(rows),
            "unresolved_reference": [False] * len(rows),
        }
    )


def test_only_what_the_logs_prove_enters_the_ledger() -> None:
    before = apply_outcomes(
        empty_snapshot(),
        sent([(i, f"old{i}", f"{i}@contoso.com", True, "joiner") for i in "12345"]),
        outcomes([(i, "success", None, T0) for i in "12345"]),
        verified_at=T0,
    )
    delta = sent(
        [
            ("1", "new1", "1@contoso.com", True, "mover"),  # succeeds
            ("2", "new2", "2@contoso.com", True, "mover"),  # fails
            ("3", "new3", "3@contoso.com", False, "leaver"),  # warning
            ("4", "new4", "4@contoso.com", True, "mover"),  # no log entry
            ("5", "new5", "5@contoso.com", True, "mover"),  # skipped: Entra already holds it
            ("6", "new6", "6@contoso.com", True, "joiner"),  # skipped: out of scope
        ]
    )
    result = outcomes(
        [
            ("1", "success", None, T1),
            ("2", "failure", "AzureActiveDirectoryInvalidUserPrincipalName", T1),
            ("3", "warning", None, T1),
            ("4", "missing", None, None),
            ("5", "skipped", "RedundantExport", T1),
            ("6", "skipped", "NotEffectivelyEntitled", T1),
        ]
    )
    rows, skips, counts = ledger.fold_outcomes(delta, result, before, run_id="run-2", verified_at=T1)
    assert counts == {
        "proven": 3,
        "proven_by_skip": 1,
        "skipped": 1,
        "unresolved": 0,
        "failed": 1,
        "missing": 1,
    }
    assert sorted(rows["externalId"]) == ["1", "3", "5"]
    # An out-of-scope skip, and the UPN Entra refused as another account's (remembered as taken).
    assert sorted(skips[["externalId", "reason", "upn"]].values.tolist()) == [
        ["2", "AzureActiveDirectoryInvalidUserPrincipalName", "2@contoso.com"],
        ["6", "NotEffectivelyEntitled", "6@contoso.com"],
    ]
    after = apply_outcomes(before, delta, result, run_id="run-2", verified_at=T1).set_index("externalId")
    assert list(after.columns) == list(SNAPSHOT_DTYPES)[1:]
    assert after["record_hash"].to_dict() == {"1": "new1", "2": "old2", "3": "new3", "4": "old4", "5": "new5"}
    assert after["active"].to_dict() == {"1": True, "2": True, "3": False, "4": True, "5": True}
    assert after.at["5", "proof"] == "redundant" and after.at["1", "proof"] == "success"
    assert after.at["1", "as_of"] == pd.Timestamp(T1) and after.at["2", "as_of"] == pd.Timestamp(T0)
    assert after.at["1", "run_id"] == "run-2"
    # Which attributes a later mover changes can be told from the digests stored here.
    assert after["attr_names"].notna().all() and after["attr_digest"].str.len().gt(0).all()


def test_camel_case_outcomes_and_minimal_frames_are_accepted() -> None:
    delta = pd.DataFrame(
        {"externalId": ["1"], "userName": ["a@contoso.com"], "active": [True], "record_hash": ["h"]}
    )
    state = apply_outcomes(
        empty_snapshot(), delta, pd.DataFrame({"externalId": ["1"], "status": ["success"]})
    )
    assert state[["externalId", "record_hash", "UserPrincipalName", "active"]].values.tolist() == [
        ["1", "h", "a@contoso.com", True]
    ]
    assert state["last_verified_at"].notna().all()


def test_upn_and_links_fall_back_to_the_log_then_the_ledger() -> None:
    before = apply_outcomes(
        empty_snapshot(),
        sent([("1", "h1", "a@contoso.com", True, "joiner")]),
        outcomes([("1", "success", None, T0)]),
    )
    delta = sent([("1", "h1b", None, True, "mover"), ("2", "h2", None, True, "joiner")]).assign(
        LinkedWorkerID=["10", "20"]
    )
    result = outcomes([("1", "success", None, T1), ("2", "success", None, T1)]).assign(upn=[None, "b@x.com"])
    after = apply_outcomes(before, delta, result).set_index("externalId")
    assert after["UserPrincipalName"].to_dict() == {"1": "a@contoso.com", "2": "b@x.com"}
    assert after["linked_external_id"].to_dict() == {"1": "10", "2": "20"}


def test_a_disable_of_someone_missing_keeps_upn_hash_and_digests() -> None:
    first = sent([("2", "h2", "b@contoso.com", True, "joiner")])
    before = apply_outcomes(empty_snapshot(), first, outcomes([("2", "success", None, T0)]))
    minimal = pd.DataFrame(
        {
            "externalId": ["2"],
            "record_hash": ["h2"],
            "userName": ["b@contoso.com"],
            "active": [False],
            "change": ["missing_disable"],
            "displayName": [None],
        }
    )
    after = apply_outcomes(before, minimal, outcomes([("2", "success", None, T1)]))
    assert after[["record_hash", "UserPrincipalName", "active"]].values.tolist() == [
        ["h2", "b@contoso.com", False]
    ]
    assert after["attr_digest"].tolist() == before["attr_digest"].tolist()


def test_overlapping_runs_fold_in_microsofts_order_not_commit_order(tmp_path: Path) -> None:
    """A manual and a scheduled run commit one person: the later log entry wins, whoever commits last."""
    path = tmp_path / "ledger" / "job"
    scheduled = sent(
        [("1", "old", "a@contoso.com", True, "joiner"), ("2", "h2", "b@contoso.com", True, "joiner")]
    )
    manual = sent([("1", "new", "a@contoso.com", False, "leaver")])
    # The manual run's entry is later, but the scheduled run (slower to verify) commits after it.
    commit(path, manual, outcomes([("1", "success", None, T1)]), run_id="manual")
    commit(
        path,
        scheduled,
        outcomes([("1", "success", None, T0), ("2", "success", None, T0)]),
        run_id="scheduled",
    )
    state = read_ledger(path).state.set_index("externalId")
    assert state["record_hash"].to_dict() == {"1": "new", "2": "h2"}
    assert state.at["1", "active"] is False or not state.at["1", "active"]
    # Committing the same outcome again changes nothing.
    commit(path, manual, outcomes([("1", "success", None, T1)]), run_id="manual")
    again = read_ledger(path).state.set_index("externalId")
    pd.testing.assert_series_equal(again["record_hash"], state["record_hash"])


#: One writer process: ``count`` commits of one record each, from ``start`` (a separate interpreter, so the
#: test needs no importable test module, whatever pytest's import mode).
_WRITER = """
import sys
from datetime import datetime, timedelta, timezone

import pandas as pd

from airflow_provider_entra.provisioning.ledger import commit

folder, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
for i in range(start, start + count):
    sent = pd.DataFrame(
        {"externalId": [str(i)], "record_hash": [f"h{i}"], "userName": [f"u{i}@x.com"], "active": [True]}
    )
    outcomes = pd.DataFrame(
        {"external_id": [str(i)], "status": ["success"], "activity_time": [t0 + timedelta(seconds=i)]}
    )
    commit(folder, sent, outcomes, run_id=f"run-{i}")
"""


def test_concurrent_commits_from_several_processes_lose_nothing(tmp_path: Path) -> None:
    """Two writers at once, each past the compaction threshold: every row survives."""
    folder = str(tmp_path / "ledger" / "job")
    per_writer = COMPACT_AFTER_FILES + 6
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, folder, str(start), str(per_writer)])
        for start in (0, 1000)
    ]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    state = read_ledger(folder).state
    expected = {str(i) for i in range(per_writer)} | {str(1000 + i) for i in range(per_writer)}
    assert set(state["externalId"]) == expected
    assert len(list(Path(folder).glob("*.parquet"))) <= COMPACT_AFTER_FILES + 2


def test_compaction_folds_files_and_keeps_rows_and_skips(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    for run in range(STUCK_AFTER_RUNS):
        commit(
            path,
            sent(
                [("1", "h1", "a@contoso.com", True, "joiner"), ("2", "h2", "b@contoso.com", True, "joiner")]
            ),
            outcomes(
                [("1", "success", None, T0), ("2", "skipped", "NotEffectivelyEntitled", T0 + timedelta(run))]
            ),
            run_id=f"run-{run}",
        )
    before = read_ledger(path)
    assert before.files == 2 * STUCK_AFTER_RUNS
    assert before.stuck()["externalId"].tolist() == ["2"]
    assert compact(path) == 2 * STUCK_AFTER_RUNS
    after = read_ledger(path)
    assert after.files == 2
    pd.testing.assert_frame_equal(after.state, before.state)
    assert after.stuck()[["externalId", "runs"]].values.tolist() == [["2", STUCK_AFTER_RUNS]]


def test_a_proven_state_clears_earlier_skips(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    one = sent([("2", "h2", "b@contoso.com", True, "joiner")])
    for run in range(STUCK_AFTER_RUNS):
        commit(
            path,
            one,
            outcomes([("2", "skipped", "NotEffectivelyEntitled", T0 + timedelta(run))]),
            run_id=str(run),
        )
    assert len(read_ledger(path).stuck()) == 1
    # The app's scope was fixed: the next attempt succeeds, and the record is no longer stuck.
    commit(path, one, outcomes([("2", "success", None, T1)]), run_id="fixed")
    assert read_ledger(path).stuck().empty


def test_a_failed_write_leaves_the_ledger_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ledger"
    commit(
        path,
        sent([("1", "h1", "a@x.com", True, "joiner")]),
        outcomes([("1", "success", None, T0)]),
        run_id="a",
    )
    before = sorted(p.name for p in path.iterdir())

    def half_written(self: pd.DataFrame, fh, **kwargs) -> None:
        fh.write(b"PAR1 truncated")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_written)
    with pytest.raises(OSError, match="disk full"):
        commit(
            path,
            sent([("9", "h9", "z@x.com", True, "joiner")]),
            outcomes([("9", "success", None, T1)]),
            run_id="b",
        )
    monkeypatch.undo()
    assert sorted(p.name for p in path.iterdir()) == before
    assert read_ledger(path).state["externalId"].tolist() == ["1"]


@pytest.mark.parametrize(
    "root",
    ["memory://entra-tests/ledger-url", UPath("memory://entra-tests/ledger-upath")],
    ids=["url", "upath"],
)
def test_object_storage_ledgers(root) -> None:
    path = root if isinstance(root, str) else root / "job"
    assert read_ledger(path).state.empty
    commit(
        path,
        sent([("1", "h1", "a@x.com", True, "joiner")]),
        outcomes([("1", "success", None, T0)]),
        run_id="a",
    )
    commit(
        path,
        sent([("1", "h2", "a@x.com", False, "leaver")]),
        outcomes([("1", "success", None, T1)]),
        run_id="b",
    )
    state = read_ledger(path).state
    assert state[["record_hash", "active"]].values.tolist() == [["h2", False]]
    assert compact(path) == 2
    assert read_ledger(path).state[["record_hash", "active"]].values.tolist() == [["h2", False]]


def test_a_first_release_snapshot_is_adopted_once(tmp_path: Path) -> None:
    legacy = tmp_path / "entra_hr_provisioning" / "snapshot" / "hr_snapshot.parquet"
    legacy.parent.mkdir(parents=True)
    pd.DataFrame(
        {
            "externalId": ["1", "2"],
            "record_hash": ["a", "b"],
            "UserPrincipalName": ["a@x", "b@x"],
            "active": True,
        }
    ).to_parquet(legacy)
    path = ledger_dir(tmp_path, "API2AAD.abc.def")
    assert path.endswith("/ledger/API2AAD.abc.def")
    assert read_ledger(path, legacy_snapshot=legacy).legacy
    assert adopt_legacy_snapshot(path, legacy) == 2
    assert adopt_legacy_snapshot(path, legacy) == 0  # once the ledger holds state
    state = read_ledger(path).state
    assert state["externalId"].tolist() == ["1", "2"] and set(state["proof"]) == {"legacy"}


def test_job_keys_are_safe_folder_names() -> None:
    assert ledger.job_key("API2AAD.0a1b.2c3d") == "API2AAD.0a1b.2c3d"
    assert ledger.job_key("../../etc/passwd") == "etc_passwd"
    with pytest.raises(ValueError, match="cannot name a ledger"):
        ledger.job_key("..")
