"""normalise_hr: text cleaning, status, flags, dates, and stable unique UPNs."""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_entra.provisioning.hr_source import read_hr_csv
from airflow_provider_entra.provisioning.normalise import (
    CSV2SCIM_COLUMNS,
    HrSchema,
    assign_upns,
    fold_for_upn,
    normalise_hr,
)
from airflow_provider_entra.provisioning.validate import HrSchemaError, validate_hr

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "microsoft-sample"
DOMAIN = "contoso.com"


def hr(**columns: list) -> pd.DataFrame:
    """A small HR frame; WorkerStatus defaults to Active and names to the WorkerID."""
    n = len(next(iter(columns.values())))
    base = {
        "WorkerID": [str(i + 1) for i in range(n)],
        "WorkerStatus": ["Active"] * n,
        "FirstName": [f"First{i}" for i in range(n)],
        "LastName": [f"Last{i}" for i in range(n)],
    }
    base.update(columns)
    return pd.DataFrame(base)


def upns(frame: pd.DataFrame) -> dict[str, str]:
    return dict(zip(frame["WorkerID"], frame["UserPrincipalName"], strict=True))


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        ("José", "Núñez", "jose.nunez"),
        ("Zoë", "Ødegård", "zoe.odegard"),
        ("Ærøskøbing", "Straße", "aeroskobing.strasse"),
        ("Łukasz", "Đorđević", "lukasz.dordevic"),
        ("Seán", "O'Brien", "sean.o'brien"),
        ("Mary Ann", "van der Berg", "maryann.vanderberg"),
        ("J.", "R. Tolkien", "j.r.tolkien"),
        ("Anne-Marie", "Smith_Jones", "anne-marie.smith_jones"),
        ("ＪＯＨＮ", "Doe", "john.doe"),  # full-width letters fold through NFKD
    ],
)
def test_upn_is_folded_first_dot_last(first: str, last: str, expected: str) -> None:
    out = normalise_hr(hr(FirstName=[first], LastName=[last]), upn_domain=DOMAIN).frame
    assert out["UserPrincipalName"].iloc[0] == f"{expected}@{DOMAIN}"
    assert out["MailNickname"].iloc[0] == expected


def test_names_that_fold_to_nothing_fall_back_to_the_worker_id() -> None:
    out = normalise_hr(hr(WorkerID=["W-77"], FirstName=["李"], LastName=["王"]), upn_domain=DOMAIN).frame
    assert out["UserPrincipalName"].iloc[0] == f"uw-77@{DOMAIN}"


def test_one_missing_name_part_gives_no_stray_dot() -> None:
    out = normalise_hr(hr(FirstName=["Cher"], LastName=["  "]), upn_domain=DOMAIN, schema=HrSchema()).frame
    # LastName is required by validate_hr, but normalise_hr alone still derives something sensible.
    assert out["UserPrincipalName"].iloc[0] == f"cher@{DOMAIN}"


def test_long_names_are_cut_to_the_entra_prefix_limit() -> None:
    out = normalise_hr(hr(FirstName=["A" * 50], LastName=["B" * 50]), upn_domain=DOMAIN).frame
    local = out["MailNickname"].iloc[0]
    assert len(local) <= 60 and local.startswith("a" * 50 + ".")


def test_fold_for_upn_keeps_missing_values_missing() -> None:
    folded = fold_for_upn(pd.Series(["Zoë", None], dtype="str"))
    assert folded.iloc[0] == "zoe" and pd.isna(folded.iloc[1])


def test_text_is_trimmed_nfc_and_empty_becomes_missing() -> None:
    decomposed = unicodedata.normalize("NFD", "José")
    frame = hr(FirstName=[f"  {decomposed}\t"], Department=["   "], City=["\u00a0Paris\u00a0"])
    out = normalise_hr(frame, upn_domain=DOMAIN).frame
    assert out["FirstName"].iloc[0] == "José"
    assert unicodedata.is_normalized("NFC", out["FirstName"].iloc[0])
    assert pd.isna(out["Department"].iloc[0])
    assert out["City"].iloc[0] == "Paris"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Oslo", "Oslo"),
        ("Oslo\x1f", "Oslo"),
        ("\tOslo", "Oslo"),
        ("Zoë", "Zoë"),
        ("\u2003Zoë", "Zoë"),
        ("Zoë\u00a0", "Zoë"),
        ("Zoë\u3000", "Zoë"),
        ("Zoë\u0085", "Zoë"),
        (unicodedata.normalize("NFD", "José"), "José"),
        ("\u2126", "\u03a9"),  # OHM SIGN -> GREEK CAPITAL OMEGA under NFC
        ("NA", "NA"),
    ],
)
def test_every_column_is_trimmed_and_nfc(raw: str, expected: str) -> None:
    # One clean value beside the raw one, and a sliced frame, so the no-copy fast path is exercised too.
    frame = hr(City=["Paris", raw, "Rome"]).iloc[1:]
    out = normalise_hr(frame, upn_domain=DOMAIN).frame
    assert out["City"].tolist() == [expected, "Rome"]


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Active", "Active"),
        ("ACTIVE", "Active"),
        ("a", "Active"),
        (" inactive ", "Inactive"),
        ("I", "Inactive"),
        ("Terminated", "Inactive"),
        ("leaver", "Inactive"),
    ],
)
def test_status_spellings_are_canonicalised(raw: str, canonical: str) -> None:
    out = normalise_hr(hr(WorkerStatus=[raw]), upn_domain=DOMAIN)
    assert out.rejected.empty
    assert out.frame["WorkerStatus"].iloc[0] == canonical


def test_unknown_status_is_quarantined_with_the_value() -> None:
    out = normalise_hr(hr(WorkerStatus=["Active", "On Sabbatical"]), upn_domain=DOMAIN)
    assert list(out.frame["WorkerID"]) == ["1"]
    assert list(out.rejected.columns) == ["row", "externalId", "stage", "reason"]
    rejected = out.rejected.iloc[0]
    assert (rejected["row"], rejected["externalId"], rejected["stage"]) == (1, "2", "normalise")
    assert rejected["reason"] == "WorkerStatus: unknown value 'On Sabbatical'"


def test_status_spellings_are_configurable() -> None:
    schema = HrSchema(active_values=("employed",), inactive_values=("gone",))
    out = normalise_hr(hr(WorkerStatus=["Employed", "GONE", "Active"]), upn_domain=DOMAIN, schema=schema)
    assert list(out.frame["WorkerStatus"]) == ["Active", "Inactive"]
    assert out.rejected["reason"].tolist() == ["WorkerStatus: unknown value 'Active'"]


def test_on_leave_becomes_a_nullable_boolean() -> None:
    out = normalise_hr(hr(OnLeave=["True", "false", "YES", "0", ""]), upn_domain=DOMAIN).frame
    assert str(out["OnLeave"].dtype) == "boolean"
    assert out["OnLeave"].tolist()[:4] == [True, False, True, False]
    assert pd.isna(out["OnLeave"].iloc[4])


def test_unreadable_flag_is_quarantined() -> None:
    out = normalise_hr(hr(OnLeave=["maybe"]), upn_domain=DOMAIN)
    assert out.frame.empty
    assert out.rejected["reason"].iloc[0] == "OnLeave: cannot read 'maybe' as true/false"


def test_dates_become_iso_8601_with_offset() -> None:
    frame = hr(
        HireDate=["2010-07-10", "2021-05-01T00:00:00-05:00", "2020-01-01 08:30", "2021-05-01T10:00:00Z", ""]
    )
    out = normalise_hr(frame, upn_domain=DOMAIN).frame
    assert out["HireDate"].tolist()[:4] == [
        "2010-07-10T00:00:00+00:00",
        "2021-05-01T05:00:00+00:00",
        "2020-01-01T08:30:00+00:00",
        "2021-05-01T10:00:00+00:00",
    ]
    assert pd.isna(out["HireDate"].iloc[4])


def test_dates_use_the_configured_offset() -> None:
    frame = hr(HireDate=["2010-07-10", "2021-05-01T10:00:00Z"])
    out = normalise_hr(frame, upn_domain=DOMAIN, timezone="-05:00").frame
    assert out["HireDate"].tolist() == ["2010-07-10T00:00:00-05:00", "2021-05-01T05:00:00-05:00"]


def test_dates_can_use_a_custom_format() -> None:
    schema = HrSchema(date_format="%d/%m/%Y")
    out = normalise_hr(hr(HireDate=["31/12/2019", "2019-12-31"]), upn_domain=DOMAIN, schema=schema)
    assert out.frame["HireDate"].tolist() == ["2019-12-31T00:00:00+00:00"]
    assert out.rejected["reason"].tolist() == ["HireDate: cannot parse '2019-12-31' as a date"]


def test_far_future_sentinel_dates_survive() -> None:
    out = normalise_hr(hr(HireDate=["9999-12-31"]), upn_domain=DOMAIN).frame
    assert out["HireDate"].iloc[0] == "9999-12-31T00:00:00+00:00"


def test_bad_date_quarantines_the_row_and_names_the_value() -> None:
    out = normalise_hr(hr(HireDate=["2019-02-30", "2019-02-28"]), upn_domain=DOMAIN)
    assert out.frame["WorkerID"].tolist() == ["2"]
    assert out.rejected["reason"].tolist() == ["HireDate: cannot parse '2019-02-30' as a date"]


def test_several_problems_on_one_row_give_one_quarantine_entry() -> None:
    out = normalise_hr(hr(WorkerStatus=["x"], HireDate=["never"]), upn_domain=DOMAIN)
    assert len(out.rejected) == 1
    assert out.rejected["reason"].iloc[0] == (
        "WorkerStatus: unknown value 'x'; HireDate: cannot parse 'never' as a date"
    )


def test_rejected_rows_take_no_upn() -> None:
    frame = hr(
        WorkerID=["1", "2"], WorkerStatus=["bogus", "Active"], FirstName=["Ann", "Ann"], LastName=["Lee"] * 2
    )
    out = normalise_hr(frame, upn_domain=DOMAIN)
    assert upns(out.frame) == {"2": "ann.lee@contoso.com"}


def test_collisions_get_suffixes_in_worker_id_order_whatever_the_row_order() -> None:
    ids = ["10", "9", "100", "11"]
    frame = hr(
        WorkerID=ids,
        FirstName=["José", "Jose", "JOSÉ", "josé"],
        LastName=["Núñez", "Nunez", "NÚÑEZ", "nunez"],
    )
    expected = {
        "9": "jose.nunez@contoso.com",
        "10": "jose.nunez2@contoso.com",
        "11": "jose.nunez3@contoso.com",
        "100": "jose.nunez4@contoso.com",
    }
    assert upns(normalise_hr(frame, upn_domain=DOMAIN).frame) == expected
    shuffled = frame.sample(frac=1, random_state=7)
    assert upns(normalise_hr(shuffled, upn_domain=DOMAIN).frame) == expected


def test_active_workers_are_served_before_inactive_ones() -> None:
    # Worker 1 left before ever being provisioned; the joiner 2 should not carry a suffix because of them.
    frame = hr(
        WorkerID=["1", "2"], WorkerStatus=["Inactive", "Active"], FirstName=["Ann"] * 2, LastName=["Lee"] * 2
    )
    assert upns(normalise_hr(frame, upn_domain=DOMAIN).frame) == {
        "1": "ann.lee2@contoso.com",
        "2": "ann.lee@contoso.com",
    }


def test_existing_workers_keep_their_snapshot_upn() -> None:
    # Ann married: her name changed, her UPN must not.
    frame = hr(WorkerID=["1"], FirstName=["Ann"], LastName=["Smith"])
    existing = pd.Series({"1": "ann.lee@contoso.com"})
    out = normalise_hr(frame, upn_domain=DOMAIN, existing_upns=existing).frame
    assert upns(out) == {"1": "ann.lee@contoso.com"}
    assert out["MailNickname"].iloc[0] == "ann.lee"


def test_suffixes_are_stable_when_the_snapshot_holds_the_first_holder() -> None:
    run1 = hr(WorkerID=["5", "7"], FirstName=["Zoë", "Zoe"], LastName=["Ødegård", "Odegard"])
    first = upns(normalise_hr(run1, upn_domain=DOMAIN).frame)
    assert first == {"5": "zoe.odegard@contoso.com", "7": "zoe.odegard2@contoso.com"}

    # Next run a new Zoe with a lower WorkerID joins: existing holders keep theirs, she gets the next free.
    run2 = hr(WorkerID=["3", "5", "7"], FirstName=["Zoe"] * 3, LastName=["Odegard"] * 3)
    second = upns(normalise_hr(run2, upn_domain=DOMAIN, existing_upns=pd.Series(first)).frame)
    assert second == {**first, "3": "zoe.odegard3@contoso.com"}
    # And again, unchanged: deterministic.
    third = upns(normalise_hr(run2, upn_domain=DOMAIN, existing_upns=pd.Series(second)).frame)
    assert third == second


def test_upns_of_workers_gone_from_the_feed_stay_taken() -> None:
    # Worker 1 left the feed (disabled in Entra) but still owns ann.lee@ there.
    existing = pd.Series({"1": "Ann.Lee@contoso.com", "2": "ann.lee2@contoso.com"})
    frame = hr(WorkerID=["2", "3"], FirstName=["Ann", "Ann"], LastName=["Lee", "Lee"])
    out = upns(normalise_hr(frame, upn_domain=DOMAIN, existing_upns=existing).frame)
    assert out == {"2": "ann.lee2@contoso.com", "3": "ann.lee3@contoso.com"}


def test_a_name_with_digits_does_not_steal_a_suffixed_upn() -> None:
    ids = pd.Series(["1", "2", "3"], dtype="str")
    bases = pd.Series(["ann.lee", "ann.lee", "ann.lee2"], dtype="str")
    out = assign_upns(ids, bases, DOMAIN)
    assert out.is_unique
    assert out.tolist() == ["ann.lee@contoso.com", "ann.lee3@contoso.com", "ann.lee2@contoso.com"]


def test_a_long_run_of_taken_suffixes_is_skipped() -> None:
    existing = pd.Series({str(100 + i): f"ann.lee{i if i > 1 else ''}@contoso.com" for i in range(1, 31)})
    frame = hr(WorkerID=["1", "2"], FirstName=["Ann", "Ann"], LastName=["Lee", "Lee"])
    out = upns(normalise_hr(frame, upn_domain=DOMAIN, existing_upns=existing).frame)
    assert out == {"1": "ann.lee31@contoso.com", "2": "ann.lee32@contoso.com"}


def _reference_upns(ids, bases, active, existing):
    """The UPN rules as a plain loop: existing UPNs kept; then per base, in order, the first free number."""
    taken = {u.lower() for u in existing.values()}
    out = {i: existing[i] for i in ids if i in existing}
    order = sorted((i for i in ids if i not in existing), key=lambda i: (bases[i], not active[i], len(i), i))
    for i in order:
        n = 1
        while f"{bases[i]}{n if n > 1 else ''}@contoso.com" in taken:
            n += 1
        out[i] = f"{bases[i]}{n if n > 1 else ''}@contoso.com"
        taken.add(out[i])
    return out


@pytest.mark.parametrize("seed", range(8))
def test_vectorised_upn_assignment_matches_the_plain_rules(seed: int) -> None:
    rng = random.Random(seed)
    ids = rng.sample([str(i) for i in range(1, 400)], 120)
    bases = {i: rng.choice(["ann.lee", "bob.ray", "cy.do", "di.wu", "ed.fox"]) for i in ids}
    active = {i: rng.random() < 0.7 for i in ids}
    holders = rng.sample(ids, 30) + [f"x{k}" for k in range(30)]  # some in the feed, some gone from it
    pool = [f"{base}{n if n > 1 else ''}@contoso.com" for base in set(bases.values()) for n in range(1, 20)]
    existing = dict(zip(holders, rng.sample(pool, len(holders)), strict=True))

    got = assign_upns(
        pd.Series(ids, dtype="str"),
        pd.Series([bases[i] for i in ids], dtype="str"),
        DOMAIN,
        pd.Series(existing, dtype="str"),
        first=pd.Series([active[i] for i in ids]),
    )
    assert dict(zip(ids, got, strict=True)) == _reference_upns(ids, bases, active, existing)


def test_bases_sharing_a_stem_never_share_a_upn() -> None:
    ids = pd.Series(["1", "2", "3", "4"], dtype="str")
    bases = pd.Series(["ann.lee", "ann.lee2", "ann.lee", "ann.lee2"], dtype="str")
    out = assign_upns(ids, bases, DOMAIN)
    assert out.tolist() == [
        "ann.lee@contoso.com",
        "ann.lee22@contoso.com",
        "ann.lee2@contoso.com",
        "ann.lee23@contoso.com",
    ]


def test_upns_are_unique_across_feed_and_snapshot() -> None:
    names = ["Ann Lee", "Ann Lee", "Bob Ray", "Ann Lee", "Bob Ray"]
    frame = hr(
        WorkerID=[str(i) for i in range(20, 25)],
        FirstName=[n.split()[0] for n in names],
        LastName=[n.split()[1] for n in names],
    )
    existing = pd.Series(
        {"99": "ann.lee@contoso.com", "98": "ann.lee3@contoso.com", "21": "bob.ray@contoso.com"}
    )
    out = normalise_hr(frame, upn_domain=DOMAIN, existing_upns=existing).frame
    everything = pd.concat([out["UserPrincipalName"], existing[~existing.index.isin(out["WorkerID"])]])
    assert everything.str.lower().is_unique
    assert upns(out)["21"] == "bob.ray@contoso.com"


def test_microsoft_sample_normalises_with_unique_upns() -> None:
    raw = read_hr_csv(SAMPLE / "Sample1-employeeData.csv")
    assert tuple(raw.columns) == CSV2SCIM_COLUMNS
    valid = validate_hr(raw).valid
    out = normalise_hr(valid, upn_domain=DOMAIN)
    assert out.rejected.empty
    assert len(out.frame) == len(valid)
    assert out.frame["UserPrincipalName"].is_unique
    assert set(out.frame["WorkerStatus"]) == {"Active", "Inactive"}
    assert out.frame["HireDate"].str.fullmatch(r"\d{4}-\d{2}-\d{2}T00:00:00\+00:00").all()
    assert out.frame["OnLeave"].notna().all()
    assert out.frame["UserPrincipalName"].str.fullmatch(r"[a-z0-9.'_-]+@contoso\.com").all()


def test_read_hr_csv_keeps_na_like_values_as_text(tmp_path: Path) -> None:
    path = tmp_path / "hr.csv"
    path.write_text("WorkerID,WorkerStatus,FirstName,LastName\n1,Active,Null,NA\n", encoding="utf-8")
    out = normalise_hr(read_hr_csv(path), upn_domain=DOMAIN).frame
    assert out[["FirstName", "LastName"]].iloc[0].tolist() == ["Null", "NA"]


def test_numeric_worker_ids_lose_no_digits_and_gain_no_decimals() -> None:
    frame = pd.DataFrame(
        {
            "WorkerID": [1513.0, 22.0],
            "WorkerStatus": ["Active"] * 2,
            "FirstName": ["A", "B"],
            "LastName": ["C", "D"],
        }
    )
    out = normalise_hr(frame, upn_domain=DOMAIN).frame
    assert out["WorkerID"].tolist() == ["1513", "22"]


def test_blank_and_repeated_worker_ids_are_quarantined() -> None:
    out = normalise_hr(hr(WorkerID=["", "2", "2", "4"]), upn_domain=DOMAIN)
    assert out.frame["WorkerID"].tolist() == ["4"]
    assert out.rejected["reason"].tolist() == [
        "WorkerID: missing",
        "WorkerID: appears in more than one row (run validate_hr first)",
        "WorkerID: appears in more than one row (run validate_hr first)",
    ]


def test_missing_required_columns_raise_naming_them() -> None:
    with pytest.raises(HrSchemaError, match="FirstName, LastName") as info:
        normalise_hr(pd.DataFrame({"WorkerID": ["1"], "WorkerStatus": ["Active"]}), upn_domain=DOMAIN)
    assert info.value.missing == ("FirstName", "LastName")


@pytest.mark.parametrize("domain", ["", "user@contoso.com", "contoso", "con toso.com"])
def test_bad_upn_domain_is_refused(domain: str) -> None:
    with pytest.raises(ValueError, match="upn_domain"):
        normalise_hr(hr(FirstName=["A"]), upn_domain=domain)


def test_bad_timezone_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        normalise_hr(hr(FirstName=["A"]), upn_domain=DOMAIN, timezone="Europe/Paris")


def test_input_frame_is_not_modified() -> None:
    frame = hr(WorkerStatus=[" active "], FirstName=[" Ann "])
    before = frame.copy()
    normalise_hr(frame, upn_domain=DOMAIN)
    pd.testing.assert_frame_equal(frame, before)


def _people() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "WorkerID": ["1", "2", "3"],
            "WorkerStatus": ["Active", "Active", "Active"],
            "FirstName": ["Ann", "Bo", "Cy"],
            "LastName": ["Lee", "Ng", "Do"],
            "Login": ["Ann.Lee@Contoso.com", "bo.ng@contoso.com", "not a upn"],
        }
    )


def test_upns_taken_by_other_accounts_are_never_derived_again() -> None:
    out = normalise_hr(_people(), upn_domain="contoso.com", taken_upns=["ann.lee@contoso.com"]).frame
    assert out["UserPrincipalName"].tolist() == [
        "ann.lee2@contoso.com",
        "bo.ng@contoso.com",
        "cy.do@contoso.com",
    ]


def test_upns_from_a_column_and_overrides_by_hand() -> None:
    schema = HrSchema(upn_from="column", upn_column="Login", upn_overrides=(("2", "Bo.Chosen@contoso.com"),))
    result = normalise_hr(_people(), schema=schema, upn_domain="contoso.com")
    assert result.frame.set_index("WorkerID")["UserPrincipalName"].to_dict() == {
        "1": "ann.lee@contoso.com",
        "2": "bo.chosen@contoso.com",
    }
    assert result.rejected[["externalId", "reason"]].values.tolist() == [
        ["3", "Login: missing or not a user principal name (upn from: column)"]
    ]
    derived = normalise_hr(
        _people(), schema=HrSchema(upn_overrides=(("3", "cy@contoso.com"),)), upn_domain="contoso.com"
    ).frame
    assert derived["UserPrincipalName"].tolist() == [
        "ann.lee@contoso.com",
        "bo.ng@contoso.com",
        "cy@contoso.com",
    ]
    with pytest.raises(ValueError, match="upn from: column needs"):
        HrSchema(upn_from="column")


def test_a_date_format_declared_for_one_column() -> None:
    hr = _people().assign(HireDate=["01/15/2015", "12/31/2020", "02/01/2021"])
    out = normalise_hr(
        hr, schema=HrSchema(date_formats=(("HireDate", "%m/%d/%Y"),)), upn_domain="contoso.com"
    )
    assert out.frame["HireDate"].tolist() == [
        "2015-01-15T00:00:00+00:00",
        "2020-12-31T00:00:00+00:00",
        "2021-02-01T00:00:00+00:00",
    ]


def test_canonical_names_turn_any_layout_into_csv2scim_roles() -> None:
    schema = HrSchema(worker_id="Employee_ID", status="Worker_Status", first_name="Legal_First_Name")
    assert schema.canonical_names() == {
        "Employee_ID": "WorkerID",
        "Worker_Status": "WorkerStatus",
        "Legal_First_Name": "FirstName",
    }
    assert HrSchema().canonical_names() == {}
