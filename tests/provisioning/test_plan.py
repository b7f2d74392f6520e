"""plan_delta: joiners, movers, leavers, rehires, missing-from-feed, unchanged, full sync."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_entra.provisioning.hr_source import read_hr_csv
from airflow_provider_entra.provisioning.normalise import normalise_hr
from airflow_provider_entra.provisioning.plan import ALL_CHANGES, plan_delta
from airflow_provider_entra.provisioning.snapshot import commit_verified, empty_snapshot
from airflow_provider_entra.provisioning.validate import validate_hr

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "microsoft-sample"
WHEN = datetime(2026, 1, 1, tzinfo=timezone.utc)


def mapped(hr: pd.DataFrame) -> pd.DataFrame:
    """A stand-in for the SCIM mapping: a few attributes, ``active`` and a hash of the mapped record."""
    out = pd.DataFrame(
        {
            "externalId": hr["WorkerID"].to_numpy(),
            "userName": hr["UserPrincipalName"].to_numpy(),
            "displayName": hr["FullName"].to_numpy() if "FullName" in hr else None,
            "department": hr["Department"].to_numpy() if "Department" in hr else None,
            "active": (hr["WorkerStatus"] == "Active").to_numpy(),
        }
    )
    out["record_hash"] = pd.util.hash_pandas_object(out, index=False).astype(str).to_numpy()
    return out


def people(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """(WorkerID, status, department) -> normalised HR frame."""
    frame = pd.DataFrame(
        {
            "WorkerID": [r[0] for r in rows],
            "WorkerStatus": [r[1] for r in rows],
            "FirstName": [f"F{r[0]}" for r in rows],
            "LastName": [f"L{r[0]}" for r in rows],
            "FullName": [f"F{r[0]} L{r[0]}" for r in rows],
            "Department": [r[2] for r in rows],
        }
    )
    return normalise_hr(frame, upn_domain="contoso.com").frame


def commit_all(snapshot: pd.DataFrame, plan, status: str = "success") -> pd.DataFrame:
    outcomes = pd.DataFrame({"external_id": plan.frame["externalId"], "status": status})
    return commit_verified(snapshot, plan, outcomes, sent_at=WHEN, verified_at=WHEN)


def sample_feed() -> pd.DataFrame:
    valid = validate_hr(read_hr_csv(SAMPLE / "Sample1-employeeData.csv")).valid
    return mapped(normalise_hr(valid, upn_domain="contoso.com").frame)


def test_first_run_sends_active_joiners_and_skips_inactive_newcomers() -> None:
    feed = sample_feed()
    plan = plan_delta(feed, empty_snapshot())
    active = int(feed["active"].sum())
    assert plan.counts["joiner"] == active == len(plan.frame)
    assert plan.counts["skipped_inactive_new"] == len(feed) - active
    assert set(plan.frame["change"]) == {"joiner"}
    assert plan.frame["active"].all()
    assert list(plan.to_send_ids) == list(feed.loc[feed["active"], "externalId"])
    assert len(plan.disables) == 0
    assert set(plan.counts) == set(ALL_CHANGES)
    assert sum(plan.counts.values()) == len(feed)


def test_unchanged_data_sends_nothing() -> None:
    feed = sample_feed()
    first = plan_delta(feed, empty_snapshot())
    snapshot = commit_all(empty_snapshot(), first)
    again = plan_delta(feed, snapshot)
    assert again.frame.empty
    assert again.to_send_count == 0
    assert again.unchanged_count == len(first.frame)
    assert again.counts["skipped_inactive_new"] == first.counts["skipped_inactive_new"]
    assert {k: v for k, v in again.counts.items() if k not in ("unchanged", "skipped_inactive_new")} == {
        k: 0 for k in ALL_CHANGES if k not in ("unchanged", "skipped_inactive_new")
    }


def test_one_changed_row_is_exactly_one_mover() -> None:
    hr = people([("1", "Active", "Sales"), ("2", "Active", "Sales"), ("3", "Active", "IT")])
    snapshot = commit_all(empty_snapshot(), plan_delta(mapped(hr), empty_snapshot()))
    hr.loc[hr["WorkerID"] == "2", "Department"] = "Finance"
    plan = plan_delta(mapped(hr), snapshot)
    assert plan.frame[["externalId", "change", "department"]].values.tolist() == [["2", "mover", "Finance"]]
    assert plan.counts["mover"] == 1 and plan.unchanged_count == 2


def test_leaver_and_rehire() -> None:
    hr = people([("1", "Active", "Sales"), ("2", "Inactive", "Sales"), ("3", "Active", "IT")])
    first = plan_delta(mapped(hr), empty_snapshot(), full_sync=False)
    snapshot = commit_all(empty_snapshot(), first)
    # Worker 2 was never sent (inactive newcomer); make them a known, disabled account.
    snapshot = pd.concat(
        [snapshot, snapshot.iloc[[0]].assign(externalId="2", active=False, record_hash="old")],
        ignore_index=True,
    )
    hr["WorkerStatus"] = ["Inactive", "Active", "Active"]
    plan = plan_delta(mapped(hr), snapshot)
    assert dict(zip(plan.frame["externalId"], plan.frame["change"], strict=True)) == {
        "1": "leaver",
        "2": "rehire",
    }
    assert plan.frame.set_index("externalId")["active"].to_dict() == {"1": False, "2": True}
    assert list(plan.disables) == ["1"]


def test_leaver_is_sent_even_when_nothing_else_changed() -> None:
    hr = people([("1", "Active", "Sales")])
    snapshot = commit_all(empty_snapshot(), plan_delta(mapped(hr), empty_snapshot()))
    # Same hash on purpose: only the active flag differs.
    feed = mapped(hr).assign(active=False)
    feed["record_hash"] = snapshot["record_hash"].iloc[0]
    plan = plan_delta(feed, snapshot)
    assert plan.frame["change"].tolist() == ["leaver"]


def test_missing_from_feed_disable_policy_sends_a_minimal_disable() -> None:
    hr = people([("1", "Active", "Sales"), ("2", "Active", "Sales"), ("3", "Inactive", "IT")])
    snapshot = commit_all(empty_snapshot(), plan_delta(mapped(hr), empty_snapshot()))
    plan = plan_delta(mapped(hr[hr["WorkerID"] == "1"]), snapshot, missing_policy="disable")
    assert plan.frame["change"].tolist() == ["missing_disable"]
    row = plan.frame.iloc[0]
    assert row["externalId"] == "2"
    assert plan.frame["active"].dtype == bool and not row["active"]
    assert row["userName"] == "f2.l2@contoso.com"
    assert row["record_hash"] == snapshot.set_index("externalId").at["2", "record_hash"]
    assert pd.isna(row["displayName"]) and pd.isna(row["department"])
    assert list(plan.disables) == ["2"]
    assert plan.counts["missing_disable"] == 1 and plan.counts["missing_ignored"] == 0


def test_missing_from_feed_ignore_policy_only_counts() -> None:
    hr = people([("1", "Active", "Sales"), ("2", "Active", "Sales")])
    snapshot = commit_all(empty_snapshot(), plan_delta(mapped(hr), empty_snapshot()))
    plan = plan_delta(mapped(hr[hr["WorkerID"] == "1"]), snapshot, missing_policy="ignore")
    assert plan.frame.empty
    assert plan.counts["missing_ignored"] == 1 and plan.counts["missing_disable"] == 0
    assert len(plan.disables) == 0


def test_missing_accounts_already_disabled_are_left_alone() -> None:
    hr = people([("1", "Active", "Sales")])
    snapshot = commit_all(empty_snapshot(), plan_delta(mapped(hr), empty_snapshot())).assign(active=False)
    plan = plan_delta(mapped(hr.iloc[:0]), snapshot)
    assert plan.frame.empty and plan.counts["missing_disable"] == 0


def test_full_sync_resends_known_records_but_never_creates_disabled_ones() -> None:
    hr = people([("1", "Active", "Sales"), ("2", "Inactive", "Sales"), ("3", "Active", "IT")])
    snapshot = commit_all(empty_snapshot(), plan_delta(mapped(hr), empty_snapshot()))
    plan = plan_delta(mapped(hr), snapshot, full_sync=True)
    assert plan.full_sync
    assert dict(zip(plan.frame["externalId"], plan.frame["change"], strict=True)) == {
        "1": "unchanged",
        "3": "unchanged",
    }
    assert plan.counts["skipped_inactive_new"] == 1


def test_changes_to_a_disabled_account_wait_for_a_full_sync() -> None:
    hr = people([("1", "Active", "Sales")])
    snapshot = commit_all(empty_snapshot(), plan_delta(mapped(hr), empty_snapshot()))
    hr["WorkerStatus"] = "Inactive"
    snapshot = commit_all(snapshot, plan_delta(mapped(hr), snapshot))
    assert not snapshot["active"].any()
    hr["Department"] = "Archive"
    delta = plan_delta(mapped(hr), snapshot)
    assert delta.frame.empty and delta.counts["inactive_changed"] == 1
    full = plan_delta(mapped(hr), snapshot, full_sync=True)
    assert full.frame["change"].tolist() == ["inactive_changed"]


def test_a_snapshot_row_never_sent_counts_as_joiner_or_leaver() -> None:
    hr = people([("1", "Active", "Sales"), ("2", "Inactive", "Sales")])
    seeded = pd.DataFrame(
        {
            "externalId": ["1", "2"],
            "record_hash": [None, None],
            "UserPrincipalName": ["a@x.com", "b@x.com"],
            "active": [True, True],
        }
    )
    plan = plan_delta(mapped(hr), seeded)
    assert dict(zip(plan.frame["externalId"], plan.frame["change"], strict=True)) == {
        "1": "joiner",
        "2": "leaver",
    }


def test_failed_records_are_planned_again_after_commit() -> None:
    hr = people([("1", "Active", "Sales"), ("2", "Active", "Sales")])
    first = plan_delta(mapped(hr), empty_snapshot())
    outcomes = pd.DataFrame({"external_id": ["1", "2"], "status": ["success", "failure"]})
    snapshot = commit_verified(empty_snapshot(), first, outcomes, sent_at=WHEN, verified_at=WHEN)
    again = plan_delta(mapped(hr), snapshot)
    assert dict(zip(again.frame["externalId"], again.frame["change"], strict=True)) == {"2": "joiner"}


def test_plan_refuses_bad_mapped_frames() -> None:
    feed = mapped(people([("1", "Active", "Sales"), ("2", "Active", "Sales")]))
    with pytest.raises(ValueError, match="repeats externalId"):
        plan_delta(pd.concat([feed, feed.iloc[[0]]]), empty_snapshot())
    with pytest.raises(ValueError, match="'record_hash'"):
        plan_delta(feed.drop(columns="record_hash"), empty_snapshot())
    with pytest.raises(ValueError, match="without an active flag"):
        plan_delta(feed.assign(active=pd.array([True, None], dtype="boolean")), empty_snapshot())
    with pytest.raises(ValueError, match="without an externalId"):
        plan_delta(feed.assign(externalId=["1", None]), empty_snapshot())
    with pytest.raises(ValueError, match="missing_policy"):
        plan_delta(feed, empty_snapshot(), missing_policy="delete")  # type: ignore[arg-type]


def test_classification_covers_every_feed_record() -> None:
    hr = people([("1", "Active", "Sales"), ("2", "Inactive", "Sales")])
    plan = plan_delta(mapped(hr), empty_snapshot())
    assert plan.classification.to_dict() == {"1": "joiner", "2": "skipped_inactive_new"}


def test_with_the_scim_mapping_layer_only_changed_attributes_make_movers() -> None:
    from airflow_provider_entra.scim.mapping import AttributeMapping
    from airflow_provider_entra.scim.records import map_records

    mapping = AttributeMapping.from_dict(
        {
            "externalId": "WorkerID",
            "userName": "UserPrincipalName",
            "active": {"expr": 'WorkerStatus == "Active"'},
            "displayName": "FullName",
            "name.givenName": "FirstName",
            "name.familyName": "LastName",
            "title": "JobTitle",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Department",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value": "ManagerID",
        }
    )
    raw = read_hr_csv(SAMPLE / "Sample1-employeeData.csv")

    def run(export: pd.DataFrame, snapshot: pd.DataFrame):
        valid = validate_hr(export, known_ids=snapshot["externalId"]).valid
        existing = snapshot.set_index("externalId")["UserPrincipalName"]
        hr = normalise_hr(valid, upn_domain="contoso.com", existing_upns=existing).frame
        return plan_delta(map_records(hr, mapping).frame, snapshot)

    first = run(raw, empty_snapshot())
    assert first.counts["joiner"] == len(first.frame) > 100
    snapshot = commit_all(empty_snapshot(), first)
    assert run(raw, snapshot).to_send_count == 0

    # A column the mapping does not use changes for everybody: still nothing to send.
    assert run(raw.assign(Custom01="changed"), snapshot).to_send_count == 0
    # One mapped attribute of one active worker changes: exactly one mover.
    active_id = snapshot["externalId"].iloc[0]
    moved = raw.copy()
    moved.loc[moved["WorkerID"] == active_id, "JobTitle"] = "Chief Cartographer"
    plan = run(moved, snapshot)
    assert plan.frame[["externalId", "change"]].values.tolist() == [[active_id, "mover"]]
    # The worker leaves the export: a disable with the mapped frame's dtypes (nothing falls back to object).
    gone = run(raw[raw["WorkerID"] != active_id], snapshot)
    assert gone.frame[["externalId", "change", "userName"]].values.tolist() == [
        [active_id, "missing_disable", snapshot.set_index("externalId").at[active_id, "UserPrincipalName"]]
    ]
    mapped_dtypes = plan.frame.dtypes.drop("change")
    assert gone.frame.dtypes.drop("change").to_dict() == mapped_dtypes.to_dict()
    assert str(gone.frame["active"].dtype) == "boolean" and not gone.frame["active"].iloc[0]
