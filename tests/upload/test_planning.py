"""Planning: records and payloads -> requests in stage order, as the bytes the builder made."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from airflow_provider_entra._constants import BULK_REQUEST_SCHEMA, CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA
from airflow_provider_entra.scim import MANAGER_PATH, build_bulk_requests
from airflow_provider_entra.upload import (
    PlanningError,
    PlanOptions,
    fingerprint,
    plan_payloads,
    plan_records,
    stage_order,
)
from airflow_provider_entra.upload.planning import load_mapping, map_input, payload_list

from .conftest import MAPPING


def test_requests_are_the_builders_bytes_and_their_fingerprints(records):
    plan = plan_records(records, PlanOptions(bulk_id_prefix="run-", managers_first=False))
    built = build_bulk_requests(records, bulk_id_prefix="run-")
    assert [request.body for request in plan.requests] == list(built.iter_request_bytes())
    assert [request.external_ids for request in plan.requests] == built.external_ids
    assert all(request.fingerprint == fingerprint(request.body) for request in plan.requests)
    assert plan.stage_sizes == [len(records.frame)] == [239]
    assert plan.requests[0].payload["Operations"][0]["bulkId"] == "run-" + plan.requests[0].external_ids[0]


def test_the_same_input_and_prefix_give_the_same_requests(records):
    first = plan_records(records, PlanOptions(bulk_id_prefix="a-"))
    again = plan_records(records, PlanOptions(bulk_id_prefix="a-"))
    other = plan_records(records, PlanOptions(bulk_id_prefix="b-"))
    assert [r.fingerprint for r in first.requests] == [r.fingerprint for r in again.requests]
    assert not {r.fingerprint for r in first.requests} & {r.fingerprint for r in other.requests}


def test_managers_come_before_their_reports(records):
    plan = plan_records(records, PlanOptions(bulk_id_prefix=""))
    assert plan.stage_sizes == [166, 48, 16, 5, 1, 3]
    assert [request.seq for request in plan.requests] == list(range(len(plan.requests)))
    stage_of = {ext: request.stage for request in plan.requests for ext in request.external_ids}
    managers = records.frame.set_index("externalId")[MANAGER_PATH]
    for ext, stage in stage_of.items():
        manager = managers[ext]
        if isinstance(manager, str) and manager in stage_of:
            assert stage_of[manager] < stage, (ext, manager)
    # 93 rows the mapping set aside (conflicting duplicates), with their reasons and input rows.
    assert len(plan.rejected) == 93 and set(plan.rejected["stage"]) == {"mapping"}
    assert plan.records + len(plan.rejected) == plan.input_rows == 332


def test_a_staged_order_is_read_back_instead_of_ordering_again(records):
    """The DAG's stages step computed the order: planning from it gives the very same requests."""
    computed = plan_records(records, PlanOptions(bulk_id_prefix="p-"))
    order = stage_order(records.frame).order
    assert list(order.columns) == ["externalId", "stage", "reason"]
    staged = plan_records(records, PlanOptions(bulk_id_prefix="p-", order=order))
    assert [r.body for r in staged.requests] == [r.body for r in computed.requests]
    # Read as it is: an order that puts everyone in one stage gives one stage.
    flat = order.assign(stage=0)
    assert plan_records(records, PlanOptions(bulk_id_prefix="p-", order=flat)).stage_sizes == [239]


def test_known_managers_need_no_earlier_stage(records):
    everyone = records.frame["externalId"].tolist()
    assert plan_records(records, PlanOptions(bulk_id_prefix="", known_ids=everyone)).stage_sizes == [239]


def test_a_staged_order_of_another_input_is_refused(records):
    order = stage_order(records.frame).order.iloc[5:]
    with pytest.raises(PlanningError, match=r"the stage order has no row for 5 record\(s\) .*another input"):
        plan_records(records, PlanOptions(bulk_id_prefix="", order=order))


def test_cycles_and_self_managers_are_set_aside_with_the_reason(sample, mapping):
    frame = sample.drop_duplicates("WorkerID").head(30).copy()
    ids = frame["WorkerID"].tolist()
    frame["ManagerID"] = ""
    frame.iloc[1, frame.columns.get_loc("ManagerID")] = ids[1]  # names itself
    frame.iloc[2, frame.columns.get_loc("ManagerID")] = ids[3]  # a cycle of two
    frame.iloc[3, frame.columns.get_loc("ManagerID")] = ids[2]
    records, _ = map_input(frame, mapping=mapping)
    plan = plan_records(records, PlanOptions(bulk_id_prefix=""))
    reasons = plan.rejected.set_index("externalId")
    assert (
        reasons.loc[ids[1], "reason"].startswith("self-manager") and reasons.loc[ids[1], "stage"] == "stages"
    )
    assert (
        "management cycle" in reasons.loc[ids[2], "reason"]
        and "management cycle" in reasons.loc[ids[3], "reason"]
    )
    sent = {ext for request in plan.requests for ext in request.external_ids}
    assert plan.records == len(sent) == 27 and not {ids[1], ids[2], ids[3]} & sent
    assert plan.row_of(ids[4]) == 4 and plan.row_of("nobody") is None


def test_hr_rows_need_a_mapping_and_mapped_rows_do_not(sample, records):
    with pytest.raises(PlanningError, match="HR-layout file .* pass mapping"):
        map_input(sample)
    again, kind = map_input(records.frame)
    assert kind == "mapped" and len(again.frame) == len(records.frame)
    assert [r.body for r in plan_records(again, PlanOptions(bulk_id_prefix="")).requests] == [
        r.body for r in plan_records(records, PlanOptions(bulk_id_prefix="")).requests
    ]


def test_a_mapping_is_read_from_a_file_and_text_is_refused(tmp_path, sample):
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps({"attributes": MAPPING}))
    assert load_mapping(str(path)).paths == load_mapping(MAPPING).paths
    assert load_mapping(f"file://{path}").paths == load_mapping(MAPPING).paths
    with pytest.raises(PlanningError, match="pass the dict itself"):
        load_mapping(str(MAPPING))


def user(ext: str | None, manager: str | None = None, **extra) -> dict:
    record = {"externalId": ext, "userName": f"{ext}@contoso.com", "active": True, **extra}
    if manager:
        record[ENTERPRISE_USER_SCHEMA] = {"manager": {"value": manager}}
    return record


def test_user_records_are_packed_managers_first_with_schemas(records):
    items = [user("2", manager="1"), user("1"), user("3", manager="2")]
    plan = plan_payloads(items, PlanOptions(bulk_id_prefix="x-"))
    assert [request.external_ids for request in plan.requests] == [["1"], ["2"], ["3"]]
    data = plan.requests[0].payload["Operations"][0]
    assert data["bulkId"] == "x-1" and data["data"]["schemas"] == [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA]
    assert plan.row_of("1") == 1 and plan.stage_sizes == [1, 1, 1]


def test_a_user_record_without_external_id_is_set_aside_not_tracked_as_none():
    plan = plan_payloads([user("1"), user(None), user("  ")], PlanOptions(bulk_id_prefix=""))
    assert [request.external_ids for request in plan.requests] == [["1"]]
    assert plan.rejected[["row", "stage", "reason"]].values.tolist() == [
        [1, "payloads", "externalId is empty"],
        [2, "payloads", "externalId is empty"],
    ]
    assert plan.rejected["externalId"].isna().all()


def bulk(*operations: dict) -> dict:
    return {"schemas": [BULK_REQUEST_SCHEMA], "Operations": list(operations), "failOnErrors": None}


def test_bulk_requests_are_sent_as_they_are_after_graphs_checks():
    operation = {"method": "POST", "bulkId": "b", "path": "/Users", "data": user("7")}
    plan = plan_payloads([bulk(operation)], PlanOptions(bulk_id_prefix="ignored-"))
    assert plan.requests[0].payload == bulk(operation) and plan.requests[0].external_ids == ["7"]
    for payload, reason in (
        ({"schemas": [], "Operations": [operation]}, r"payloads\[0\] is not a SCIM BulkRequest"),
        (bulk(), r"payloads\[0\]: 'Operations' must be a list of 1 to 50"),
        (bulk(*[operation] * 51), r"payloads\[0\]: 'Operations' must be a list of 1 to 50"),
        (bulk({**operation, "data": {"userName": "x"}}), r"Operations\[0\] has no data\.externalId"),
        (bulk({**operation, "data": user("8", hired=pd.Timestamp(0))}), "cannot be sent as JSON"),
    ):
        with pytest.raises(PlanningError, match=reason):
            plan_payloads([payload], PlanOptions(bulk_id_prefix=""))
    with pytest.raises(PlanningError, match="mixes BulkRequests and User records"):
        plan_payloads([bulk(operation), user("9")], PlanOptions(bulk_id_prefix=""))


def test_payloads_must_be_native_dicts():
    assert payload_list(user("1")) == [user("1")]
    for value in (json.dumps([user("1")]), "None", 7, [user("1"), "x"]):
        with pytest.raises(PlanningError, match="payloads must be a list .* e.g. task.output"):
            payload_list(value)


def test_records_a_step_staged_are_taken_as_they_are(tmp_path, records, mapping):
    """mapped.parquet / delta.parquet: values checked when mapped; only the shape is checked again."""
    path = tmp_path / "mapped.parquet"
    records.frame.assign(change="joiner").to_parquet(path)
    staged = pd.read_parquet(path)
    again, kind = map_input(staged, kind="mapped", mapping=mapping)
    assert kind == "mapped" and again.frame.columns.tolist() == records.frame.columns.tolist()
    assert again.frame.equals(records.frame) and again.rejected.empty
    assert [r.body for r in plan_records(again, PlanOptions(bulk_id_prefix="s-")).requests] == [
        r.body for r in plan_records(records, PlanOptions(bulk_id_prefix="s-")).requests
    ]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("no hash", "userName is empty"),
        ("empty userName", "userName is empty"),
        ("active as text", "active"),
    ],
)
def test_a_frame_not_shaped_as_staged_has_its_values_checked_again(records, mapping, change, reason):
    """Without the staged shape nothing is trusted: a bad row is set aside with its reason, nothing lost."""
    frame = records.frame.copy()
    first = frame["externalId"].iloc[0]
    if change == "no hash":
        frame = frame.drop(columns="record_hash")
        frame.iloc[0, frame.columns.get_loc("userName")] = ""
    elif change == "empty userName":
        frame.iloc[0, frame.columns.get_loc("userName")] = "  "
    else:
        frame["active"] = frame["active"].map({True: "true", False: "false"}).astype(str)
        frame.iloc[0, frame.columns.get_loc("active")] = "maybe"
    again, _ = map_input(frame, kind="mapped", mapping=mapping)
    assert again.rejected["externalId"].tolist() == [first]
    assert reason in again.rejected["reason"].iloc[0]
    assert len(again.frame) == len(frame) - 1


def test_a_staged_frame_with_an_external_id_twice_is_checked_again(records, mapping):
    frame = pd.concat([records.frame, records.frame.iloc[:1]])
    again, _ = map_input(frame, kind="mapped", mapping=mapping)
    assert len(again.frame) == len(records.frame) and again.duplicates_collapsed == 1


def test_a_stage_built_in_blocks_gives_the_same_requests(monkeypatch, records):
    whole = plan_records(records, PlanOptions(bulk_id_prefix="b-", max_operations=7))
    monkeypatch.setattr("airflow_provider_entra.upload.planning.BLOCK_REQUESTS", 2)  # 14 records a block
    blocks = plan_records(records, PlanOptions(bulk_id_prefix="b-", max_operations=7))
    assert [(r.seq, r.stage, r.body, r.external_ids) for r in blocks.requests] == [
        (r.seq, r.stage, r.body, r.external_ids) for r in whole.requests
    ]
    built = build_bulk_requests(records, bulk_id_prefix="b-", max_operations=7)
    single = plan_records(records, PlanOptions(bulk_id_prefix="b-", max_operations=7, managers_first=False))
    assert [r.body for r in single.requests] == list(built.iter_request_bytes())


def test_a_request_is_held_compressed_and_given_back_byte_for_byte(records):
    request = plan_records(records, PlanOptions(bulk_id_prefix="")).requests[0]
    assert len(request.packed) * 3 < request.size == len(request.body)
    assert fingerprint(request.body) == request.fingerprint
