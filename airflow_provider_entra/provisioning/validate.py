"""Validation gates for an HR export, with row-level quarantine.

A problem with the file as a whole (a required column is missing, two columns share a name) raises
:class:`HrSchemaError`, which fails the task with a message naming the columns. A problem with one row
quarantines that row with a reason naming the field, and every other row proceeds.

Every input row ends up in exactly one of ``valid``, ``rejected`` or ``collapsed``::

    len(result.valid) + len(result.rejected) + len(result.collapsed) == len(df)

Nothing is escaped or neutralised here: a value such as ``=SUM(A1)`` is data, sent as it is; the reports
escape what they render. Control characters are different: Entra cannot store them, so such rows are rejected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from airflow_provider_entra.provisioning._hr import (
    CONTROL_CHARS_RE2,
    QUARANTINE_COLUMNS,
    TEXT_DTYPE,
    HrSchemaError,
    Reasons,
    canonical_status,
    clean_frame,
    concat_quarantine,
    describe_columns,
    has_control_chars,
    index_in,
    isin_text,
    matches,
    parse_boolean,
    parse_dates,
    quarantine_frame,
    text_length,
    to_arrow,
    without_rows,
)
from airflow_provider_entra.provisioning.normalise import HrSchema

__all__ = [
    "ENTRA_MAX_LENGTHS",
    "MAX_EXTERNAL_ID_LENGTH",
    "QUARANTINE_COLUMNS",
    "HrSchemaError",
    "ValidationResult",
    "concat_quarantine",
    "quarantine_frame",
    "validate_hr",
]

STAGE = "validate"

_SHOWN_COLUMNS = 5

#: Longest WorkerID accepted as an externalId.
MAX_EXTERNAL_ID_LENGTH = 64

#: Entra ID attribute limits (https://learn.microsoft.com/graph/api/resources/user): givenName and surname
#: 64 characters, displayName 256.
ENTRA_MAX_LENGTHS = {"givenName": 64, "surname": 64, "displayName": 256}


@dataclass(frozen=True)
class ValidationResult:
    """What :func:`validate_hr` returns.

    :param valid: rows that passed every gate: text trimmed, NFC, empty -> missing; the input index is kept.
    :param rejected: quarantined rows: ``row``, ``externalId``, ``stage`` (``validate``), ``reason``.
    :param warnings: rows that proceed but deserve a look (same columns as ``rejected``), e.g. a manager
        reference that will not resolve.
    :param collapsed: exact duplicate rows dropped in favour of an identical earlier row:
        ``row``, ``externalId``, ``kept_row``.
    """

    valid: pd.DataFrame
    rejected: pd.DataFrame
    warnings: pd.DataFrame
    collapsed: pd.DataFrame

    @property
    def duplicates_collapsed(self) -> int:
        """How many exact duplicate rows were dropped."""
        return len(self.collapsed)


def validate_hr(
    df: pd.DataFrame,
    *,
    schema: HrSchema = HrSchema(),
    required: Sequence[str] | None = None,
    known_ids: Iterable[str] | pd.Series | pd.Index | None = None,
    max_lengths: Mapping[str, int] | None = None,
) -> ValidationResult:
    """Check an HR export and quarantine the rows that cannot be provisioned.

    Whole-file gates (raise :class:`HrSchemaError`): a required column is missing; two columns share a name.

    Row gates (quarantine with a reason naming the field; one row may collect several reasons):

    * a required value is missing (``WorkerID: missing``);
    * WorkerID contains whitespace, or is longer than :data:`MAX_EXTERNAL_ID_LENGTH`;
    * any value contains a control character (NUL, or a tab/line break inside the value);
    * unknown status (see :attr:`HrSchema.active_values`), unreadable flag (``OnLeave``), unparseable date;
    * FirstName, LastName or FullName longer than Entra stores (64, 64, 256);
    * the worker is their own manager;
    * WorkerID repeated with different values: every row of that id is rejected (which one is right is for HR
      to say), and each reason names the other rows and the columns that differ. Rows that repeat another row
      exactly are collapsed into the first one (see ``collapsed``), not rejected.

    A ManagerID that is neither a valid worker of this export nor in ``known_ids`` (the snapshot) is only a
    warning: the worker is still provisioned, but Entra will leave the manager reference unresolved.

    :param df: the HR export as text (see :func:`~airflow_provider_entra.provisioning.hr_source.read_hr_csv`).
    :param schema: column names and accepted spellings.
    :param required: columns that must exist and hold a value in every row; default WorkerID, status, first
        and last name (as named by ``schema``).
    :param known_ids: externalIds already provisioned (the snapshot's), for the manager check.
    :param max_lengths: column -> longest allowed value, replacing the Entra defaults above.
    :return: :class:`ValidationResult`.
    :raises HrSchemaError: when the file as a whole cannot be used.
    """
    if required is None:
        required = (schema.worker_id, schema.status, schema.first_name, schema.last_name)
    repeated_names = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if repeated_names:
        raise HrSchemaError(f"HR export has duplicate column name(s): {', '.join(repeated_names)}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise HrSchemaError(
            f"HR export is missing required column(s): {', '.join(missing)} ({describe_columns(df.columns)})",
            missing=missing,
        )
    if not df.index.is_unique:
        df = df.reset_index(drop=True)

    clean = clean_frame(df)
    wid_col = schema.worker_id
    collapsed, clean, repeated = _collapse_exact_duplicates(clean, wid_col)
    wid = clean[wid_col]
    reasons = Reasons(clean.index)

    for col in required:
        reasons.add(clean[col].isna(), f"{col}: missing")
    reasons.add(matches(wid, r"\s"), f"{wid_col}: contains whitespace")
    _add_length_checks(clean, reasons, schema, max_lengths)
    _add_control_char_checks(clean, reasons)

    if schema.status in clean.columns:
        status = clean[schema.status]
        _, unknown = canonical_status(status, schema.status_values)
        reasons.add_values(unknown, f"{schema.status}: unknown value '", status, "'")
    for col in schema.boolean_columns:
        if col in clean.columns:
            _, bad = parse_boolean(clean[col])
            reasons.add_values(bad, f"{col}: cannot read '", clean[col], "' as true/false")
    for col in schema.date_columns:
        if col in clean.columns:
            _, bad = parse_dates(clean[col], "+00:00", schema.date_format, output=False)
            reasons.add_values(bad, f"{col}: cannot parse '", clean[col], "' as a date")
    if schema.manager_id in clean.columns:
        own = clean[schema.manager_id].notna() & (clean[schema.manager_id] == wid)
        reasons.add(own.fillna(False).astype(bool), f"{schema.manager_id}: the worker is their own manager")

    reasons_dup = _conflicting_duplicates(repeated, wid_col)
    if len(reasons_dup):
        mask = pd.Series(False, index=clean.index)
        mask[reasons_dup.index] = True
        reasons.add(mask, reasons_dup.reindex(clean.index))

    why = reasons.result()
    rejected = quarantine_frame(why.index, wid[why.index], STAGE, why)
    valid = without_rows(clean, why.index)
    cycles = _management_cycles(valid, schema)
    if len(cycles):
        rejected = concat_quarantine([rejected, cycles]).sort_values("row", kind="stable", ignore_index=True)
        valid = without_rows(valid, pd.Index(cycles["row"]))
    warnings = concat_quarantine([_unknown_managers(valid, schema, known_ids), _shared_emails(valid, schema)])
    return ValidationResult(valid=valid, rejected=rejected, warnings=warnings, collapsed=collapsed)


def _collapse_exact_duplicates(
    clean: pd.DataFrame, wid_col: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Drop rows identical (after cleaning) to an earlier row with the same WorkerID.

    :return: the collapsed rows, the remaining frame, and the remaining rows whose WorkerID was repeated.
    """
    empty = pd.DataFrame({"row": pd.Series([], dtype="int64"), "externalId": [], "kept_row": []})
    candidates = clean[(clean[wid_col].notna() & clean[wid_col].duplicated(keep=False)).to_numpy()]
    if candidates.empty:
        return empty, clean, candidates
    group = candidates.groupby(list(candidates.columns), dropna=False, sort=False).ngroup()
    first_label = pd.Series(candidates.index, index=candidates.index).groupby(group).transform("first")
    dropped = candidates.index[group.duplicated(keep="first").to_numpy()]
    if len(dropped) == 0:
        return empty, clean, candidates
    collapsed = pd.DataFrame(
        {
            "row": dropped,
            "externalId": candidates.loc[dropped, wid_col].to_numpy(),
            "kept_row": first_label[dropped].to_numpy(),
        }
    )
    return collapsed, without_rows(clean, dropped), without_rows(candidates, dropped)


def _conflicting_duplicates(repeated: pd.DataFrame, wid_col: str) -> pd.Series:
    """Reason per row for WorkerIDs that appear in several rows with different values."""
    dup = repeated[repeated[wid_col].duplicated(keep=False).to_numpy()]
    if dup.empty:
        return pd.Series([], dtype=object)
    differing = dup.groupby(wid_col, sort=False).nunique(dropna=False)
    labels = pd.Series(dup.index, index=dup.index).groupby(dup[wid_col], sort=False).agg(list)
    out: dict[object, str] = {}
    for worker, rows in labels.items():
        cols = [str(c) for c in differing.columns if differing.at[worker, c] > 1]
        shown = ", ".join(cols[:_SHOWN_COLUMNS]) + (
            f" and {len(cols) - _SHOWN_COLUMNS} more" if len(cols) > _SHOWN_COLUMNS else ""
        )
        for row in rows:
            others = ", ".join(str(r) for r in rows if r != row)
            out[row] = (
                f"{wid_col}: '{worker}' also appears in row(s) {others} with different values"
                f" ({shown}); every row of this id is held back until HR fixes it"
            )
    return pd.Series(out, dtype=object)


def _add_length_checks(
    clean: pd.DataFrame, reasons: Reasons, schema: HrSchema, max_lengths: Mapping[str, int] | None
) -> None:
    limits = (
        dict(max_lengths)
        if max_lengths is not None
        else {
            schema.worker_id: MAX_EXTERNAL_ID_LENGTH,
            schema.first_name: ENTRA_MAX_LENGTHS["givenName"],
            schema.last_name: ENTRA_MAX_LENGTHS["surname"],
            schema.full_name: ENTRA_MAX_LENGTHS["displayName"],
        }
    )
    for col, limit in limits.items():
        if col in clean.columns:
            length = text_length(clean[col])
            reasons.add_values(length > limit, f"{col}: longer than {limit} characters (", length, ")")


def _add_control_char_checks(clean: pd.DataFrame, reasons: Reasons) -> None:
    for col in clean.columns:
        hit = has_control_chars(clean[col])
        if not hit.any():
            continue
        chars = pc.extract_regex(to_arrow(clean.loc[hit, col]), f"(?P<c>{CONTROL_CHARS_RE2})").field("c")
        codes = [f"U+{ord(c):04X}" for c in chars.to_pylist()]
        message = pd.Series(
            [f"{col}: contains control character {code}" for code in codes], index=hit[hit].index
        )
        reasons.add(hit, message.reindex(clean.index))


def _management_cycles(valid: pd.DataFrame, schema: HrSchema) -> pd.DataFrame:
    """Quarantine rows whose management chain loops back to them (A reports to B, B to A).

    Entra stores whatever manager it is sent, so a loop would be written to the directory. Each worker has at
    most one manager, so after repeatedly removing the workers nobody reports to, exactly the loops remain.
    """
    if schema.manager_id not in valid.columns or valid.empty:
        return quarantine_frame(stage=STAGE)
    ids = valid[schema.worker_id].astype(TEXT_DTYPE)
    target = index_in(valid[schema.manager_id].astype(TEXT_DTYPE), ids)
    alive = target >= 0
    while True:
        reported = np.bincount(target[alive], minlength=len(ids)) > 0
        leaves = alive & ~reported
        if not leaves.any():
            break
        alive &= ~leaves
    if not alive.any():
        return quarantine_frame(stage=STAGE)
    rows = np.flatnonzero(alive)
    reasons = []
    for start in rows:
        chain = [ids.iloc[start]]
        node = target[start]
        while node != start and len(chain) < 10:
            chain.append(ids.iloc[node])
            node = target[node]
        chain.append(ids.iloc[start] if node == start else "...")
        reasons.append(
            f"{schema.manager_id}: management cycle {' -> '.join(chain)}; Entra would store a loop of "
            "managers, so these workers are held until HR fixes the chain"
        )
    labels = valid.index[rows]
    return quarantine_frame(labels, ids.iloc[rows], STAGE, reasons)


def _shared_emails(valid: pd.DataFrame, schema: HrSchema) -> pd.DataFrame:
    """Warn about one email address on several workers (an address belongs to one person in Entra)."""
    if schema.email not in valid.columns or valid.empty:
        return quarantine_frame(stage=STAGE)
    email = valid[schema.email].astype(TEXT_DTYPE).str.lower()
    shared = email.notna() & email.duplicated(keep=False)
    if not shared.any():
        return quarantine_frame(stage=STAGE)
    rows = valid.index[shared.to_numpy()]
    owners = valid.loc[rows, schema.worker_id].astype(str).groupby(email[shared].to_numpy()).agg(", ".join)
    reason = [
        f"{schema.email}: '{valid.at[r, schema.email]}' is the email of several workers ({owners[e]}); "
        "an address belongs to one person in Entra"
        for r, e in zip(rows, email[shared], strict=True)
    ]
    return quarantine_frame(rows, valid.loc[rows, schema.worker_id], STAGE, reason)


def _unknown_managers(
    valid: pd.DataFrame, schema: HrSchema, known_ids: Iterable[str] | pd.Series | pd.Index | None
) -> pd.DataFrame:
    if schema.manager_id not in valid.columns or valid.empty:
        return quarantine_frame(stage=STAGE)
    manager = valid[schema.manager_id]
    # Hash the (few) distinct managers, then probe with the (many) ids: cheaper than the other way round.
    managers = pd.Series(manager.dropna().unique(), dtype=TEXT_DTYPE)
    found = valid[schema.worker_id][isin_text(valid[schema.worker_id], managers)]
    if known_ids is not None:
        known = known_ids if isinstance(known_ids, (pd.Series, pd.Index)) else pd.Series(list(known_ids))
        known = pd.Series(known, copy=False) if isinstance(known, pd.Index) else known
        found = pd.concat([found, known[isin_text(known, managers)].astype(TEXT_DTYPE)])
    unknown = managers[~isin_text(managers, found)]
    unresolved = pd.Series(isin_text(manager, unknown), index=manager.index)
    if not unresolved.any():
        return quarantine_frame(stage=STAGE)
    rows = valid.index[unresolved.to_numpy()]
    reason = (
        f"{schema.manager_id}: '"
        + manager[unresolved]
        + "' is neither a valid worker of this export nor provisioned before; the manager reference will"
        " not resolve in Entra"
    )
    return quarantine_frame(rows, valid.loc[rows, schema.worker_id], STAGE, reason)
