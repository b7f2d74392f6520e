"""map_records: the mapped frame, the reasons rows are rejected, duplicates, dates, and the record hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_provider_entra.scim import (
    AttributeMapping,
    MappedRecords,
    MappingError,
    _engine,
    build_bulk_requests,
    map_records,
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CONTOSO = "urn:ietf:params:scim:schemas:extension:contoso:1.0:User"
BASE = {"externalId": "Id", "userName": "Upn", "active": {"expr": 'Status == "Active"'}}


def hr(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def person(i: int, **values: Any) -> dict[str, Any]:
    return {"Id": str(i), "Upn": f"u{i}@contoso.com", "Status": "Active", **values}


def reasons(mapped: Any) -> dict[int, str]:
    return dict(zip(mapped.rejected["row"], mapped.rejected["reason"], strict=True))


def test_frame_layout() -> None:
    mapping = AttributeMapping(
        {
            **BASE,
            "displayName": "Name",
            f"{ENTERPRISE}:manager.value": "Manager",
            f"{CONTOSO}:Level": {"column": "Level", "type": "integer"},
        }
    )
    df = hr([person(1, Name="Ada", Manager="", Level="3"), person(2, Name="Bo", Manager="1", Level="")])
    df.index = ["x", "y"]  # labels are not row numbers: rows are positions
    mapped = map_records(df, mapping)
    frame = mapped.frame
    assert list(frame.columns) == [
        "externalId",
        "userName",
        "active",
        "displayName",
        f"{ENTERPRISE}:manager.value",
        f"{CONTOSO}:Level",
        "record_hash",
    ]
    assert frame.index.name == "row" and frame.index.tolist() == [0, 1]
    assert str(frame["active"].dtype) == "boolean" and str(frame[f"{CONTOSO}:Level"].dtype) == "Int64"
    assert frame["externalId"].tolist() == ["1", "2"]
    assert (
        pd.isna(frame.loc[0, f"{ENTERPRISE}:manager.value"])
        and frame.loc[1, f"{ENTERPRISE}:manager.value"] == "1"
    )
    assert frame[f"{CONTOSO}:Level"].tolist()[0] == 3 and pd.isna(frame[f"{CONTOSO}:Level"].tolist()[1])
    assert frame["record_hash"].str.fullmatch(r"[0-9a-f]{32}").all()
    assert mapped.input_rows == 2 and mapped.rejected.empty and mapped.duplicates_collapsed == 0
    assert mapped.mapping is mapping


def test_record_hash_is_a_hash_of_the_record_json_and_stable() -> None:
    mapping = AttributeMapping({**BASE, "displayName": "Name"})
    df = hr([person(1, Name="Zoë"), person(2, Name="Bo")])
    first, second = map_records(df, mapping), map_records(df.copy(), mapping)
    assert first.frame["record_hash"].tolist() == second.frame["record_hash"].tolist()
    record = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": "1",
        "userName": "u1@contoso.com",
        "active": True,
        "displayName": "Zoë",
    }
    compact = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
    assert first.frame.loc[0, "record_hash"] == hashlib.blake2b(compact, digest_size=16).hexdigest()
    # a mover: only the changed record gets a new hash
    moved = df.copy()
    moved.loc[1, "Name"] = "Bo Changed"
    after = map_records(moved, mapping).frame["record_hash"].tolist()
    assert after[0] == first.frame["record_hash"].tolist()[0]
    assert after[1] != first.frame["record_hash"].tolist()[1]
    # the same values through other dtypes give the same hash
    typed = df.assign(Id=[1, 2])
    assert map_records(typed, mapping).frame["record_hash"].tolist() == first.frame["record_hash"].tolist()


def test_rejection_reasons() -> None:
    mapping = AttributeMapping(
        {
            **BASE,
            "active": {"column": "Active"},
            "name.givenName": "First",
            'emails[type eq "work"].value': "Email",
            f"{CONTOSO}:HireDate": {"column": "Hired", "type": "datetime"},
            f"{CONTOSO}:Grade": {"column": "Grade", "type": "integer"},
            f"{CONTOSO}:Note": {"column": "Note", "required": True},
        }
    )
    good = {
        "Active": "true",
        "First": "Ada",
        "Email": "a@contoso.com",
        "Hired": "2020-01-01",
        "Grade": "1",
        "Note": "n",
    }
    rows = [
        person(0, **good),
        person(1, **{**good, "Hired": "31/12/2020"}),
        person(2, **{**good, "Active": "sometimes"}),
        person(3, **{**good, "First": "x" * 65}),
        person(4, **{**good, "Email": "a@b"}),
        person(5, **{**good, "Grade": "1.5"}),
        person(6, **{**good, "Note": " "}),
        {**person(7, **good), "Id": None},
        {**person(8, **good), "Upn": ""},
        person(9, **{**good, "Active": ""}),
        person(10, **{**good, "Hired": "x" * 100}),
    ]
    mapped = map_records(hr(rows), mapping)
    assert reasons(mapped) == {
        1: f"{CONTOSO}:HireDate: '31/12/2020' is not a date (column Hired)",
        2: "active: 'sometimes' is not true or false (column Active)",
        3: "name.givenName is 65 characters long, over the limit of 64 (column First)",
        4: "emails[type eq \"work\"].value: 'a@b' is not an email address (column Email)",
        5: f"{CONTOSO}:Grade: '1.5' is not a whole number (column Grade)",
        6: f"{CONTOSO}:Note is empty (column Note)",
        7: "externalId is empty (column Id)",
        8: "userName is empty (column Upn)",
        9: "active is empty (column Active)",
        10: f"{CONTOSO}:HireDate: '{'x' * 60}...' is not a date (column Hired)",
    }
    assert mapped.frame.index.tolist() == [0]
    assert mapped.rejected["externalId"].tolist()[6] is np.nan or pd.isna(
        mapped.rejected["externalId"].tolist()[6]
    )


def test_duplicates_collapse_or_conflict() -> None:
    mapping = AttributeMapping({**BASE, "displayName": "Name"})
    rows = [
        person(1, Name="Ann", Other="a"),
        person(2, Name="Bo"),
        person(1, Name="Ann", Other="b"),  # differs only in a column the mapping does not read: a copy
        person(2, Name="Bob"),  # differs: conflict
        person(3, Name="Cy"),
        person(1, Name="Ann", Other="c"),
        person(2, Name="Bo"),
    ]
    mapped = map_records(hr(rows), mapping)
    assert mapped.frame["externalId"].tolist() == ["1", "3"]
    assert mapped.collapsed.to_dict("records") == [
        {"row": 2, "externalId": "1", "duplicate_of": 0},
        {"row": 5, "externalId": "1", "duplicate_of": 0},
    ]
    conflict = (
        "externalId '2' is on rows 1, 3, 6 with different values "
        + "(conflicting duplicates: none of them is sent)"
    )
    assert reasons(mapped) == {1: conflict, 3: conflict, 6: conflict}
    assert len(mapped.frame) + len(mapped.rejected) + len(mapped.collapsed) == len(rows)


def test_many_conflicting_rows_are_listed_briefly() -> None:
    mapping = AttributeMapping(BASE)
    rows = [{**person(i), "Id": "7"} for i in range(12)]
    mapped = map_records(hr(rows), mapping)
    assert set(mapped.rejected["reason"]) == {
        "externalId '7' is on rows 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 2 more with different values "
        "(conflicting duplicates: none of them is sent)"
    }


def test_input_dtypes_become_texts() -> None:
    mapping = AttributeMapping(
        {
            **BASE,
            f"{ENTERPRISE}:manager.value": "Manager",
            f"{CONTOSO}:OnLeave": "OnLeave",
            f"{CONTOSO}:Since": {"column": "Since", "type": "datetime"},
        }
    )
    df = pd.DataFrame(
        {
            "Id": [1513, 1783],  # read_csv without dtype=str makes ints
            "Upn": ["a@x.com", "b@x.com"],
            "Status": ["Active", "Active"],
            "Manager": [1959.0, np.nan],  # an int column with gaps becomes float
            "OnLeave": [True, False],
            "Since": pd.to_datetime(["2020-01-02 03:04:05", None]),
        }
    )
    frame = map_records(df, mapping).frame
    assert frame["externalId"].tolist() == ["1513", "1783"]
    assert frame[f"{ENTERPRISE}:manager.value"].tolist()[0] == "1959"
    assert pd.isna(frame[f"{ENTERPRISE}:manager.value"].tolist()[1])
    assert frame[f"{CONTOSO}:OnLeave"].tolist() == ["True", "False"]
    assert frame[f"{CONTOSO}:Since"].tolist()[0] == "2020-01-02T03:04:05+00:00"


def test_object_columns_with_mixed_values() -> None:
    df = pd.DataFrame(
        {"Id": pd.Series([1, "2", None], dtype=object), "Upn": ["a@x", "b@x", "c@x"], "Status": "Active"}
    )
    mapped = map_records(df, AttributeMapping(BASE))
    assert mapped.frame["externalId"].tolist() == ["1", "2"]
    assert mapped.rejected["reason"].tolist() == ["externalId is empty (column Id)"]


@pytest.mark.parametrize(
    ("spec", "values", "expected"),
    [
        ({}, ["2013-01-01"], ["2013-01-01T00:00:00+00:00"]),
        ({"timezone": "-05:00"}, ["2021-05-01"], ["2021-05-01T00:00:00-05:00"]),
        ({"timezone": "+0530"}, ["2021-05-01"], ["2021-05-01T00:00:00+05:30"]),
        ({"timezone": "UTC"}, ["2021-05-01T08:30:15"], ["2021-05-01T08:30:15+00:00"]),
        (
            {"timezone": "America/New_York"},
            ["2021-01-15", "2021-07-15"],
            ["2021-01-15T00:00:00-05:00", "2021-07-15T00:00:00-04:00"],
        ),
        # a local time in a DST gap moves to the first valid time
        ({"timezone": "Europe/Oslo"}, ["2021-03-28T02:30:00"], ["2021-03-28T03:00:00+02:00"]),
        ({"timezone": "+01:00"}, ["2024-06-30T23:30:00-04:00"], ["2024-07-01T04:30:00+01:00"]),  # converted
        ({"timezone": "+00:00"}, ["2024-06-30T23:30:00.987Z"], ["2024-06-30T23:30:00+00:00"]),
        ({"date_format": "%m/%d/%Y"}, ["12/31/2024"], ["2024-12-31T00:00:00+00:00"]),
        ({"date_format": "%d.%m.%Y %H:%M"}, ["31.12.2024 18:45"], ["2024-12-31T18:45:00+00:00"]),
    ],
)
def test_dates_become_iso_8601_with_offset(
    spec: dict[str, Any], values: list[str], expected: list[str]
) -> None:
    mapping = AttributeMapping({**BASE, f"{CONTOSO}:D": {"column": "D", "type": "datetime", **spec}})
    df = hr([person(i, D=v) for i, v in enumerate(values)])
    assert map_records(df, mapping).frame[f"{CONTOSO}:D"].tolist() == expected


@pytest.mark.parametrize("value", ["2021-02-30", "2021-13-01", "01/02/2020", "yesterday", "2021-1-1x"])
def test_unparseable_dates_are_rejected_naming_column_and_value(value: str) -> None:
    mapping = AttributeMapping({**BASE, f"{CONTOSO}:D": {"column": "HireDate", "type": "datetime"}})
    mapped = map_records(hr([person(1, HireDate=value), person(2, HireDate="2020-01-01")]), mapping)
    assert mapped.rejected["reason"].tolist() == [f"{CONTOSO}:D: '{value}' is not a date (column HireDate)"]
    assert mapped.frame["externalId"].tolist() == ["2"]


def test_booleans_integers_and_values_from_other_sources() -> None:
    mapping = AttributeMapping(
        {
            **BASE,
            "active": "Flag",
            "displayName": {"join": ["First", "Last"], "sep": " "},
            "nickName": {"template": "{First}.{Last}"},
            "userType": {"column": "Kind", "map": {"E": "Employee", "C": "Contractor"}, "default": "Unknown"},
            "title": {"constant": "Staff"},
            f"{CONTOSO}:Grade": {"column": "Grade", "type": "integer", "default": 0},
            f"{CONTOSO}:Manager": {"expr": 'Kind == "M"', "type": "boolean"},
        }
    )
    rows = [
        person(1, Flag="TRUE", First="Ada", Last="", Kind="E", Grade=" -7 "),
        person(2, Flag="no", First="", Last="", Kind="", Grade=""),  # template of empty columns: no value
        person(3, Flag=" Yes ", First="Bo", Last="Li", Kind="M", Grade="+12"),
        person(4, Flag="0", First="", Last="Chen", Kind="C", Grade="0"),
    ]
    frame = map_records(hr(rows), mapping).frame
    assert frame["active"].tolist() == [True, False, True, False]
    assert frame["displayName"].tolist()[:1] + frame["displayName"].tolist()[2:] == ["Ada", "Bo Li", "Chen"]
    assert pd.isna(frame["displayName"].tolist()[1])
    assert frame["nickName"].tolist()[0] == "Ada." and pd.isna(frame["nickName"].tolist()[1])
    assert frame["userType"].tolist() == ["Employee", "Unknown", "M", "Contractor"]
    assert frame["title"].tolist() == ["Staff"] * 4
    assert frame[f"{CONTOSO}:Grade"].tolist() == [-7, 0, 12, 0]
    assert frame[f"{CONTOSO}:Manager"].tolist() == [False, False, True, False]


def test_missing_column_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match=r"the HR data has no column 'Status' \(used by active\)"):
        map_records(pd.DataFrame({"Id": ["1"], "Upn": ["a@x"]}), AttributeMapping(BASE))


def test_empty_input() -> None:
    mapped = map_records(pd.DataFrame({"Id": [], "Upn": [], "Status": []}), AttributeMapping(BASE))
    assert mapped.frame.empty and mapped.rejected.empty and mapped.input_rows == 0
    assert list(mapped.frame.columns) == ["externalId", "userName", "active", "record_hash"]
    assert len(build_bulk_requests(mapped).requests) == 0


def test_from_frame_rechecks_and_rehashes() -> None:
    mapping = AttributeMapping(
        {**BASE, "name.givenName": "First", f"{CONTOSO}:D": {"column": "D", "type": "datetime"}}
    )
    mapped = map_records(hr([person(1, First="Ada", D="2020-01-01"), person(2, First="Bo", D="")]), mapping)
    again = MappedRecords.from_frame(mapped.frame, mapping)
    pd.testing.assert_frame_equal(again.frame, mapped.frame)
    # a leaver from the snapshot: flip active, rebuild, the hash changes and the record is sent disabled
    changed = mapped.frame.copy()
    changed.loc[1, "active"] = False
    changed.loc[0, "name.givenName"] = "x" * 70
    rebuilt = MappedRecords.from_frame(changed, mapping)
    assert rebuilt.frame.index.tolist() == [1]
    assert rebuilt.frame.loc[1, "record_hash"] != mapped.frame.loc[1, "record_hash"]
    assert rebuilt.rejected["reason"].tolist() == [
        "name.givenName is 70 characters long, over the limit of 64 (column name.givenName)"
    ]
    [request] = build_bulk_requests(rebuilt).requests
    assert request["Operations"][0]["data"]["active"] is False
    with pytest.raises(MappingError, match="the frame has no column for 'name.givenName'"):
        MappedRecords.from_frame(mapped.frame.drop(columns="name.givenName"), mapping)


def test_select_keeps_frame_order_and_nothing_else() -> None:
    mapping = AttributeMapping(BASE)
    mapped = map_records(hr([person(1), person(2), {**person(3), "Id": ""}, person(4)]), mapping)
    subset = mapped.select(["4", "2", "999"])
    assert subset.frame["externalId"].tolist() == ["2", "4"] and subset.frame.index.tolist() == [1, 3]
    assert subset.rejected.empty and subset.input_rows == 2
    assert len(mapped.rejected) == 1


def test_output_does_not_depend_on_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks with and without empty values take different code paths; the JSON must not differ."""
    rng = np.random.default_rng(3)
    n = 200
    df = pd.DataFrame(
        {
            "Id": [str(i) for i in range(n)],
            "Upn": [f"u{i}@contoso.com" for i in range(n)],
            "Status": rng.choice(["Active", "Inactive"], n),
            "First": np.where(np.arange(n) < 100, "Ann", rng.choice(["Bo", "", "Zoë"], n)),
            "City": np.where(np.arange(n) % 50 < 30, "Oslo", ""),
            "Phone": np.where(np.arange(n) < 150, "+47", rng.choice(["", "+1"], n)),
            "Manager": np.where(np.arange(n) % 3 == 0, "", "1"),
            "Hired": np.where(np.arange(n) % 7 == 0, "", "2020-01-01"),
            "Email": np.where(np.arange(n) % 5 == 0, "", "a@contoso.com"),
        }
    )
    mapping = AttributeMapping(
        {
            **BASE,
            "name.givenName": "First",
            "addresses": [{"type": "work", "locality": "City"}],
            "phoneNumbers": [{"type": "work", "value": "Phone"}, {"type": "mobile", "value": "Phone"}],
            "ims.value": "Phone",
            "emails": [{"type": "work", "value": "Email", "primary": True}],
            "name.familyName": {"join": ["First", "City"], "sep": "-"},
            ENTERPRISE: {"manager": {"value": "Manager"}},
            CONTOSO: {"Hired": {"column": "Hired", "type": "datetime"}},
        }
    )
    whole = build_bulk_requests(df, mapping)
    hashes = map_records(df, mapping).frame["record_hash"].tolist()
    for size in (1, 7, 64):
        monkeypatch.setattr(_engine, "CHUNK_ROWS", size)
        assert build_bulk_requests(df, mapping).requests == whole.requests
        assert map_records(df, mapping).frame["record_hash"].tolist() == hashes
