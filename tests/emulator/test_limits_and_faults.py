"""Throttling (burst and daily quota) and injected faults: what a careful client must survive."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_entra.emulator.process import EmulatorError, EmulatorProcess
from airflow_provider_entra.emulator.testing import Graph, bulk, user


def test_defaults_are_microsofts_limits(emulator: EmulatorProcess) -> None:
    emulator.configure(rate_limit="1/1", log_rate_limit="1/1")
    emulator.reset()
    config = emulator.control("GET", "config")
    assert config["rate_limit"] == "40/5"
    assert config["daily_quota"] == 6000
    assert config["log_rate_limit"] == "5/10"  # restored by reset, whatever a test changed


def test_burst_limit_answers_429_with_retry_after(graph: Graph) -> None:
    graph.emu.configure(rate_limit="3/60")
    assert [graph.upload(bulk(user(str(i)))).status_code for i in range(3)] == [202] * 3
    throttled = graph.upload(bulk(user("4")))
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert throttled.headers["request-id"]
    stats = graph.emu.stats()
    assert stats["throttled"]["bulkUpload"] == 1
    assert stats["throttled_total"] == 1
    assert stats["calls"]["bulkUpload"] == 4
    assert stats["uploads_accepted"] == 3
    assert stats["operations_received"] == 3


def test_daily_quota_answers_429_for_hours(graph: Graph) -> None:
    graph.emu.configure(daily_quota=2)
    assert [graph.upload(bulk(user(str(i)))).status_code for i in range(2)] == [202, 202]
    throttled = graph.upload(bulk(user("3")))
    assert throttled.status_code == 429
    assert "daily" in throttled.json()["error"]["message"]
    assert int(throttled.headers["Retry-After"]) > 3600
    assert graph.emu.stats()["daily_calls_used"] == 2


def test_a_new_day_frees_the_daily_quota(graph: Graph) -> None:
    graph.emu.configure(daily_quota=2)
    assert [graph.upload(bulk(user(str(i)))).status_code for i in range(2)] == [202, 202]
    assert graph.emu.new_day(hours=12) == {"daily_calls_used": 2, "daily_quota": 2}  # half a day: still spent
    assert graph.upload(bulk(user("3"))).status_code == 429
    assert graph.emu.new_day() == {"daily_calls_used": 0, "daily_quota": 2}
    assert [graph.upload(bulk(user(str(i)))).status_code for i in (4, 5, 6)] == [202, 202, 429]
    stats = graph.emu.stats()
    assert stats["daily_calls_used"] == 2
    assert stats["uploads_accepted"] == 4  # a new day moves the window, not the counters


def test_new_day_refuses_a_bad_body(emulator: EmulatorProcess) -> None:
    for body in ({"hours": 0}, {"hours": 25}, {"hours": "soon"}):
        with pytest.raises(EmulatorError, match="400"):
            emulator.control("POST", "new-day", json=body)


def test_fixed_retry_after_option(graph: Graph) -> None:
    graph.emu.configure(rate_limit="1/60", retry_after=7)
    graph.upload(bulk(user("1")))
    assert graph.upload(bulk(user("2"))).headers["Retry-After"] == "7"


def test_throttled_and_rejected_calls_are_not_processed(graph: Graph) -> None:
    graph.emu.configure(rate_limit="1/60")
    graph.upload(bulk(user("1")))
    graph.upload(bulk(user("2")))
    graph.emu.process()
    assert [u["employeeId"] for u in graph.emu.users()] == ["1"]


def test_planned_503s_then_success(graph: Graph) -> None:
    graph.emu.configure(faults=[{"kind": "503", "endpoint": "bulkUpload", "count": 2, "retry_after": 3}])
    first, second, third = (graph.upload(bulk(user("1"))) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 202)
    assert first.headers["Retry-After"] == "3"
    assert first.json()["error"]["code"] == "ServiceUnavailable"
    stats = graph.emu.stats()
    assert stats["faults"] == {"503": 2}
    assert stats["uploads_accepted"] == 1


def test_planned_500_and_429_on_other_endpoints(graph: Graph) -> None:
    graph.emu.configure(
        faults=[
            {"kind": "500", "endpoint": "provisioningLogs", "count": 1},
            {"kind": "429", "endpoint": "job", "count": 1, "retry_after": 2},
        ]
    )
    assert graph.logs().status_code == 500
    assert graph.logs().status_code == 200
    throttled = graph.request("GET", graph.job_url)
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "2")
    assert graph.emu.stats()["throttled"]["job"] == 1


def test_token_endpoint_fault(graph: Graph) -> None:
    graph.emu.configure(faults=[{"kind": "503", "endpoint": "token"}])
    assert graph.token_response().status_code == 503
    assert graph.token_response().status_code == 200


def test_dropped_connection_before_processing_loses_the_upload(graph: Graph) -> None:
    graph.emu.configure(faults=[{"kind": "drop", "endpoint": "bulkUpload"}])
    with pytest.raises(requests.ConnectionError):
        graph.upload(bulk(user("1")))
    graph.emu.process()
    assert graph.emu.users() == []
    assert graph.emu.stats()["faults"] == {"drop": 1}


def test_dropped_connection_after_acceptance_still_processes_the_upload(graph: Graph) -> None:
    graph.emu.configure(faults=[{"kind": "drop_after", "endpoint": "bulkUpload"}])
    with pytest.raises(requests.ConnectionError):
        graph.upload(bulk(user("1")))
    graph.emu.process()
    assert [u["employeeId"] for u in graph.emu.users()] == ["1"]


def test_slow_response_still_answers(graph: Graph) -> None:
    graph.emu.configure(faults=[{"kind": "slow", "endpoint": "bulkUpload", "seconds": 0.3}])
    assert graph.upload(bulk(user("1"))).status_code == 202
    assert graph.emu.stats()["faults"] == {"slow": 1}


def test_random_fault_rate_hits_graph_but_not_tokens_or_controls(graph: Graph) -> None:
    graph.token  # noqa: B018 - fetch the token before faults start
    graph.emu.configure(fault_rate=1.0)
    codes = {graph.upload(bulk(user(str(i)))).status_code for i in range(6)}
    assert codes <= {500, 503}
    assert graph.token_response().status_code == 200
    assert graph.emu.stats()["uploads_accepted"] == 0


def test_random_throttle_and_drop_rates(graph: Graph) -> None:
    graph.token  # noqa: B018
    graph.emu.configure(throttle_rate=1.0)
    assert graph.upload(bulk(user("1"))).status_code == 429
    graph.emu.configure(throttle_rate=0.0, drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        graph.upload(bulk(user("1")))


@pytest.mark.parametrize(
    "bad",
    [
        {"no_such_option": 1},
        {"faults": [{"kind": "teapot"}]},
        {"faults": [{"kind": "500", "endpoint": "nowhere"}]},
        {"rate_limit": "fast"},
        {"fault_rate": 2},
        {"create_inactive": "yes"},
    ],
)
def test_bad_config_is_refused_and_changes_nothing(emu: EmulatorProcess, bad: dict) -> None:
    before = emu.control("GET", "config")
    with pytest.raises(EmulatorError, match="400"):
        emu.configure(**bad)
    assert emu.control("GET", "config") == before


def test_reset_clears_state_but_keeps_apps(graph: Graph) -> None:
    graph.upload(bulk(user("1")))
    graph.emu.process()
    graph.emu.configure(rate_limit="1/60", faults=[{"kind": "500", "count": 5}])
    graph.emu.reset()
    stats = graph.emu.stats()
    assert (stats["users"], stats["log_entries"], stats["uploads_pending"], stats["calls_total"]) == (
        0,
        0,
        0,
        0,
    )
    assert graph.emu.control("GET", "config")["faults"] == []
    assert graph.upload(bulk(user("2"))).status_code == 202  # same credentials still work
