"""Normalise an HR export: clean text, canonical status, typed flags and dates, stable unique UPNs.

The input layout is Microsoft's CSV2SCIM export (``WorkerID``, ``WorkerStatus``, ``FirstName``, ...); every
column name can be changed through :class:`HrSchema`. All work is column-at-a-time (pyarrow compute kernels
and pandas group operations), so a million-row export normalises in seconds.

Example::

    >>> import pandas as pd
    >>> hr = pd.DataFrame({"WorkerID": ["1"], "WorkerStatus": ["active"], "FirstName": [" José "],
    ...                    "LastName": ["Núñez"], "HireDate": ["2010-07-10"]})
    >>> out = normalise_hr(hr, upn_domain="contoso.com").frame
    >>> out.loc[0, ["WorkerStatus", "UserPrincipalName", "HireDate"]].tolist()
    ['Active', 'jose.nunez@contoso.com', '2010-07-10T00:00:00+00:00']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_entra.provisioning._hr import (
    TEXT_DTYPE,
    HrSchemaError,
    Reasons,
    canonical_status,
    check_offset,
    clean_frame,
    from_arrow,
    index_in,
    isin_text,
    parse_boolean,
    parse_dates,
    quarantine_frame,
    status_table,
    take_text,
    to_arrow,
    without_rows,
    worker_sort_key,
)

__all__ = [
    "CSV2SCIM_COLUMNS",
    "MAX_UPN_PREFIX_LENGTH",
    "HrSchema",
    "NormaliseResult",
    "assign_upns",
    "fold_for_upn",
    "normalise_hr",
]

#: Microsoft's CSV2SCIM HR export layout (PowerShell/CSV2SCIM samples, AzureAD/entra-id-inbound-provisioning).
CSV2SCIM_COLUMNS = (
    "WorkerID",
    "WorkerStatus",
    "WorkerType",
    "UserID",
    "FirstName",
    "LastName",
    "FullName",
    "GenderPronoun",
    "ManagerID",
    "HireDate",
    "OnLeave",
    "Department",
    "Division",
    "CostCenter",
    "Company",
    "Location",
    "JobTitle",
    "StreetAddress",
    "City",
    "CountryCode",
    "OfficePhone",
    "Custom01",
    "Custom02",
    "ZipCode",
)

#: Where a person's UPN comes from.
UPN_SOURCES = ("derive", "column")
#: What happens when a derived UPN belongs to another account Entra holds.
UPN_COLLISION_STRATEGIES = ("suffix", "fail")
#: A user principal name as Entra accepts it (a prefix of allowed characters, ``@``, a domain).
_UPN = r"^[A-Za-z0-9.'_!#^~+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"

#: Entra ID limit on the part of a userPrincipalName before the ``@``
#: (https://learn.microsoft.com/entra/identity/users/directory-service-limits-restrictions).
MAX_UPN_PREFIX_LENGTH = 64
#: Derived prefixes are cut to this length so a numeric collision suffix still fits the limit.
_UPN_BASE_LENGTH = MAX_UPN_PREFIX_LENGTH - 4

#: Letters that Unicode decomposition (NFKD) does not split into a base letter plus a mark.
_FOLD_LETTERS = {
    "ø": "o",
    "æ": "ae",
    "œ": "oe",
    "ß": "ss",
    "ł": "l",
    "đ": "d",
    "ð": "d",
    "þ": "th",
    "ħ": "h",
    "ı": "i",
}


@dataclass(frozen=True)
class HrSchema:
    """Names of the HR columns the pipeline reads, and how their values are spelled.

    Defaults follow Microsoft's CSV2SCIM layout (:data:`CSV2SCIM_COLUMNS`); the sample in ``dags/data`` adds
    ``Email``. Columns not named here pass through untouched (only trimmed and NFC-normalised).

    :param worker_id: the employee id; it becomes the SCIM ``externalId``.
    :param status: employment status; spellings in ``active_values``/``inactive_values``, case-insensitive.
    :param upn: output column for the derived userPrincipalName.
    :param mail_nickname: output column for the derived mailNickname (the UPN prefix).
    :param termination_date: the last day of employment, when the export has it (a date column; the plan's
        ``inactive_scope_days`` reads it).
    :param extra_date_columns: more columns to parse like ``hire_date``.
    :param extra_boolean_columns: more columns to parse like ``on_leave``.
    :param date_format: a ``strptime`` format for the date columns; ``None`` accepts ISO 8601.
    :param date_formats: per-column formats, ``((column, format), ...)``, winning over ``date_format`` (the
        formats the mapping's datetime attributes declare for their columns: declared once, parsed once).
    :param timezone: fixed UTC offset for dates that carry none.
    :param id_shape: the declared shape of the ids (``digits``, ``digits:6``, ``text``; see
        :mod:`~airflow_provider_entra.provisioning.ids`), ``None`` to learn it from the ledger.
    :param upn_from: ``derive`` (``first.last@domain``, unique and stable) or ``column`` (taken from
        ``upn_column``).
    :param upn_column: the export column holding each person's UPN (with ``upn_from="column"``).
    :param upn_domain: the domain of derived UPNs; ``None``: the caller's (the DAG's Param ``upn_domain``).
    :param upn_overrides: ``((WorkerID, UPN), ...)``: a person's UPN chosen by hand, winning over everything.
    :param upn_collisions: a derived UPN Entra already holds for another account: ``suffix`` (the person gets
        the next free one, ``first.last2``, on the next run) or ``fail`` (sent as it is, failing, and
        reported).
    """

    worker_id: str = "WorkerID"
    status: str = "WorkerStatus"
    worker_type: str = "WorkerType"
    user_id: str = "UserID"
    first_name: str = "FirstName"
    last_name: str = "LastName"
    full_name: str = "FullName"
    manager_id: str = "ManagerID"
    hire_date: str = "HireDate"
    termination_date: str = "TerminationDate"
    on_leave: str = "OnLeave"
    department: str = "Department"
    job_title: str = "JobTitle"
    email: str = "Email"
    office_phone: str = "OfficePhone"
    upn: str = "UserPrincipalName"
    mail_nickname: str = "MailNickname"
    extra_date_columns: tuple[str, ...] = ()
    extra_boolean_columns: tuple[str, ...] = ()
    date_format: str | None = None
    active_values: tuple[str, ...] = ("active", "a")
    inactive_values: tuple[str, ...] = ("inactive", "i", "terminated", "leaver")
    date_formats: tuple[tuple[str, str], ...] = ()
    timezone: str = "+00:00"
    id_shape: str | None = None
    upn_from: str = "derive"
    upn_column: str | None = None
    upn_domain: str | None = None
    upn_overrides: tuple[tuple[str, str], ...] = ()
    upn_collisions: str = "suffix"

    def __post_init__(self) -> None:
        if self.upn_from not in UPN_SOURCES:
            raise ValueError(f"upn from must be one of {', '.join(UPN_SOURCES)}, got {self.upn_from!r}")
        if self.upn_from == "column" and not self.upn_column:
            raise ValueError("upn from: column needs the UPN column's name (upn column)")
        if self.upn_collisions not in UPN_COLLISION_STRATEGIES:
            raise ValueError(
                f"upn collisions must be one of {', '.join(UPN_COLLISION_STRATEGIES)}, "
                f"got {self.upn_collisions!r}"
            )

    def canonical_names(self) -> dict[str, str]:
        """This layout's column of each role -> the CSV2SCIM name of that role (``Employee_ID`` ->
        ``WorkerID``), for the roles whose names differ: what turns any export into the layout the admin
        accounts read."""
        default = HrSchema()
        roles = (
            "worker_id", "status", "worker_type", "user_id", "first_name", "last_name", "full_name",
            "manager_id", "hire_date", "termination_date", "on_leave", "department", "job_title", "email",
            "office_phone",
        )  # fmt: skip
        return {
            getattr(self, r): getattr(default, r) for r in roles if getattr(self, r) != getattr(default, r)
        }

    def date_format_for(self, column: str) -> str | None:
        """The ``strptime`` format of one date column (a per-column declaration wins over ``date_format``)."""
        return dict(self.date_formats).get(column, self.date_format)

    @property
    def date_columns(self) -> tuple[str, ...]:
        """Columns parsed as dates and written as ISO 8601 with offset."""
        return (self.hire_date, self.termination_date, *self.extra_date_columns)

    @property
    def boolean_columns(self) -> tuple[str, ...]:
        """Columns parsed as true/false flags."""
        return (self.on_leave, *self.extra_boolean_columns)

    @property
    def status_values(self) -> dict[str, str]:
        """Lower-cased accepted spelling -> ``Active``/``Inactive``."""
        return status_table(self.active_values, self.inactive_values)


@dataclass(frozen=True)
class NormaliseResult:
    """What :func:`normalise_hr` returns.

    :param frame: the normalised rows (the input's index is kept, so ``frame.index`` are input row labels).
    :param rejected: quarantined rows: ``row``, ``externalId``, ``stage`` (``normalise``), ``reason``.
    """

    frame: pd.DataFrame
    rejected: pd.DataFrame


def fold_for_upn(s: pd.Series) -> pd.Series:
    """Fold text to the characters a UPN prefix may hold: ``José Núñez`` -> ``josenunez``.

    NFKD decomposition with the combining marks dropped, special letters spelled out (``ø`` -> ``o``,
    ``æ`` -> ``ae``, ``ß`` -> ``ss``, ``ł`` -> ``l``, ``đ`` -> ``d``, ...), lower case, then everything
    except ``a-z 0-9 . ' - _`` removed (spaces too). Missing stays missing.
    """
    arr = pc.utf8_lower(to_arrow(s))
    wide = pc.fill_null(pc.invert(pc.string_is_ascii(arr)), False)
    if pc.any(wide).as_py():  # only values with non-ASCII letters need the Unicode work
        sub = pc.replace_substring_regex(pc.utf8_normalize(arr.filter(wide), "NFKD"), r"\p{M}+", "")
        sub = pc.utf8_lower(sub)
        for letter, spelled in _FOLD_LETTERS.items():
            if pc.any(pc.match_substring(sub, letter)).as_py():
                sub = pc.replace_substring(sub, letter, spelled)
        arr = pc.replace_with_mask(arr, wide, sub)
    arr = pc.replace_substring_regex(arr, r"[^a-z0-9.'_-]+", "")
    return from_arrow(arr, s.index)


def _join_upn_base(first: pd.Series, last: pd.Series, worker_id: pd.Series) -> pd.Series:
    """``first.last`` (or whichever part exists), dots collapsed and trimmed, cut to fit a suffix."""
    f = fold_for_upn(first).fillna("")
    la = fold_for_upn(last).fillna("")
    dot = pd.Series(np.where((f != "") & (la != ""), ".", ""), index=first.index, dtype=TEXT_DTYPE)
    arr = to_arrow(f + dot + la)
    arr = pc.replace_substring_regex(arr, r"\.{2,}", ".")
    arr = pc.utf8_trim(arr, ".")
    arr = pc.utf8_slice_codeunits(arr, 0, _UPN_BASE_LENGTH)
    arr = pc.utf8_rtrim(arr, ".")
    base = from_arrow(arr, first.index)
    # Names that fold to nothing (for example written only in a non-Latin script) fall back to the id.
    empty = (base == "").to_numpy()
    if empty.any():
        base[empty] = "u" + fold_for_upn(worker_id[empty]).fillna("")
    return base


def assign_upns(
    worker_ids: pd.Series,
    bases: pd.Series,
    domain: str,
    existing_upns: pd.Series | None = None,
    *,
    first: pd.Series | None = None,
    taken_upns: Iterable[str] = (),
) -> pd.Series:
    """Give every worker a userPrincipalName that is stable and unique.

    * A worker whose externalId is in ``existing_upns`` keeps that UPN (names may change, UPNs do not).
    * Everybody else gets ``<base>@<domain>``; when that is already taken (by an existing UPN anywhere in the
      snapshot, or by another worker of this feed), the workers sharing a base are ordered (``first``
      rows ahead, then by WorkerID: shorter first, then text, so numeric ids sort numerically) and the
      first free of ``<base>``, ``<base>2``, ``<base>3``, ... is given in that order. Existing holders
      never move.

    :param worker_ids: one unique id per row.
    :param bases: the derived UPN prefix per row (see :func:`fold_for_upn`); only rows without an existing
        UPN are read, so a Series indexed by just those rows is enough.
    :param domain: the UPN suffix after ``@``.
    :param existing_upns: externalId -> UPN from the last committed snapshot.
    :param first: rows served before the others when they collide (:func:`normalise_hr` passes the active
        workers, so a joiner does not get a suffix because of a leaver who was never provisioned).
    :param taken_upns: UPNs other accounts hold in Entra (learnt from failed creates): never handed out.
    :return: the UPN per row, aligned with ``worker_ids``.
    """
    domain = _check_domain(domain)
    suffix = "@" + domain
    upn = pd.Series(np.nan, index=worker_ids.index, dtype=TEXT_DTYPE)
    taken = pd.Series([], dtype=TEXT_DTYPE)
    if existing_upns is not None and len(existing_upns):
        existing = existing_upns.astype(TEXT_DTYPE)
        if existing.isna().any():
            existing = existing.dropna()
        holders = pd.Index(existing.index, dtype=TEXT_DTYPE)
        if not holders.is_unique:
            keep = ~holders.duplicated(keep="last")
            existing, holders = existing[keep], holders[keep]
        upn = take_text(existing, index_in(worker_ids, holders), worker_ids.index)
        taken = existing.str.lower()
    extra = pd.Series([str(u).lower() for u in taken_upns if u], dtype=TEXT_DTYPE)
    if len(extra):
        taken = pd.concat([taken, extra], ignore_index=True)

    new = upn.isna()
    if not new.any():
        return upn
    key = worker_sort_key(worker_ids[new])
    pending = pd.DataFrame(
        {
            "base": bases.reindex(key.index).astype(TEXT_DTYPE).str.lower().to_numpy(),
            "_later": ~first.reindex(key.index).fillna(False).astype(bool).to_numpy()
            if first is not None
            else np.zeros(len(key), dtype=bool),
            "_len": key["_len"].to_numpy(),
            "_id": key["_id"].to_numpy(),
        },
        index=key.index,
    )
    if pending["base"].isna().any():
        raise ValueError("assign_upns: a worker without an existing UPN has no base to derive one from")
    pending = pending.sort_values(["base", "_later", "_len", "_id"], kind="stable")

    # Only taken UPNs with the same stem (prefix without trailing digits) as a pending base can collide.
    pending_stem = _stem(pending["base"])
    taken_stem = _stem(taken)
    relevant = isin_text(taken_stem, pending_stem)
    taken, taken_stem = taken[relevant], taken_stem[relevant]

    # Fast path: a base nobody else in the feed or the snapshot uses is taken as it is.
    candidate = pending["base"] + suffix
    lone = ~pending["base"].duplicated(keep=False).to_numpy() & ~isin_text(candidate, taken)
    upn[pending.index[lone]] = candidate[lone]
    taken = pd.concat([taken, candidate[lone]], ignore_index=True)
    taken_stem = pd.concat([taken_stem, pending_stem[lone]], ignore_index=True)
    pending = pending[~lone]
    if pending.empty:
        return upn
    _assign_suffixes(pending, upn, taken, taken_stem, suffix)
    return upn


def _assign_suffixes(
    pending: pd.DataFrame, upn: pd.Series, taken: pd.Series, taken_stem: pd.Series, suffix: str
) -> None:
    """Hand out ``<base>``, ``<base>2``, ... to colliding workers, in ``pending`` order, skipping taken ones.

    Each base looks at a window of numbers big enough for its workers plus every taken UPN and every other
    pending worker sharing its stem, so one round nearly always serves everybody; a group that still falls
    short gets a wider window in another round.
    """
    stems = _stem(pending["base"])
    # Per stem: every taken UPN and every pending worker that could claim a number in a base's window.
    budget = taken_stem.value_counts().add(stems.value_counts(), fill_value=0)
    # Different stems never produce the same candidate; only bases sharing a stem (``ann.lee``, ``ann.lee2``)
    # can offer each other's candidates, and only then are duplicates looked for.
    shared_stems = bool(_stem(pd.Series(pending["base"].unique(), dtype=TEXT_DTYPE)).duplicated().any())
    start = pd.Series(1, index=pd.Index(pending["base"].unique(), dtype=TEXT_DTYPE), dtype="int64")
    extra = 1
    while len(pending):
        size = pending.groupby("base", sort=False).size()
        bases = pd.Series(size.index, dtype=TEXT_DTYPE)
        first_number = start.reindex(size.index).to_numpy()
        window = budget.reindex(_stem(bases).to_numpy()).fillna(0).to_numpy(dtype=np.int64) + extra
        owner = np.repeat(np.arange(len(size)), window)
        offset = np.arange(len(owner)) - np.repeat(np.cumsum(window) - window, window)
        number = first_number[owner] + offset
        group = from_arrow(to_arrow(bases).take(pa.array(owner)), pd.RangeIndex(len(owner)))
        numbered = group + pd.Series(number, dtype="int64").astype(TEXT_DTYPE)
        cand = from_arrow(pc.if_else(pa.array(number == 1), to_arrow(group), to_arrow(numbered)), group.index)
        cand = cand + suffix
        free = ~isin_text(cand, taken)
        if shared_stems:
            free &= ~cand.duplicated().to_numpy()
        # The r-th free candidate of a base goes to the r-th pending worker of that base.
        free_rank = pd.Series(free.astype(np.int64)).groupby(owner).cumsum().to_numpy() - 1
        offers = pd.DataFrame({"owner": owner[free], "rank": free_rank[free], "cand": cand[free].to_numpy()})
        wanted = pd.DataFrame(
            {
                "owner": size.index.get_indexer(pending["base"]),
                "rank": pending.groupby("base", sort=False).cumcount().to_numpy(),
            }
        )
        got = wanted.merge(offers, on=["owner", "rank"], how="left")["cand"]  # keeps wanted's row order
        served = got.notna().to_numpy()
        upn[pending.index[served]] = got[served].to_numpy()
        taken = pd.concat([taken, got[served].astype(TEXT_DTYPE)], ignore_index=True)
        short = pending["base"][~served].unique()
        if len(short):
            pos = size.index.get_indexer(short)
            start.loc[short] = first_number[pos] + window[pos]
        pending = pending[~served]
        extra *= 8


def _stem(s: pd.Series) -> pd.Series:
    """The UPN prefix without its domain and trailing digits: ``ann.lee12@x.com`` -> ``ann.lee``."""
    return from_arrow(pc.replace_substring_regex(to_arrow(s), r"\d*(?:@.*)?$", ""), s.index)


def _check_domain(domain: str) -> str:
    domain = (domain or "").strip().lower()
    if not domain or "@" in domain or " " in domain or "." not in domain:
        raise ValueError(f"upn_domain must be a domain name like 'contoso.com', got {domain!r}")
    return domain


def _given_upns(frame: pd.DataFrame, wid: pd.Series, schema: HrSchema) -> tuple[pd.Series, pd.Series] | None:
    """UPNs the export or the mapping gives (the ``upn_column``, then per-person overrides), and the rows
    whose given UPN is missing or not a UPN; ``None`` when every UPN is derived."""
    overrides = dict(schema.upn_overrides)
    if schema.upn_from != "column" and not overrides:
        return None
    if schema.upn_from == "column":
        if schema.upn_column not in frame.columns:
            raise HrSchemaError(
                f"HR export is missing the UPN column {schema.upn_column} (upn from: column)",
                missing=[str(schema.upn_column)],
            )
        given = frame[schema.upn_column].astype(TEXT_DTYPE).str.strip().str.lower()
        expected = wid.notna()
    else:
        given = pd.Series(np.nan, index=frame.index, dtype=TEXT_DTYPE)
        expected = wid.isin(list(overrides))
    if overrides:
        given = wid.map(overrides).astype(TEXT_DTYPE).str.strip().str.lower().fillna(given)
    valid = given.str.match(_UPN).fillna(False).astype(bool)
    given = given.where(valid, np.nan)
    return given, expected & given.isna()


def _upn_problem(schema: HrSchema) -> str:
    if schema.upn_from == "column":
        return f"{schema.upn_column}: missing or not a user principal name (upn from: column)"
    return "UserPrincipalName: the override in the mapping (upn overrides) is not a user principal name"


def normalise_hr(
    df: pd.DataFrame,
    *,
    schema: HrSchema = HrSchema(),
    upn_domain: str,
    existing_upns: pd.Series | None = None,
    timezone: str | None = None,
    taken_upns: Iterable[str] = (),
) -> NormaliseResult:
    """Normalise an HR export (best after :func:`~airflow_provider_entra.provisioning.validate.validate_hr`).

    * every column: text, trimmed, Unicode NFC, empty -> missing;
    * status -> ``Active``/``Inactive`` (``active``, ``a``, ``inactive``, ``i``, ``terminated``, ``leaver``,
      any case); anything else is quarantined;
    * flag columns (``OnLeave``) -> nullable boolean from true/false, yes/no, y/n, t/f, 1/0;
    * date columns (``HireDate``) -> ISO 8601 with time and offset, ``2010-07-10T00:00:00+00:00``;
    * ``UserPrincipalName`` = ``first.last@domain`` folded to ASCII, unique, stable (see :func:`assign_upns`;
      on a collision active workers are served before inactive ones, then WorkerID order decides);
      ``MailNickname`` = the UPN prefix. A ``UserPrincipalName`` column in the input is replaced.

    Rows with a blank or repeated WorkerID, an unknown status, or an unreadable date or flag are quarantined
    (they receive no UPN, so they cannot push another worker's UPN suffix).

    :param df: the HR export (text columns, see
        :func:`~airflow_provider_entra.provisioning.hr_source.read_hr_csv`).
    :param schema: column names and accepted spellings.
    :param upn_domain: the domain after ``@`` in derived UPNs.
    :param existing_upns: externalId -> UPN from the last committed snapshot (kept for existing workers).
    :param timezone: fixed UTC offset for dates that carry none, and for all output dates (default: the
        schema's).
    :param taken_upns: UPNs other accounts hold in Entra (a failed create said so): never derived again
        (with ``schema.upn_collisions == "suffix"``; the caller passes none for ``fail``).
    :return: :class:`NormaliseResult` with ``.frame`` and ``.rejected``.
    :raises HrSchemaError: when the WorkerID, status or name columns are missing.
    """
    timezone = check_offset(timezone or schema.timezone)
    _check_domain(upn_domain)
    needed = [schema.worker_id, schema.status, schema.first_name, schema.last_name]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise HrSchemaError(f"HR export is missing required column(s): {', '.join(missing)}", missing=missing)
    if not df.index.is_unique:
        df = df.reset_index(drop=True)

    frame = clean_frame(df)
    reasons = Reasons(frame.index)
    wid = frame[schema.worker_id]
    reasons.add(wid.isna(), f"{schema.worker_id}: missing")
    repeated = wid.notna() & wid.duplicated(keep=False)
    reasons.add(repeated, f"{schema.worker_id}: appears in more than one row (run validate_hr first)")

    raw_status = frame[schema.status]
    status, unknown = canonical_status(raw_status, schema.status_values)
    reasons.add(raw_status.isna(), f"{schema.status}: missing")
    reasons.add_values(unknown, f"{schema.status}: unknown value '", raw_status, "'")
    frame[schema.status] = status

    for col in schema.boolean_columns:
        if col in frame.columns:
            parsed, bad = parse_boolean(frame[col])
            reasons.add_values(bad, f"{col}: cannot read '", frame[col], "' as true/false")
            frame[col] = parsed
    for col in schema.date_columns:
        if col in frame.columns:
            iso, bad = parse_dates(frame[col], timezone, schema.date_format_for(col))
            reasons.add_values(bad, f"{col}: cannot parse '", frame[col], "' as a date")
            frame[col] = iso

    given_upns = _given_upns(frame, wid, schema)
    given = given_upns[0] if given_upns is not None else None
    if given_upns is not None:
        reasons.add(given_upns[1], _upn_problem(schema))
        taken_twice = given_upns[0].notna() & given_upns[0].duplicated(keep=False)
        reasons.add_values(
            taken_twice, "UserPrincipalName: '", given_upns[0], "' is given to more than one worker"
        )

    why = reasons.result()
    rejected = quarantine_frame(why.index, wid[why.index], "normalise", why)
    if len(why):
        frame = without_rows(frame, why.index)
        given = given.drop(why.index) if given is not None else None

    wid = frame[schema.worker_id]
    if schema.upn_from == "column" and given is not None:
        upns = given.where(given.notna(), np.nan).astype(TEXT_DTYPE)
    else:
        # Only workers without a UPN in the ledger (or given by hand) need one derived.
        keep = existing_upns
        chosen = given.dropna() if given is not None else pd.Series([], dtype=TEXT_DTYPE)
        if len(chosen):
            by_id = pd.Series(chosen.to_numpy(), index=wid[chosen.index].to_numpy(), dtype=TEXT_DTYPE)
            keep = by_id if keep is None else pd.concat([keep[~keep.index.isin(by_id.index)], by_id])
        known = isin_text(wid, keep.dropna().index) if keep is not None else np.zeros(len(wid), bool)
        new = frame.loc[~known, [schema.first_name, schema.last_name, schema.worker_id]]
        bases = _join_upn_base(new[schema.first_name], new[schema.last_name], new[schema.worker_id])
        active = frame[schema.status] == "Active"
        upns = assign_upns(wid, bases, upn_domain, keep, first=active, taken_upns=taken_upns)
    frame[schema.upn] = upns
    frame[schema.mail_nickname] = from_arrow(
        pc.replace_substring_regex(to_arrow(upns), "@.*$", ""), frame.index
    )
    return NormaliseResult(frame=frame, rejected=rejected)
