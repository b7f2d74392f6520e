"""build_bulk_requests: request shape and limits, bulkIds, every row accounted for, valid SCIM."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_provider_entra.scim import (
    MAX_OPERATIONS_PER_REQUEST,
    AttributeMapping,
    BulkBuildResult,
    MappedRecords,
    build_bulk_requests,
    map_records,
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CONTOSO = "urn:ietf:params:scim:schemas:extension:contoso:1.0:User"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"


def random_hr(n: int, seed: int) -> pd.DataFrame:
    """HR rows with gaps, duplicates, bad values, diacritics and characters that need escaping."""
    rng = np.random.default_rng(seed)

    def pick(options: list[str], weights: list[float]) -> np.ndarray:
        return rng.choice(options, n, p=np.array(weights) / sum(weights))

    ids = rng.permutation(n).astype(str)
    ids[rng.random(n) < 0.02] = ""
    clash = rng.random(n) < 0.02
    ids[clash] = rng.choice(ids, clash.sum())  # some IDs on two rows (usually different people)
    df = pd.DataFrame(
        {
            "WorkerID": ids,
            "Upn": [f"user{i}@contoso.com" for i in ids],
            "WorkerStatus": pick(["Active", "Inactive", "active"], [8, 1, 1]),
            "FirstName": pick(
                ["José", "Zoë", "Ann", 'Jo "JJ"', "Back\\slash", "", "Ødegård", "Line\nBreak"], [1] * 8
            ),
            "LastName": pick(["Núñez", "Smith", "O'Brien", ""], [1, 1, 1, 1]),
            "Email": pick(["a@contoso.com", "", "b@contoso.com", "not-an-email"], [10, 5, 10, 1]),
            "Mobile": pick(["+47 900 00 000", ""], [1, 1]),
            "ManagerID": pick(["1", "2", ""], [1, 1, 1]),
            "Department": pick(["IT", "Sales", "x" * 70, ""], [10, 10, 1, 5]),
            "HireDate": pick(
                ["2020-01-31", "2019-02-29", "2021-06-01", "", "2022-12-24T08:00:00-05:00"], [5, 1, 5, 2, 5]
            ),
            "Grade": pick(["1", "2", "", "x"], [10, 10, 5, 1]),
        }
    )
    copies = df.sample(10, random_state=seed)  # exact copies of rows collapse into one
    return pd.concat([df, copies], ignore_index=True)


RANDOM_MAPPING = {
    "externalId": "WorkerID",
    "userName": "Upn",
    "active": {"expr": "$_.WorkerStatus -eq 'Active'"},
    "displayName": {"join": ["FirstName", "LastName"]},
    "name": {"givenName": "FirstName", "familyName": "LastName"},
    "emails": [{"type": "work", "value": "Email", "primary": True}],
    "phoneNumbers": [{"type": "mobile", "value": "Mobile"}],
    ENTERPRISE: {"department": "Department", "manager": {"value": "ManagerID"}},
    CONTOSO: {
        "HireDate": {"column": "HireDate", "type": "datetime", "timezone": "Europe/Paris"},
        "Grade": {"column": "Grade", "type": "integer"},
    },
}


def test_a_thousand_random_rows(scim2_validate: Any) -> None:
    df = random_hr(1000, seed=11)
    mapping = AttributeMapping(RANDOM_MAPPING)
    result = build_bulk_requests(df, mapping, bulk_id_prefix="run-")
    requests = list(result.requests)
    assert 100 < len(result.rejected) < 400 and result.duplicates_collapsed > 0
    assert set(
        result.rejected["reason"]
        .str.extract(
            r"(empty|not a date|not a whole number|not an email|"
            r"over the limit|conflicting)"
        )[0]
        .dropna()
    ) == {
        "empty",
        "not a date",
        "not a whole number",
        "not an email",
        "over the limit",
        "conflicting",
    }
    # every row is accounted for, exactly once
    assert (
        result.operation_count + len(result.rejected) + result.duplicates_collapsed
        == len(df)
        == result.input_rows
    )
    accounted = (
        [op_row for op_row in map_records(df, mapping).frame.index]
        + result.rejected["row"].tolist()
        + result.collapsed["row"].tolist()
    )
    assert sorted(accounted) == list(range(len(df)))
    sent: list[str] = []
    for request, ids in zip(requests, result.external_ids, strict=True):
        operations = request["Operations"]
        assert 1 <= len(operations) <= MAX_OPERATIONS_PER_REQUEST
        assert list(request) == ["schemas", "Operations", "failOnErrors"]
        assert request["schemas"] == [BULK] and request["failOnErrors"] is None
        bulk_ids = [op["bulkId"] for op in operations]
        assert len(set(bulk_ids)) == len(bulk_ids)
        assert [op["data"]["externalId"] for op in operations] == ids
        assert bulk_ids == [f"run-{i}" for i in ids]
        for op in operations:
            assert op["method"] == "POST" and op["path"] == "/Users"
            data = op["data"]
            assert data["schemas"][:2] == [CORE, ENTERPRISE]
            assert isinstance(data["active"], bool)
            assert (CONTOSO in data["schemas"]) == (CONTOSO in data)
            for value in _walk(data):
                assert value is not None and value != "" and value != {} and value != []
        scim2_validate(request, mapping)
        sent += ids
    assert all(len(r["Operations"]) == 50 for r in requests[:-1])  # full requests, then the rest
    assert len(sent) == len(set(sent)) == result.operation_count
    # no externalId is both sent and rejected
    assert not set(sent) & set(result.rejected["externalId"].dropna())


def _walk(value: Any) -> Any:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def test_microsoft_sample1_every_row_accounted_for(
    scim_paths: dict[str, Path], hr_csv: Any, scim2_validate: Any
) -> None:
    """332 rows, 283 distinct WorkerIDs, 44 of them on several rows with different people."""
    df = hr_csv(scim_paths["microsoft"] / "Sample1-employeeData.csv")
    mapping = AttributeMapping.from_file(scim_paths["sample"] / "microsoft_sample_mapping.yaml")
    result = build_bulk_requests(df, mapping)
    assert len(df) == 332 and df["WorkerID"].nunique() == 283
    sent = [i for ids in result.external_ids for i in ids]
    rejected_ids = set(result.rejected["externalId"])
    # every distinct ID is sent exactly once or rejected, never both, never lost
    assert len(sent) == len(set(sent))
    assert set(sent) | rejected_ids == set(df["WorkerID"]) and not set(sent) & rejected_ids
    assert len(sent) + len(result.rejected) + result.duplicates_collapsed == 332
    repeated = df["WorkerID"].value_counts()
    repeated = set(repeated[repeated > 1].index)
    assert len(repeated) == 44 and rejected_ids == repeated  # the file's repeats are different people
    assert (len(sent), len(result.rejected), result.duplicates_collapsed) == (239, 93, 0)
    for external_id, group in result.rejected.groupby("externalId"):
        rows = sorted(df.index[df["WorkerID"] == external_id])
        assert group["row"].tolist() == rows
        assert set(group["reason"]) == {
            f"externalId {external_id!r} is on rows {', '.join(map(str, rows))} with different values "
            "(conflicting duplicates: none of them is sent)"
        }
    # what is sent is what the file says for those IDs
    by_id = df.set_index("WorkerID")
    for request in result.requests:
        scim2_validate(request, mapping)
        for op in request["Operations"]:
            data = op["data"]
            row = by_id.loc[data["externalId"]]
            assert data["userName"] == row["UserID"] and data["active"] == (row["WorkerStatus"] == "Active")
            assert data[ENTERPRISE]["manager"] == {"value": row["ManagerID"]}


def test_the_bundled_sample_through_the_default_mapping(
    sample_hr: Any, scim_paths: dict[str, Path], scim2_validate: Any
) -> None:
    mapping = AttributeMapping.from_file(scim_paths["sample"] / "hr_mapping.yaml")
    for name in ("hr_employees.csv", "hr_employees_next_day.csv"):
        df = sample_hr(name)
        result = build_bulk_requests(df, mapping)
        assert result.rejected.empty and result.duplicates_collapsed == 0
        assert result.operation_count == len(df) and len(result.requests) == -(-len(df) // 50)
        for request in result.requests:
            users = scim2_validate(request, mapping)
            assert all(u.external_id and u.user_name.endswith("@contoso.com") for u in users)
    data = [op["data"] for r in result.requests for op in r["Operations"]]
    ceo = [d for d in data if "manager" not in d.get(ENTERPRISE, {})]
    assert len(ceo) == 1 and ceo[0]["title"] == "Chief Executive Officer"
    assert all(d[CONTOSO]["HireDate"].endswith("T00:00:00+00:00") for d in data)


def test_max_operations_and_request_sequence() -> None:
    mapping = AttributeMapping({"externalId": "Id", "userName": "Upn", "active": True})
    df = pd.DataFrame({"Id": [str(i) for i in range(23)], "Upn": [f"u{i}@x.com" for i in range(23)]})
    result = build_bulk_requests(df, mapping, max_operations=7)
    requests = result.requests
    assert len(requests) == 4 and [len(r["Operations"]) for r in requests] == [7, 7, 7, 2]
    assert result.external_ids == [[str(i) for i in range(s, min(s + 7, 23))] for s in range(0, 23, 7)]
    assert requests[-1] == requests[3] and requests[1:3] == [requests[1], requests[2]]
    assert requests == list(requests) and requests != list(requests)[:-1]
    with pytest.raises(IndexError):
        requests[4]
    raw = list(result.iter_request_bytes())
    assert [json.loads(b) for b in raw] == list(requests)
    assert raw[0].startswith(
        b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[{'
    )
    assert raw[0].endswith(b'}],"failOnErrors":null}')
    assert repr(result) == "<BulkBuildResult: 4 requests, 23 operations, 0 rejected, 0 collapsed, of 23 rows>"
    one = build_bulk_requests(df, mapping, max_operations=1)
    assert len(one.requests) == 23 and all(len(r["Operations"]) == 1 for r in one.requests)
    assert len(build_bulk_requests(df, mapping).requests) == 1
    for bad in (0, 51, 2.5, True):
        with pytest.raises(ValueError, match="max_operations must be 1 to 50"):
            build_bulk_requests(df, mapping, max_operations=bad)


def test_bulk_ids_are_deterministic_and_escaped() -> None:
    mapping = AttributeMapping({"externalId": "Id", "userName": "Upn", "active": True})
    df = pd.DataFrame({"Id": ['A"1', "B\\2"], "Upn": ["a@x.com", "b@x.com"]})
    first = build_bulk_requests(df, mapping, bulk_id_prefix='2026-01-01/"run"#')
    ops = first.requests[0]["Operations"]
    assert [op["bulkId"] for op in ops] == ['2026-01-01/"run"#A"1', '2026-01-01/"run"#B\\2']
    assert build_bulk_requests(df, mapping, bulk_id_prefix='2026-01-01/"run"#').requests == first.requests
    assert [op["bulkId"] for op in build_bulk_requests(df, mapping).requests[0]["Operations"]] == [
        'A"1',
        "B\\2",
    ]


def test_building_from_mapped_records_equals_building_from_rows() -> None:
    df = random_hr(300, seed=5)
    mapping = AttributeMapping(RANDOM_MAPPING)
    direct = build_bulk_requests(df, mapping)
    mapped = map_records(df, mapping)
    from_mapped = build_bulk_requests(mapped, mapping)
    assert isinstance(from_mapped, BulkBuildResult)
    assert from_mapped.requests == direct.requests
    pd.testing.assert_frame_equal(from_mapped.rejected, direct.rejected)
    pd.testing.assert_frame_equal(from_mapped.collapsed, direct.collapsed)
    assert from_mapped.input_rows == direct.input_rows
    # a delta: only the changed records
    changed = mapped.frame["externalId"].iloc[[3, 1]].tolist()
    delta = build_bulk_requests(mapped.select(changed))
    assert delta.external_ids == [sorted(changed, key=mapped.frame["externalId"].tolist().index)]
    # mapped values survive a round trip through Parquet-like dtypes (object columns)
    assert (
        build_bulk_requests(MappedRecords.from_frame(mapped.frame.astype(object), mapping)).requests
        == direct.requests
    )


def test_refusals_for_mapped_records() -> None:
    mapping = AttributeMapping({"externalId": "Id", "userName": "Upn", "active": True})
    other = AttributeMapping({"externalId": "Id", "userName": "Upn", "active": False})
    mapped = map_records(pd.DataFrame({"Id": ["1", "2"], "Upn": ["a@x.com", "b@x.com"]}), mapping)
    with pytest.raises(ValueError, match="these records were mapped with another mapping"):
        build_bulk_requests(mapped, other)
    doubled = MappedRecords(
        pd.concat([mapped.frame, mapped.frame]), mapped.rejected, mapped.collapsed, mapping, 4
    )
    with pytest.raises(ValueError, match=r"the externalId\(s\) \['1', '2'\] more than once"):
        build_bulk_requests(doubled)
    with pytest.raises(ValueError, match="a mapping is needed"):
        build_bulk_requests(pd.DataFrame({"Id": ["1"]}))
    with pytest.raises(TypeError, match="expected a pandas DataFrame or MappedRecords"):
        build_bulk_requests([{"Id": "1"}], mapping)  # type: ignore[arg-type]


def test_active_is_always_sent_and_empty_rows_send_nothing_else() -> None:
    mapping = AttributeMapping(
        {"externalId": "Id", "userName": "Upn", "active": {"expr": 'S == "A"'}, "displayName": "Name"}
    )
    df = pd.DataFrame({"Id": ["1", "2"], "Upn": ["a@x.com", "b@x.com"], "S": ["A", ""], "Name": ["", "  "]})
    data = [op["data"] for op in build_bulk_requests(df, mapping).requests[0]["Operations"]]
    assert data == [
        {"schemas": [CORE, ENTERPRISE], "externalId": "1", "userName": "a@x.com", "active": True},
        {"schemas": [CORE, ENTERPRISE], "externalId": "2", "userName": "b@x.com", "active": False},
    ]


def test_request_bytes_are_compact_utf8() -> None:
    mapping = AttributeMapping({"externalId": "Id", "userName": "Upn", "active": True, "displayName": "Name"})
    df = pd.DataFrame({"Id": ["1"], "Upn": ["z@x.com"], "Name": ["Zoë Ødegård"]})
    [raw] = build_bulk_requests(df, mapping).iter_request_bytes()
    assert "Zoë Ødegård".encode() in raw and b"\\u00eb" not in raw and b", " not in raw
    counts = Counter(raw.decode())
    assert counts["{"] == counts["}"] and counts["["] == counts["]"]


def test_every_column_in_a_custom_namespace_like_microsofts_payload_sample(
    scim_paths: dict[str, Path], hr_csv: Any, scim2_validate: Any
) -> None:
    """CSV2SCIM can also send every CSV column under one namespace (Sample-CSV-2-SCIM-payload.json)."""
    csv_namespace = "urn:ietf:params:scim:schemas:extension:csv:1.0:User"
    sample = json.loads((scim_paths["microsoft"] / "Sample-CSV-2-SCIM-payload.json").read_text())
    df = hr_csv(scim_paths["microsoft"] / "csv-with-2-records.csv")
    mapping = AttributeMapping(
        {
            "externalId": "WorkerID",
            "userName": "UserID",
            "active": {"expr": "$_.'WorkerStatus' -eq 'Active'"},
            csv_namespace: {column: column for column in df.columns},
        }
    )
    [request] = build_bulk_requests(df, mapping).requests
    first = request["Operations"][0]["data"]
    theirs = sample["Operations"][0]["data"]
    assert first["schemas"] == [CORE, ENTERPRISE, csv_namespace]
    assert set(first[csv_namespace]) == set(df.columns)
    assert len(set(first[csv_namespace]) & set(theirs[csv_namespace])) >= 18  # most names are Microsoft's
    assert first[csv_namespace]["HireDate"] == "2013-01-01" and first[csv_namespace]["WorkerID"] == "1222"
    second = request["Operations"][1]["data"]
    assert "Custom02" not in second[csv_namespace]  # an empty cell is left out, not sent as ""
    # unlike Microsoft's sample: path "/Users", bulkIds unique
    assert [op["path"] for op in request["Operations"]] == ["/Users", "/Users"]
    assert len({op["bulkId"] for op in request["Operations"]}) == 2
    scim2_validate(request, mapping)
