"""Each run is verified only by its own provisioning-log entries (issue 11, case 5).

``entra_on_demand`` for one employee, then again a few seconds later: Entra answers the second upload with
``skipped`` (RedundantExport: nothing changed, action ``other``). The second run must report that, not the
first run's ``create``, although that entry is only seconds older than its upload, well inside the old
two-minute clock-skew window. The emulator writes its entries with a delay (as Microsoft does, minutes
there), so when the second run first polls, the only entry visible for the employee is the first run's.
On the code before this fix the second run reported ``('success', 'create', None)``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
from airflow.utils.state import DagRunState

DAG_ID = "entra_on_demand"
#: Seconds before the emulator shows a log entry (Microsoft: 5 to 10 minutes). Longer than the time from the
#: second run's upload to its first poll, so that poll sees only the first run's entry.
LOG_DELAY = 8.0


def _outcomes(staging: Path) -> dict[Path, pd.DataFrame]:
    """Every ``outcomes.parquet`` under the staging root, by path."""
    return {path: pd.read_parquet(path) for path in sorted(staging.rglob("outcomes.parquet"))}


def _row(frame: pd.DataFrame, external_id: str) -> pd.Series:
    rows = frame[frame["external_id"].astype(str) == external_id]
    assert len(rows) == 1, frame
    return rows.iloc[0]


def test_a_second_on_demand_run_reports_its_own_outcome(dags, entra_env, tmp_path):
    emulator = entra_env
    emulator.configure(log_delay=LOG_DELAY)
    hr = pd.read_csv(dags.data / "hr_employees.csv", dtype=str, keep_default_na=False)
    # An active employee at the top of the chart: no managers come along, one record per run.
    worker = hr.loc[(hr["ManagerID"] == "") & (hr["WorkerStatus"] == "Active"), "WorkerID"].iloc[0]
    staging = tmp_path / "staging"

    first = dags.run(DAG_ID, staging, employee_ids=[worker])
    assert first.state == DagRunState.SUCCESS, dags.states(first)
    (first_path, first_frame), *others = _outcomes(staging).items()
    assert not others
    created = _row(first_frame, worker)
    assert (created["status"], created["action"]) == ("success", "create")

    second = dags.run(DAG_ID, staging, employee_ids=[worker])
    assert second.state == DagRunState.SUCCESS, dags.states(second)
    new = {path: frame for path, frame in _outcomes(staging).items() if path != first_path}
    assert len(new) == 1, sorted(new)
    (second_frame,) = new.values()
    own = _row(second_frame, worker)

    # Its own outcome (the old code reported the first run's "success (create)" here) ...
    assert (own["status"], own["action"], own["error_code"]) == ("skipped", "other", "RedundantExport")
    assert own["entries"] == 1  # ... from its own entry only, not the first run's create
    assert own["change_id"] != created["change_id"]
    # The runs are seconds apart: the first run's entry lies well within the old 120 s window.
    gap = own["activity_time"] - created["activity_time"]
    assert timedelta(seconds=2) <= gap < timedelta(seconds=120), gap

    # Entra really holds one enabled account for the employee (the second run changed nothing).
    (account,) = [u for u in emulator.users() if u.get("employeeId") == worker]
    assert account["accountEnabled"] is True
