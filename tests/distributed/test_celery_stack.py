"""Issue 14 on Airflow's own distributed engine: Celery workers and a triggerer on separate disks.

One stack (tests/distributed/conftest.py): Postgres, Redis, an S3 server, the emulator, api-server,
scheduler, dag-processor, a triggerer and two Celery workers, the last three each with a private disk over
the default staging root.

1. Staging on object storage (the Variable ``entra_staging_path`` is ``s3://...``): the HR DAG, the admin
   DAG and two on-demand runs at once, the triggerer restarted while they wait in it. Every record verified
   (deferred to the triggerer, resumed on a worker that reads what the trigger collected), no 429 at the
   emulator, never more than 40 bulkUpload calls in any 5 seconds by the emulator's own count, and nothing
   staged on any private disk.
2. The same stack with ``file://`` staging (the default root, a different disk on each machine): preflight
   stops the run with what to set, and no bulkUpload call is made.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
import requests

from airflow_provider_entra.provisioning.feed import extract_csv, transform

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"

HR, ADMIN, ON_DEMAND = "entra_hr_provisioning", "entra_admin_accounts", "entra_on_demand"
#: Verification timing of the triggered runs: polls 10 s apart (with the HR run's 60 s, the triggers of one
#: app stay within its 5 log reads per 10 s), a short settle, a timeout well past the emulator's 45 s
#: processing delay. The HR run is a scheduled one: the DAG's defaults.
TIMING = {"verify_poke_interval": 10, "verify_settle_seconds": 2, "verify_timeout_minutes": 4}
RUNS_TIMEOUT = 330
SCHEDULE_TIMEOUT = 60
RESTART_TIMEOUT = 120
DRAIN_TIMEOUT = 180
FINISHED = {"success", "failed"}


def _seed_committed_feed(stack: Any, tmp_path: Path) -> str:
    """A committed HR feed for the admin DAG (it derives from the HR DAG's last commit, which a first run of
    the stack does not have): the sample export normalised as the HR DAG does, put on the S3 staging root."""
    work = tmp_path / "seed"
    extract_csv(DAGS_FOLDER / "data" / "hr_employees.csv", work / "hr_raw.parquet")
    summary = transform(
        work / "hr_raw.parquet",
        DAGS_FOLDER / "data" / "hr_mapping.yaml",
        work,
        upn_domain="contoso.onmicrosoft.com",
        ledger=work / "ledger",
    )
    key = "airflow/seed/hr_current.parquet"
    put = requests.put(
        f"{stack.s3_url}/{stack.BUCKET}/{key}", data=Path(summary["normalised_path"]).read_bytes(), timeout=30
    )
    assert put.ok, put.text
    return f"s3://{stack.BUCKET}/{key}"


def _on_demand_employees(count: int) -> list[str]:
    """Active employees with a manager, from the sample export."""
    hr = pd.read_csv(DAGS_FOLDER / "data" / "hr_employees.csv", dtype=str, keep_default_na=False)
    chosen = hr[(hr["WorkerStatus"] == "Active") & (hr["ManagerID"] != "")]["WorkerID"].tolist()
    return [chosen[len(chosen) // 3], chosen[2 * len(chosen) // 3]][:count]


def _wait_for_runs(stack: Any, runs: list[tuple[str, str]], timeout: float) -> dict[tuple[str, str], str]:
    def finished() -> dict[tuple[str, str], str] | None:
        states = {run: stack.run_state(*run) for run in runs}
        return states if set(states.values()) <= FINISHED else None

    return stack.wait_for(finished, timeout, f"the runs {runs} to finish", interval=3)


def _failure_report(stack: Any, runs: list[tuple[str, str]]) -> str:
    lines = []
    for dag_id, run_id in runs:
        lines.append(f"{dag_id} {run_id}: {stack.run_state(dag_id, run_id)} {stack.states(dag_id, run_id)}")
        lines.append(stack.task_logs(dag_id, run_id))
    return "\n".join(lines)


def _s3_keys(stack: Any, prefix: str) -> list[str]:
    response = requests.get(
        f"{stack.s3_url}/{stack.BUCKET}",
        params={"list-type": "2", "prefix": prefix, "max-keys": "1000"},
        timeout=30,
    )
    assert response.ok, response.text
    return re.findall(r"<Key>([^<]*)</Key>", response.text)


def _private_disk(stack: Any, name: str) -> Path:
    """The default staging root as ``name``'s process sees it (its own mount namespace)."""
    return Path(f"/proc/{stack.procs[name].pid}/root{stack.local_staging}")


def _calls(stack: Any, endpoint: str) -> int:
    return int(stack.emulator.stats()["calls"].get(endpoint, 0))


def test_three_dags_at_once_on_celery_with_object_storage_then_file_staging_stops_at_preflight(
    stack: Any, tmp_path: Path
) -> None:
    # The triggerer and each worker have a mount namespace of their own, with a private tmpfs at the default
    # staging root that this process does not see.
    namespaces = {name: os.readlink(f"/proc/{stack.procs[name].pid}/ns/mnt") for name in stack.PRIVATE}
    assert len(set(namespaces.values())) == len(stack.PRIVATE), namespaces
    assert os.readlink("/proc/self/ns/mnt") not in namespaces.values()
    for name in stack.PRIVATE:
        mounts = Path(f"/proc/{stack.procs[name].pid}/mountinfo").read_text()
        assert f" {stack.local_staging} " in mounts and " tmpfs " in mounts, name

    stack.wait_for_dags({HR, ADMIN, ON_DEMAND})
    feed = _seed_committed_feed(stack, tmp_path)
    first, second = _on_demand_employees(2)

    # --- 1. object storage: four runs at once ------------------------------------------------------------
    # The HR run is the one its daily schedule creates when the DAG is unpaused (a manual run beside it
    # would find every employee already provisioned by that one); the others are triggered first and start
    # when their DAGs are unpaused, all at the same moment.
    started = time.monotonic()
    runs = [
        (ADMIN, stack.trigger(ADMIN, {**TIMING, "hr_current_path": feed})),
        (ON_DEMAND, stack.trigger(ON_DEMAND, {**TIMING, "employee_ids": [first]})),
        (ON_DEMAND, stack.trigger(ON_DEMAND, {**TIMING, "employee_ids": [second]})),
    ]
    for dag_id in (HR, ADMIN, ON_DEMAND):
        stack.api("PATCH", f"dags/{dag_id}", json={"is_paused": False})
    hr_run = stack.wait_for(lambda: stack.run_ids(HR), SCHEDULE_TIMEOUT, "the HR DAG's scheduled run")
    assert len(hr_run) == 1, hr_run
    runs.insert(0, (HR, hr_run[0]))

    # Restart the triggerer while verifications wait in it: the new one (another mount namespace, another
    # empty private disk) resumes them from the entries on the object store.
    def deferred() -> list[tuple[str, str]]:
        return [run for run in runs if stack.states(*run).get("verify") == "deferred"]

    waiting = stack.wait_for(deferred, RUNS_TIMEOUT, "a verification to defer to the triggerer", interval=2)
    old_pid = stack.procs["triggerer"].pid
    stack.restart("triggerer")
    stack.wait_for(stack.healthy, RESTART_TIMEOUT, "the restarted triggerer to report healthy", interval=2)
    new_pid = stack.procs["triggerer"].pid
    assert new_pid != old_pid and os.readlink(f"/proc/{new_pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert f" {stack.local_staging} " in Path(f"/proc/{new_pid}/mountinfo").read_text()
    print(f"triggerer restarted while {waiting} waited in it")  # noqa: T201
    states = _wait_for_runs(stack, runs, RUNS_TIMEOUT)
    assert set(states.values()) == {"success"}, _failure_report(stack, runs)
    print(f"four concurrent runs on Celery: {time.monotonic() - started:.0f} s")  # noqa: T201

    verified: dict[str, Any] = {}
    for dag_id, run_id in runs:
        result = stack.xcom(dag_id, run_id, "verify")
        verified[f"{dag_id} {run_id}"] = result
        assert result["records"] > 0, (dag_id, result)
        assert result["missing"] == 0 and result["failures"] == 0, (dag_id, result)
        assert sum(result["outcomes"].values()) == result["records"], (dag_id, result)
        # The wait was the triggerer's; the task resumed on a worker and read what the trigger collected.
        assert result["deferred"] is True, (dag_id, result)
        assert result["report_html"].startswith(f"{stack.STAGING_URL}/"), result["report_html"]
    hr_records = len(pd.read_csv(DAGS_FOLDER / "data" / "hr_employees.csv", dtype=str))
    assert verified[f"{HR} {runs[0][1]}"]["records"] == hr_records

    # Let any run the HR commit's Asset event started (the admin DAG follows it) finish before counting.
    stack.wait_for(lambda: not stack.active_runs(), DRAIN_TIMEOUT, "every run to finish", interval=3)
    stats = stack.emulator.stats()
    assert stats["throttled_total"] == 0, stats["throttled"]
    assert not [status for status in stats["status"] if status.endswith(":429")], stats["status"]
    assert 0 < stats["peak_calls"]["bulkUpload_per_5s"] <= 40, stats["peak_calls"]
    print(f"emulator: {stats['calls']}, peaks {stats['peak_calls']}, 429s: {stats['throttled_total']}")  # noqa: T201

    # Everything was staged on the object store; the private disks stayed empty.
    keys = _s3_keys(stack, "airflow/")
    assert sum(key.endswith("provisioning-log-entries.jsonl") for key in keys) >= len(runs), keys
    for name in stack.PRIVATE:
        assert list(_private_disk(stack, name).iterdir()) == [], name

    # --- 2. file:// staging, a different disk on each machine: preflight stops, nothing is sent -----------
    uploads = _calls(stack, "bulkUpload")
    local = (HR, stack.trigger(HR, {**TIMING, "staging_path": f"file://{stack.local_staging}"}))
    state = _wait_for_runs(stack, [local], RUNS_TIMEOUT)[local]
    task_states = stack.states(*local)
    assert state == "failed", _failure_report(stack, [local])
    assert task_states["preflight"] == "failed", task_states
    assert task_states["upload"] != "success", task_states
    assert _calls(stack, "bulkUpload") == uploads
    message = stack.task_logs(*local, states={"failed"})
    assert f"The staging root file://{stack.local_staging} is on this machine's disk" in message, message
    assert "CeleryExecutor" in message and "Set the Airflow Variable entra_staging_path" in message, message
