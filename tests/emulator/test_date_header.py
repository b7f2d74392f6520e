"""Every response carries one exact ``Date`` header; a bulkUpload's is its acceptance time, which no log entry
of that upload predates; ``activityDateTime`` keeps Microsoft's whole-second format."""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import requests

from airflow_provider_entra.emulator.process import EmulatorProcess
from airflow_provider_entra.emulator.testing import Graph, bulk, user

#: IMF-fixdate (RFC 9110 section 5.6.7): ``Sun, 06 Nov 1994 08:49:37 GMT``.
IMF_FIXDATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$")
#: ``activityDateTime`` as Microsoft's sample response writes it: whole seconds, ``Z``.
WHOLE_SECONDS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def _date(response: requests.Response) -> datetime:
    """The one ``Date`` header of a response, parsed (fails on none or several)."""
    values = response.raw.headers.getlist("Date")
    assert len(values) == 1, f"expected exactly one Date header, got {values}"
    assert IMF_FIXDATE.match(values[0]), values[0]
    return parsedate_to_datetime(values[0])


def _within(stamp: datetime, before: float, after: float) -> None:
    """``stamp`` (whole seconds) is the clock at some moment between ``before`` and ``after``."""
    assert math.floor(before) <= stamp.timestamp() <= after, (before, stamp, after)


def test_bulk_upload_date_is_the_acceptance_time_and_no_entry_predates_it(
    graph: Graph, emu: EmulatorProcess
) -> None:
    emu.configure(processing_delay=2.0)
    before = time.time()
    response = graph.upload(bulk(user("d1"), user("d2")))
    after = time.time()
    assert response.status_code == 202
    accepted = _date(response)
    _within(accepted, before, after)

    emu.process()
    entries = graph.job_logs()
    assert {e["sourceIdentity"]["id"] for e in entries} == {"d1", "d2"}
    for entry in entries:
        activity = datetime.fromisoformat(entry["activityDateTime"])
        # processed about 2 s after acceptance: the Date is when Graph took the request, not when it ran it
        assert activity >= accepted


def test_entries_processed_at_once_are_not_dated_before_the_acceptance(
    graph: Graph, emu: EmulatorProcess
) -> None:
    emu.configure(processing_delay=0.0)
    dates = []
    for n in range(5):
        response = graph.upload(bulk(user(f"q{n}")))
        assert response.status_code == 202
        dates.append((f"q{n}", _date(response)))
    emu.process()
    by_id = {e["sourceIdentity"]["id"]: e for e in graph.job_logs()}
    for external_id, accepted in dates:
        assert datetime.fromisoformat(by_id[external_id]["activityDateTime"]) >= accepted


def test_every_kind_of_response_has_one_exact_date(graph: Graph, emu: EmulatorProcess) -> None:
    calls = {
        "logs": lambda: graph.logs(),
        "job": lambda: graph.request("GET", graph.job_url),
        "bad request": lambda: graph.upload({"schemas": []}),
        "no token": lambda: graph.request("GET", graph.job_url, headers={"Authorization": "Bearer x"}),
        "unknown job": lambda: graph.request("GET", graph.job_url.replace(graph.app["job_id"], "nope")),
        "token": lambda: graph.token_response(),
        "control": lambda: graph.session.get(f"{emu.control_url}/health", verify=graph.ca),
    }
    statuses = {}
    for name, call in calls.items():
        before = time.time()
        response = call()
        after = time.time()
        statuses[name] = response.status_code
        _within(_date(response), before, after)
    assert statuses == {
        "logs": 200,
        "job": 200,
        "bad request": 400,
        "no token": 401,
        "unknown job": 404,
        "token": 200,
        "control": 200,
    }


def test_injected_faults_carry_a_date_too(graph: Graph, emu: EmulatorProcess) -> None:
    emu.configure(faults=[{"endpoint": "bulkUpload", "kind": "503", "count": 1}])
    before = time.time()
    response = graph.upload(bulk(user("f1")))
    after = time.time()
    assert response.status_code == 503
    _within(_date(response), before, after)


def test_dates_follow_the_clock_within_a_second(graph: Graph) -> None:
    """uvicorn's own header is refreshed once per second; the app's is the clock at each response."""
    stamps = []
    deadline = time.time() + 2.5
    while time.time() < deadline:
        before = time.time()
        response = graph.logs()
        after = time.time()
        stamp = _date(response)
        _within(stamp, before, after)
        stamps.append(stamp)
        time.sleep(0.1)
    assert len({s.timestamp() for s in stamps}) >= 2


def test_activity_date_time_has_microsofts_whole_second_format(
    graph: Graph, emu: EmulatorProcess, microsoft_sample: Path
) -> None:
    sample = json.loads((microsoft_sample / "provisioning-logs-response.json").read_text())
    assert all(WHOLE_SECONDS_Z.match(entry["activityDateTime"]) for entry in sample["value"])
    assert graph.upload(bulk(user("w1"))).status_code == 202
    emu.process()
    entries = graph.job_logs()
    assert entries
    for entry in entries:
        assert WHOLE_SECONDS_Z.match(entry["activityDateTime"]), entry["activityDateTime"]
        assert datetime.fromisoformat(entry["activityDateTime"]).tzinfo == timezone.utc
