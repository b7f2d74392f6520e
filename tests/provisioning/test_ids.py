"""repair_ids: Excel-mangled ids restored where unambiguous, quarantined (their people held) where not."""

from __future__ import annotations

import random
import re
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_provider_entra.provisioning._hr import QUARANTINE_COLUMNS, TEXT_DTYPE
from airflow_provider_entra.provisioning.hr_source import read_hr_csv
from airflow_provider_entra.provisioning.ids import (
    CONFIDENT_KNOWN_IDS,
    RESTORE_KINDS,
    IdShape,
    learn_id_shape,
    repair_ids,
)
from airflow_provider_entra.provisioning.validate import HrSchemaError

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "microsoft-sample"
FIX = "format the {col} column as Text in Excel and export again, or export from the HR system directly"


def frame(
    workers: list[str], managers: list[str] | None = None, index: list[int] | None = None
) -> pd.DataFrame:
    data = {"WorkerID": workers, "Name": [f"n{i}" for i in range(len(workers))]}
    if managers is not None:
        data["ManagerID"] = managers
    return pd.DataFrame(data, index=index)


def repair(df: pd.DataFrame, **kwargs):
    kwargs.setdefault("manager_column", "ManagerID")
    return repair_ids(df, id_column="WorkerID", **kwargs)


def reasons(result) -> dict[object, str]:
    return dict(zip(result.rejected["row"], result.rejected["reason"], strict=True))


def excel_scientific(worker_id: str, digits: int = 6) -> str:
    """How Excel shows an integer in scientific format with ``digits`` significant digits: ``1.51300E+3``."""
    text = f"{int(worker_id):.{digits - 1}E}"
    return re.sub(r"E([+-])0*(\d)", r"E\1\2", text)


# --- shapes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ("digits", IdShape("digits")),
        ("digits:6", IdShape("digits", 6)),
        (" Digits : 8 ", IdShape("digits", 8)),
        ("text", IdShape("text")),
    ],
)
def test_declared_shape_is_parsed(text: str, shape: IdShape) -> None:
    assert IdShape.parse(text) == shape
    assert IdShape.parse(str(shape)) == shape


@pytest.mark.parametrize("text", ["", "number", "digits:", "digits:0", "digits:x", "text:4", "digits:999"])
def test_unreadable_declared_shape_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="id shape"):
        IdShape.parse(text)


def test_learn_nothing_from_no_ids_or_text_ids() -> None:
    assert learn_id_shape(None) is None
    assert learn_id_shape(pd.Series([], dtype=str)) is None
    assert learn_id_shape(pd.Series(["", "  "])) is None
    assert learn_id_shape(pd.Series(["E100", "E101", "C7"])) is None


def test_learn_fixed_width_from_leading_zeros() -> None:
    assert learn_id_shape(pd.Series(["000123", "104567", "998877"])) == IdShape("digits", 6)
    assert learn_id_shape(pd.Index(["000123", "104567", "998877"])) == IdShape("digits", 6)
    assert learn_id_shape(["000123", "104567", "998877"]) == IdShape("digits", 6)


def test_learn_no_width_without_evidence_of_padding() -> None:
    # Few ids, none zero-padded: "1000".."1099" may simply be numbers, so "999" must not become "0999".
    assert learn_id_shape(pd.Series([str(i) for i in range(1000, 1100)])) == IdShape("digits")
    assert learn_id_shape(pd.Series(["7", "42", "123456"])) == IdShape("digits")
    assert learn_id_shape(pd.Series(["00123", "42"])) == IdShape("digits")  # too few to be sure


def test_learn_fixed_width_from_a_large_set() -> None:
    many = pd.Series([str(i) for i in range(100000, 100000 + CONFIDENT_KNOWN_IDS)])
    assert learn_id_shape(many) == IdShape("digits", 6)


def test_learn_tolerates_a_few_stray_ledger_ids() -> None:
    known = [f"{i:06d}" for i in range(0, 300)] + ["123"]  # one id mangled by an earlier run
    assert learn_id_shape(pd.Series(known)) == IdShape("digits", 6)
    assert learn_id_shape(pd.Series(known[:50] + ["123"])) == IdShape("digits")


# --- restore ----------------------------------------------------------------------------------------------


def test_integer_written_as_float_is_restored_in_both_columns() -> None:
    df = frame(["123456.0", "123457", "123458.00"], ["123457.0", "123456.00", ""])
    out = repair(df)
    assert out.frame["WorkerID"].tolist() == ["123456", "123457", "123458"]
    assert out.frame["ManagerID"].tolist() == ["123457", "123456", ""]
    assert out.rejected.empty
    assert out.restored == {"trimmed": 0, "float_suffix": 4, "zero_padded": 0}
    assert out.frame["Name"].tolist() == df["Name"].tolist()


def test_comma_decimal_float_suffix_is_restored_but_not_a_thousands_group() -> None:
    out = repair(frame(["123456,0", "123456789,00", "123,000", "1234,000", "1234.000"]))
    assert out.frame["WorkerID"].tolist() == ["123456", "123456789", "1234", "1234"]
    assert list(out.rejected["row"]) == [2]


@pytest.mark.parametrize("value", ["1.000", "12,000", "123.000"])
def test_decimal_or_thousands_separator_is_ambiguous(value: str) -> None:
    head = value[:-4]
    known = pd.Series([f"{int(head):06d}", f"{int(head) * 1000:06d}", "555555"])
    out = repair(frame([value, "555555"]), known_ids=known)
    assert list(out.rejected["row"]) == [0]
    reason = reasons(out)[0]
    assert reason == (
        f"WorkerID: '{value}' could be {head} or {head}000 (a decimal or a thousands separator added by a"
        f" spreadsheet); {FIX.format(col='WorkerID')}"
    )
    assert sorted(out.held_ids) == sorted(known[:2])


def test_fractions_and_other_text_pass_unchanged_without_a_declared_shape() -> None:
    values = ["123.5", "A-12", "12.0.0", "0.0E", "1E5", "007"]
    out = repair(frame(values))
    assert out.frame["WorkerID"].tolist() == values
    assert out.rejected.empty
    assert out.restored == dict.fromkeys(RESTORE_KINDS, 0)


def test_whitespace_is_trimmed() -> None:
    out = repair(frame([" 123 ", "124\t", "125"], ["125 ", " ", ""]))
    assert out.frame["WorkerID"].tolist() == ["123", "124", "125"]
    assert out.frame["ManagerID"].tolist() == ["125", "", ""]
    assert out.restored["trimmed"] == 3


def test_short_digit_ids_are_zero_padded_to_a_declared_width() -> None:
    out = repair(frame(["123", "123.0", "000124", "1"], ["124", "", "000125", "7.0"]), declared="digits:6")
    assert out.frame["WorkerID"].tolist() == ["000123", "000123", "000124", "000001"]
    assert out.frame["ManagerID"].tolist() == ["000124", "", "000125", "000007"]
    assert out.restored == {"trimmed": 0, "float_suffix": 2, "zero_padded": 5}
    assert out.shape == IdShape("digits", 6)


def test_short_digit_ids_are_zero_padded_to_a_learnt_width() -> None:
    known = pd.Series(["000123", "004567", "104567"])
    out = repair(frame(["123", "4567", "999"], ["4567.0", "123", ""]), known_ids=known)
    assert out.shape == IdShape("digits", 6)
    assert out.frame["WorkerID"].tolist() == ["000123", "004567", "000999"]
    assert out.frame["ManagerID"].tolist() == ["004567", "000123", ""]
    assert out.restored == {"trimmed": 0, "float_suffix": 1, "zero_padded": 5}


def test_a_known_zero_padded_id_is_restored_without_a_learnt_width() -> None:
    known = pd.Series(["000123", "0042", "77", "0099", "00099", "0555", "555"])
    out = repair(
        frame(["123", "42.0", "77", "99", "555", "0123"], ["123.0", "", "", "", "", ""]), known_ids=known
    )
    assert out.shape == IdShape("digits")  # mixed widths: no width learnt
    # 99 could be 0099 or 00099, and 555 is itself known: both stay as they are
    assert out.frame["WorkerID"].tolist() == ["000123", "0042", "77", "99", "555", "000123"]
    assert out.frame["ManagerID"].tolist() == ["000123", "", "", "", "", ""]
    assert out.restored == {"trimmed": 0, "float_suffix": 2, "zero_padded": 4}
    unchanged = repair(frame(["123"]), known_ids=known, declared="text")
    assert unchanged.frame["WorkerID"].tolist() == ["123"]


def test_no_padding_without_a_fixed_width() -> None:
    out = repair(frame(["123", "4567"]), known_ids=pd.Series(["1000", "2000", "3000"]))
    assert out.shape == IdShape("digits")
    assert out.frame["WorkerID"].tolist() == ["123", "4567"]
    assert out.restored["zero_padded"] == 0


def test_a_known_id_is_never_changed() -> None:
    known = pd.Series(["000123", "004567", "104567", "123", "9.0", "1.2E+5"])
    out = repair(frame(["123", "9.0", "1.2E+5", " 123 "]), known_ids=known, declared="digits:6")
    assert out.frame["WorkerID"].tolist() == ["123", "9.0", "1.2E+5", "123"]
    assert out.rejected.empty
    assert out.restored == {"trimmed": 1, "float_suffix": 0, "zero_padded": 0}


# --- quarantine -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["3.75400E+5", "1.2E+5", "1,2E+05", "1.2e+05", "1E+5", "7.5E-1", "1.2E+25"])
def test_scientific_notation_is_quarantined_with_how_to_fix_it(value: str) -> None:
    out = repair(frame(["100", value, "101"], ["", "100", ""]))
    assert out.frame.index.tolist() == [0, 2]
    assert out.rejected.columns.tolist() == list(QUARANTINE_COLUMNS)
    row = out.rejected.iloc[0]
    assert (row["row"], row["externalId"], row["stage"]) == (1, value, "ids")
    assert row["reason"] == (
        f"WorkerID: '{value}' is in scientific notation: a spreadsheet turned the id into a number and lost"
        f" its last digits, so it cannot be restored; {FIX.format(col='WorkerID')}"
    )


def test_a_mangled_id_holds_every_known_id_it_could_stand_for() -> None:
    known = pd.Series(["374499", "374500", "375000", "375499", "375500", "0375123", "120000"])
    out = repair(frame(["3.75E+5", "123"]), known_ids=known)
    # 374,500 .. 375,500: a tie may round either way (Excel: half away from zero; Python: half to even)
    assert list(out.held_ids) == ["0375123", "374500", "375000", "375499", "375500"]
    assert out.held_ids.dtype == TEXT_DTYPE


@pytest.mark.parametrize(
    ("value", "held"),
    [
        ("3.75400E+5", ["375400"]),  # 6 significant digits of a 6-digit id: exactly one candidate
        ("1,2E+05", ["115000", "124999", "125000"]),  # 115,000 .. 125,000
        ("1.2E+5", ["115000", "124999", "125000"]),
        ("1E+5", ["050000", "115000", "124999", "125000", "149999"]),  # 50,000 .. 150,000
        ("1.51300E+3", ["001513"]),  # more digits shown than the id has: the id itself
        ("1.5135E+3", []),  # 1513.5 is no integer: nobody
    ],
)
def test_held_ids_follow_the_precision_shown(value: str, held: list[str]) -> None:
    known = pd.Series(
        ["375400", "375401", "115000", "124999", "125000", "050000", "149999", "001513", "049999"]
    )
    out = repair(frame([value]), known_ids=known)
    assert sorted(out.held_ids) == held
    assert list(out.rejected["row"]) == [0]


def test_a_mangled_id_without_a_known_candidate_holds_nothing_but_is_still_quarantined() -> None:
    out = repair(frame(["3.75400E+5", "1"]), known_ids=pd.Series(["1", "2", "3"]))
    assert list(out.held_ids) == []
    assert list(out.rejected["row"]) == [0]
    assert out.frame["WorkerID"].tolist() == ["1"]


def test_a_mangled_manager_quarantines_the_row_and_holds_the_person() -> None:
    out = repair(frame(["100", "101", "102"], ["1.01E+2", "100.0", ""]), known_ids=pd.Series(["100", "101"]))
    assert out.frame["WorkerID"].tolist() == ["101", "102"]
    assert out.frame["ManagerID"].tolist() == ["100", ""]
    assert reasons(out) == {
        0: "ManagerID: '1.01E+2' is in scientific notation: a spreadsheet turned the id into a number and"
        f" lost its last digits, so it cannot be restored; {FIX.format(col='ManagerID')}"
    }
    assert out.rejected["externalId"].tolist() == ["100"]
    assert list(out.held_ids) == ["100"]  # the worker of the quarantined row, not the manager's candidates
    assert out.restored["float_suffix"] == 1


def test_both_columns_mangled_give_one_row_with_both_reasons() -> None:
    out = repair(frame(["1.2E+5"], ["3.4E+5"]))
    (reason,) = out.rejected["reason"]
    assert reason.startswith("WorkerID: '1.2E+5' is in scientific notation")
    assert "; ManagerID: '3.4E+5' is in scientific notation" in reason


def test_ids_contradicting_a_declared_shape_are_quarantined() -> None:
    df = frame(["A12", "1234567", "123456", "12.5", "000001"], ["", "", "B7", "", "1234567"])
    out = repair(df, declared="digits:6", known_ids=pd.Series(["000001"]))
    assert reasons(out) == {
        0: "WorkerID: 'A12' is not all digits, but the id shape is declared as 'digits:6'",
        1: "WorkerID: '1234567' has more than the 6 digits of the declared id shape 'digits:6'",
        2: "ManagerID: 'B7' is not all digits, but the id shape is declared as 'digits:6'",
        3: "WorkerID: '12.5' is not all digits, but the id shape is declared as 'digits:6'",
        4: "ManagerID: '1234567' has more than the 6 digits of the declared id shape 'digits:6'",
    }
    assert list(out.held_ids) == ["000001"]  # a known person whose row is held back
    assert out.frame.empty


def test_declared_digits_without_width_accepts_any_length() -> None:
    out = repair(frame(["1", "1234567890", "X1"]), declared=IdShape("digits"))
    assert out.frame["WorkerID"].tolist() == ["1", "1234567890"]
    assert list(out.rejected["row"]) == [2]


def test_a_learnt_shape_is_not_enforced() -> None:
    known = pd.Series(["000123", "004567", "104567"])
    out = repair(frame(["A12", "1234567"]), known_ids=known)
    assert out.frame["WorkerID"].tolist() == ["A12", "1234567"]
    assert out.rejected.empty


def test_declared_text_turns_off_padding_and_shape_checks_but_not_excel_forms() -> None:
    out = repair(
        frame(["007", "7", "A-1", "3.75400E+5", "12.0"]), declared="text", known_ids=["007", "000008"]
    )
    assert out.shape == IdShape("text")
    assert out.frame["WorkerID"].tolist() == ["007", "7", "A-1", "12"]
    assert list(out.rejected["row"]) == [3]


def test_index_labels_are_kept_and_name_the_quarantined_rows() -> None:
    df = frame(["1.0", "2E+3", "3"], ["", "1", "2"], index=[10, 20, 30])
    out = repair(df)
    assert out.frame.index.tolist() == [10, 30]
    assert list(out.rejected["row"]) == [20]


def test_whole_frame_errors() -> None:
    with pytest.raises(HrSchemaError, match="WorkerID"):
        repair_ids(pd.DataFrame({"Id": ["1"]}), id_column="WorkerID")
    with pytest.raises(ValueError, match="unique"):
        repair(frame(["1", "2"], index=[0, 0]))
    with pytest.raises(ValueError, match="id shape"):
        repair(frame(["1"]), declared="numbers")


def test_manager_column_is_optional() -> None:
    out = repair(frame(["1.0", "2"]))  # no ManagerID column in the frame
    assert out.frame["WorkerID"].tolist() == ["1", "2"]
    out = repair_ids(frame(["1.0"], ["2.0"]), id_column="WorkerID")
    assert out.frame["ManagerID"].tolist() == ["2.0"]  # not asked to repair it


def test_a_clean_frame_comes_back_as_it_was() -> None:
    df = frame(["000001", "000002"], ["000002", ""]).astype(TEXT_DTYPE)
    out = repair(df, known_ids=["000001", "000002", "000003"])
    pd.testing.assert_frame_equal(out.frame, df)
    assert out.rejected.empty and len(out.held_ids) == 0
    assert out.restored == dict.fromkeys(RESTORE_KINDS, 0)


def test_numeric_columns_are_read_as_text() -> None:
    df = pd.DataFrame({"WorkerID": [1.0, 2.0, np.nan], "ManagerID": [2, 1, 1]})
    out = repair(df)
    assert out.frame["WorkerID"].tolist()[:2] == ["1", "2"]
    assert out.frame["ManagerID"].tolist() == ["2", "1", "1"]


# --- Microsoft's sample, re-saved the way Excel does ------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return read_hr_csv(SAMPLE / "Sample1-employeeData.csv")


def _single_ids(df: pd.DataFrame, n: int) -> list[str]:
    """``n`` WorkerIDs that occur in exactly one row."""
    counts = df["WorkerID"].value_counts()
    return sorted(counts.index[counts == 1])[:: max(1, (counts == 1).sum() // n)][:n]


def test_microsoft_sample_passes_unchanged(sample: pd.DataFrame) -> None:
    out = repair(sample, known_ids=sample["WorkerID"])
    assert out.rejected.empty
    assert out.restored == dict.fromkeys(RESTORE_KINDS, 0)
    assert out.frame["WorkerID"].tolist() == sample["WorkerID"].tolist()
    assert out.frame["ManagerID"].tolist() == sample["ManagerID"].tolist()
    pd.testing.assert_frame_equal(
        out.frame.drop(columns=["WorkerID", "ManagerID"]), sample.drop(columns=["WorkerID", "ManagerID"])
    )


def test_microsoft_sample_resaved_by_excel(sample: pd.DataFrame) -> None:
    mangled_ids = _single_ids(sample, 5)
    resaved = sample.copy()
    resaved["ManagerID"] = resaved["ManagerID"] + ".0"
    hit = resaved["WorkerID"].isin(mangled_ids)
    resaved.loc[hit, "WorkerID"] = resaved.loc[hit, "WorkerID"].map(excel_scientific)
    assert resaved.loc[hit, "WorkerID"].str.fullmatch(r"\d\.\d{5}E\+\d").all()

    out = repair(resaved, known_ids=sample["WorkerID"].drop_duplicates())

    assert out.shape == IdShape("digits")  # 4-digit ids, none zero-padded: no width learnt
    assert sorted(out.rejected["row"]) == sorted(sample.index[hit])
    assert out.rejected["reason"].str.contains("is in scientific notation").all()
    assert sorted(out.held_ids) == mangled_ids
    kept = sample.index[~hit]
    assert out.frame.index.equals(kept)
    assert out.frame["WorkerID"].tolist() == sample.loc[kept, "WorkerID"].tolist()  # no false restore
    assert out.frame["ManagerID"].tolist() == sample.loc[kept, "ManagerID"].tolist()  # every .0 restored
    assert out.restored == {"trimmed": 0, "float_suffix": len(kept), "zero_padded": 0}


def test_microsoft_sample_zero_padded_resaved_by_excel(sample: pd.DataFrame) -> None:
    padded = sample.copy()
    padded["WorkerID"] = padded["WorkerID"].str.zfill(6)
    padded["ManagerID"] = padded["ManagerID"].str.zfill(6)
    mangled_ids = _single_ids(sample, 5)
    resaved = padded.copy()
    resaved["WorkerID"] = resaved["WorkerID"].str.lstrip("0")  # Excel drops the zeros ...
    resaved["ManagerID"] = resaved["ManagerID"].str.lstrip("0") + ".0"  # ... and writes managers as floats
    hit = sample["WorkerID"].isin(mangled_ids)
    resaved.loc[hit, "WorkerID"] = sample.loc[hit, "WorkerID"].map(excel_scientific)

    out = repair(resaved, known_ids=padded["WorkerID"].drop_duplicates())

    assert out.shape == IdShape("digits", 6)
    assert sorted(out.rejected["row"]) == sorted(sample.index[hit])
    assert sorted(out.held_ids) == sorted(s.zfill(6) for s in mangled_ids)
    kept = sample.index[~hit]
    assert out.frame["WorkerID"].tolist() == padded.loc[kept, "WorkerID"].tolist()
    assert out.frame["ManagerID"].tolist() == padded.loc[kept, "ManagerID"].tolist()
    assert out.restored == {"trimmed": 0, "float_suffix": len(kept), "zero_padded": 2 * len(kept)}

    unchanged = repair(padded, known_ids=padded["WorkerID"])
    assert unchanged.rejected.empty and unchanged.restored == dict.fromkeys(RESTORE_KINDS, 0)
    assert unchanged.frame["WorkerID"].tolist() == padded["WorkerID"].tolist()


# --- properties -------------------------------------------------------------------------------------------


def _canonical_ids(rng: random.Random, shape: str, n: int) -> list[str]:
    if shape.startswith("digits:"):
        width = int(shape.split(":")[1])
        return [str(rng.randrange(10**width)).zfill(width) for _ in range(n)]
    if shape == "digits":
        return [str(rng.randrange(1, 10 ** rng.randint(1, 12))) for _ in range(n)]
    alphabet = string.ascii_letters + string.digits + "-_@"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(n)]


def test_ids_already_in_canonical_form_are_never_changed() -> None:
    rng = random.Random(20261206)
    for trial in range(150):
        shape = rng.choice(["digits:4", "digits:6", "digits:9", "digits", "text"])
        ids = list(dict.fromkeys(_canonical_ids(rng, shape, rng.randint(1, 60))))
        managers = [rng.choice([*ids, ""]) for _ in ids]
        known = rng.sample(ids, rng.randint(0, len(ids))) + _canonical_ids(rng, shape, rng.randint(0, 20))
        declared = rng.choice([shape, None])
        out = repair(frame(ids, managers), known_ids=known, declared=declared)
        context = f"trial {trial}: shape {shape}, declared {declared}, learnt {out.shape}"
        assert out.rejected.empty, context
        assert out.frame["WorkerID"].tolist() == ids, context
        assert out.frame["ManagerID"].tolist() == managers, context
        assert out.restored == dict.fromkeys(RESTORE_KINDS, 0), context


def test_many_rows_column_at_a_time() -> None:
    """A larger export (no timing asserted): every kind of repair at once, counts add up."""
    n = 100_000
    rng = np.random.default_rng(7)
    real = pd.Series(rng.choice(10**7, n, replace=False).astype(str)).str.zfill(7)
    resaved = real.str.lstrip("0")
    sci = np.arange(0, n, 1000)
    resaved[sci] = [f"{int(v):.5E}" for v in real[sci]]
    managers = real.sample(n, replace=True, random_state=1).reset_index(drop=True)
    out = repair(frame(resaved.tolist(), (managers.str.lstrip("0") + ".0").tolist()), known_ids=real)
    kept = np.setdiff1d(np.arange(n), sci)
    assert out.shape == IdShape("digits", 7)
    assert len(out.rejected) == len(sci)
    assert set(real[sci]) <= set(out.held_ids)
    assert out.frame["WorkerID"].tolist() == real[kept].tolist()
    assert out.frame["ManagerID"].tolist() == managers[kept].tolist()
    assert out.restored["float_suffix"] == len(kept)
    zeros = int(real[kept].str.startswith("0").sum() + managers[kept].str.startswith("0").sum())
    assert out.restored["zero_padded"] == zeros
