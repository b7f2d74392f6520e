"""Separate admin accounts for privileged staff.

People whose HR record matches a :class:`PrivilegeRule` get a second account, kept apart from their daily
one: its own externalId namespace (``A<WorkerID>``), an ``adm-`` UPN, a display name that says it is an admin
account, and a link back to the person (``LinkedWorkerID``). The admin account is enabled only while the
person is active and still matches the rule; otherwise it is disabled (never deleted: Entra has no delete for
API-driven provisioning).

The derived frame has the HR layout, so the same mapping, delta planning and upload code serve both jobs; it
is planned against its own job's ledger (admin accounts usually go to a separate provisioning app/job).
:func:`derive_admins` is the step the ``entra_admin_accounts`` DAG runs over staged files.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from airflow_provider_entra._fsio import join, read_frame, write_frame
from airflow_provider_entra.provisioning._hr import (
    TEXT_DTYPE,
    from_arrow,
    isin_text,
    parse_boolean,
    quarantine_frame,
    to_arrow,
)
from airflow_provider_entra.provisioning.feed import load_mapping, write_people_csv
from airflow_provider_entra.provisioning.ledger import read_ledger
from airflow_provider_entra.provisioning.normalise import HrSchema, assign_upns
from airflow_provider_entra.provisioning.paths import ADMINS_NAME, MAPPED_NAME, QUARANTINE_NAME
from airflow_provider_entra.scim import map_records

__all__ = [
    "DEFAULT_ADMIN_DEPARTMENTS",
    "DEFAULT_ADMIN_TITLE_PATTERN",
    "DEFAULT_PRIVILEGE_RULE",
    "PrivilegeRule",
    "LINK_COLUMN",
    "derive_admin_accounts",
    "derive_admins",
]

log = logging.getLogger(__name__)

#: Column of the derived admin rows naming the person an admin account belongs to.
LINK_COLUMN = "LinkedWorkerID"

DEFAULT_ADMIN_DEPARTMENTS = ("IT", "Information Technology", "Security")
#: Whole words only, so "Administrative Assistant" and "Domain Administration Clerk" do not match.
DEFAULT_ADMIN_TITLE_PATTERN = (
    r"\b(?:admins?|administrators?|sysadmins?|security engineers?|site reliability)\b"
)

#: Columns blanked on an admin account: it has no manager of its own, and the person's mailbox and phone
#: belong to the daily account.
_BLANKED = ("manager_id", "email", "office_phone")


@dataclass(frozen=True)
class PrivilegeRule:
    """Who gets an admin account. A worker matches when ANY criterion matches (all case-insensitive).

    :param departments: exact department names.
    :param job_titles: exact job titles.
    :param flag_column: a column holding a true/false flag (``true``/``yes``/``1``/... or booleans).
    :param title_patterns: regular expressions searched in the job title.

    A rule with no criteria matches nobody.
    """

    departments: tuple[str, ...] = ()
    job_titles: tuple[str, ...] = ()
    flag_column: str | None = None
    title_patterns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for pattern in self.title_patterns:
            re.compile(pattern)

    def matches(self, df: pd.DataFrame, schema: HrSchema = HrSchema()) -> pd.Series:
        """Return a boolean Series, ``True`` for the rows that get an admin account.

        :param df: HR rows (normalised or raw text).
        :param schema: column names.
        :raises ValueError: when a column the rule needs is absent.
        """
        result = pd.Series(False, index=df.index)
        if self.departments:
            result |= _in_set(_column(df, schema.department), self.departments)
        if self.job_titles:
            result |= _in_set(_column(df, schema.job_title), self.job_titles)
        if self.title_patterns:
            pattern = "|".join(f"(?:{p})" for p in self.title_patterns)
            titles = _column(df, schema.job_title).astype(TEXT_DTYPE)
            hit = pc.match_substring_regex(to_arrow(titles), pattern, ignore_case=True)
            result |= pd.Series(pc.fill_null(hit, False).to_numpy(zero_copy_only=False), index=df.index)
        if self.flag_column is not None:
            flag = _column(df, self.flag_column)
            if pd.api.types.is_bool_dtype(flag.dtype):
                result |= flag.fillna(False).astype(bool)
            else:
                parsed, _ = parse_boolean(flag.astype(TEXT_DTYPE).str.strip())
                result |= parsed.fillna(False).astype(bool)
        return result


#: Department in IT / Information Technology / Security, or an admin-like job title.
DEFAULT_PRIVILEGE_RULE = PrivilegeRule(
    departments=DEFAULT_ADMIN_DEPARTMENTS, title_patterns=(DEFAULT_ADMIN_TITLE_PATTERN,)
)


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    if name not in df.columns:
        raise ValueError(f"privilege rule needs column {name!r}, which the HR frame does not have")
    return df[name]


def _in_set(s: pd.Series, values: tuple[str, ...]) -> pd.Series:
    wanted = {v.strip().lower() for v in values}
    return s.astype(TEXT_DTYPE).str.strip().str.lower().isin(wanted).fillna(False).astype(bool)


def derive_admin_accounts(
    hr: pd.DataFrame,
    rule: PrivilegeRule = DEFAULT_PRIVILEGE_RULE,
    *,
    upn_domain: str,
    id_prefix: str = "A",
    upn_prefix: str = "adm-",
    display_suffix: str = " (admin)",
    existing_admins: pd.DataFrame | None = None,
    schema: HrSchema = HrSchema(),
    link_column: str = LINK_COLUMN,
) -> pd.DataFrame:
    """Derive the admin accounts, in the HR layout, including the ones to disable.

    For every person matching ``rule``: a row copied from the person's with

    * ``WorkerID`` = ``id_prefix + WorkerID`` (``A1513``), ``UserID`` prefixed the same way;
    * ``UserPrincipalName`` = ``upn_prefix + <person's UPN prefix>@upn_domain`` (``adm-jose.nunez@...``),
      kept from ``existing_admins`` when the account exists, made unique like person UPNs otherwise;
      ``MailNickname`` its prefix;
    * ``FullName`` = the person's name + ``display_suffix``;
    * ``WorkerStatus`` = ``Active`` only when the person is ``Active``, else ``Inactive``;
    * ``link_column`` = the person's WorkerID; ``ManagerID``, ``Email`` and ``OfficePhone`` empty.

    Each admin account in ``existing_admins`` whose person no longer matches the rule, or is no longer in
    the feed, gets an ``Inactive`` row (full data when the person is still in the feed; id, UPN and link
    otherwise).

    :param hr: normalised HR rows (:func:`~airflow_provider_entra.provisioning.normalise.normalise_hr`),
        with ``UserPrincipalName`` and canonical status.
    :param rule: who is privileged.
    :param upn_domain: the domain of admin UPNs (often a separate one, such as ``contoso.onmicrosoft.com``).
    :param id_prefix: externalId namespace of admin accounts.
    :param upn_prefix: prefix of admin UPNs.
    :param display_suffix: appended to the display name.
    :param existing_admins: the admin accounts' snapshot (``externalId``, ``UserPrincipalName``, ``active``,
        ``linked_external_id``), to keep UPNs stable and to disable accounts no longer justified.
    :param schema: HR column names.
    :param link_column: output column linking the admin account to the person's externalId.
    :return: a frame in the HR layout, one row per admin account, with a fresh index.
    """
    wid = schema.worker_id
    for col in (wid, schema.status, schema.upn):
        if col not in hr.columns:
            raise ValueError(f"derive_admin_accounts needs the normalised HR column {col!r}")
    match = rule.matches(hr, schema)
    person_active = (hr[schema.status] == "Active").fillna(False).astype(bool)
    people = hr[match.to_numpy()].copy()
    people[schema.status] = np.where(person_active[match].to_numpy(), "Active", "Inactive")

    existing = _existing(existing_admins, id_prefix)
    gone = existing[~isin_text(existing["person"], people[wid])]
    in_feed = isin_text(gone["person"], hr[wid])
    dropped = hr.set_index(wid).loc[gone.loc[in_feed, "person"]].reset_index()
    dropped[schema.status] = "Inactive"
    vanished = pd.DataFrame({wid: gone.loc[~in_feed, "person"].to_numpy(), schema.status: "Inactive"})

    source = pd.concat([people, dropped, vanished], ignore_index=True)
    source = source.astype({wid: TEXT_DTYPE, schema.status: TEXT_DTYPE})
    admins = source.copy()
    admins[link_column] = source[wid]
    admins[wid] = id_prefix + source[wid]
    if schema.user_id in admins.columns:
        admins[schema.user_id] = id_prefix + admins[schema.user_id].astype(TEXT_DTYPE)
    for attr in _BLANKED:
        col = getattr(schema, attr)
        if col in admins.columns:
            admins[col] = pd.Series(np.nan, index=admins.index, dtype=TEXT_DTYPE)
    if schema.full_name in admins.columns:
        name = admins[schema.full_name].astype(TEXT_DTYPE)
        if schema.first_name in admins.columns and schema.last_name in admins.columns:
            parts = admins[schema.first_name].fillna("") + " " + admins[schema.last_name].fillna("")
            name = name.fillna(parts.str.strip().replace("", np.nan))
        admins[schema.full_name] = name + display_suffix

    person_upn = source[schema.upn].astype(TEXT_DTYPE) if schema.upn in source.columns else None
    local = (
        from_arrow(pc.replace_substring_regex(to_arrow(person_upn), "@.*$", ""), admins.index)
        if person_upn is not None
        else pd.Series(np.nan, index=admins.index, dtype=TEXT_DTYPE)
    )
    bases = (upn_prefix + local.fillna("u" + source[wid].str.lower())).str.slice(0, 60).str.rstrip(".")
    existing_upns = existing.set_index("externalId")["UserPrincipalName"] if len(existing) else None
    upn = assign_upns(admins[wid], bases, upn_domain, existing_upns)
    admins[schema.upn] = upn
    admins[schema.mail_nickname] = upn.str.replace(r"@.*$", "", regex=True)
    return admins.reset_index(drop=True)


def _existing(existing_admins: pd.DataFrame | None, id_prefix: str) -> pd.DataFrame:
    """The admin snapshot with a ``person`` column (from ``linked_external_id``, else the id minus prefix)."""
    columns = ["externalId", "UserPrincipalName", "person"]
    if existing_admins is None or existing_admins.empty:
        return pd.DataFrame({c: pd.Series([], dtype=TEXT_DTYPE) for c in columns})
    ids = existing_admins["externalId"].astype(TEXT_DTYPE)
    stripped = ids.str.slice(len(id_prefix)).where(ids.str.startswith(id_prefix))
    link = existing_admins.get("linked_external_id")
    person = link.astype(TEXT_DTYPE).fillna(stripped) if link is not None else stripped
    upn = existing_admins.get("UserPrincipalName")
    return pd.DataFrame(
        {
            "externalId": ids.to_numpy(),
            "UserPrincipalName": (
                upn.astype(TEXT_DTYPE) if upn is not None else pd.Series(np.nan, dtype=TEXT_DTYPE)
            ).to_numpy(),
            "person": person.to_numpy(),
        }
    ).dropna(subset=["person"])


def derive_admins(
    hr_current_path: Any,
    admin_ledger: Any,
    mapping_path: Any,
    out_dir: Any,
    *,
    upn_domain: str,
    rule: PrivilegeRule = DEFAULT_PRIVILEGE_RULE,
    schema: HrSchema = HrSchema(),
) -> dict[str, Any]:
    """Derive the admin accounts from the committed HR feed and map them with the admin mapping.

    Writes ``admins.parquet`` (HR layout), ``mapped.parquet`` and ``quarantine.csv`` into ``out_dir``.

    :param hr_current_path: the normalised HR feed of the last committed HR run (``hr_current.parquet``).
    :param admin_ledger: the admin job's own ledger (keeps admin UPNs stable; disables admin accounts whose
        person left or lost the role).
    :param mapping_path: the admin mapping.
    :param out_dir: the run folder.
    :param upn_domain: the domain of admin UPNs.
    :param rule: who gets an admin account.
    :param schema: HR column names.
    :return: ``{"people", "admins", "active_admins", "mapped", "quarantined", "admins_path", "mapped_path",
        "quarantine_path"}``.
    """
    hr = read_frame(hr_current_path)
    if "row" in hr.columns:
        hr = hr.drop(columns="row")
    existing = read_ledger(admin_ledger).state
    admins = derive_admin_accounts(
        hr, rule, upn_domain=upn_domain, existing_admins=existing, schema=schema, link_column=LINK_COLUMN
    )
    records = map_records(admins, load_mapping(mapping_path).attributes)
    mapped = records.frame
    # The person behind each admin account, kept in the admin ledger (linked_external_id).
    mapped["linked_external_id"] = admins[LINK_COLUMN].to_numpy()[mapped.index.to_numpy(dtype=np.int64)]
    mapped = mapped.reset_index(drop=True)
    rejected = quarantine_frame(
        records.rejected["row"].to_numpy(dtype=np.int64),
        records.rejected["externalId"],
        "mapping",
        records.rejected["reason"],
    )
    summary = {
        "people": len(hr),
        "admins": len(admins),
        "active_admins": int((admins[schema.status] == "Active").sum()) if len(admins) else 0,
        "mapped": len(mapped),
        "quarantined": len(rejected),
        "admins_path": str(write_frame(admins, join(out_dir, ADMINS_NAME))),
        "mapped_path": str(write_frame(mapped, join(out_dir, MAPPED_NAME))),
        "quarantine_path": write_people_csv(rejected, join(out_dir, QUARANTINE_NAME)),
    }
    log.info(
        "%d admin account(s) (%d active) for %d people in %s; %d quarantined",
        summary["admins"],
        summary["active_admins"],
        summary["people"],
        hr_current_path,
        summary["quarantined"],
    )
    return summary
