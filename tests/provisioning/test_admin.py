"""Admin accounts: privilege rule, derivation in the HR layout, and disabling when no longer justified."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import pytest

from airflow_provider_entra.provisioning import pipeline
from airflow_provider_entra.provisioning.admin import (
    DEFAULT_PRIVILEGE_RULE,
    PrivilegeRule,
    derive_admin_accounts,
    derive_admins,
)
from airflow_provider_entra.provisioning.ledger import apply_outcomes, read_ledger
from airflow_provider_entra.provisioning.normalise import normalise_hr
from airflow_provider_entra.provisioning.plan import plan_delta
from airflow_provider_entra.provisioning.snapshot import empty_snapshot

ADMIN_DOMAIN = "admin.contoso.com"


def staff(rows: list[tuple[str, str, str, str, str, str]]) -> pd.DataFrame:
    """(WorkerID, status, first, last, department, job title) -> normalised HR."""
    frame = pd.DataFrame(
        {
            "WorkerID": [r[0] for r in rows],
            "WorkerStatus": [r[1] for r in rows],
            "UserID": [f"EMP{r[0]}" for r in rows],
            "FirstName": [r[2] for r in rows],
            "LastName": [r[3] for r in rows],
            "FullName": [f"{r[2]} {r[3]}" for r in rows],
            "ManagerID": ["900"] * len(rows),
            "Department": [r[4] for r in rows],
            "JobTitle": [r[5] for r in rows],
            "OfficePhone": ["555-0100"] * len(rows),
            "Email": [f"{r[2].lower()}@contoso.com" for r in rows],
            "Company": ["Contoso"] * len(rows),
        }
    )
    return normalise_hr(frame, upn_domain="contoso.com").frame


TEAM = [
    ("1", "Active", "José", "Núñez", "IT", "Engineer"),
    ("2", "Active", "Ann", "Lee", "Sales", "Administrative Assistant"),
    ("3", "Active", "Bob", "Ray", "Finance", "System Administrator"),
    ("4", "Active", "Cy", "Do", "Operations", "Site Reliability Engineer"),
    ("5", "Active", "Di", "Wu", "security", "Analyst"),
    ("6", "Inactive", "Ed", "Fox", "Information Technology", "Engineer"),
]


def mapped(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "externalId": frame["WorkerID"].to_numpy(),
            "userName": frame["UserPrincipalName"].to_numpy(),
            "displayName": frame["FullName"].to_numpy(),
            "active": (frame["WorkerStatus"] == "Active").to_numpy(),
            "LinkedWorkerID": frame["LinkedWorkerID"].to_numpy(),
        }
    )
    out["record_hash"] = pd.util.hash_pandas_object(out, index=False).astype(str).to_numpy()
    return out


def test_default_rule_matches_departments_and_admin_titles_case_insensitively() -> None:
    hr = staff(TEAM)
    matched = hr.loc[DEFAULT_PRIVILEGE_RULE.matches(hr), "WorkerID"].tolist()
    # 2 is an "Administrative Assistant": not an administrator, no admin account.
    assert matched == ["1", "3", "4", "5", "6"]


def test_rule_on_exact_titles_and_a_flag_column() -> None:
    hr = staff(TEAM).assign(Privileged=["no", "YES", "", "0", "1", None])
    assert PrivilegeRule(job_titles=("analyst",)).matches(hr).tolist() == [
        False,
        False,
        False,
        False,
        True,
        False,
    ]
    assert PrivilegeRule(flag_column="Privileged").matches(hr).tolist() == [
        False,
        True,
        False,
        False,
        True,
        False,
    ]
    bools = hr.assign(Privileged=[True, False, False, False, False, True])
    assert PrivilegeRule(flag_column="Privileged").matches(bools).tolist() == [
        True,
        False,
        False,
        False,
        False,
        True,
    ]
    assert not PrivilegeRule().matches(hr).any()


def test_rule_needs_its_columns_and_valid_patterns() -> None:
    with pytest.raises(ValueError, match="'Privileged'"):
        PrivilegeRule(flag_column="Privileged").matches(staff(TEAM))
    with pytest.raises(Exception, match="unterminated|missing"):
        PrivilegeRule(title_patterns=("(admin",))


def test_admin_accounts_in_the_hr_layout() -> None:
    hr = staff(TEAM)
    admins = derive_admin_accounts(hr, DEFAULT_PRIVILEGE_RULE, upn_domain=ADMIN_DOMAIN)
    assert list(admins.columns[: len(hr.columns)]) == list(hr.columns)
    one = admins.set_index("WorkerID").loc["A1"]
    assert one["UserPrincipalName"] == "adm-jose.nunez@admin.contoso.com"
    assert one["MailNickname"] == "adm-jose.nunez"
    assert one["FullName"] == "José Núñez (admin)"
    assert one["LinkedWorkerID"] == "1"
    assert one["UserID"] == "AEMP1"
    assert one["WorkerStatus"] == "Active"
    assert (one["Department"], one["JobTitle"], one["Company"]) == ("IT", "Engineer", "Contoso")
    assert pd.isna(one["ManagerID"]) and pd.isna(one["OfficePhone"]) and pd.isna(one["Email"])
    # An inactive person's admin account is inactive.
    statuses = admins.set_index("WorkerID")["WorkerStatus"].to_dict()
    assert statuses == {"A1": "Active", "A3": "Active", "A4": "Active", "A5": "Active", "A6": "Inactive"}
    assert admins["UserPrincipalName"].is_unique


def test_prefixes_and_suffix_are_configurable() -> None:
    admins = derive_admin_accounts(
        staff(TEAM[:1]), upn_domain=ADMIN_DOMAIN, id_prefix="ADM-", upn_prefix="a_", display_suffix=" [priv]"
    )
    assert admins[["WorkerID", "UserPrincipalName", "FullName"]].values.tolist() == [
        ["ADM-1", "a_jose.nunez@admin.contoso.com", "José Núñez [priv]"]
    ]


def test_admin_is_disabled_when_the_person_leaves_and_the_plan_disables_it() -> None:
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    admins = derive_admin_accounts(staff(TEAM), upn_domain=ADMIN_DOMAIN)
    first = plan_delta(mapped(admins), empty_snapshot())
    outcomes = pd.DataFrame({"external_id": first.frame["externalId"], "status": "success"})
    admin_snapshot = apply_outcomes(empty_snapshot(), first.frame, outcomes, verified_at=when)
    # A6 (an inactive admin-qualifying person) is sent disabled: an admin account may exist from before.
    assert admin_snapshot.set_index("externalId")["active"].to_dict() == {
        "A1": True,
        "A3": True,
        "A4": True,
        "A5": True,
        "A6": False,
    }
    assert admin_snapshot.set_index("externalId").at["A1", "linked_external_id"] == "1"

    # José leaves; Bob moves to Finance as an analyst (no longer privileged); Cy vanishes from the feed.
    team = [list(r) for r in TEAM if r[0] != "4"]
    team[0][1] = "Inactive"
    team[2][5] = "Analyst"
    later = staff([tuple(r) for r in team])
    admins = derive_admin_accounts(later, upn_domain=ADMIN_DOMAIN, existing_admins=admin_snapshot)
    by_id = admins.set_index("WorkerID")
    assert by_id["WorkerStatus"].to_dict() == {
        "A1": "Inactive",
        "A5": "Active",
        "A6": "Inactive",
        "A3": "Inactive",
        "A4": "Inactive",
    }
    assert by_id.at["A4", "UserPrincipalName"] == "adm-cy.do@admin.contoso.com"  # kept from the snapshot
    assert by_id.at["A4", "LinkedWorkerID"] == "4"
    assert by_id.at["A3", "JobTitle"] == "Analyst"

    plan = plan_delta(mapped(admins), admin_snapshot)
    assert sorted(plan.disables) == ["A1", "A3", "A4"]
    assert set(plan.frame.loc[plan.frame["externalId"].isin(["A1", "A3", "A4"]), "change"]) == {"leaver"}
    assert not plan.frame.set_index("externalId").loc[["A1", "A3", "A4"], "active"].any()


def test_admin_upns_are_unique_and_stable() -> None:
    raw = pd.DataFrame(
        {
            "WorkerID": ["1", "8", "7"],
            "WorkerStatus": ["Active"] * 3,
            "FirstName": ["José", "Jose", "Jose"],
            "LastName": ["Núñez", "Nunez", "Nunez"],
            "Department": ["IT"] * 3,
            "JobTitle": ["Engineer"] * 3,
        }
    )
    # Person 7 came over from a merged company and kept their fabrikam UPN: same prefix as person 1's.
    existing_upns = pd.Series({"7": "jose.nunez@fabrikam.com"})
    hr = normalise_hr(raw, upn_domain="contoso.com", existing_upns=existing_upns).frame
    assert dict(zip(hr["WorkerID"], hr["UserPrincipalName"], strict=True)) == {
        "1": "jose.nunez@contoso.com",
        "8": "jose.nunez2@contoso.com",
        "7": "jose.nunez@fabrikam.com",
    }
    admins = derive_admin_accounts(hr, upn_domain=ADMIN_DOMAIN)
    first = dict(zip(admins["WorkerID"], admins["UserPrincipalName"], strict=True))
    assert first == {
        "A1": "adm-jose.nunez@admin.contoso.com",
        "A7": "adm-jose.nunez3@admin.contoso.com",  # adm-jose.nunez2 belongs to person 8's admin account
        "A8": "adm-jose.nunez2@admin.contoso.com",
    }
    # Next run: the snapshot holds those; A1's person is renamed and a new Jose Nunez (id 2) joins IT.
    snapshot = pd.DataFrame(
        {
            "externalId": list(first),
            "UserPrincipalName": list(first.values()),
            "active": True,
            "linked_external_id": [k[1:] for k in first],
        }
    )
    raw2 = pd.concat([raw, raw.iloc[[1]].assign(WorkerID="2")], ignore_index=True)
    raw2.loc[0, "LastName"] = "Smith"
    hr2 = normalise_hr(
        raw2,
        upn_domain="contoso.com",
        existing_upns=pd.concat([existing_upns, hr.set_index("WorkerID")["UserPrincipalName"]]),
    ).frame
    admins2 = derive_admin_accounts(hr2, upn_domain=ADMIN_DOMAIN, existing_admins=snapshot)
    second = dict(zip(admins2["WorkerID"], admins2["UserPrincipalName"], strict=True))
    # The newcomer is jose.nunez3@contoso.com; adm-jose.nunez3 is A7's already, so the suffix goes on top.
    assert hr2.set_index("WorkerID").at["2", "UserPrincipalName"] == "jose.nunez3@contoso.com"
    assert second == {**first, "A2": "adm-jose.nunez32@admin.contoso.com"}


def test_admin_derivation_needs_normalised_hr() -> None:
    with pytest.raises(ValueError, match="UserPrincipalName"):
        derive_admin_accounts(
            pd.DataFrame({"WorkerID": ["1"], "WorkerStatus": ["Active"]}), upn_domain=ADMIN_DOMAIN
        )


def test_admin_accounts_are_derived_mapped_and_linked(tmp_path, steps):
    transformed, _ = steps.run(steps.data / "hr_employees.csv", tmp_path / "hr", tmp_path / "ledger")
    admin_ledger = tmp_path / "admin-ledger"
    derived = derive_admins(
        transformed["normalised_path"],
        admin_ledger,
        steps.data / "admin_mapping.yaml",
        tmp_path / "admin",
        upn_domain="contoso.onmicrosoft.com",
    )
    mapped = pd.read_parquet(derived["mapped_path"])
    assert derived["admins"] == derived["mapped"] == len(mapped) > 5 and derived["quarantined"] == 0
    assert mapped["externalId"].str.startswith("A").all()
    assert (mapped["externalId"].str[1:] == mapped["linked_external_id"]).all()
    assert mapped["userName"].str.match(r"^adm-[^@]+@contoso\.onmicrosoft\.com$").all()
    planned = pipeline.plan(derived["mapped_path"], admin_ledger, tmp_path / "admin")
    outcomes = steps.all_succeed(planned["delta_path"], tmp_path / "admin")
    pipeline.commit(admin_ledger, planned["delta_path"], outcomes, run_id="admin-1")
    linked = read_ledger(admin_ledger).state["linked_external_id"]
    assert linked.notna().all()
