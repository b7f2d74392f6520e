"""EntraProvisioningLogTrigger and its collector, run against the emulator's real provisioning logs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_provider_entra._constants import BULK_REQUEST_SCHEMA, CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA
from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.provisioning.reconcile import reconcile
from airflow_provider_entra.sensors.provisioning_logs import EntraProvisioningLogSensor
from airflow_provider_entra.staging import read_jsonl
from airflow_provider_entra.triggers.provisioning_logs import (
    EntraProvisioningLogTrigger,
    ProvisioningLogCollector,
    load_external_ids,
)

CLASS_PATH = "airflow_provider_entra.triggers.provisioning_logs.EntraProvisioningLogTrigger"


def user(ext: str, manager: str | None = None) -> dict:
    data = {
        "schemas": [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
        "externalId": ext,
        "userName": f"u{ext}@contoso.com",
        "active": True,
        "displayName": f"User {ext}",
    }
    if manager:
        data[ENTERPRISE_USER_SCHEMA] = {"manager": {"value": manager}}
    return data


def bulk(*users: dict) -> dict:
    return {
        "schemas": [BULK_REQUEST_SCHEMA],
        "Operations": [
            {"method": "POST", "bulkId": f"b{i}", "path": "/Users", "data": u} for i, u in enumerate(users)
        ],
        "failOnErrors": None,
    }


def ids_file(tmp_path: Path, ids: list[str]) -> str:
    path = tmp_path / "sent-external-ids.parquet"
    pd.DataFrame({"externalId": ids}).to_parquet(path)
    return str(path)


def make_trigger(
    tmp_path: Path, ids: list[str], *, since: datetime, **overrides
) -> EntraProvisioningLogTrigger:
    kwargs = {
        "entra_conn_id": "entra_default",
        "external_ids_path": ids_file(tmp_path, ids),
        "since": (since - timedelta(seconds=5)).isoformat(),
        "poll_interval": 0.3,
        "timeout_at": (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat(),
        "page_size": 10,
        "state_path": str(tmp_path / "entries.jsonl"),
        "settle_seconds": 1.0,
    }
    kwargs.update(overrides)
    return EntraProvisioningLogTrigger(**kwargs)


async def first_event(trigger: EntraProvisioningLogTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


def test_serialize_round_trips_with_plain_json(tmp_path):
    trigger = make_trigger(tmp_path, ["1"], since=datetime(2026, 3, 2, tzinfo=timezone.utc))
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASS_PATH
    json.dumps(kwargs)  # plain JSON, nothing pickled
    rebuilt = EntraProvisioningLogTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)

    class Subclass(EntraProvisioningLogTrigger):
        pass

    assert Subclass(**kwargs).serialize()[0] == f"{Subclass.__module__}.Subclass"


async def test_trigger_completes_when_every_record_has_an_outcome(entra_env, tmp_path):
    emulator = entra_env
    hook = EntraHook()
    receipts = [hook.bulk_upload(bulk(*[user(f"{b}{i:02d}") for i in range(20)])) for b in (1, 2)]
    ids = [f"{b}{i:02d}" for b in (1, 2) for i in range(20)]
    trigger = make_trigger(
        tmp_path, ids, since=receipts[0].submitted_at, started_at="2026-03-02T10:00:00+00:00"
    )

    event = await first_event(trigger)

    assert event["status"] == "complete"
    assert event["started_at"] == "2026-03-02T10:00:00+00:00"
    assert event["resolved"] == event["expected"] == 40
    assert event["log_requests"] == emulator.stats()["calls"]["provisioningLogs"]
    entries = read_jsonl(event["entries_path"])
    assert sorted(e["sourceIdentity"]["id"] for e in entries) == sorted(ids)
    outcomes = reconcile(entries, ids)
    assert outcomes["status"].eq("success").all()


async def test_follow_up_update_resolves_a_manager_created_in_the_same_cycle(entra_env, tmp_path):
    """Manager and report in one request: a skipped reference first, then Entra's second ``update``."""
    hook = EntraHook()
    receipt = hook.bulk_upload(bulk(user("boss"), user("worker", manager="boss")))
    event = await first_event(make_trigger(tmp_path, ["boss", "worker"], since=receipt.submitted_at))
    assert event["status"] == "complete" and event["pending_references"] == 0
    outcomes = reconcile(read_jsonl(event["entries_path"]), ["boss", "worker"]).set_index("external_id")
    assert outcomes.loc["worker", "entries"] == 2
    assert bool(outcomes.loc["worker", "resolved_later"]) is True


async def test_unresolvable_manager_settles_then_completes_as_warning(entra_env, tmp_path):
    hook = EntraHook()
    receipt = hook.bulk_upload(bulk(user("orphan", manager="never-sent")))
    event = await first_event(make_trigger(tmp_path, ["orphan"], since=receipt.submitted_at))
    assert event["status"] == "complete"
    assert event["pending_references"] == 1  # it waited settle_seconds, then gave up waiting
    assert event["polls"] >= 2
    outcome = reconcile(read_jsonl(event["entries_path"]), ["orphan"]).iloc[0]
    assert (
        outcome["status"] == "warning" and outcome["error_code"] == "UnableToResolveReferenceAttributeValue"
    )


async def test_timeout_event_then_sensor_reports_missing(entra_env, tmp_path):
    emulator = entra_env
    emulator.configure_job(emulator.info["job_id"], status="Paused")  # accepted, never processed
    hook = EntraHook()
    receipt = hook.bulk_upload(bulk(user("p1"), user("p2")))
    trigger = make_trigger(
        tmp_path,
        ["p1", "p2"],
        since=receipt.submitted_at,
        timeout_at=(datetime.now(timezone.utc) + timedelta(seconds=1.5)).isoformat(),
        poll_interval=1.0,  # three polls, within the logs API's 5 requests per 10 s
    )
    event = await first_event(trigger)
    assert event["status"] == "timeout" and event["resolved"] == 0 and event["expected"] == 2

    # The sensor resumes from this very event (as after a deferral) and reports both as missing.
    sensor = EntraProvisioningLogSensor(
        task_id="verify",
        upload_summary={
            "job_id": hook.job_id,
            "first_submit": receipt.submitted_at.isoformat(),
            "external_ids_path": trigger.external_ids_path,
        },
        report_dir=str(tmp_path),
    )
    with pytest.raises(AirflowException, match="2 have no log entry"):
        sensor.execute_complete({"run_id": "r"}, event=event)
    report = pd.read_csv(tmp_path / "outcomes.csv", dtype=str)
    assert report["status"].tolist() == ["missing", "missing"]


async def test_restarted_trigger_resumes_from_its_state_without_new_requests(entra_env, tmp_path):
    emulator = entra_env
    hook = EntraHook()
    receipt = hook.bulk_upload(bulk(*[user(f"r{i}") for i in range(15)]))
    ids = [f"r{i}" for i in range(15)]
    first = await first_event(make_trigger(tmp_path, ids, since=receipt.submitted_at))
    calls = emulator.stats()["calls"]["provisioningLogs"]

    # A triggerer restart rebuilds the trigger from serialize(); it finds the entries already collected.
    classpath, kwargs = make_trigger(tmp_path, ids, since=receipt.submitted_at).serialize()
    second = await first_event(EntraProvisioningLogTrigger(**kwargs))

    assert second["status"] == "complete"
    assert emulator.stats()["calls"]["provisioningLogs"] == calls
    assert second["log_requests"] == first["log_requests"] and second["polls"] == first["polls"]
    assert len(read_jsonl(second["entries_path"])) == 15  # nothing duplicated


async def test_refused_credentials_end_with_an_error_event_without_the_secret(
    entra_env, tmp_path, monkeypatch
):
    conn = json.loads(json.dumps(entra_env.info["airflow_conn"]))
    conn["password"] = "definitely-wrong-secret-value"
    monkeypatch.setenv("AIRFLOW_CONN_ENTRA_BROKEN", json.dumps(conn))
    trigger = make_trigger(tmp_path, ["x"], since=datetime.now(timezone.utc), entra_conn_id="entra_broken")
    event = await first_event(trigger)
    assert event["status"] == "error"
    assert "definitely-wrong-secret-value" not in json.dumps(event)
    assert "Token for client" in event["message"]


def test_poll_window_follows_the_newest_entry_minus_the_lookback(tmp_path):
    since = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
    collector = ProvisioningLogCollector(
        ["a"], since=since, entries_path=tmp_path / "e.jsonl", lookback_seconds=300
    )
    assert collector.window_start() == since
    collector.watermark = since + timedelta(minutes=2)
    assert collector.window_start() == since  # never before the upload
    collector.watermark = since + timedelta(minutes=30)
    assert collector.window_start() == since + timedelta(minutes=25)


def test_external_ids_load_from_the_ids_file_or_the_manifest(tmp_path):
    assert load_external_ids(ids_file(tmp_path, ["7", "8", "7"])) == ["7", "8"]
    manifest = tmp_path / "upload-manifest.jsonl"
    manifest.write_text(
        json.dumps({"seq": 0, "external_ids": ["1", "2"]})
        + "\n"
        + json.dumps({"seq": 1, "external_ids": ["3"]})
    )
    assert load_external_ids(str(manifest)) == ["1", "2", "3"]
