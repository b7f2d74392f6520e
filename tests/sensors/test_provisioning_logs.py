"""EntraProvisioningLogSensor: dag.test() runs of upload + verify against the emulator, plus direct executes.

The emulator processes each upload after ``processing_delay`` seconds and writes real log entries; the
sensor reads them through the hook over HTTPS. Deferral runs inline under dag.test().
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from _csv2scim import MAPPING
from airflow.models.serialized_dag import SerializedDagModel
from airflow.models.trigger import Trigger
from airflow.models.xcom import XComModel
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    TaskDeferred,
)
from airflow.utils.session import create_session
from airflow.utils.state import TaskInstanceState
from sqlalchemy import select

from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.links import EntraProvisioningLogsLink
from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator
from airflow_provider_entra.sensors.provisioning_logs import EntraProvisioningLogSensor
from airflow_provider_entra.staging import read_frame, to_path

PAGE_SIZE = 100  # what the test DAGs use
#: Per poll, besides the pages of entries: the last (possibly empty) page of a window.
POLL_OVERHEAD = 1


def hr_frame(n: int, *, duplicate_upn_every: int = 0) -> pd.DataFrame:
    """Synthetic HR rows in CSV2SCIM layout: a 10-ary management tree under worker 1000."""
    upns = [f"user{i}@contoso.com" for i in range(n)]
    if duplicate_upn_every:
        for i in range(duplicate_upn_every, n, duplicate_upn_every):
            upns[i] = upns[i - 1]  # Entra does not make UPNs unique: this create fails
    return pd.DataFrame(
        {
            "WorkerID": [str(1000 + i) for i in range(n)],
            "WorkerStatus": ["Active"] * n,
            "UserID": upns,
            "FirstName": [f"First{i}" for i in range(n)],
            "LastName": [f"Last{i}" for i in range(n)],
            "FullName": [f"First{i} Last{i}" for i in range(n)],
            "Department": ["Sales"] * n,
            "ManagerID": [""] + [str(1000 + (i - 1) // 10) for i in range(1, n)],
        }
    )


def get_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    bag = DagBag(dag_folder=str(folder / "entra_test_verify.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def xcom(dag_run, task_id: str, key: str = "return_value"):
    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key)
        ).first()
        return XComModel.deserialize_value(row) if row is not None else None


def ti_state(dag_run, task_id: str) -> str:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}[task_id]


def stage_input(tmp_path: Path, frame: pd.DataFrame) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = run_dir / "hr.parquet"
    frame.to_parquet(path)
    return path


@pytest.fixture
def slow_processing(entra_env):
    """Processing delay longer than the sensor's poke interval (1 s), so the first poll finds nothing."""
    entra_env.configure(processing_delay=3.0)
    yield entra_env
    entra_env.configure(processing_delay=0.2)


def test_deferred_verification_reports_every_record(airflow_db, slow_processing, tmp_path):
    emulator = slow_processing
    records = 500
    path = stage_input(tmp_path, hr_frame(records))
    dag = get_dag("entra_test_verify")

    dag_run = dag.test(run_conf={"input_path": str(path), "mapping": MAPPING})

    assert ti_state(dag_run, "upload") == TaskInstanceState.SUCCESS
    assert ti_state(dag_run, "verify") == TaskInstanceState.SUCCESS
    result = xcom(dag_run, "verify")
    # It deferred at once (the task reads no log itself): the trigger did every poll.
    assert result["deferred"] is True
    with create_session() as session:
        ours = [
            trigger
            for trigger in session.scalars(select(Trigger))
            if str(trigger.kwargs.get("state_path", "")).startswith(f"file://{path.parent}/")
        ]
    assert [t.classpath for t in ours] == [
        "airflow_provider_entra.triggers.provisioning_logs.EntraProvisioningLogTrigger"
    ]

    assert result["records"] == records
    assert result["outcomes"]["success"] == records
    assert result["missing"] == 0 and result["failures"] == 0
    report = pd.read_csv(result["report_csv"], dtype=str)
    assert len(report) == records
    assert set(report["external_id"]) == {str(1000 + i) for i in range(records)}
    assert set(report["status"]) == {"success"}
    outcomes = read_frame(result["outcomes_path"])
    assert outcomes["action"].eq("create").all()
    assert result["report_html"] == f"file://{path.parent}/report.html"
    html = to_path(result["report_html"]).read_text()
    assert "1499" in html  # a record of the last stage is listed
    # The resumed task knows when verification started (dag.test() drops defer kwargs; the event carries it).
    assert re.search(r"Verification started</th><td>\d{4}-\d\d-\d\dT", html), "start time missing"

    # Log API budget: never one query per user; per poll at most the pages of the window plus the last one.
    log_calls = emulator.stats()["calls"]["provisioningLogs"]
    assert log_calls == result["log_requests"]
    per_poll_bound = math.ceil(records / PAGE_SIZE) + POLL_OVERHEAD
    assert log_calls <= result["log_polls"] * per_poll_bound
    assert result["log_polls"] >= 2  # the trigger's: one before the 3 s processing delay ends, then more

    # Both tasks link to the job's provisioning logs.
    link_key = EntraProvisioningLogsLink().xcom_key
    expected_link = EntraHook().portal_logs_url()
    assert xcom(dag_run, "upload", link_key) == expected_link
    assert xcom(dag_run, "verify", link_key) == expected_link
    # ...and the API server, which only has the serialized DAG, resolves the button to it.
    serialized = SerializedDagModel.get_dag(dag.dag_id)
    for task_id in ("upload", "verify"):
        task = serialized.get_task(task_id)
        assert task.extra_links == [EntraProvisioningLogsLink.name]
        ti = dag_run.get_task_instance(task_id)
        assert task.get_extra_links(ti, EntraProvisioningLogsLink.name) == expected_link


def test_failures_over_threshold_fail_the_task_and_name_them(airflow_db, entra_env, tmp_path):
    records = 120
    path = stage_input(tmp_path, hr_frame(records, duplicate_upn_every=40))  # rows 40 and 80 collide
    dag = get_dag("entra_test_verify")

    dag_run = dag.test(run_conf={"input_path": str(path), "mapping": MAPPING})

    assert ti_state(dag_run, "upload") == TaskInstanceState.SUCCESS
    assert ti_state(dag_run, "verify") == TaskInstanceState.FAILED
    # The report was written before the task failed, and the result pushed for whoever looks.
    result = xcom(dag_run, "verify", "verification")
    assert result["failures"] == 2
    report = pd.read_csv(result["report_csv"], dtype=str)
    failed = report[report["status"] == "failure"]
    assert set(failed["external_id"]) == {"1040", "1080"}
    assert set(failed["error_code"]) == {"AzureActiveDirectoryInvalidUserPrincipalName"}
    assert "AzureActiveDirectoryInvalidUserPrincipalName" in to_path(result["report_html"]).read_text()


def test_failure_message_names_reasons_and_records(entra_env, tmp_path):
    """The same failure through a direct execute, to read the exception message."""
    records = 60
    path = stage_input(tmp_path, hr_frame(records, duplicate_upn_every=30))
    summary = EntraBulkUploadOperator(task_id="upload", input_path=str(path), mapping=MAPPING).execute(
        {"run_id": "manual__failures"}
    )
    entra_env.process()
    sensor = EntraProvisioningLogSensor(
        task_id="verify", upload_summary=summary, deferrable=False, poke_interval=0.5, timeout=60
    )
    with pytest.raises(AirflowException) as raised:
        sensor.execute({"run_id": "manual__failures"})
    message = str(raised.value)
    assert "1 of 60 record(s) did not reach Entra (1 failed; 1.7%)" in message and "max_failures=0" in message
    assert "AzureActiveDirectoryInvalidUserPrincipalName (1)" in message
    assert "1030 (AzureActiveDirectoryInvalidUserPrincipalName)" in message
    assert "report.html" in message


def test_percentage_threshold_tolerates_a_few_failures(entra_env, tmp_path):
    path = stage_input(tmp_path, hr_frame(60, duplicate_upn_every=30))
    summary = EntraBulkUploadOperator(task_id="upload", input_path=str(path), mapping=MAPPING).execute(
        {"run_id": "manual__percent"}
    )
    entra_env.process()
    sensor = EntraProvisioningLogSensor(
        task_id="verify",
        upload_summary=summary,
        deferrable=False,
        poke_interval=0.5,
        timeout=60,
        max_failures=None,
        max_failure_percent=5.0,
    )
    result = sensor.execute({"run_id": "manual__percent"})
    assert result["failures"] == 1 and result["outcomes"]["success"] == 59
    assert result["deferred"] is False
    assert result["to_resend"] == 1


def test_poke_mode_dag_verifies_without_deferring(airflow_db, entra_env, tmp_path):
    path = stage_input(tmp_path, hr_frame(80))
    dag_run = get_dag("entra_test_verify_poke").test(run_conf={"input_path": str(path), "mapping": MAPPING})
    assert ti_state(dag_run, "verify") == TaskInstanceState.SUCCESS
    result = xcom(dag_run, "verify")
    assert result["deferred"] is False
    assert result["outcomes"]["success"] == 80


def test_reschedule_mode_resumes_from_the_staged_entries(airflow_db, slow_processing, tmp_path):
    records = 40
    path = stage_input(tmp_path, hr_frame(records))
    dag_run = get_dag("entra_test_verify_reschedule").test(
        run_conf={"input_path": str(path), "mapping": MAPPING}
    )
    assert ti_state(dag_run, "verify") == TaskInstanceState.SUCCESS
    result = xcom(dag_run, "verify")
    assert result["outcomes"]["success"] == records
    # Each reschedule is a new task instance run; the poll counter survived in the state file.
    assert result["log_polls"] >= 2
    # ... and so did the verification's start: the first poke's, at least one 1 s poke interval before the
    # report was written (not reset by every reschedule).
    started = (path.parent / "verify-started-at.txt").read_text()
    report = Path(to_path(result["report_html"]).path)
    assert started in report.read_text()
    assert report.stat().st_mtime - datetime.fromisoformat(started).timestamp() >= 1.0


def test_param_timing_drives_the_deferred_trigger(airflow_db, slow_processing, tmp_path):
    """The sensor's own timeout is 0 and it polls every 2 s; the run's Params say 2 minutes and 1 s."""
    records = 40
    path = stage_input(tmp_path, hr_frame(records))
    conf = {"verify_poke_interval": 1, "verify_settle_seconds": 1.5, "verify_timeout_minutes": 2}
    dag_run = get_dag("entra_test_verify_params").test(
        run_conf={"input_path": str(path), "mapping": MAPPING, **conf}
    )

    assert ti_state(dag_run, "verify") == TaskInstanceState.SUCCESS
    result = xcom(dag_run, "verify")
    assert result["deferred"] is True
    assert result["outcomes"]["success"] == records
    with create_session() as session:
        ours = [
            trigger
            for trigger in session.scalars(select(Trigger))
            if str(trigger.kwargs.get("state_path", "")).startswith(f"file://{path.parent}/")
        ]
    assert len(ours) == 1
    kwargs = ours[0].kwargs
    assert kwargs["poll_interval"] == 1.0
    assert kwargs["settle_seconds"] == 1.5
    # The trigger's deadline is the Param's 2 minutes after the deferral, not the sensor's own 0 s.
    deadline = datetime.fromisoformat(kwargs["timeout_at"]) - ours[0].created_date
    assert timedelta(minutes=1) < deadline <= timedelta(minutes=2)


def test_param_timeout_holds_across_reschedules(airflow_db, slow_processing, tmp_path):
    """Reschedule mode: each new try re-reads the Params, so the wait lasts the Param's 2 minutes (with the
    sensor's own timeout of 0 the first empty poke would end it with every record missing)."""
    records = 30
    path = stage_input(tmp_path, hr_frame(records))
    conf = {"verify_poke_interval": 1, "verify_settle_seconds": 1, "verify_timeout_minutes": 2}
    dag_run = get_dag("entra_test_verify_params_reschedule").test(
        run_conf={"input_path": str(path), "mapping": MAPPING, **conf}
    )

    assert ti_state(dag_run, "verify") == TaskInstanceState.SUCCESS
    result = xcom(dag_run, "verify")
    assert result["status"] == "complete" and result["deferred"] is False
    assert result["outcomes"]["success"] == records
    assert result["log_polls"] >= 2  # the first poke (before the 3 s processing delay) found nothing


def test_a_missing_timing_param_is_named():
    sensor = EntraProvisioningLogSensor(
        task_id="verify",
        upload_summary={"dry_run": True},
        timeout_minutes_param="verify_timeout_minutes",
    )
    with pytest.raises(AirflowException, match="'verify_timeout_minutes'"):
        sensor.execute({"params": {}})
    with pytest.raises(AirflowException, match="'verify_timeout_minutes' must be a non-negative number"):
        sensor.execute({"params": {"verify_timeout_minutes": "soon"}})


def test_timeout_reports_unresolved_records_as_missing(entra_env, tmp_path):
    emulator = entra_env
    emulator.configure_job(emulator.info["job_id"], status="Paused")  # accepts uploads, processes nothing
    path = stage_input(tmp_path, hr_frame(30))
    summary = EntraBulkUploadOperator(task_id="upload", input_path=str(path), mapping=MAPPING).execute(
        {"run_id": "manual__timeout"}
    )
    lenient = EntraProvisioningLogSensor(
        task_id="verify",
        upload_summary=summary,
        deferrable=False,
        poke_interval=1.0,
        timeout=0.5,  # two polls: the logs API allows 5 requests per 10 s
        max_failures=None,
        report_dir=str(tmp_path / "lenient"),
    )
    result = lenient.execute({"run_id": "manual__timeout"})
    assert result["status"] == "timeout"
    assert result["missing"] == 30 and result["outcomes"]["missing"] == 30
    assert (tmp_path / "lenient" / "report.html").exists()

    strict = EntraProvisioningLogSensor(
        task_id="verify",
        upload_summary=summary,
        deferrable=False,
        poke_interval=1.0,
        timeout=0.5,  # two polls: the logs API allows 5 requests per 10 s
        report_dir=str(tmp_path / "strict"),
    )
    with pytest.raises(AirflowException, match=r"30 have no log entry.*The verification timed out\."):
        strict.execute({"run_id": "manual__timeout"})


def test_dry_run_summary_is_skipped():
    sensor = EntraProvisioningLogSensor(task_id="verify", upload_summary={"dry_run": True})
    with pytest.raises(AirflowSkipException):
        sensor.execute({})


def test_sensor_refuses_a_connection_to_another_job(entra_env, tmp_path):
    sensor = EntraProvisioningLogSensor(
        task_id="verify",
        upload_summary={
            "job_id": "API2AAD.other.job",
            "first_submit": "2026-01-01T00:00:00+00:00",
            "external_ids_path": str(tmp_path / "ids.parquet"),
        },
        deferrable=False,
    )
    with pytest.raises(AirflowException, match="upload went to job API2AAD.other.job"):
        sensor.execute({})


# --- each record is verified only by its own entries ------------------------------------------------------


def _wait_past(stamp: str, seconds: float) -> None:
    """Sleep until the clock is ``seconds`` past the log timestamp ``stamp``."""
    target = datetime.fromisoformat(stamp) + timedelta(seconds=seconds)
    while datetime.now(timezone.utc) < target:
        time.sleep(0.05)


def test_a_run_seconds_after_another_reports_its_own_outcome(entra_env, tmp_path):
    """Run A creates worker 1000; run B sends the same record seconds later and Entra answers ``skipped``
    (RedundantExport). B must report that, in poke and in deferred mode, not A's ``create``."""
    emulator = entra_env
    path = stage_input(tmp_path, hr_frame(1))
    first = EntraBulkUploadOperator(
        task_id="upload", input_path=str(path), mapping=MAPPING, output_dir=str(tmp_path / "a")
    ).execute({"run_id": "manual__a"})
    emulator.process()
    created = EntraHook().iter_provisioning_logs()
    a_entry = next(e for e in created if e["sourceIdentity"]["id"] == "1000")
    assert a_entry["provisioningAction"] == "create"
    _wait_past(a_entry["activityDateTime"], 2.5)

    emulator.configure(processing_delay=6.0)  # B's entry appears a while after its upload, as in Entra
    second = EntraBulkUploadOperator(
        task_id="upload", input_path=str(path), mapping=MAPPING, output_dir=str(tmp_path / "b")
    ).execute({"run_id": "manual__b"})
    assert datetime.fromisoformat(second["first_accepted"]) > datetime.fromisoformat(first["last_accepted"])

    def sensor(name: str, **kwargs) -> EntraProvisioningLogSensor:
        options = {"poke_interval": 1.0, "timeout": 30, "settle_seconds": 1, "max_failures": None}
        return EntraProvisioningLogSensor(
            task_id="verify", upload_summary=second, report_dir=str(tmp_path / name), **{**options, **kwargs}
        )

    # The old rule (a window minutes wide on the local clock) credits B with A's entry at once.
    old_rule = sensor("old", deferrable=False, acceptance_tolerance_seconds=3600).execute({"run_id": "b"})
    assert old_rule["outcomes"]["success"] == 1  # what the issue reported: "success (create)"

    # Deferred: the first poll finds nothing of B's own, so the sensor defers.
    deferred = sensor("deferred", deferrable=True)
    with pytest.raises(TaskDeferred) as raised:
        deferred.execute({"run_id": "b"})
    trigger = raised.value.trigger
    assert trigger.tolerance_seconds == 0.0
    assert datetime.fromisoformat(trigger.since) == datetime.fromisoformat(second["first_accepted"])
    event = asyncio.run(_first_event(trigger))
    result = deferred.execute_complete({"run_id": "b"}, event=event)
    assert result["outcomes"]["skipped"] == 1 and result["outcomes"]["success"] == 0

    poked = sensor("poke", deferrable=False).execute({"run_id": "b"})
    assert poked["outcomes"]["skipped"] == 1 and poked["outcomes"]["success"] == 0
    for name in ("deferred", "poke"):
        row = pd.read_parquet(tmp_path / name / "outcomes.parquet").iloc[0]
        assert (row["external_id"], row["status"], row["action"]) == ("1000", "skipped", "other")
        assert row["error_code"] == "RedundantExport"
        assert row["entries"] == 1 and row["activity_time"] >= pd.Timestamp(second["first_accepted"])


async def _first_event(trigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


def test_poll_window_starts_at_the_earliest_acceptance_minus_the_tolerance(tmp_path):
    submit = datetime(2026, 3, 2, 10, 0, 0, 400000, tzinfo=timezone.utc)
    accepted = datetime(2026, 3, 2, 10, 0, 3, tzinfo=timezone.utc)  # Microsoft's clock, 3 s ahead
    path = tmp_path / "ids.parquet"

    def since(acceptance: list, **kwargs) -> datetime:
        frame = pd.DataFrame({"externalId": ["1", "2"], "accepted_at": pd.to_datetime(acceptance, utc=True)})
        frame.to_parquet(path)
        summary = {"first_submit": submit.isoformat(), "external_ids_path": str(path)}
        return EntraProvisioningLogSensor(task_id="v", upload_summary=summary, **kwargs)._since()

    later = accepted + timedelta(seconds=20)
    assert since([later, accepted]) == accepted
    assert since([later, accepted], acceptance_tolerance_seconds=0.5) == accepted - timedelta(seconds=0.5)
    # Unknown acceptance (no Date header): the local submit clock with clock_skew_seconds is the fallback.
    assert since([None, None]) == submit - timedelta(seconds=120)
    assert since([accepted, None], clock_skew_seconds=2) == submit - timedelta(seconds=2)
    assert since([accepted, None], clock_skew_seconds=0) == submit  # whichever starts earlier
    pd.DataFrame({"externalId": ["1"]}).to_parquet(path)  # an ids file from before acceptance times
    old = EntraProvisioningLogSensor(
        task_id="v", upload_summary={"first_submit": submit.isoformat(), "external_ids_path": str(path)}
    )
    assert old._since() == submit - timedelta(seconds=120)


def test_negative_acceptance_tolerance_is_refused():
    with pytest.raises(ValueError, match="acceptance_tolerance_seconds"):
        EntraProvisioningLogSensor(task_id="v", upload_summary={}, acceptance_tolerance_seconds=-1)


def test_a_summary_rendered_to_text_is_refused_with_what_to_pass(tmp_path):
    sensor = EntraProvisioningLogSensor(task_id="verify", upload_summary='{"first_submit": "x"}')
    with pytest.raises(AirflowFailException, match=r"pass the upload task's output \(upload.output\)"):
        sensor.execute({"run_id": "manual__text", "params": {}})
