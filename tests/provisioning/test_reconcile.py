"""Reconciliation of sent externalIds against provisioning-log entries."""

from __future__ import annotations

import copy
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from airflow_provider_entra.provisioning.reconcile import (
    OUTCOME_COLUMNS,
    UNRESOLVED_REFERENCE,
    acceptance_times,
    failure_reasons,
    outcome_summary,
    reconcile,
    reconcile_detailed,
    records_to_resend,
)

T0 = datetime(2026, 3, 2, 8, 0, 0, tzinfo=timezone.utc)
UPN_ERROR = "AzureActiveDirectoryInvalidUserPrincipalName"


def _stamp(offset_seconds: float) -> str:
    return (T0 + timedelta(seconds=offset_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry(
    external_id: str,
    offset: float,
    *,
    status: str = "success",
    action: str = "create",
    change_id: str | None = None,
    error: dict[str, Any] | None = None,
    steps: list[dict[str, Any]] | None = None,
    entry_id: str | None = None,
) -> dict[str, Any]:
    """A v1.0 provisioningObjectSummary shaped like Microsoft's sample."""
    return {
        "id": entry_id or f"log-{external_id}-{offset}-{action}",
        "activityDateTime": _stamp(offset),
        "jobId": "API2AAD.tenant.job",
        "cycleId": "cycle-1",
        "changeId": change_id or f"change-{external_id}",
        "provisioningAction": action,
        "sourceIdentity": {"id": external_id, "displayName": ""},
        "targetIdentity": {
            "id": f"object-{external_id}" if status != "failure" else "",
            "details": {"UserPrincipalName": f"user{external_id}@contoso.com"},
        },
        "provisioningStatusInfo": {"status": status, "errorInformation": error},
        "provisioningSteps": steps or [],
    }


def manager_skip_step(manager: str) -> dict[str, Any]:
    return {
        "name": "EntrySynchronizationSkip",
        "provisioningStepType": "processing",
        "status": "success",
        "description": f"We were unable to assign {manager} as the manager.",
        "details": {manager: "manager Add", "PropertyName": "manager", "SkipReason": UNRESOLVED_REFERENCE},
    }


def upn_failure(external_id: str, offset: float) -> dict[str, Any]:
    return entry(
        external_id,
        offset,
        status="failure",
        error={
            "errorCode": UPN_ERROR,
            "reason": f"The userPrincipalName of '{external_id}' is invalid or already in use.",
            "errorCategory": "NonServiceFailure",
            "recommendedAction": "Make the userPrincipalName unique and valid, then send the record again.",
            "additionalDetails": None,
        },
    )


@pytest.fixture(scope="module")
def sample_entries(microsoft_sample: Path) -> list[dict[str, Any]]:
    return json.loads((microsoft_sample / "provisioning-logs-response.json").read_text())["value"]


SAMPLE_IDS = ["10015", "10016", "10017", "10018", "10019", "10020", "1514131211"]


def by_id(outcomes: pd.DataFrame) -> pd.DataFrame:
    return outcomes.set_index("external_id")


# --- Microsoft's real log sample ----------------------------------------------------------------------------


def test_sample_manager_skipped_then_resolved_is_success(sample_entries: list[dict[str, Any]]) -> None:
    outcomes = by_id(reconcile(sample_entries, SAMPLE_IDS))
    for external_id in ("10018", "10019"):
        row = outcomes.loc[external_id]
        assert row["status"] == "success"
        assert row["action"] == "update"
        assert bool(row["resolved_later"]) is True
        assert bool(row["unresolved_reference"]) is False
        assert row["entries"] == 2
        assert pd.isna(row["error_code"])
    assert outcomes.loc["10018", "change_id"] == "3049004c-348d-45e6-9b18-ed00253536b7"
    assert outcomes.loc["10018", "activity_time"] == pd.Timestamp("2023-01-03T22:40:50Z")
    assert outcomes.loc["10018", "upn"] == "LeoCastest1281@saziatestaad.onmicrosoft.com"
    assert outcomes.loc["10018", "entra_object_id"] == "f584794b-2c5e-4499-9a9b-e0c495a84ea0"
    assert outcomes.loc["10019", "activity_time"] == pd.Timestamp("2023-01-03T22:40:49Z")


def test_sample_three_entries_across_two_changes(sample_entries: list[dict[str, Any]]) -> None:
    outcomes = by_id(reconcile(sample_entries, SAMPLE_IDS))
    # 10015..10017: create (skip), update from a second change, update resolving the manager.
    assert outcomes.loc[["10015", "10016", "10017"], "entries"].tolist() == [3, 3, 3]
    assert (outcomes.loc[["10015", "10016", "10017"], "status"] == "success").all()
    assert outcomes.loc["10015", "activity_time"] == pd.Timestamp("2023-01-03T21:40:53Z")
    assert outcomes.loc["10017", "change_id"] == "8175dbb6-71a9-4dab-8993-dec72b6834ce"


def test_sample_manager_never_resolved_is_flagged(sample_entries: list[dict[str, Any]]) -> None:
    # 10020's manager 10010 was never sent: Entra logged a successful create with a reference skip only.
    row = by_id(reconcile(sample_entries, SAMPLE_IDS)).loc["10020"]
    assert row["status"] == "warning"
    assert bool(row["unresolved_reference"]) is True
    assert bool(row["resolved_later"]) is False
    assert row["error_code"] == UNRESOLVED_REFERENCE
    assert "10010" in row["reason"]
    assert row["entra_object_id"] == "c81bf73b-b35a-41d9-a159-4c0109cfd7ef"


def test_sample_plain_create(sample_entries: list[dict[str, Any]]) -> None:
    row = by_id(reconcile(sample_entries, SAMPLE_IDS)).loc["1514131211"]
    assert (row["status"], row["action"], row["entries"], bool(row["resolved_later"])) == (
        "success",
        "create",
        1,
        False,
    )


def test_sample_columns_and_order(sample_entries: list[dict[str, Any]]) -> None:
    sent = list(reversed(SAMPLE_IDS))
    outcomes = reconcile(sample_entries, sent)
    assert tuple(outcomes.columns) == OUTCOME_COLUMNS
    assert outcomes["external_id"].tolist() == sent
    assert str(outcomes["activity_time"].dt.tz) == "UTC"
    assert outcomes["entries"].sum() == len(sample_entries)


def test_sample_shuffled_order_gives_same_outcomes(sample_entries: list[dict[str, Any]]) -> None:
    expected = reconcile(sample_entries, SAMPLE_IDS)
    for seed in range(5):
        shuffled = sample_entries[:]
        random.Random(seed).shuffle(shuffled)
        pd.testing.assert_frame_equal(reconcile(shuffled, SAMPLE_IDS), expected)


def test_sample_resend_list(sample_entries: list[dict[str, Any]]) -> None:
    outcomes = reconcile(sample_entries, [*SAMPLE_IDS, "99999"])
    assert records_to_resend(outcomes) == ["10020", "99999"]
    assert records_to_resend(outcomes, include_unresolved_references=False) == ["99999"]


def test_sample_as_beta_legacy_fields(sample_entries: list[dict[str, Any]]) -> None:
    legacy = copy.deepcopy(sample_entries)
    for item in legacy:
        del item["provisioningStatusInfo"]
        del item["provisioningAction"]
    assert {item["action"] for item in legacy} == {"Create", "Update"}
    pd.testing.assert_frame_equal(reconcile(legacy, SAMPLE_IDS), reconcile(sample_entries, SAMPLE_IDS))


# --- synthetic entries --------------------------------------------------------------------------------------


def test_failure_carries_entra_reason_and_recommended_action() -> None:
    outcomes = by_id(reconcile([entry("1", 0), upn_failure("2", 1)], ["1", "2"]))
    row = outcomes.loc["2"]
    assert row["status"] == "failure"
    assert row["error_code"] == UPN_ERROR
    assert "already in use" in row["reason"]
    assert row["recommended_action"].startswith("Make the userPrincipalName unique")
    assert pd.isna(row["entra_object_id"])
    assert outcomes.loc["1", "status"] == "success"


def test_missing_records() -> None:
    outcomes = by_id(reconcile([entry("1", 0)], ["1", "2", "3"]))
    assert outcomes.loc[["2", "3"], "status"].tolist() == ["missing", "missing"]
    assert outcomes.loc[["2", "3"], "entries"].tolist() == [0, 0]
    assert outcomes.loc["2", ["action", "error_code", "activity_time"]].isna().all()


def test_no_entries_at_all() -> None:
    outcomes = reconcile([], ["a", "b"])
    assert outcomes["status"].tolist() == ["missing", "missing"]
    assert tuple(outcomes.columns) == OUTCOME_COLUMNS


def test_external_ids_are_compared_as_strings_and_deduplicated() -> None:
    outcomes = reconcile([entry("701984", 0)], [701984, "701984", " 12 ", None])
    assert outcomes["external_id"].tolist() == ["701984", "12"]
    assert outcomes["status"].tolist() == ["success", "missing"]


def test_later_failure_overrides_earlier_success() -> None:
    entries = [entry("1", 0), upn_failure("1", 30)]
    row = by_id(reconcile(entries, ["1"])).loc["1"]
    assert (row["status"], row["entries"]) == ("failure", 2)


def test_later_success_overrides_earlier_failure_in_any_order() -> None:
    entries = [upn_failure("1", 0), entry("1", 30, action="update")]
    for ordering in (entries, entries[::-1]):
        assert by_id(reconcile(ordering, ["1"])).loc["1", "status"] == "success"


def test_update_wins_over_create_with_the_same_timestamp() -> None:
    create = entry("1", 5, action="create", steps=[manager_skip_step("2")], entry_id="zzz")
    update = entry("1", 5, action="update", entry_id="aaa")
    for ordering in ([create, update], [update, create]):
        row = by_id(reconcile(ordering, ["1"])).loc["1"]
        assert (row["status"], row["action"], bool(row["resolved_later"])) == ("success", "update", True)


def test_top_level_skipped_reference_then_resolved_is_success() -> None:
    skipped = entry("7", 0, status="skipped", steps=[manager_skip_step("8")])
    resolved = entry("7", 1, action="update")
    outcomes = reconcile([resolved, skipped], ["7"])
    row = by_id(outcomes).loc["7"]
    assert (row["status"], bool(row["resolved_later"])) == ("success", True)
    assert failure_reasons(outcomes) == []
    assert records_to_resend(outcomes) == []


def test_skipped_without_resolution_is_resent() -> None:
    outcomes = reconcile([entry("7", 0, status="skipped", steps=[manager_skip_step("8")])], ["7"])
    row = by_id(outcomes).loc["7"]
    assert row["status"] == "skipped"
    assert row["error_code"] == UNRESOLVED_REFERENCE
    assert bool(row["unresolved_reference"]) is True
    assert records_to_resend(outcomes) == ["7"]


def test_skipped_for_another_reason_takes_reason_from_the_skip_step() -> None:
    step = {
        "name": "EntrySynchronizationSkip",
        "status": "skipped",
        "description": "The user is out of scope.",
        "details": {"SkipReason": "NotEffectivelyEntitled"},
    }
    row = by_id(reconcile([entry("5", 0, status="skipped", steps=[step])], ["5"])).loc["5"]
    assert (row["status"], row["error_code"], row["reason"]) == (
        "skipped",
        "NotEffectivelyEntitled",
        "The user is out of scope.",
    )
    assert bool(row["unresolved_reference"]) is False


def test_reference_skip_then_failed_update_is_failure_not_resolved() -> None:
    entries = [entry("1", 0, steps=[manager_skip_step("2")]), upn_failure("1", 2)]
    row = by_id(reconcile(entries, ["1"])).loc["1"]
    assert (row["status"], bool(row["resolved_later"])) == ("failure", False)


def test_error_information_null() -> None:
    failed = entry("1", 0, status="failure", error=None)
    ok = entry("2", 0, error=None)
    ok["provisioningStatusInfo"]["errorInformation"] = None
    outcomes = reconcile([failed, ok], ["1", "2"])
    assert outcomes["status"].tolist() == ["failure", "success"]
    assert outcomes[["error_code", "reason", "recommended_action"]].isna().all().all()
    assert failure_reasons(outcomes) == [("(no error information)", 1)]


def test_beta_legacy_status_details_with_error_fields() -> None:
    legacy = upn_failure("3", 0)
    error = legacy.pop("provisioningStatusInfo")["errorInformation"]
    legacy.pop("provisioningAction")
    legacy["action"] = "Create"
    legacy["statusInfo"] = {"status": "failure", **error}
    row = by_id(reconcile([legacy], ["3"])).loc["3"]
    assert (row["status"], row["action"], row["error_code"]) == ("failure", "create", UPN_ERROR)
    assert row["recommended_action"].startswith("Make the userPrincipalName unique")


def test_beta_legacy_staged_delete_action() -> None:
    legacy = entry("4", 0)
    legacy.pop("provisioningAction")
    legacy["action"] = "StagedDelete"
    assert reconcile([legacy], ["4"])["action"].tolist() == ["stageddelete"]


def test_entries_for_other_external_ids_are_ignored_and_counted() -> None:
    result = reconcile_detailed([entry("1", 0), entry("x", 0), entry("x", 1), entry("y", 0)], ["1"])
    assert result.outcomes["external_id"].tolist() == ["1"]
    assert result.ignored_entries == 3
    assert result.ignored_external_ids == ("x", "y")
    assert result.total_entries == 4
    assert reconcile([entry("1", 0), entry("x", 0)], ["1"]).attrs["ignored_entries"] == 1


def test_since_drops_older_entries() -> None:
    entries = [upn_failure("1", -3600), entry("1", 10, action="update"), entry("2", -60)]
    result = reconcile_detailed(entries, ["1", "2"], since=T0)
    outcomes = by_id(result.outcomes)
    assert (outcomes.loc["1", "status"], outcomes.loc["1", "entries"]) == ("success", 1)
    assert outcomes.loc["2", "status"] == "missing"
    assert result.stale_entries == 2
    naive = reconcile(entries, ["1", "2"], since=T0.replace(tzinfo=None))
    pd.testing.assert_frame_equal(naive, result.outcomes)


def redundant_skip(external_id: str, offset: float) -> dict[str, Any]:
    """The entry Entra writes for a record it already holds: skipped, action other, RedundantExport."""
    return entry(
        external_id,
        offset,
        status="skipped",
        action="other",
        steps=[
            {
                "name": "EntrySynchronizationNone",
                "provisioningStepType": "processing",
                "status": "skipped",
                "description": "No changes are needed",
                "details": {"SkipReason": "RedundantExport"},
            }
        ],
    )


def test_two_runs_seconds_apart_never_share_an_entry() -> None:
    """Run A creates record 1 (accepted at T0, entry 1 s later); run B sends it again 13 s later."""
    entries = [entry("1", 1), redundant_skip("1", 14)]
    first = by_id(reconcile(entries, ["1"], accepted_at={"1": T0})).loc["1"]
    second = by_id(reconcile(entries, ["1"], accepted_at={"1": T0 + timedelta(seconds=13)})).loc["1"]
    assert (first["status"], first["action"]) == (
        "skipped",
        "other",
    )  # the later entry is A's too: both count
    assert (second["status"], second["action"], second["error_code"]) == (
        "skipped",
        "other",
        "RedundantExport",
    )
    assert second["entries"] == 1
    # Before B's own entry is written, B has no outcome yet: A's create does not stand in for it.
    early = reconcile_detailed(entries[:1], ["1"], accepted_at={"1": T0 + timedelta(seconds=13)})
    assert early.outcomes["status"].tolist() == ["missing"]
    assert early.stale_entries == 1


def test_acceptance_is_per_record() -> None:
    """Record 2 was accepted in a later request of the same run: record 1's window does not widen its own."""
    entries = [entry("1", 0), entry("2", 0), redundant_skip("2", 20)]
    accepted = {"1": T0, "2": T0 + timedelta(seconds=15)}
    result = reconcile_detailed(entries, ["1", "2"], accepted_at=accepted)
    outcomes = by_id(result.outcomes)
    assert (outcomes.loc["1", "status"], outcomes.loc["1", "action"]) == ("success", "create")
    assert (outcomes.loc["2", "status"], outcomes.loc["2", "entries"]) == ("skipped", 1)
    assert result.stale_entries == 1


@pytest.mark.parametrize(
    ("entry_offset", "tolerance", "counted"),
    [
        (10, 1.0, True),  # dated at the acceptance second
        (9, 1.0, True),  # one second early: within the clocks' resolution
        (8, 1.0, False),  # two seconds early: another run's
        (8, 2.0, True),
        (9, 0.0, False),
        (10, 0.0, True),
    ],
)
def test_tolerance_is_in_seconds(entry_offset: float, tolerance: float, counted: bool) -> None:
    outcomes = reconcile(
        [entry("1", entry_offset)],
        ["1"],
        accepted_at={"1": T0 + timedelta(seconds=10)},
        tolerance_seconds=tolerance,
    )
    assert outcomes["status"].tolist() == (["success"] if counted else ["missing"])


def test_records_without_known_acceptance_fall_back_to_since() -> None:
    entries = [entry("1", -5), entry("2", -5), entry("3", -5)]
    accepted = pd.Series(
        [T0 + timedelta(seconds=30), pd.NaT], index=["1", "2"], dtype="datetime64[ns, UTC]"
    )  # 2: NaT (no Date header); 3: not listed at all
    result = reconcile_detailed(
        entries, ["1", "2", "3"], since=T0 - timedelta(seconds=10), accepted_at=accepted
    )
    assert by_id(result.outcomes)["status"].to_dict() == {"1": "missing", "2": "success", "3": "success"}
    without_since = reconcile(entries, ["1", "2", "3"], accepted_at=accepted)
    assert without_since["status"].tolist() == ["missing", "success", "success"]


def test_acceptance_times_accepts_text_naive_and_repeated_ids() -> None:
    mapping = {"1": "2026-03-02T08:00:05+00:00", "2": None, " 3 ": T0.replace(tzinfo=None)}
    times = acceptance_times(mapping)
    assert times.to_dict() == {"1": T0 + timedelta(seconds=5), "3": T0}
    repeated = pd.Series([T0 + timedelta(seconds=9), T0 + timedelta(seconds=2)], index=["7", "7"])
    assert acceptance_times(repeated).to_dict() == {"7": T0 + timedelta(seconds=2)}
    assert acceptance_times(None).empty


def test_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerance_seconds"):
        reconcile([entry("1", 0)], ["1"], accepted_at={"1": T0}, tolerance_seconds=-1)


def test_entries_without_identity_or_time_are_counted_invalid() -> None:
    no_source = entry("1", 0)
    no_source["sourceIdentity"] = None
    bad_time = entry("2", 0)
    bad_time["activityDateTime"] = "yesterday"
    result = reconcile_detailed([no_source, bad_time, entry("2", 3)], ["1", "2"])
    assert result.invalid_entries == 2
    assert result.outcomes["status"].tolist() == ["missing", "success"]


def test_fractional_seconds_and_offsets_are_utc() -> None:
    early = entry("1", 0)
    early["activityDateTime"] = "2026-03-02T09:00:00.5+01:00"  # 08:00:00.5 UTC
    late = upn_failure("1", 0)
    late["activityDateTime"] = "2026-03-02T08:00:00.9999999Z"
    row = by_id(reconcile([late, early], ["1"])).loc["1"]
    assert row["status"] == "failure"
    assert row["activity_time"].tzinfo is not None


def test_large_batch_keeps_latest_per_record() -> None:
    n = 6000
    ids = [str(100000 + i) for i in range(n)]
    entries = []
    for i, external_id in enumerate(ids):
        entries.append(entry(external_id, 0, steps=[manager_skip_step("m")] if i % 3 == 0 else None))
        if i % 3 == 0:
            entries.append(entry(external_id, 1, action="update"))
        if i % 10 == 7:
            entries.append(upn_failure(external_id, 2))
    random.Random(1).shuffle(entries)
    outcomes = reconcile(entries, [*ids, "missing-1"])
    counts = outcomes["status"].value_counts()
    expected_failures = sum(1 for i in range(n) if i % 10 == 7)
    assert counts["failure"] == expected_failures
    assert counts["missing"] == 1
    assert counts["success"] == n - expected_failures
    assert outcomes["resolved_later"].sum() == sum(1 for i in range(n) if i % 3 == 0 and i % 10 != 7)
    assert outcomes["entries"].sum() == len(entries)


# --- summaries ----------------------------------------------------------------------------------------------


def test_outcome_summary_table() -> None:
    entries = [entry("1", 0), entry("2", 0, action="update"), upn_failure("3", 0), entry("4", 0)]
    table = outcome_summary(reconcile(entries, ["1", "2", "3", "4", "5"]))
    assert list(table.columns) == ["success", "warning", "failure", "skipped", "missing", "total"]
    assert list(table.index) == ["create", "update", "(none)", "total"]
    assert table.loc["create", "success"] == 2
    assert table.loc["create", "failure"] == 1
    assert table.loc["update", "success"] == 1
    assert table.loc["(none)", "missing"] == 1
    assert table.loc["total", "total"] == 5
    assert table.loc["create", "total"] == 3


def test_failure_reasons_ranked() -> None:
    entries = [upn_failure(str(i), 0) for i in range(3)]
    other = entry(
        "9", 0, status="failure", error={"errorCode": "SystemForCrossDomainIdentityManagementBadRequest"}
    )
    outcomes = reconcile([*entries, other], ["0", "1", "2", "9"])
    assert failure_reasons(outcomes) == [
        (UPN_ERROR, 3),
        ("SystemForCrossDomainIdentityManagementBadRequest", 1),
    ]
    assert failure_reasons(outcomes, top=1) == [(UPN_ERROR, 3)]
    assert records_to_resend(outcomes) == ["0", "1", "2", "9"]
