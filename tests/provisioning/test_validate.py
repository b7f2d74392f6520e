"""validate_hr: whole-file errors, row quarantine with reasons, duplicates, manager warnings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_entra.provisioning.hr_source import read_hr_csv
from airflow_provider_entra.provisioning.normalise import HrSchema
from airflow_provider_entra.provisioning.validate import (
    QUARANTINE_COLUMNS,
    HrSchemaError,
    concat_quarantine,
    quarantine_frame,
    validate_hr,
)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "microsoft-sample"


def hr(**columns: list) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base = {
        "WorkerID": [str(i + 1) for i in range(n)],
        "WorkerStatus": ["Active"] * n,
        "FirstName": [f"First{i}" for i in range(n)],
        "LastName": [f"Last{i}" for i in range(n)],
    }
    base.update(columns)
    return pd.DataFrame(base)


def reasons(result) -> dict[str, str]:
    return dict(zip(result.rejected["row"].astype(str), result.rejected["reason"], strict=True))


def test_microsoft_sample_every_row_is_accounted_for() -> None:
    raw = read_hr_csv(SAMPLE / "Sample1-employeeData.csv")
    assert len(raw) == 332 and raw["WorkerID"].nunique() == 283

    ids = raw["WorkerID"]
    repeated = raw[ids.duplicated(keep=False)]
    identical_groups = repeated.groupby("WorkerID").apply(lambda g: len(g.drop_duplicates()) == 1)
    conflicting_ids = set(identical_groups.index[~identical_groups])
    exact_ids = set(identical_groups.index[identical_groups])
    # Microsoft's file: 44 repeated WorkerIDs, every one of them with conflicting values, none exact.
    assert (len(conflicting_ids), len(exact_ids)) == (44, 0)
    conflicting_rows = int(ids.isin(conflicting_ids).sum())
    assert conflicting_rows == 93

    result = validate_hr(raw)
    assert len(result.valid) + len(result.rejected) + len(result.collapsed) == len(raw)
    assert (len(result.valid), len(result.rejected), result.duplicates_collapsed) == (239, 93, 0)
    assert set(result.rejected["externalId"]) == conflicting_ids
    assert result.valid["WorkerID"].is_unique
    assert not set(result.valid["WorkerID"]) & conflicting_ids
    # Each reason names the other rows of the same id.
    for _, rej in result.rejected.iterrows():
        others = raw.index[(ids == rej["externalId"]) & (raw.index != rej["row"])]
        assert all(str(o) in rej["reason"] for o in others), rej["reason"]
        assert rej["reason"].startswith(f"WorkerID: '{rej['externalId']}' also appears in row(s) ")
    # Every row index is used exactly once.
    accounted = list(result.valid.index) + list(result.rejected["row"]) + list(result.collapsed["row"])
    assert sorted(accounted) == list(range(332))


def test_microsoft_sample_unknown_managers_are_warnings_not_rejections() -> None:
    raw = read_hr_csv(SAMPLE / "Sample1-employeeData.csv")
    result = validate_hr(raw)
    valid_ids = set(result.valid["WorkerID"])
    managers = result.valid["ManagerID"]
    expected = result.valid.index[managers.notna() & ~managers.isin(valid_ids)]
    assert len(expected) > 100  # most ManagerIDs in Microsoft's file point outside it
    assert list(result.warnings["row"]) == list(expected)
    assert list(result.warnings.columns) == list(QUARANTINE_COLUMNS)
    assert result.warnings["reason"].str.contains("will not resolve").all()

    # Managers the snapshot knows are fine.
    known = validate_hr(raw, known_ids=set(managers.dropna()))
    assert known.warnings.empty
    assert len(known.valid) == len(result.valid)


def test_exact_duplicates_collapse_to_the_first_and_are_counted() -> None:
    frame = hr(
        WorkerID=["1", "2", "1", "1"],
        FirstName=["Ann", "Bob", "Ann ", "Ann"],
        LastName=["Lee", "Ray", "Lee", "Lee"],
    )
    result = validate_hr(frame)
    assert result.rejected.empty
    assert result.valid["WorkerID"].tolist() == ["1", "2"]
    assert result.valid.index.tolist() == [0, 1]
    assert result.duplicates_collapsed == 2
    assert result.collapsed.to_dict("list") == {"row": [2, 3], "externalId": ["1", "1"], "kept_row": [0, 0]}


def test_conflicting_duplicates_reject_every_row_and_name_the_others() -> None:
    frame = hr(
        WorkerID=["7", "8", "7", "7"],
        FirstName=["Ann", "Bob", "Ann", "Ann"],
        LastName=["Lee", "Ray", "Lee", "Lee"],
        Department=["Sales", "IT", "Finance", "Sales"],
    )
    result = validate_hr(frame)
    # Row 3 repeats row 0 exactly (collapsed); rows 0 and 2 still disagree, so both are held back.
    assert result.valid["WorkerID"].tolist() == ["8"]
    assert result.collapsed["row"].tolist() == [3]
    assert reasons(result) == {
        "0": "WorkerID: '7' also appears in row(s) 2 with different values (Department); "
        "every row of this id is held back until HR fixes it",
        "2": "WorkerID: '7' also appears in row(s) 0 with different values (Department); "
        "every row of this id is held back until HR fixes it",
    }
    assert len(result.valid) + len(result.rejected) + len(result.collapsed) == len(frame)


def test_missing_required_columns_raise_a_schema_error_naming_them() -> None:
    with pytest.raises(HrSchemaError) as info:
        validate_hr(pd.DataFrame({"WorkerID": ["1"], "FirstName": ["A"]}))
    assert info.value.missing == ("WorkerStatus", "LastName")
    assert "missing required column(s): WorkerStatus, LastName" in str(info.value)


def test_required_columns_follow_a_renamed_schema() -> None:
    schema = HrSchema(worker_id="EmployeeNumber", status="Status")
    frame = pd.DataFrame(
        {"EmployeeNumber": ["1"], "Status": ["Active"], "FirstName": ["A"], "LastName": ["B"]}
    )
    assert len(validate_hr(frame, schema=schema).valid) == 1
    with pytest.raises(HrSchemaError, match="WorkerStatus"):
        validate_hr(frame.rename(columns={"Status": "Other"}), required=("EmployeeNumber", "WorkerStatus"))


def test_duplicate_column_names_are_a_schema_error() -> None:
    frame = pd.DataFrame(
        [["1", "Active", "A", "B", "C"]],
        columns=["WorkerID", "WorkerStatus", "FirstName", "LastName", "LastName"],
    )
    with pytest.raises(HrSchemaError, match="duplicate column name.*LastName"):
        validate_hr(frame)


def test_worker_id_gates() -> None:
    frame = hr(WorkerID=["", "12 34", "X" * 65, "ok-1", " 55 "])
    assert reasons(validate_hr(frame)) == {
        "0": "WorkerID: missing",
        "1": "WorkerID: contains whitespace",
        "2": "WorkerID: longer than 64 characters (65)",
    }
    # Surrounding spaces are trimmed, not an error.
    assert validate_hr(frame).valid["WorkerID"].tolist() == ["ok-1", "55"]


def test_missing_required_values_name_the_field() -> None:
    frame = hr(FirstName=["", "Ann"], LastName=[None, "Lee"], WorkerStatus=["Active", " "])
    assert reasons(validate_hr(frame)) == {
        "0": "FirstName: missing; LastName: missing",
        "1": "WorkerStatus: missing",
    }


def test_control_characters_are_rejected_but_edge_whitespace_is_trimmed() -> None:
    frame = hr(
        FirstName=["Ann\x00", "Bob\tby", "Cy\r\n", "Di"],
        City=["Paris", "Rome", "Oslo", "Li\x85ma"],
    )
    result = validate_hr(frame)
    assert reasons(result) == {
        "0": "FirstName: contains control character U+0000",
        "1": "FirstName: contains control character U+0009",
        "3": "City: contains control character U+0085",
    }
    assert result.valid["FirstName"].tolist() == ["Cy"]


def test_formula_like_values_are_data_and_pass_unchanged() -> None:
    frame = hr(JobTitle=['=HYPERLINK("http://x")'], Department=["+SUM(A1)"])
    result = validate_hr(frame)
    assert result.rejected.empty
    assert result.valid[["JobTitle", "Department"]].iloc[0].tolist() == ['=HYPERLINK("http://x")', "+SUM(A1)"]


def test_status_flag_and_date_gates_name_the_value() -> None:
    frame = hr(
        WorkerStatus=["Retired", "Active", "Active", "inactive"],
        HireDate=["2020-01-01", "01/02/2020", "2020-02-30", "2020-02-29"],
        OnLeave=["False", "True", "sometimes", "0"],
    )
    assert reasons(validate_hr(frame)) == {
        "0": "WorkerStatus: unknown value 'Retired'",
        "1": "HireDate: cannot parse '01/02/2020' as a date",
        "2": "OnLeave: cannot read 'sometimes' as true/false; HireDate: cannot parse '2020-02-30' as a date",
    }


def test_names_over_entra_limits_are_rejected() -> None:
    frame = hr(FirstName=["A" * 64, "A" * 65], LastName=["B" * 65, "B"], FullName=["C" * 256, "C" * 257])
    assert reasons(validate_hr(frame)) == {
        "0": "LastName: longer than 64 characters (65)",
        "1": "FirstName: longer than 64 characters (65); FullName: longer than 256 characters (257)",
    }


def test_length_limits_are_configurable() -> None:
    frame = hr(JobTitle=["x" * 129])
    assert validate_hr(frame).rejected.empty
    assert reasons(validate_hr(frame, max_lengths={"JobTitle": 128})) == {
        "0": "JobTitle: longer than 128 characters (129)"
    }


def test_a_worker_who_is_their_own_manager_is_rejected() -> None:
    frame = hr(WorkerID=["1", "2"], ManagerID=["1", "1"])
    result = validate_hr(frame)
    assert reasons(result) == {"0": "ManagerID: the worker is their own manager"}
    # Worker 2's manager was rejected: it is warned about, not rejected.
    assert result.warnings["externalId"].tolist() == ["2"]


def test_valid_rows_are_cleaned_but_not_otherwise_changed() -> None:
    frame = hr(WorkerStatus=[" active "], FirstName=["  Ann "], HireDate=["2020-01-01"], Department=[""])
    valid = validate_hr(frame).valid
    assert valid[["WorkerStatus", "FirstName", "HireDate"]].iloc[0].tolist() == [
        "active",
        "Ann",
        "2020-01-01",
    ]
    assert pd.isna(valid["Department"].iloc[0])


def test_a_non_unique_index_is_replaced_by_row_positions() -> None:
    frame = hr(WorkerID=["1", ""]).set_axis([5, 5])
    result = validate_hr(frame)
    assert result.rejected["row"].tolist() == [1]


def test_quarantine_frames_share_columns_across_stages() -> None:
    a = quarantine_frame([3], ["X1"], "validate", ["WorkerID: missing"])
    b = quarantine_frame([], stage="normalise")
    c = quarantine_frame([4, 5], ["X2", None], ["map", "map"], ["r1", "r2"])
    assert list(a.columns) == list(b.columns) == list(QUARANTINE_COLUMNS)
    both = concat_quarantine([a, b, c])
    assert both["row"].tolist() == [3, 4, 5]
    assert both["externalId"].iloc[:2].tolist() == ["X1", "X2"] and pd.isna(both["externalId"].iloc[2])
    assert both["stage"].tolist() == ["validate", "map", "map"]
    assert both["reason"].tolist() == ["WorkerID: missing", "r1", "r2"]
    with pytest.raises(ValueError, match="same length"):
        quarantine_frame([1, 2], ["a"], "x", ["r", "r"])


def test_a_management_cycle_is_held_back_and_a_shared_email_is_flagged() -> None:
    hr = pd.DataFrame(
        {
            "WorkerID": ["1", "2", "3", "4", "5", "6"],
            "WorkerStatus": ["Active"] * 6,
            "FirstName": list("abcdef"),
            "LastName": list("abcdef"),
            "ManagerID": ["2", "3", "1", "5", "", "5"],
            "Email": ["a@x.com", "b@x.com", "c@x.com", "d@x.com", "Shared@x.com", "shared@X.com"],
        }
    )
    result = validate_hr(hr, known_ids=["1"])
    cycle = result.rejected.set_index("externalId")["reason"]
    assert sorted(cycle.index) == ["1", "2", "3"]
    assert cycle["1"].startswith("ManagerID: management cycle 1 -> 2 -> 3 -> 1")
    assert result.valid["WorkerID"].tolist() == ["4", "5", "6"]  # a chain that ends is not a cycle
    warned = result.warnings.set_index("externalId")["reason"]
    assert sorted(warned.index) == ["5", "6"]
    assert "is the email of several workers (5, 6)" in warned["5"]
