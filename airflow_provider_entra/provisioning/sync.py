"""Against the job's ledger: the ``plan``, ``stages`` and ``commit`` steps over staged files.

::

    plan    -> delta.parquet (the mapped records to send, with their ``change`` kind)
    (guard: :func:`~airflow_provider_entra.provisioning.guard.decide`, a decision, no file)
    stages  -> known-ids.parquet (ids this job already holds, for managers-first ordering)
    (upload, verify: EntraBulkUploadOperator and EntraProvisioningLogSensor)
    commit  -> the job's ledger (records the logs prove) + snapshot/hr_current.parquet

The mapped records come from :mod:`~airflow_provider_entra.provisioning.feed`. Each step logs what it found
at INFO, and what needs a look at WARNING. Pure pandas and fsspec: no Airflow import.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from airflow_provider_entra._fsio import exists, join, read_columns, read_frame, read_rows, write_frame
from airflow_provider_entra.provisioning import ledger as _ledger
from airflow_provider_entra.provisioning.feed import hr_schema, load_mapping
from airflow_provider_entra.provisioning.normalise import CSV2SCIM_COLUMNS, HrSchema
from airflow_provider_entra.provisioning.paths import DELTA_NAME, KNOWN_IDS_NAME
from airflow_provider_entra.provisioning.plan import plan_delta
from airflow_provider_entra.provisioning.snapshot import active_count
from airflow_provider_entra.provisioning.stages import SCIM_MANAGER_COLUMN
from airflow_provider_entra.upload.order import STAGE_ORDER_NAME, stage_order

__all__ = [
    "MAX_LISTED_IDS",
    "PREHIRE_POLICIES",
    "canonical_feed",
    "commit",
    "plan",
    "stages",
    "stuck_not_sent",
]

log = logging.getLogger(__name__)

#: The columns of ``mapped.parquet`` the plan compares with the ledger (the rows sent are read whole).
PLAN_KEYS = ("externalId", "record_hash", "active")
#: Ids listed in a step's summary (XCom); the staged files hold all of them.
MAX_LISTED_IDS = 50
#: What to do with a joiner whose hire date is still to come: create the account disabled until that day
#: (as Microsoft's HR connectors do with pre-hires), or enabled at once.
PREHIRE_POLICIES = ("disabled", "enabled")


def _write_parquet(frame: pd.DataFrame, path: Any) -> str:
    return str(write_frame(frame, path))


def _schema(schema: HrSchema | None, mapping_path: Any | None) -> HrSchema:
    """``schema``, else the ``source`` block of the mapping at ``mapping_path``, else the CSV2SCIM layout."""
    if schema is not None:
        return schema
    return hr_schema(load_mapping(mapping_path)) if mapping_path is not None else HrSchema()


# --- plan and stages --------------------------------------------------------------------------------------


def _dates_by_id(mapped: pd.DataFrame, normalised_path: Any | None, schema: HrSchema, column: str) -> Any:
    """The date in ``column`` of the normalised HR rows, for each mapped record (``None``: no such file or
    column)."""
    if normalised_path is None or not exists(normalised_path):
        return None
    normalised = read_columns(normalised_path, [schema.worker_id, column])
    if column not in normalised.columns:
        return None
    dates = pd.to_datetime(normalised[column], utc=True, errors="coerce", format="ISO8601")
    by_id = pd.Series(dates.array, index=normalised[schema.worker_id].astype(str))
    by_id = by_id[~by_id.index.duplicated()]
    return mapped["externalId"].astype(str).map(by_id)


def _out_of_scope(
    mapped: pd.DataFrame, normalised_path: Any | None, schema: HrSchema, days: float | None, today: datetime
) -> np.ndarray | None:
    """Inactive workers whose termination date is more than ``days`` days ago (unknown date: in scope);
    ``days == 0``: every inactive worker."""
    if days is None:
        return None
    inactive = ~mapped["active"].astype(bool).to_numpy()
    if float(days) == 0:
        return inactive
    if normalised_path is None or not exists(normalised_path):
        return None
    ended = _dates_by_id(mapped, normalised_path, schema, schema.termination_date)
    if ended is None:
        return np.zeros(len(mapped), dtype=bool)
    cutoff = pd.Timestamp(today) - pd.Timedelta(days=float(days))
    return inactive & (ended < cutoff).fillna(False).to_numpy(dtype=bool)


def _prehires(
    mapped: pd.DataFrame, normalised_path: Any | None, schema: HrSchema, policy: str, now: datetime
) -> np.ndarray | None:
    """Active workers whose hire date is after ``now`` (``None`` when the policy enables them at once)."""
    if policy not in PREHIRE_POLICIES:
        raise ValueError(f"prehire_policy must be one of {', '.join(PREHIRE_POLICIES)}, got {policy!r}")
    hired = None if policy == "enabled" else _dates_by_id(mapped, normalised_path, schema, schema.hire_date)
    if hired is None:
        return None
    return (hired > pd.Timestamp(now)).fillna(False).to_numpy(dtype=bool) & mapped["active"].astype(
        bool
    ).to_numpy()


def _text_or_none(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def plan(
    mapped_path: Any,
    ledger: Any,
    out_dir: Any,
    *,
    full_sync: bool = False,
    missing_policy: str = "disable",
    held_path: Any | None = None,
    normalised_path: Any | None = None,
    inactive_scope_days: float | None = None,
    prehire_policy: str = "disabled",
    schema: HrSchema | None = None,
    mapping_path: Any | None = None,
    today: datetime | None = None,
) -> dict[str, Any]:
    """Compare the mapped feed with the job's ledger; stage the records to send as ``delta.parquet``.

    :param mapped_path: ``mapped.parquet`` from :func:`transform`.
    :param ledger: the job's ledger folder (empty or missing on a first run).
    :param out_dir: the run folder.
    :param full_sync: also send unchanged (and stuck) records.
    :param missing_policy: ``disable`` or ``ignore`` active accounts missing from the feed.
    :param held_path: ``held.parquet`` from :func:`transform`: people held at their last proven state.
    :param normalised_path: ``normalised.parquet`` (termination dates, for ``inactive_scope_days``).
    :param inactive_scope_days: ``None`` (default): send every inactive worker the ledger does not know, as
        ``active: false``. A number: leave out those whose termination date (the schema's
        ``termination_date`` column) is more than that many days ago; without a known date they are sent.
        ``0``: leave out every inactive worker the ledger does not know.
    :param prehire_policy: ``disabled`` (default): a joiner whose hire date (the schema's ``hire_date``) is
        still to come is created disabled and enabled on that day; ``enabled``: at once.
    :param schema: the HR column names (hire and termination dates); default: the ``source`` block of the
        mapping at ``mapping_path``, else the CSV2SCIM layout.
    :param mapping_path: the mapping file (for its ``source`` block).
    :param today: the reference time of the scope and the pre-hire policy (default: now, UTC).
    :return: ``{"to_send", "changes": {kind: count}, "disables", "active", "ledger_rows", "held",
        "stuck", "full_sync", "missing_policy", "delta_path"}``; ``stuck`` lists ``{"externalId",
        "reason", "detail", "runs", "action"}``.
    """
    schema = _schema(schema, mapping_path)
    book = _ledger.read_ledger(ledger)
    state = book.state
    pa.default_memory_pool().release_unused()  # what reading the ledger let go
    # The feed's keys only; the records to send are read whole afterwards, a batch at a time.
    mapped = read_columns(mapped_path, PLAN_KEYS)
    held = read_frame(held_path)["externalId"] if held_path is not None and exists(held_path) else None
    now = today or datetime.now(timezone.utc)
    delta = plan_delta(
        mapped,
        state,
        full_sync=full_sync,
        missing_policy=missing_policy,  # type: ignore[arg-type]
        held_ids=held,
        stuck=book.stuck(),
        out_of_scope=_out_of_scope(mapped, normalised_path, schema, inactive_scope_days, now),
        prehire=_prehires(mapped, normalised_path, schema, prehire_policy, now),
        rows=lambda positions: read_rows(mapped_path, positions),
    )
    changes = {kind: int(count) for kind, count in delta.counts.items()}
    stuck = [
        {
            "externalId": str(r.externalId),
            "reason": str(r.reason),
            "detail": _text_or_none(r.detail),
            "runs": int(r.runs),
            "action": str(r.action),
        }
        for r in delta.stuck.head(MAX_LISTED_IDS).itertuples(index=False)
    ]
    log.info(
        "Plan: %d record(s) to send (%s)",
        delta.to_send_count,
        ", ".join(f"{n} {kind}" for kind, n in changes.items() if n) or "no changes",
    )
    for record in stuck:
        log.warning(
            "Stuck, not sent again: %s skipped by Entra in %d runs: %s",
            record["externalId"],
            record["runs"],
            record["reason"],
        )
    return {
        "to_send": delta.to_send_count,
        "changes": changes,
        "disables": len(delta.disables),
        "active": active_count(state),
        "ledger_rows": len(state),
        "held": len(delta.held),
        "held_ids": [str(i) for i in delta.held[:MAX_LISTED_IDS]],
        "stuck": stuck,
        "full_sync": bool(full_sync),
        "missing_policy": missing_policy,
        "prehire_policy": prehire_policy,
        "delta_path": _write_parquet(delta.frame, join(out_dir, DELTA_NAME)),
        # Only when set: Airflow 3.0 refuses a None value among a task's multiple outputs.
        **({"inactive_scope_days": inactive_scope_days} if inactive_scope_days is not None else {}),
    }


def stuck_not_sent(planned: Mapping[str, Any]) -> int:
    """How many stuck records the plan held back (a full sync sends them, so then none)."""
    return 0 if planned.get("full_sync") else int((planned.get("changes") or {}).get("stuck", 0))


def stages(delta_path: Any, ledger: Any, out_dir: Any) -> dict[str, Any]:
    """Order the delta managers-first, once: the upload reads this staged order (``stage_order_path``) and
    builds its requests stage by stage; the ids this job already holds are staged too (their references
    resolve). A cycle in the management chain fails nobody silently: it is named here and set aside.

    :param delta_path: ``delta.parquet`` from :func:`plan`.
    :param ledger: the job's ledger folder.
    :param out_dir: the run folder.
    :return: ``{"stage_sizes", "records", "cycles", "branch_warnings", "stage_order_path",
        "known_ids_path"}``.
    """
    delta = read_columns(delta_path, ["externalId", SCIM_MANAGER_COLUMN])  # all the ordering reads
    state = _ledger.read_ledger(ledger).state
    known = pd.DataFrame({"externalId": state["externalId"].astype(str)})
    known_path = _write_parquet(known, join(out_dir, KNOWN_IDS_NAME))
    staged = stage_order(
        delta, id_column="externalId", manager_column=SCIM_MANAGER_COLUMN, known_ids=known["externalId"]
    )
    order = staged.order
    order_path = _write_parquet(order, join(out_dir, STAGE_ORDER_NAME))
    aside = order[order["reason"].notna()]
    cycles = [
        {"externalId": str(ext), "reason": str(reason)}
        for ext, reason in zip(aside["externalId"], aside["reason"], strict=True)
    ]
    stage_sizes = [int(size) for size in order["stage"].dropna().value_counts().sort_index()]
    log.info("%d record(s) in managers-first stages %s", len(delta), stage_sizes)
    for cycle in cycles:
        log.warning("Not sent: %s: %s", cycle["externalId"], cycle["reason"])
    return {
        "stage_sizes": stage_sizes,
        "records": len(delta),
        "cycles": cycles,
        "branch_warnings": len(staged.warnings),
        "stage_order_path": order_path,
        "known_ids_path": known_path,
    }


# --- commit -----------------------------------------------------------------------------------------------


def canonical_feed(feed: pd.DataFrame, schema: HrSchema) -> pd.DataFrame:
    """A normalised HR feed in Microsoft's CSV2SCIM layout, whatever the export's: each role's column under
    its CSV2SCIM name, ``FullName`` made from the names when the export has none, and an empty column for
    every other CSV2SCIM column it lacks (so the admin accounts' mapping reads any layout's feed).

    :param feed: the normalised rows (:func:`transform`'s ``normalised.parquet``).
    :param schema: the export's layout.
    """
    renames = schema.canonical_names()
    feed = feed.drop(columns=[c for c in renames.values() if c in feed.columns and c not in renames])
    feed = feed.rename(columns=renames)
    default = HrSchema()
    if default.full_name not in feed.columns and {default.first_name, default.last_name} <= set(feed.columns):
        first = feed[default.first_name].astype(object).where(feed[default.first_name].notna(), "")
        last = feed[default.last_name].astype(object).where(feed[default.last_name].notna(), "")
        feed[default.full_name] = (first.astype(str) + " " + last.astype(str)).str.strip()
    for column in CSV2SCIM_COLUMNS:
        if column not in feed.columns:
            feed[column] = pd.Series(np.nan, index=feed.index, dtype=object)
    return feed


def commit(
    ledger: Any,
    sent_path: Any,
    outcomes_path: Any | None,
    *,
    run_id: str,
    normalised_path: Any | None = None,
    hr_current_path: Any | None = None,
    schema: HrSchema | None = None,
    mapping_path: Any | None = None,
    sent_records: int | None = None,
) -> dict[str, Any]:
    """Fold the records the logs prove into the job's ledger; the others are sent again next run.

    Safe beside other runs committing to the same ledger at the same time (see the ledger module).

    :param ledger: the job's ledger folder.
    :param sent_path: what was sent (``delta.parquet``, or an on-demand ``selected.parquet``).
    :param outcomes_path: the verification's ``outcomes.parquet`` (``None`` or missing: nothing verified).
    :param run_id: the committing run.
    :param normalised_path: the run's ``normalised.parquet``; copied to ``hr_current_path`` when given.
    :param hr_current_path: where the committed run's normalised HR feed is kept (for the admin DAG), with the
        columns of each role under their CSV2SCIM names (:meth:`HrSchema.canonical_names`), whatever the
        export's layout.
    :param schema: the export's layout; default: the ``source`` block of the mapping at ``mapping_path``,
        else CSV2SCIM.
    :param mapping_path: the mapping file (for its ``source`` block).
    :param sent_records: the records the upload sent (the verification's ``records``); fewer than
        ``sent_path`` holds when the daily allowance stopped the upload. Default: all of them.
    :return: ``{"planned", "sent", "not_sent", "verified", "not_verified", "proven_by_skip", "skipped",
        "unresolved", "failed", "missing", "ledger_rows", "active", "ledger", "hr_current_path"}``:
        ``not_verified`` counts records sent but not proven, ``not_sent`` those the upload did not send.
    """
    sent = read_frame(sent_path)
    outcomes = (
        read_frame(outcomes_path) if outcomes_path is not None and exists(outcomes_path) else pd.DataFrame()
    )
    counts = _ledger.commit(ledger, sent, outcomes, run_id=run_id)
    current = None
    if normalised_path is not None and hr_current_path is not None:
        feed = canonical_feed(read_frame(normalised_path), _schema(schema, mapping_path))
        current = _write_parquet(feed, hr_current_path)
    sent_count = len(sent) if sent_records is None else min(int(sent_records), len(sent))
    summary = {
        "planned": len(sent),
        "sent": sent_count,
        "not_sent": len(sent) - sent_count,
        "verified": counts["proven"],
        "not_verified": max(0, sent_count - counts["proven"]),
        "proven_by_skip": counts["proven_by_skip"],
        "skipped": counts["skipped"],
        "unresolved": counts["unresolved"],
        "failed": counts["failed"],
        "missing": counts["missing"],
        "ledger_rows": counts["state_rows"],
        "active": counts["active"],
        "ledger": str(ledger),
        "hr_current_path": current,
    }
    log.info(
        "Ledger: %d record(s) proven (%d by a skip saying Entra already holds them), %d sent but not proven "
        "and %d not sent (set aside, or past the daily allowance) to send next run; %d accounts, %d active.",
        summary["verified"],
        summary["proven_by_skip"],
        summary["not_verified"],
        summary["not_sent"],
        summary["ledger_rows"],
        summary["active"],
    )
    return summary
