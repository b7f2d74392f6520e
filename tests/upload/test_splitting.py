"""Bisection of a refused request: deterministic halves, down to single records."""

from __future__ import annotations

import json

import pytest

from airflow_provider_entra.upload import PlanOptions, plan_records
from airflow_provider_entra.upload.splitting import halves


def test_halves_are_deterministic_requests_of_their_own(records):
    request = plan_records(records, PlanOptions(bulk_id_prefix="h-", managers_first=False)).requests[0]
    first, second = halves(request)
    again = halves(request)
    assert [part.fingerprint for part, _ in again] == [first[0].fingerprint, second[0].fingerprint]
    assert first[1] == second[1] == request.fingerprint  # each knows the planned request it is part of
    assert (first[0].operations, second[0].operations) == (25, 25)
    assert first[0].external_ids + second[0].external_ids == request.external_ids
    assert (first[0].seq, first[0].stage) == (request.seq, request.stage)
    whole = request.payload
    for part, _ in (first, second):
        payload = json.loads(part.body)
        assert {k: v for k, v in payload.items() if k != "Operations"} == {
            k: v for k, v in whole.items() if k != "Operations"
        }
    assert first[0].payload["Operations"] + second[0].payload["Operations"] == whole["Operations"]


def test_parts_of_parts_keep_the_planned_requests_fingerprint(records):
    request = plan_records(
        records, PlanOptions(bulk_id_prefix="", managers_first=False, max_operations=3)
    ).requests[0]
    (larger, origin), (smaller, _) = halves(request)
    assert (larger.operations, smaller.operations) == (2, 1)  # the first half is the larger
    assert [part_of for _, part_of in halves(larger, origin)] == [request.fingerprint] * 2
    with pytest.raises(ValueError, match="single operation"):
        halves(smaller, origin)
