"""Provisioning logs: filters, paging that stays stable while entries arrive, and the per-app rate limit."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_entra.emulator.process import EmulatorProcess
from airflow_provider_entra.emulator.testing import Graph, bulk, user


@pytest.fixture
def populated(graph: Graph) -> Graph:
    """Two cycles: users 1..4 (4 reports to 1, same cycle), then 1 again plus a duplicate-UPN failure."""
    graph.upload(bulk(user("1"), user("2"), user("3"), user("4", manager="1")))
    graph.emu.process()
    graph.upload(bulk(user("1", title="Lead"), user("5", "user2@contoso.com")))
    graph.emu.process()
    return graph


def test_entries_are_newest_first_by_default(populated: Graph) -> None:
    entries = populated.job_logs()
    assert len(entries) == 7  # 4 creates + manager update + 1 update + 1 failure
    times = [e["activityDateTime"] for e in entries]
    assert times == sorted(times, reverse=True)
    oldest_first = populated.all_logs(
        f"jobid eq '{populated.app['job_id']}'", **{"$orderby": "activityDateTime asc"}
    )
    assert [e["id"] for e in oldest_first] == [e["id"] for e in reversed(entries)]


def test_filter_by_source_identity_cycle_and_change(populated: Graph) -> None:
    of_four = populated.job_logs("sourceIdentity/id eq '4'")
    assert {e["provisioningAction"] for e in of_four} == {"create", "update"}
    change = of_four[0]["changeId"]
    assert {e["id"] for e in populated.job_logs(f"changeid eq '{change}'")} == {e["id"] for e in of_four}
    cycle = of_four[0]["cycleId"]
    assert len(populated.job_logs(f"cycleid eq '{cycle}'")) == 5


def test_filter_by_status_and_action(populated: Graph) -> None:
    failures = populated.job_logs("provisioningStatusInfo/status eq 'failure'")
    assert [e["sourceIdentity"]["id"] for e in failures] == ["5"]
    updates = populated.job_logs("provisioningAction eq 'update'")
    assert sorted(e["sourceIdentity"]["id"] for e in updates) == ["1", "4"]


def test_filter_by_activity_date_time(populated: Graph) -> None:
    entries = populated.job_logs()
    newest = dt.datetime.fromisoformat(entries[0]["activityDateTime"].replace("Z", "+00:00"))
    future = (newest + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    past = (newest - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert populated.job_logs(f"activityDateTime ge {future}") == []
    assert len(populated.job_logs(f"activityDateTime gt {past}")) == 7
    assert len(populated.job_logs(f"activityDateTime lt {future}")) == 7
    assert populated.job_logs(f"activityDateTime lt {past}") == []
    exact = entries[0]["activityDateTime"]
    assert all(e["activityDateTime"] >= exact for e in populated.job_logs(f"activityDateTime ge {exact}"))


def test_filter_on_another_job_sees_nothing(populated: Graph) -> None:
    admin_job = populated.emu.info["apps"]["admin"]["job_id"]
    assert populated.all_logs(f"jobid eq '{admin_job}'") == []
    assert len(populated.all_logs()) == 7


@pytest.mark.parametrize(
    "bad",
    [
        "jobid eq API2AAD",
        "userPrincipalName eq 'x'",
        "jobid gt 'x'",
        "activityDateTime ge yesterday",
        "jobid eq 'x' or cycleid eq 'y'",
        "jobid eq 'unterminated",
    ],
)
def test_unsupported_filters_are_400(graph: Graph, bad: str) -> None:
    response = graph.logs(**{"$filter": bad})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"


@pytest.mark.parametrize("top", ["0", "1001", "ten"])
def test_top_out_of_range_is_400(graph: Graph, top: str) -> None:
    assert graph.logs(**{"$top": top}).status_code == 400


def test_paging_follows_next_link_and_ignores_entries_written_meanwhile(graph: Graph) -> None:
    graph.upload(bulk(*[user(str(i)) for i in range(25)]))
    graph.emu.process()
    first = graph.logs(**{"$filter": f"jobid eq '{graph.app['job_id']}'", "$top": "10"})
    body = first.json()
    assert len(body["value"]) == 10
    next_link = body["@odata.nextLink"]
    query = parse_qs(urlsplit(next_link).query)
    assert query["$filter"] == [f"jobid eq '{graph.app['job_id']}'"]
    assert query["$skiptoken"]
    # New entries arrive while the client pages: they neither shift nor join the pages being read.
    graph.upload(bulk(*[user(str(i)) for i in range(100, 105)]))
    graph.emu.process()
    seen = [e["id"] for e in body["value"]]
    while next_link:
        page = graph.request("GET", next_link).json()
        seen.extend(e["id"] for e in page["value"])
        next_link = page.get("@odata.nextLink")
    assert len(seen) == len(set(seen)) == 25
    assert len(graph.job_logs()) == 30


def test_default_page_size_is_the_configured_one(graph: Graph) -> None:
    graph.emu.configure(log_page_size=3)
    graph.upload(bulk(*[user(str(i)) for i in range(5)]))
    graph.emu.process()
    body = graph.logs().json()
    assert len(body["value"]) == 3
    assert "@odata.nextLink" in body


def test_top_up_to_1000(graph: Graph) -> None:
    graph.upload(bulk(*[user(str(i)) for i in range(50)]))
    graph.emu.process()
    body = graph.logs(**{"$top": "1000"}).json()
    assert len(body["value"]) == 50
    assert "@odata.nextLink" not in body


def test_log_delay_hides_fresh_entries(graph: Graph) -> None:
    graph.emu.configure(log_delay=3600)
    graph.upload(bulk(user("1")))
    graph.emu.process()
    assert graph.job_logs() == []
    assert graph.emu.stats()["log_entries"] == 1


def test_five_log_calls_per_ten_seconds_per_app(emu: EmulatorProcess) -> None:
    emu.configure(log_rate_limit="5/10")
    default, admin = Graph(emu), Graph(emu, emu.info["apps"]["admin"])
    assert [default.logs().status_code for _ in range(5)] == [200] * 5
    throttled = default.logs()
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 10
    assert admin.logs().status_code == 200  # the limit is per app
    stats = emu.stats()
    assert stats["throttled"]["provisioningLogs"] == 1
    assert stats["calls"]["provisioningLogs"] == 7


def test_location_header_of_an_upload_is_a_working_log_query(graph: Graph) -> None:
    location = graph.upload(bulk(user("1"))).headers["Location"]
    graph.emu.process()
    body = graph.request("GET", location).json()
    assert [e["sourceIdentity"]["id"] for e in body["value"]] == ["1"]
