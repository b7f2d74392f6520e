"""The send loop against a small in-process Graph: resume, split, set aside, stop, fail with context."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from airflow_provider_entra._fsio import read_jsonl
from airflow_provider_entra.upload import (
    Earlier,
    LineWriter,
    Outcome,
    PlanOptions,
    Progress,
    Refused,
    RequestFailed,
    TooManyRejected,
    plan_payloads,
    send_plan,
)
from airflow_provider_entra.upload.manifest import MANIFEST_NAME, REFUSED_NAME

log = logging.getLogger("tests.upload")


class Graph:
    """bulkUpload's content check as Graph makes it for ``active``: a request with one non-boolean
    ``active`` is refused whole (400); anything else is accepted (202). Every call is counted."""

    def __init__(self, down_after: int | None = None) -> None:
        self.accepted: list[list[str]] = []
        self.refused = 0
        self.down_after = down_after

    def __call__(self, request) -> dict:
        if self.down_after is not None and len(self.accepted) >= self.down_after:
            raise ConnectionError("Graph is unreachable")
        operations = json.loads(request.body)["Operations"]
        bad = [op["data"]["externalId"] for op in operations if not isinstance(op["data"]["active"], bool)]
        if bad:
            self.refused += 1
            raise Refused(
                "BadRequest", f"{bad[0]}: active: must be a boolean", request_id=f"req-{self.refused}"
            )
        self.accepted.append(request.external_ids)
        return {
            "status_code": 202,
            "request_id": f"ok-{len(self.accepted)}",
            "client_request_id": None,
            "operation_count": request.operations,
            "submitted_at": f"2026-03-02T01:00:{len(self.accepted):02d}.5+00:00",
            "accepted_at": f"2026-03-02T01:00:{len(self.accepted):02d}+00:00",
        }


def users(n: int, bad=()) -> list[dict]:
    return [
        {"externalId": str(5000 + i), "userName": f"u{i}@contoso.com", "active": "yes" if i in bad else True}
        for i in range(n)
    ]


def send(folder: Path, plan, graph: Graph, **kwargs) -> Outcome:
    outcome = kwargs.pop("outcome", Outcome())
    earlier = Earlier.read(folder / MANIFEST_NAME, folder / REFUSED_NAME)
    with LineWriter(folder / MANIFEST_NAME) as manifest, LineWriter(folder / REFUSED_NAME) as refusals:
        return send_plan(
            plan,
            graph,
            earlier=earlier,
            manifest=manifest,
            refusals=refusals,
            progress=Progress(log, plan.records),
            outcome=outcome,
            log=log,
            **kwargs,
        )


def test_one_bad_record_is_found_by_halving_and_set_aside(tmp_path: Path, caplog):
    plan = plan_payloads(users(120, bad=(10, 70)), PlanOptions(bulk_id_prefix="p-"))
    graph = Graph()
    with caplog.at_level(logging.WARNING, "tests.upload"):
        outcome = send(tmp_path, plan, graph)
    # Each bad request: refused whole, then each halving 50 > 25 > 13 > 7 > 4 > 2 > 1 refuses one half.
    assert graph.refused == 2 * 7 and len(graph.accepted) == 1 + 2 * 6
    assert [item["externalId"] for item in outcome.graph_rejected] == ["5010", "5070"]
    assert [item["row"] for item in outcome.graph_rejected] == [10, 70]
    assert (
        outcome.graph_rejected[0]["reason"]
        == "Graph rejected the record: BadRequest: 5010: active: must be a boolean"
    )
    assert "sending it in halves" in caplog.text
    summary = outcome.summary()
    assert summary["sent_records"] == 118 and summary["rejected_by_graph"] == 2
    assert summary["first_accepted"] == "2026-03-02T01:00:01+00:00" and summary["request_ids_total"] == 13
    lines = read_jsonl(tmp_path / MANIFEST_NAME)
    assert sum(len(line["external_ids"]) for line in lines) == 118
    assert {line["part_of"] for line in lines if "part_of" in line} == {
        plan.requests[0].fingerprint,
        plan.requests[1].fingerprint,
    }
    assert len(read_jsonl(tmp_path / REFUSED_NAME)) == graph.refused


def test_a_retry_sends_nothing_that_was_accepted_or_refused(tmp_path: Path):
    plan = plan_payloads(users(120, bad=(10, 70)), PlanOptions(bulk_id_prefix="p-"))
    first = send(tmp_path, plan, Graph())
    retry = Graph()
    again = send(tmp_path, plan, retry)
    assert retry.accepted == [] and retry.refused == 0
    assert len(again.resumed) == len(first.sent) and again.sent == []
    assert again.graph_rejected == first.graph_rejected
    assert again.summary()["sent_records"] == 118


def test_too_many_rejections_stop_the_upload_with_the_first_reasons(tmp_path: Path):
    plan = plan_payloads(users(8, bad=(1, 4, 6)), PlanOptions(bulk_id_prefix=""))
    outcome = Outcome()
    with pytest.raises(
        TooManyRejected, match="Graph rejected 3 records, more than max_rejected_records=2"
    ) as info:
        send(tmp_path, plan, Graph(), max_rejected=2, outcome=outcome)
    assert "5001: Graph rejected the record: BadRequest:" in str(info.value)
    assert len(outcome.graph_rejected) == 3  # what was found so far is there for the caller to write down


def test_another_failure_names_the_request_and_keeps_what_was_accepted(tmp_path: Path):
    plan = plan_payloads(users(120), PlanOptions(bulk_id_prefix=""))
    outcome = Outcome()
    with pytest.raises(
        RequestFailed,
        match=r"request 2/3 \(stage 0, externalIds 5050, .*\) failed: Graph is unreachable\. 1 request\(s\)",
    ) as info:
        send(tmp_path, plan, Graph(down_after=1), outcome=outcome)
    assert isinstance(info.value.__cause__, ConnectionError) and info.value.request.seq == 1
    assert len(outcome.sent) == 1 and len(read_jsonl(tmp_path / MANIFEST_NAME)) == 1
    resumed = send(tmp_path, plan, Graph())
    assert len(resumed.resumed) == 1 and len(resumed.sent) == 2
