"""Join every externalId sent in a run to its final outcome in Entra's provisioning logs.

``bulkUpload`` answers ``202 Accepted`` with no per-record result; what happened to each record appears only
in the provisioning logs (``GET /auditLogs/provisioning``), minutes later, sometimes as several entries. This
module turns those entries into one row per externalId sent:

>>> outcomes = reconcile(entries, ["10018", "10019", "99999"])          # doctest: +SKIP
>>> outcomes.loc[:, ["external_id", "status", "action", "resolved_later"]]  # doctest: +SKIP
  external_id   status  action  resolved_later
0       10018  success  update            True
1       10019  success  update            True
2       99999  missing     NaN           False

How the final outcome is chosen
-------------------------------
* Entries are correlated by ``sourceIdentity.id`` (the externalId sent). ``bulkId`` never appears in the logs.
* The outcome is the **latest** entry for that externalId by ``activityDateTime``, whatever order the entries
  arrive in. Ties on the timestamp (the log has one-second resolution) are broken by action: a ``create``
  sorts before any other action, so the ``update`` Entra writes about a second after a ``create`` wins even
  when both carry the same timestamp. Remaining ties fall back to the entry ``id``, so the result never
  depends on arrival order.
* A manager created in the same cycle yields an ``EntrySynchronizationSkip`` step with
  ``SkipReason: UnableToResolveReferenceAttributeValue`` and, about a second later, an ``update`` entry that
  sets the manager. When a later entry without that skip succeeds, the record is ``success`` with
  ``resolved_later=True``: the earlier skip is not a failure.
* When the **final** entry still carries the unresolved-reference skip, the record is flagged
  ``unresolved_reference=True``. Entra reports such an entry as ``success`` (the user was written), but the
  manager was not set, so its status here is ``warning`` and ``error_code`` is
  ``UnableToResolveReferenceAttributeValue``: a caller that commits only ``success`` rows to its snapshot then
  resends the record next run, when the manager may exist. A top-level ``skipped`` entry stays ``skipped``.
* Records with no entry at all are ``missing``.
* v1.0 fields (``provisioningStatusInfo``, ``provisioningAction``) are read first; the beta legacy fields
  (``statusInfo`` with the error fields at its top level, ``action`` such as ``"Create"``) fill in when the
  v1.0 ones are absent.

Entries about externalIds that were not sent are ignored and counted (:class:`ReconcileResult`, and the
``attrs`` of the frame :func:`reconcile` returns).

Which entries belong to this run
--------------------------------
A record is verified only by its own entries. Entra processes a record, and so dates its entries, at or
after the moment Graph accepted the request that carried it: the ``Date`` header of the 202, Microsoft's
clock (see :attr:`~airflow_provider_entra.hooks.entra.BulkUploadReceipt.accepted_at`). Pass those times as
``accepted_at`` (externalId -> acceptance time): an entry counts for record X only when its
``activityDateTime >= accepted_at[X] - tolerance_seconds``. The default tolerance, 1 second, covers the
whole-second resolution of both clocks; two runs seconds apart never share an entry (an earlier run's
``create`` cannot stand in for this run's ``skipped``). Records without a known acceptance fall back to
``since`` (a window on the local submit clock, with whatever margin the caller chose). Dropped entries are
counted as ``stale_entries``.

Pure pandas: no Airflow, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "OUTCOME_COLUMNS",
    "STATUS_FAILURE",
    "STATUS_MISSING",
    "STATUS_SKIPPED",
    "STATUS_SUCCESS",
    "STATUS_WARNING",
    "STATUSES",
    "UNRESOLVED_REFERENCE",
    "DEFAULT_TOLERANCE_SECONDS",
    "ReconcileResult",
    "acceptance_times",
    "failure_reasons",
    "flatten_entries",
    "outcome_summary",
    "reconcile",
    "reconcile_detailed",
    "records_to_resend",
    "skip_details",
]

#: ``provisioningStatusInfo.status`` values (provisioningResult), see
#: https://learn.microsoft.com/en-us/graph/api/resources/provisioningstatusinfo
STATUS_SUCCESS = "success"
STATUS_WARNING = "warning"
STATUS_FAILURE = "failure"
STATUS_SKIPPED = "skipped"
#: Our own status: an externalId was sent but no log entry arrived for it.
STATUS_MISSING = "missing"
#: Display and table order of the statuses.
STATUSES: tuple[str, ...] = (STATUS_SUCCESS, STATUS_WARNING, STATUS_FAILURE, STATUS_SKIPPED, STATUS_MISSING)

#: ``provisioningAction`` values, see https://learn.microsoft.com/en-us/graph/api/resources/provisioningobjectsummary
ACTIONS: tuple[str, ...] = ("create", "update", "disable", "delete", "stageddelete", "other")
ACTION_CREATE = "create"

#: ``SkipReason`` of the ``EntrySynchronizationSkip`` step written when a manager reference cannot be
#: resolved yet (Microsoft's log sample, ``Samples/InboundAPI_logSample.txt`` in
#: AzureAD/entra-id-inbound-provisioning).
UNRESOLVED_REFERENCE = "UnableToResolveReferenceAttributeValue"

#: How much earlier than a record's acceptance (the 202's ``Date``) an entry may be dated and still count for
#: that record. Both timestamps are Microsoft's, truncated to whole seconds, and an upload's entries are
#: written after it was accepted, so none is dated before its own ``Date``: 0 is exact, and any more lets an
#: entry of a run seconds earlier count (a second run one second after the first shared its entry with 1 s).
DEFAULT_TOLERANCE_SECONDS = 0.0

#: Columns of the frame :func:`reconcile` returns, in order.
OUTCOME_COLUMNS: tuple[str, ...] = (
    "external_id",
    "status",
    "action",
    "error_code",
    "reason",
    "recommended_action",
    "cycle_id",
    "change_id",
    "activity_time",
    "entra_object_id",
    "upn",
    "entries",
    "resolved_later",
    "unresolved_reference",
)

# Columns of one flattened log entry (see flatten_entries).
_ENTRY_COLUMNS: tuple[str, ...] = (
    "entry_id",
    "external_id",
    "activity_time",
    "status",
    "action",
    "error_code",
    "reason",
    "recommended_action",
    "cycle_id",
    "change_id",
    "entra_object_id",
    "upn",
    "reference_skip",
)


@dataclass(frozen=True)
class ReconcileResult:
    """Outcomes plus what was left out while reconciling.

    :param outcomes: one row per externalId sent, columns :data:`OUTCOME_COLUMNS`.
    :param total_entries: log entries received.
    :param ignored_entries: entries about externalIds that were not in the sent list.
    :param ignored_external_ids: those externalIds (sorted, unique).
    :param stale_entries: entries dropped because they are older than their record's acceptance minus the
        tolerance (or than ``since`` for a record without a known acceptance).
    :param invalid_entries: entries without ``sourceIdentity.id`` or a parseable ``activityDateTime``.
    """

    outcomes: pd.DataFrame
    total_entries: int = 0
    ignored_entries: int = 0
    ignored_external_ids: tuple[str, ...] = field(default_factory=tuple)
    stale_entries: int = 0
    invalid_entries: int = 0

    def summary(self) -> pd.DataFrame:
        """Action x status counts with totals, see :func:`outcome_summary`."""
        return outcome_summary(self.outcomes)

    def to_resend(self) -> list[str]:
        """externalIds to send again, see :func:`records_to_resend`."""
        return records_to_resend(self.outcomes)

    def failure_reasons(self, top: int = 5) -> list[tuple[str, int]]:
        """Most frequent failure codes, see :func:`failure_reasons`."""
        return failure_reasons(self.outcomes, top=top)


def _text(value: Any) -> str | None:
    """A non-empty string or None."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _action(entry: Mapping[str, Any]) -> str | None:
    """``provisioningAction``, else the legacy beta ``action`` ("Create", "StagedDelete", ...) lower-cased."""
    action = _text(entry.get("provisioningAction"))
    if action is None:
        action = _text(entry.get("action"))
        if action is None:
            return None
        action = action.replace(" ", "").lower()
        # Legacy values may read "Create user"; keep the verb.
        for known in sorted(ACTIONS, key=len, reverse=True):
            if action.startswith(known):
                return known
        return action
    return action.lower()


def _status_and_error(entry: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]]:
    """Status and error fields, from ``provisioningStatusInfo`` or the legacy ``statusInfo``."""
    info = entry.get("provisioningStatusInfo") or {}
    legacy = entry.get("statusInfo") or {}
    status = _text(info.get("status")) or _text(legacy.get("status"))
    error = info.get("errorInformation") or {}
    if not error and any(legacy.get(key) for key in ("errorCode", "reason", "recommendedAction")):
        # Beta statusDetails carries the error fields at its top level.
        error = legacy
    return (status.lower() if status else None), error


def skip_details(entry: Mapping[str, Any]) -> tuple[bool, str | None, str | None]:
    """Whether a step skipped an unresolved reference, plus the skip reason and description of the first
    ``EntrySynchronizationSkip``-style step (used when a skipped entry has no ``errorInformation``)."""
    found = False
    skip_reason: str | None = None
    skip_text: str | None = None
    for step in entry.get("provisioningSteps") or ():
        details = step.get("details") or {}
        reason = _text(details.get("SkipReason")) if isinstance(details, Mapping) else None
        if reason is None:
            continue
        if skip_reason is None or (reason == UNRESOLVED_REFERENCE and not found):
            skip_reason, skip_text = reason, _text(step.get("description"))
        if reason == UNRESOLVED_REFERENCE:
            found = True
    return found, skip_reason, skip_text


def _flatten_one(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    source = entry.get("sourceIdentity") or {}
    target = entry.get("targetIdentity") or {}
    target_details = target.get("details") or {}
    status, error = _status_and_error(entry)
    reference_skip, skip_reason, skip_text = skip_details(entry)
    error_code = _text(error.get("errorCode"))
    reason = _text(error.get("reason"))
    if error_code is None and reason is None and (reference_skip or status == STATUS_SKIPPED):
        error_code, reason = skip_reason, skip_text
    return (
        _text(entry.get("id")),
        _text(source.get("id")),
        entry.get("activityDateTime"),
        status,
        _action(entry),
        error_code,
        reason,
        _text(error.get("recommendedAction")),
        _text(entry.get("cycleId")),
        _text(entry.get("changeId")),
        _text(target.get("id")),
        _text(target_details.get("UserPrincipalName") or target_details.get("userPrincipalName")),
        reference_skip,
    )


def _to_utc(value: datetime | str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize(timezone.utc) if stamp.tzinfo is None else stamp.tz_convert(timezone.utc)


def acceptance_times(
    accepted_at: pd.Series | Mapping[str, datetime | str | pd.Timestamp | None] | None,
) -> pd.Series:
    """externalId -> acceptance time (UTC), unknown times left out, the earliest kept for a repeated id.

    :param accepted_at: a Series indexed by externalId, or a mapping; values are datetimes, ISO 8601 text,
        ``None`` or NaT (naive means UTC).
    """
    if accepted_at is None:
        return pd.Series(dtype="datetime64[ns, UTC]")
    series = accepted_at if isinstance(accepted_at, pd.Series) else pd.Series(dict(accepted_at), dtype=object)
    series = series[series.index.notna()]
    times = pd.to_datetime(series.astype(object), utc=True, format="ISO8601", errors="coerce")
    times.index = pd.Index(series.index.astype(str).str.strip())
    times = times.dropna()
    return times.groupby(level=0).min()


def flatten_entries(entries: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per log entry with the fields reconciliation needs.

    :param entries: provisioning-log entries (``provisioningObjectSummary`` dicts, v1.0 or beta).
    :return: columns ``entry_id``, ``external_id``, ``activity_time`` (UTC, NaT when unparseable), ``status``,
        ``action``, ``error_code``, ``reason``, ``recommended_action``, ``cycle_id``, ``change_id``,
        ``entra_object_id``, ``upn``, ``reference_skip`` (bool).
    """
    rows = [_flatten_one(entry) for entry in entries]
    flat = pd.DataFrame.from_records(rows, columns=list(_ENTRY_COLUMNS))
    flat["activity_time"] = pd.to_datetime(flat["activity_time"], utc=True, format="ISO8601", errors="coerce")
    flat["reference_skip"] = flat["reference_skip"].astype(bool)
    return flat


def reconcile_detailed(
    entries: Iterable[Mapping[str, Any]],
    external_ids: Iterable[Any],
    *,
    since: datetime | str | None = None,
    accepted_at: pd.Series | Mapping[str, Any] | None = None,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> ReconcileResult:
    """Final outcome per externalId sent, with counts of the entries left out.

    :param entries: provisioning-log entries for the job (any order, any page split).
    :param external_ids: the externalIds that were sent (duplicates are collapsed, first order kept).
    :param since: for records without a known acceptance: drop entries whose ``activityDateTime`` is
        earlier (naive datetimes are taken as UTC).
    :param accepted_at: externalId -> when Graph accepted the request carrying it (the 202's ``Date``); see
        :func:`acceptance_times` for the accepted shapes. An entry counts for a record only when it is dated
        at or after that record's acceptance minus ``tolerance_seconds``.
    :param tolerance_seconds: seconds an entry may predate its record's acceptance (clock resolution).
    :return: a :class:`ReconcileResult`; its ``outcomes`` rows follow the order of ``external_ids``.
    """
    if not tolerance_seconds >= 0:
        raise ValueError(f"tolerance_seconds must be 0 or more, got {tolerance_seconds!r}")
    sent_values = pd.Series(list(external_ids), dtype=object).dropna()
    sent = pd.Index(pd.unique(sent_values.astype(str).str.strip()))
    flat = flatten_entries(entries)
    total = len(flat)

    valid = flat["external_id"].notna() & flat["activity_time"].notna()
    invalid = int((~valid).sum())
    flat = flat[valid]

    # Each entry's cutoff: its record's acceptance minus the tolerance, else ``since``, else none.
    limits = acceptance_times(accepted_at) - pd.Timedelta(seconds=tolerance_seconds)
    cutoff = pd.Series(
        limits.reindex(flat["external_id"].to_numpy()).to_numpy(), index=flat.index, dtype=limits.dtype
    )
    if since is not None:
        cutoff = cutoff.fillna(_to_utc(since))
    recent = cutoff.isna() | (flat["activity_time"] >= cutoff)
    stale = int((~recent).sum())
    flat = flat[recent]

    ours = flat["external_id"].isin(sent)
    ignored_ids = tuple(sorted(pd.unique(flat.loc[~ours, "external_id"])))
    ignored = int((~ours).sum())
    flat = flat[ours].copy()

    # Latest entry wins; on equal timestamps a create sorts first so the follow-up update wins; entry id last
    # so the result does not depend on arrival order.
    flat["_rank"] = np.where(flat["action"].eq(ACTION_CREATE), 0, 1)
    flat["_entry"] = flat["entry_id"].fillna("")
    flat = flat.sort_values(["external_id", "activity_time", "_rank", "_entry"], kind="mergesort")
    grouped = flat.groupby("external_id", sort=False)
    counts = grouped.size()
    had_reference_skip = grouped["reference_skip"].any()
    last = flat.drop_duplicates("external_id", keep="last").set_index("external_id")

    unresolved = last["reference_skip"]
    resolved_later = had_reference_skip.reindex(last.index) & ~unresolved & last["status"].eq(STATUS_SUCCESS)
    demote = unresolved & last["status"].eq(STATUS_SUCCESS)
    last["status"] = last["status"].mask(demote, STATUS_WARNING)
    last["error_code"] = last["error_code"].mask(unresolved & last["error_code"].isna(), UNRESOLVED_REFERENCE)

    outcomes = last.reindex(sent)
    outcomes.index.name = "external_id"
    outcomes["status"] = outcomes["status"].fillna(STATUS_MISSING)
    outcomes["entries"] = counts.reindex(sent, fill_value=0).astype("int64").to_numpy()
    outcomes["resolved_later"] = resolved_later.reindex(sent, fill_value=False).astype(bool).to_numpy()
    outcomes["unresolved_reference"] = unresolved.reindex(sent, fill_value=False).astype(bool).to_numpy()
    outcomes = outcomes.reset_index()[list(OUTCOME_COLUMNS)]
    outcomes["activity_time"] = pd.to_datetime(outcomes["activity_time"], utc=True)
    outcomes.attrs.update(
        total_entries=total, ignored_entries=ignored, stale_entries=stale, invalid_entries=invalid
    )
    return ReconcileResult(
        outcomes=outcomes,
        total_entries=total,
        ignored_entries=ignored,
        ignored_external_ids=ignored_ids,
        stale_entries=stale,
        invalid_entries=invalid,
    )


def reconcile(
    entries: Iterable[Mapping[str, Any]],
    external_ids: Iterable[Any],
    *,
    since: datetime | str | None = None,
    accepted_at: pd.Series | Mapping[str, Any] | None = None,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> pd.DataFrame:
    """One row per externalId sent with its final outcome from the provisioning logs.

    :param entries: provisioning-log entries for the job (any order).
    :param external_ids: the externalIds that were sent.
    :param since: for records without a known acceptance, drop entries older than this (naive means UTC).
    :param accepted_at: externalId -> acceptance time of its request (the 202's ``Date``): an entry counts
        for a record only at or after that time minus ``tolerance_seconds`` (see the module docstring).
    :param tolerance_seconds: seconds an entry may predate its record's acceptance.
    :return: columns :data:`OUTCOME_COLUMNS`: ``external_id``, ``status`` (success, warning, failure,
        skipped, missing), ``action``, ``error_code``, ``reason``, ``recommended_action``, ``cycle_id``,
        ``change_id``, ``activity_time`` (UTC), ``entra_object_id``, ``upn``, ``entries`` (log entries seen),
        ``resolved_later`` (a skipped manager reference resolved by a later entry), ``unresolved_reference``
        (the final entry still could not set the manager). ``attrs`` holds ``total_entries``,
        ``ignored_entries`` (entries for externalIds not sent), ``stale_entries`` and ``invalid_entries``.
    """
    return reconcile_detailed(
        entries, external_ids, since=since, accepted_at=accepted_at, tolerance_seconds=tolerance_seconds
    ).outcomes


def outcome_summary(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Counts by action (rows) x status (columns) with a ``total`` row and column.

    Like the cycle statistics of Microsoft's CSV2SCIM script. Records without a log entry have the action
    ``(none)``. Every status of :data:`STATUSES` is a column, even when its count is 0.

    :param outcomes: the frame :func:`reconcile` returns.
    """
    actions = outcomes["action"].astype(object).where(outcomes["action"].notna(), "(none)")
    table = pd.crosstab(actions, outcomes["status"].astype(object))
    extra_statuses = [status for status in table.columns if status not in STATUSES]
    table = table.reindex(columns=[*STATUSES, *extra_statuses], fill_value=0)
    order = [a for a in (*ACTIONS, "(none)") if a in table.index]
    order += sorted(a for a in table.index if a not in order)
    table = table.reindex(order)
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    table.index.name = "action"
    table.columns.name = "status"
    return table.astype("int64")


def records_to_resend(outcomes: pd.DataFrame, *, include_unresolved_references: bool = True) -> list[str]:
    """externalIds to send again: failures, missing records, skips not resolved later and (by default)
    records whose manager reference is still unresolved.

    :param outcomes: the frame :func:`reconcile` returns.
    :param include_unresolved_references: also resend records whose final entry could not set the manager.
    """
    status = outcomes["status"]
    resend = status.isin((STATUS_FAILURE, STATUS_MISSING)) | (
        status.eq(STATUS_SKIPPED) & ~outcomes["resolved_later"].astype(bool)
    )
    if include_unresolved_references:
        resend |= outcomes["unresolved_reference"].astype(bool)
    return outcomes.loc[resend, "external_id"].astype(str).tolist()


def failure_reasons(outcomes: pd.DataFrame, top: int = 5) -> list[tuple[str, int]]:
    """The most frequent failure codes (``error_code``, else ``reason``), most common first.

    :param outcomes: the frame :func:`reconcile` returns.
    :param top: how many to return.
    """
    failed = outcomes[outcomes["status"].eq(STATUS_FAILURE)]
    key = failed["error_code"].fillna(failed["reason"]).fillna("(no error information)").astype(str)
    counts = key.value_counts()
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [(str(code), int(count)) for code, count in ranked[:top]]
