"""The deletion guard: a truncated export stops the run before anything is sent."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_entra.provisioning.guard import check_deletion_guard
from airflow_provider_entra.provisioning.hr_source import read_hr_csv
from airflow_provider_entra.provisioning.ledger import apply_outcomes
from airflow_provider_entra.provisioning.normalise import normalise_hr
from airflow_provider_entra.provisioning.plan import plan_delta
from airflow_provider_entra.provisioning.snapshot import active_count, empty_snapshot
from airflow_provider_entra.provisioning.validate import validate_hr

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "microsoft-sample"


def mapped(hr: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "externalId": hr["WorkerID"].to_numpy(),
            "userName": hr["UserPrincipalName"].to_numpy(),
            "department": hr["Department"].to_numpy(),
            "active": (hr["WorkerStatus"] == "Active").to_numpy(),
        }
    )
    out["record_hash"] = pd.util.hash_pandas_object(out, index=False).astype(str).to_numpy()
    return out


@pytest.fixture(scope="module")
def committed() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Microsoft sample provisioned once and fully verified: (normalised HR, snapshot)."""
    valid = validate_hr(read_hr_csv(SAMPLE / "Sample1-employeeData.csv")).valid
    hr = normalise_hr(valid, upn_domain="contoso.com").frame
    plan = plan_delta(mapped(hr), empty_snapshot())
    outcomes = pd.DataFrame({"external_id": plan.frame["externalId"], "status": "success"})
    snapshot = apply_outcomes(
        empty_snapshot(), plan.frame, outcomes, verified_at=datetime(2026, 1, 1, tzinfo=timezone.utc)
    )
    return hr, snapshot


def test_truncated_export_trips_the_guard(committed: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    hr, snapshot = committed
    active = active_count(snapshot)
    assert active == int((hr["WorkerStatus"] == "Active").sum()) > 100
    truncated = hr.iloc[: len(hr) // 2]  # the export stopped half way
    plan = plan_delta(mapped(truncated), snapshot)
    gone = snapshot["externalId"].isin(hr["WorkerID"].iloc[len(hr) // 2 :])
    expected = int((gone & snapshot["active"]).sum())
    assert len(plan.disables) == plan.counts["missing_disable"] == expected

    decision = check_deletion_guard(plan, active)
    assert decision.tripped
    assert decision.disables == expected and decision.active == active
    assert decision.percent == round(100 * expected / active, 2)
    assert decision.limits == ("max_disable_count=50", "max_disable_percent=10")
    assert f"would disable {expected} account(s) out of {active} active" in decision.message
    assert "max_disable_count=50 and max_disable_percent=10" in decision.message
    assert "Nothing has been sent" in decision.message and "approve" in decision.message


def test_complete_export_passes(committed: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    hr, snapshot = committed
    plan = plan_delta(mapped(hr), snapshot)
    decision = check_deletion_guard(plan, active_count(snapshot))
    assert not decision.tripped and decision.disables == 0 and decision.limits == ()
    assert decision.message.startswith("Deletion guard passed: 0 account(s)")


def test_ignore_policy_cannot_trip_on_missing_rows(committed: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    hr, snapshot = committed
    plan = plan_delta(mapped(hr.iloc[:10]), snapshot, missing_policy="ignore")
    assert not check_deletion_guard(plan, active_count(snapshot)).tripped


@pytest.mark.parametrize(
    ("disables", "active", "count", "percent", "tripped", "limits"),
    [
        (50, 1000, 50, 10.0, False, ()),  # exactly at the count limit is allowed
        (51, 1000, 50, 10.0, True, ("max_disable_count=50",)),
        (11, 100, 50, 10.0, True, ("max_disable_percent=10",)),  # 11 % of 100
        (10, 100, 50, 10.0, False, ()),
        (51, 1000, None, 10.0, False, ()),  # count limit switched off
        (11, 100, 50, None, False, ()),  # percent limit switched off
        (500, 100, None, None, False, ()),
        (0, 0, 0, 0.0, False, ()),
    ],
)
def test_limits(disables: int, active: int, count, percent, tripped: bool, limits: tuple[str, ...]) -> None:
    decision = check_deletion_guard(disables, active, max_disable_count=count, max_disable_percent=percent)
    assert decision.tripped is tripped
    assert decision.limits == limits


def test_first_run_cannot_trip_on_percent_but_still_on_count() -> None:
    decision = check_deletion_guard(3, 0)
    assert not decision.tripped and decision.percent is None
    assert check_deletion_guard(51, 0).limits == ("max_disable_count=50",)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_disable_percent"):
        check_deletion_guard(1, 10, max_disable_percent=150)
    with pytest.raises(ValueError, match="max_disable_count"):
        check_deletion_guard(1, 10, max_disable_count=-1)
