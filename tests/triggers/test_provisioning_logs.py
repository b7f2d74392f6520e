"""EntraProvisioningLogTrigger and its collector, run against the emulator's real provisioning logs."""

from __future__ import annotations

import asyncio
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
    load_acceptance,
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


# --- each record is verified only by its own entries ------------------------------------------------------


def ids_file_accepted(tmp_path: Path, accepted: dict[str, datetime | None]) -> str:
    """An upload's ids file with the ``accepted_at`` column the upload operator writes."""
    path = tmp_path / "sent-external-ids.parquet"
    frame = pd.DataFrame({"externalId": list(accepted)})
    frame["accepted_at"] = pd.to_datetime(list(accepted.values()), utc=True)
    frame.to_parquet(path)
    return str(path)


async def test_an_entry_older_than_the_records_acceptance_never_resolves_it(entra_env, tmp_path):
    """Run B sends ``y``, then (2.5 s later, a long upload) ``x``; meanwhile an on-demand run A created
    ``x``. A's entry lies inside B's poll window but before x's acceptance: it must not stand in for B's own
    outcome, neither live nor after a trigger restart; B's own (skipped) entry does."""
    emulator = entra_env
    emulator.configure(processing_delay=60.0)  # processed only when the test says so
    hook = EntraHook()
    b1 = hook.bulk_upload(bulk(user("y")))
    hook.bulk_upload(bulk(user("x")))  # run A
    emulator.process()
    created = [e for e in hook.iter_provisioning_logs() if e["sourceIdentity"]["id"] == "x"]
    assert [e["provisioningAction"] for e in created] == ["create"]
    while datetime.now(timezone.utc) < datetime.fromisoformat(created[0]["activityDateTime"]) + timedelta(
        seconds=2.5
    ):
        await asyncio.sleep(0.1)
    b2 = hook.bulk_upload(bulk(user("x")))  # run B's second request: the same record, unchanged
    assert b1.accepted_at and b2.accepted_at and b2.accepted_at - b1.accepted_at >= timedelta(seconds=2)
    assert datetime.fromisoformat(created[0]["activityDateTime"]) >= b1.accepted_at  # inside B's window

    kwargs = {
        "entra_conn_id": "entra_default",
        "external_ids_path": ids_file_accepted(tmp_path, {"y": b1.accepted_at, "x": b2.accepted_at}),
        "since": (b1.accepted_at - timedelta(seconds=1)).isoformat(),
        "poll_interval": 1.0,
        "timeout_at": (datetime.now(timezone.utc) + timedelta(seconds=2.5)).isoformat(),
        "page_size": 10,
        "state_path": str(tmp_path / "entries.jsonl"),
        "settle_seconds": 1.0,
        "tolerance_seconds": 1.0,
    }
    event = await first_event(EntraProvisioningLogTrigger(**kwargs))
    assert event["status"] == "timeout"
    assert (event["resolved"], event["expected"]) == (1, 2)  # y only: A's create is not x's outcome
    assert {e["sourceIdentity"]["id"] for e in read_jsonl(event["entries_path"])} == {"y"}

    # B's own entry arrives; a restarted trigger (rebuilt from serialize()) resumes from the state file.
    emulator.process()
    kwargs["timeout_at"] = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat()
    classpath, data = EntraProvisioningLogTrigger(**kwargs).serialize()
    assert data["tolerance_seconds"] == 1.0
    event = await first_event(EntraProvisioningLogTrigger(**data))
    assert event["status"] == "complete" and event["resolved"] == 2
    entries = read_jsonl(event["entries_path"])
    outcomes = reconcile(entries, ["y", "x"], accepted_at={"y": b1.accepted_at, "x": b2.accepted_at})
    x = outcomes.set_index("external_id").loc["x"]
    assert (x["status"], x["action"], x["error_code"]) == ("skipped", "other", "RedundantExport")


def test_restored_entries_follow_the_per_record_rule(tmp_path):
    """An entries file holding an earlier entry (written by an older version, or a shared folder) does not
    resolve the record when the collector is rebuilt."""
    accepted = datetime(2026, 3, 2, 10, 0, 13, tzinfo=timezone.utc)
    entries = tmp_path / "entries.jsonl"

    def entry(entry_id: str, stamp: datetime, action: str, status: str) -> dict:
        return {
            "id": entry_id,
            "activityDateTime": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sourceIdentity": {"id": "x"},
            "provisioningAction": action,
            "provisioningStatusInfo": {"status": status},
        }

    earlier = entry("a", accepted - timedelta(seconds=12), "create", "success")
    entries.write_text(json.dumps(earlier) + "\n")
    collector = ProvisioningLogCollector(
        ["x"],
        since=accepted - timedelta(seconds=120),
        entries_path=entries,
        accepted_at={"x": accepted},
        tolerance_seconds=1.0,
    ).restore()
    assert collector.resolved == 0 and not collector.is_complete()
    own = entry("b", accepted - timedelta(seconds=1), "other", "skipped")  # within the tolerance
    entries.write_text(json.dumps(earlier) + "\n" + json.dumps(own) + "\n")
    rebuilt = ProvisioningLogCollector(
        ["x"],
        since=accepted - timedelta(seconds=120),
        entries_path=entries,
        accepted_at={"x": accepted},
        tolerance_seconds=1.0,
    ).restore()
    assert rebuilt.resolved == 1 and rebuilt.is_complete()
    # With the default tolerance (0: exact) the entry dated a second before the acceptance does not count.
    exact = ProvisioningLogCollector(
        ["x"], since=accepted - timedelta(seconds=120), entries_path=entries, accepted_at={"x": accepted}
    ).restore()
    assert exact.resolved == 0
    # Without acceptance times the window start is the only cutoff (the fallback): both entries count.
    fallback = ProvisioningLogCollector(
        ["x"], since=accepted - timedelta(seconds=120), entries_path=entries
    ).restore()
    assert fallback.resolved == 1 and len(fallback._seen_entries) == 2


def test_acceptance_loads_from_the_ids_file_or_the_manifest(tmp_path):
    t = datetime(2026, 3, 2, 10, 0, 0, tzinfo=timezone.utc)
    path = ids_file_accepted(tmp_path, {"1": t, "2": None, "3": t + timedelta(seconds=4)})
    assert load_acceptance(path) == {"1": t, "3": t + timedelta(seconds=4)}
    assert load_acceptance(ids_file(tmp_path, ["1"])) == {}  # an ids file from before acceptance times
    manifest = tmp_path / "upload-manifest.jsonl"
    lines = [
        {"seq": 0, "external_ids": ["1", "2"], "accepted_at": (t + timedelta(seconds=9)).isoformat()},
        {"seq": 0, "external_ids": ["1"], "accepted_at": t.isoformat()},  # earliest wins
        {"seq": 1, "external_ids": ["3"], "accepted_at": None},
    ]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert load_acceptance(str(manifest)) == {"1": t, "2": t + timedelta(seconds=9)}


def test_negative_tolerance_is_refused(tmp_path):
    with pytest.raises(ValueError, match="tolerance_seconds"):
        ProvisioningLogCollector(
            ["x"], since=datetime.now(timezone.utc), entries_path=tmp_path / "e", tolerance_seconds=-1
        )


async def test_no_log_read_before_first_poll_at_the_deferring_task_just_polled(entra_env, tmp_path):
    emulator = entra_env
    receipt = EntraHook().bulk_upload(bulk(*[user(f"f{i}") for i in range(3)]))
    before = emulator.stats()["calls"].get("provisioningLogs", 0)
    first_poll_at = datetime.now(timezone.utc) + timedelta(seconds=3)
    trigger = make_trigger(
        tmp_path, ["f0", "f1", "f2"], since=receipt.submitted_at, first_poll_at=first_poll_at.isoformat()
    )

    running = asyncio.ensure_future(first_event(trigger))
    await asyncio.sleep(1.0)
    calls_while_waiting = emulator.stats()["calls"].get("provisioningLogs", 0)
    event = await running

    assert calls_while_waiting == before
    assert event["status"] == "complete" and event["resolved"] == 3
    assert emulator.stats()["calls"]["provisioningLogs"] > before


async def test_a_first_poll_time_in_the_past_polls_at_once(entra_env, tmp_path):
    receipt = EntraHook().bulk_upload(bulk(user("p0")))
    past = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    event = await first_event(make_trigger(tmp_path, ["p0"], since=receipt.submitted_at, first_poll_at=past))
    assert event["status"] == "complete"
