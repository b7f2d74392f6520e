"""The deferred verification needs only the staging root: the trigger and the resumed sensor agree through it.

With object storage, the trigger (in the triggerer) and the resumed sensor (on any worker) read and write
the same entries file; the event stays small. When they do not see the same storage (a local staging root on
two machines), the resumed sensor fails saying so instead of reporting every record missing.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _csv2scim import CORE_MAPPING as MAPPING
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from airflow_provider_entra import _fsio
from airflow_provider_entra.emulator.process import EmulatorProcess
from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator
from airflow_provider_entra.provisioning.paths import ENTRIES_NAME, OUTCOMES_NAME
from airflow_provider_entra.sensors.provisioning_logs import EntraProvisioningLogSensor


@pytest.fixture
def delayed(entra_env: EmulatorProcess) -> EmulatorProcess:
    """Processing later than the sensor's first poll, so it defers."""
    entra_env.configure(processing_delay=2.0)
    yield entra_env
    entra_env.configure(processing_delay=0.2)


async def _first_event(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


def _upload_and_defer(tmp_path: Path, output_dir: str, records: int) -> tuple[Any, Any]:
    path = tmp_path / "hr.parquet"
    pd.DataFrame(
        {
            "WorkerID": [str(1000 + i) for i in range(records)],
            "WorkerStatus": ["Active"] * records,
            "UserID": [f"shared{i}@contoso.com" for i in range(records)],
            "FirstName": [f"First{i}" for i in range(records)],
            "LastName": [f"Last{i}" for i in range(records)],
            "FullName": [f"First{i} Last{i}" for i in range(records)],
        }
    ).to_parquet(path)
    summary = EntraBulkUploadOperator(
        task_id="upload", input_path=str(path), mapping=MAPPING, output_dir=output_dir
    ).execute({"run_id": "manual__shared"})
    sensor = EntraProvisioningLogSensor(
        task_id="verify",
        upload_summary=summary,
        deferrable=True,
        poke_interval=1.0,
        timeout=60,
        settle_seconds=1,
    )
    with pytest.raises(TaskDeferred) as raised:
        sensor.execute({"run_id": "manual__shared"})
    return sensor, raised.value.trigger


def test_object_storage_staging_carries_the_verification_and_the_event_stays_small(
    delayed: EmulatorProcess, tmp_path: Path
) -> None:
    records = 120
    root = f"memory://shared-{uuid.uuid4().hex}/run"
    sensor, trigger = _upload_and_defer(tmp_path, root, records)
    assert trigger.state_path == f"{root}/{ENTRIES_NAME}"
    event = asyncio.run(_first_event(trigger))
    assert event["status"] == "complete" and event["entries"] == records
    assert len(json.dumps(event)) < 1024  # counts and a path, never the entries: it goes to the database

    resumed = EntraProvisioningLogSensor(  # a fresh instance: the task resumes in another process
        task_id="verify", upload_summary=sensor.upload_summary, deferrable=True, settle_seconds=1
    )
    result = resumed.execute_complete({"run_id": "manual__shared"}, event=event)
    assert result["outcomes"]["success"] == records and result["missing"] == 0
    assert result["outcomes_path"] == f"{root}/{OUTCOMES_NAME}"
    assert _fsio.exists(result["outcomes_path"])


def test_a_worker_that_cannot_see_the_triggers_entries_fails_instead_of_reporting_them_missing(
    delayed: EmulatorProcess, tmp_path: Path
) -> None:
    records = 30
    run_dir = tmp_path / "staging" / "run"
    sensor, trigger = _upload_and_defer(tmp_path, str(run_dir), records)
    event = asyncio.run(_first_event(trigger))
    assert event["status"] == "complete" and event["entries"] == records
    # The worker that resumes the task has its own disk: the triggerer's entries file is not on it.
    entries = Path(_fsio.local_path(trigger.state_path))
    entries.rename(tmp_path / "on-the-triggerers-disk.jsonl")

    resumed = EntraProvisioningLogSensor(
        task_id="verify", upload_summary=sensor.upload_summary, deferrable=True, settle_seconds=1
    )
    with pytest.raises(AirflowException) as raised:
        resumed.execute_complete({"run_id": "manual__shared"}, event=event)
    message = str(raised.value)
    assert f"collected {records} provisioning-log entries" in message and "reads 0" in message
    assert "entra_staging_path" in message
    assert not (run_dir / OUTCOMES_NAME).exists()  # nothing judged, no report of 30 "missing" records
