"""plan_delta: joiners, movers, leavers, rehires, inactive, missing-from-feed, held, stuck, full sync."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_entra.provisioning.hr_source import read_hr_csv
from airflow_provider_entra.provisioning.ledger import Ledger, apply_outcomes, fold_outcomes
from airflow_provider_entra.provisioning.normalise import normalise_hr
from airflow_provider_entra.provisioning.plan import ALL_CHANGES, MANAGER_RETRY, plan_delta
from airflow_provider_entra.provisioning.snapshot import empty_snapshot
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
    return apply_outcomes(snapshot, plan.frame, outcomes, run_id="test", verified_at=WHEN)


def sample_feed() -> pd.DataFrame:
    valid = validate_hr(read_hr_csv(SAMPLE / "Sample1-employeeData.csv")).valid
    return mapped(normalise_hr(valid, upn_domain="contoso.com").frame)


def test_first_run_sends_joiners_and_inactive_workers_disabled() -> None:
    """Unknown is not absent: an inactive worker the ledger does not know may have an account."""
    feed = sample_feed()
    plan = plan_delta(feed, empty_snapshot())
    active = int(feed["active"].sum())
    assert plan.counts["joiner"] == active and plan.counts["inactive_new"] == len(feed) - active == 123
    assert len(plan.frame) == len(feed)
    sent = plan.frame.set_index("externalId")
    assert (sent.loc[sent["change"] == "joiner", "active"]).all()
    assert not (sent.loc[sent["change"] == "inactive_new", "active"]).any()
    assert len(plan.disables) == 0  # not an enabled account the ledger knows: not a guarded disable
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
    assert {k: v for k, v in again.counts.items() if k != "unchanged"} == {
        k: 0 for k in ALL_CHANGES if k != "unchanged"
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
    assert snapshot.set_index("externalId")["active"].to_dict() == {"1": True, "2": False, "3": True}
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


def test_full_sync_resends_every_known_record() -> None:
    hr = people([("1", "Active", "Sales"), ("2", "Inactive", "Sales"), ("3", "Active", "IT")])
    snapshot = commit_all(empty_snapshot(), plan_delta(mapped(hr), empty_snapshot()))
    plan = plan_delta(mapped(hr), snapshot, full_sync=True)
    assert plan.full_sync
    assert dict(zip(plan.frame["externalId"], plan.frame["change"], strict=True)) == {
        "1": "unchanged",
        "2": "unchanged",
        "3": "unchanged",
    }


def test_declared_scope_leaves_long_gone_workers_out() -> None:
    hr = people([("1", "Active", "Sales"), ("2", "Inactive", "Sales"), ("3", "Inactive", "IT")])
    scope = pd.Series([False, True, False])  # worker 2 left long before the first sync
    plan = plan_delta(mapped(hr), empty_snapshot(), out_of_scope=scope)
    assert dict(zip(plan.frame["externalId"], plan.frame["change"], strict=True)) == {
        "1": "joiner",
        "3": "inactive_new",
    }
    assert plan.counts["out_of_scope"] == 1
    # Once the ledger knows a worker, the scope no longer matters: a leaver is always sent.
    snapshot = commit_all(empty_snapshot(), plan)
    hr["WorkerStatus"] = ["Inactive", "Inactive", "Inactive"]
    again = plan_delta(mapped(hr), snapshot, out_of_scope=pd.Series([True, True, True]))
    assert dict(zip(again.frame["externalId"], again.frame["change"], strict=True)) == {"1": "leaver"}


def test_a_quarantined_person_is_held_not_missing() -> None:
    hr = people([("1", "Active", "Sales"), ("2", "Active", "Sales"), ("3", "Active", "IT")])
    snapshot = commit_all(empty_snapshot(), plan_delta(mapped(hr), empty_snapshot()))
    # Rows 2 and 3 were quarantined this run (a bad email, a mangled id): only row 1 reaches the plan.
    plan = plan_delta(mapped(hr[hr["WorkerID"] == "1"]), snapshot, held_ids=pd.Index(["2", "3"]))
    assert plan.frame.empty and len(plan.disables) == 0
    assert plan.counts["held"] == 2 and plan.counts["missing_disable"] == 0
    assert sorted(plan.held) == ["2", "3"]
    # Without the hold, they would be disabled as missing.
    assert plan_delta(mapped(hr[hr["WorkerID"] == "1"]), snapshot).counts["missing_disable"] == 2


def test_a_record_skipped_the_same_way_twice_is_stuck_not_resent() -> None:
    hr = people([("1", "Active", "Sales"), ("2", "Inactive", "Sales")])
    first = plan_delta(mapped(hr), empty_snapshot())
    outcomes = pd.DataFrame(
        {
            "external_id": ["1", "2"],
            "status": ["success", "skipped"],
            "error_code": [None, "NotEffectivelyEntitled"],
            "reason": [None, "out of scope"],
        }
    )
    _, skips_one, _ = fold_outcomes(first.frame, outcomes, empty_snapshot(), run_id="run-1")
    state = apply_outcomes(empty_snapshot(), first.frame, outcomes, run_id="run-1")
    assert state["externalId"].tolist() == ["1"]  # an out-of-scope skip proves nothing
    once = Ledger(state=state, skips=skips_one)
    assert once.stuck().empty
    second = plan_delta(mapped(hr), state, stuck=once.stuck())
    assert second.frame["externalId"].tolist() == ["2"]  # sent again once
    _, skips_two, _ = fold_outcomes(second.frame, outcomes.iloc[[1]], state, run_id="run-2")
    twice = Ledger(state=state, skips=pd.concat([skips_one, skips_two], ignore_index=True))
    stuck = twice.stuck()
    assert stuck[["externalId", "reason", "runs"]].values.tolist() == [["2", "NotEffectivelyEntitled", 2]]
    third = plan_delta(mapped(hr), state, stuck=stuck)
    assert third.frame.empty and third.counts["stuck"] == 1
    assert third.stuck["externalId"].tolist() == ["2"]
    # A change to the record, or a full sync, sends it again.
    full = plan_delta(mapped(hr), state, stuck=stuck, full_sync=True)
    assert full.frame.set_index("externalId")["change"].to_dict() == {"1": "unchanged", "2": "stuck"}
    changed = hr.assign(Department=["Sales", "Archive"])
    assert plan_delta(mapped(changed), state, stuck=stuck).frame["externalId"].tolist() == ["2"]


def test_a_manager_entra_could_not_set_is_retried_once_the_ledger_holds_it() -> None:
    manager = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
    feed = mapped(people([("1", "Active", "Sales")])).assign(**{manager: "9"})
    outcomes = pd.DataFrame(
        {
            "external_id": ["1"],
            "status": ["warning"],
            "error_code": ["UnableToResolveReferenceAttributeValue"],
            "unresolved_reference": [True],
        }
    )
    state = apply_outcomes(empty_snapshot(), feed.assign(change="joiner"), outcomes, run_id="run-1")
    assert state["unresolved_manager"].tolist() == ["9"]
    assert plan_delta(feed, state).frame.empty  # the manager is still unknown: nothing to retry
    manager_row = state.assign(externalId="9", unresolved_manager=None)
    known = pd.concat([state, manager_row], ignore_index=True)
    retry = plan_delta(feed, known, missing_policy="ignore")
    assert retry.frame[["externalId", "change", "changed_attributes"]].values.tolist() == [
        ["1", "mover", MANAGER_RETRY]
    ]


def test_movers_name_the_attributes_that_changed() -> None:
    hr = people([("1", "Active", "Sales"), ("2", "Active", "Sales")])
    snapshot = commit_all(empty_snapshot(), plan_delta(mapped(hr), empty_snapshot()))
    hr.loc[hr["WorkerID"] == "2", "Department"] = "Finance"
    plan = plan_delta(mapped(hr), snapshot)
    assert plan.frame[["externalId", "changed_attributes"]].values.tolist() == [["2", "department"]]


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


def test_a_ledger_row_never_proven_counts_as_joiner_or_leaver() -> None:
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
    snapshot = apply_outcomes(empty_snapshot(), first.frame, outcomes, verified_at=WHEN)
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
    assert plan.classification.to_dict() == {"1": "joiner", "2": "inactive_new"}


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
    assert first.counts["joiner"] + first.counts["inactive_new"] == len(first.frame) > 100
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
    mapped_dtypes = plan.frame.dtypes.drop(["change", "changed_attributes"])
    assert gone.frame.dtypes.drop(["change", "changed_attributes"]).to_dict() == mapped_dtypes.to_dict()
    assert str(gone.frame["active"].dtype) == "boolean" and not gone.frame["active"].iloc[0]


def test_a_joiner_before_the_hire_date_is_created_disabled_and_enabled_on_the_day() -> None:
    hr = people([("1", "Active", "Sales"), ("2", "Active", "Sales")])
    future = pd.Series([False, True])  # worker 2 starts next month
    plan = plan_delta(mapped(hr), empty_snapshot(), prehire=future)
    sent = plan.frame.set_index("externalId")
    assert sent["change"].to_dict() == {"1": "joiner", "2": "prehire"}
    assert sent["active"].to_dict() == {"1": True, "2": False}
    state = commit_all(empty_snapshot(), plan)
    # Still before the start date: nothing to send; an account held enabled is never disabled for it.
    assert plan_delta(mapped(hr), state, prehire=future).frame.empty
    assert plan_delta(mapped(hr), state, prehire=pd.Series([True, True])).frame.empty
    # The start date has come: enabled.
    day_one = plan_delta(mapped(hr), state, prehire=pd.Series([False, False]))
    assert day_one.frame[["externalId", "change", "active"]].values.tolist() == [["2", "rehire", True]]


def test_the_keys_and_the_rows_sent_read_alone_give_the_same_plan(tmp_path: Path) -> None:
    """sync.plan compares only the keys and reads the rows sent afterwards: the very same delta."""
    from airflow_provider_entra._fsio import read_rows
    from airflow_provider_entra.provisioning.sync import PLAN_KEYS

    hr = people([(str(n), "Active", "Sales") for n in range(1, 9)])
    snapshot = commit_all(empty_snapshot(), plan_delta(mapped(hr), empty_snapshot()))
    hr.loc[hr["WorkerID"] == "3", "Department"] = "Finance"  # a mover
    hr.loc[hr["WorkerID"] == "5", "WorkerStatus"] = "Inactive"  # a leaver
    hr = hr[hr["WorkerID"] != "7"]  # missing: disabled
    feed = mapped(hr).reset_index(drop=True)
    path = tmp_path / "mapped.parquet"
    feed.to_parquet(path, index=False)
    whole = plan_delta(feed, snapshot)
    keys = plan_delta(feed[list(PLAN_KEYS)], snapshot, rows=lambda positions: read_rows(path, positions))
    pd.testing.assert_frame_equal(keys.frame, whole.frame)
    assert keys.counts == whole.counts and keys.frame["change"].tolist() == [
        "mover",
        "leaver",
        "missing_disable",
    ]
