"""The request log (``GET /_emulator/requests``) and first-attempt-only faults: how often requests arrive."""

from __future__ import annotations

import hashlib

import pytest
import requests

from airflow_provider_entra.emulator.testing import Graph, bulk, user


def test_each_arrival_is_logged_with_its_client_request_id_fault_and_status(graph: Graph) -> None:
    graph.emu.configure(faults=[{"kind": "503", "endpoint": "bulkUpload", "count": 1, "retry_after": 1}])
    headers = {"client-request-id": "req-1"}
    first = graph.upload(bulk(user("1"), user("2")), headers=dict(headers))
    second = graph.upload(bulk(user("1"), user("2")), headers=dict(headers))
    assert (first.status_code, second.status_code) == (503, 202)

    log = graph.emu.request_log("bulkUpload")
    assert [(r["client_request_id"], r["fault"], r["status"]) for r in log] == [
        ("req-1", "503", 503),
        ("req-1", None, 202),
    ]
    assert "upload" not in log[0]
    assert log[1]["upload"]["operations"] == 2
    assert log[1]["upload"]["bulk_ids_sha256"] == hashlib.sha256(b"b0\nb1").hexdigest()
    assert log[0]["seq"] < log[1]["seq"]
    assert {r["endpoint"] for r in graph.emu.request_log()} >= {"token", "bulkUpload"}


def test_dropped_connection_is_logged_without_status(graph: Graph) -> None:
    graph.emu.configure(faults=[{"kind": "drop", "endpoint": "bulkUpload", "count": 1}])
    with pytest.raises(requests.ConnectionError):
        graph.upload(bulk(user("1")), headers={"client-request-id": "dropped"})
    [entry] = graph.emu.request_log("bulkUpload")
    assert (entry["client_request_id"], entry["fault"], entry["status"]) == ("dropped", "drop", None)


def test_first_attempt_only_faults_spare_retries_and_keep_planned_faults_for_new_requests(
    graph: Graph,
) -> None:
    graph.emu.configure(
        fault_first_attempt_only=True,
        faults=[{"kind": "429", "endpoint": "bulkUpload", "count": 2, "retry_after": 1}],
    )
    statuses = []
    for request_id in ("a", "a", "b", "b", "c"):
        response = graph.upload(bulk(user(request_id)), headers={"client-request-id": request_id})
        statuses.append(response.status_code)
    # The planned burst of two 429s hits the first attempts of "a" and "b"; their retries pass.
    assert statuses == [429, 202, 429, 202, 202]
    assert graph.emu.stats()["faults"] == {"429": 2}


def test_first_attempt_only_applies_to_random_faults(graph: Graph) -> None:
    graph.emu.configure(fault_first_attempt_only=True, fault_rate=1.0)
    first = graph.upload(bulk(user("1")), headers={"client-request-id": "x"})
    retry = graph.upload(bulk(user("1")), headers={"client-request-id": "x"})
    assert first.status_code in (500, 503)
    assert retry.status_code == 202


def test_reset_clears_the_request_log(graph: Graph) -> None:
    graph.upload(bulk(user("1")))
    assert graph.emu.request_log("bulkUpload")
    graph.emu.reset()
    assert graph.emu.request_log() == []
