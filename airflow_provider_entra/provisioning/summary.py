"""What a run leaves for people: ``report.html`` and ``outcomes.csv``, and ``run-summary.json``.

* :func:`write_run_report`: the report of a run, its outcomes joined with what was sent (name, HR change,
  changed attributes), the quarantined, held and stuck people; written by
  :func:`~airflow_provider_entra.provisioning.report.write_report`, the one writer of the report pair.
* :func:`write_run_summary`: ``run-summary.json`` (the counts retention keeps, what ``make demo`` reads).
* :func:`report_hr_run`, :func:`report_admin_run`, :func:`write_stopped_run`: the last task of each example
  DAG, and what a run the guard stopped leaves.
* :func:`review_logs`: a window of provisioning logs reduced to each record's final outcome, summarised and
  reported (the ``entra_provisioning_review`` DAG).

Pure pandas and fsspec: no Airflow import.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from airflow_provider_entra._fsio import exists, join, local_path, read_frame, write_bytes
from airflow_provider_entra._time import now_utc
from airflow_provider_entra.provisioning import ledger as _ledger
from airflow_provider_entra.provisioning.guard import stop_notice
from airflow_provider_entra.provisioning.paths import RUN_SUMMARY_NAME
from airflow_provider_entra.provisioning.reconcile import (
    OUTCOME_COLUMNS,
    STATUSES,
    failure_reasons,
    outcome_summary,
    reconcile_detailed,
)
from airflow_provider_entra.provisioning.report import write_report
from airflow_provider_entra.upload.progress import format_load_progress

__all__ = [
    "load_progress",
    "outcome_counts",
    "outcome_table",
    "public_summary",
    "report_admin_run",
    "report_hr_run",
    "review_logs",
    "summarise_logs",
    "write_run_report",
    "write_run_summary",
    "write_stopped_run",
]

log = logging.getLogger(__name__)


def public_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A step's summary without its file paths (what run-summary.json shows of it)."""
    return {k: v for k, v in summary.items() if not k.endswith("_path")}


def outcome_counts(outcomes: pd.DataFrame) -> dict[str, int]:
    """Records per verification status (every status of the reconcile module, zeros included)."""
    counts = outcomes["status"].astype(str).value_counts() if len(outcomes) else pd.Series(dtype=int)
    return {status: int(counts.get(status, 0)) for status in STATUSES}


def outcome_table(outcomes: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Action x status counts as nested dicts (JSON-safe), with totals."""
    if outcomes.empty:
        return {}
    table = outcome_summary(outcomes)
    return {str(a): {str(s): int(v) for s, v in row.items()} for a, row in table.iterrows()}


def _with_changes(outcomes: pd.DataFrame, sent_path: Any | None) -> pd.DataFrame:
    """The outcomes with the sent records' display name, HR change and changed attributes, and advice where
    Entra's own recommendation says nothing useful (a UPN another account holds)."""
    if sent_path is not None and exists(sent_path) and len(outcomes):
        sent = read_frame(sent_path).drop_duplicates("externalId", keep="last").set_index("externalId")
        ids = outcomes["external_id"].astype(str)
        for column, target in (
            ("displayName", "display_name"),
            ("change", "change"),
            ("changed_attributes", "changed_attributes"),
        ):
            if column in sent.columns:
                outcomes[target] = ids.map(sent[column]).to_numpy()
    if len(outcomes) and "error_code" in outcomes.columns:
        taken = outcomes["status"].eq("failure") & outcomes["error_code"].eq(_ledger.UPN_TAKEN)
        if taken.any():
            advice = _ledger.SKIP_ACTIONS[_ledger.UPN_TAKEN]
            action = outcomes["recommended_action"]
            before = action.astype(object).where(action.notna(), "")
            outcomes["recommended_action"] = before.where(~taken, (before + " " + advice).str.strip())
    return outcomes


def load_progress(uploaded: Mapping[str, Any], committed: Mapping[str, Any]) -> dict[str, Any] | None:
    """How far the job's load has come, when the upload counted the daily allowance (``None`` otherwise,
    e.g. a dry run): ``sent`` (records the job's ledger holds, or sent and not proven yet), ``total``
    (those and the records the daily allowance left for later runs), ``unsent``, ``per_day`` (calls a day),
    ``days_left`` and ``text`` (:func:`~airflow_provider_entra.upload.progress.format_load_progress`).

    :param uploaded: the upload's summary (``unsent_records``, ``sent_records``, ``daily_quota``).
    :param committed: the commit's summary (``ledger_rows`` after this run's commit, ``verified``).
    """
    quota = uploaded.get("daily_quota")
    if not quota or uploaded.get("dry_run"):
        return None
    unsent = int(uploaded.get("unsent_records") or 0)
    not_proven = max(0, int(uploaded.get("sent_records") or 0) - int(committed.get("verified") or 0))
    total = int(committed.get("ledger_rows") or 0) + not_proven + unsent
    days = int(quota.get("days_left") or 0)
    return {
        "sent": total - unsent,
        "total": total,
        "unsent": unsent,
        "per_day": quota.get("per_day"),
        "days_left": days,
        "text": format_load_progress(total - unsent, total, days),
    }


def write_run_report(
    out_dir: Any,
    *,
    run_id: str,
    sent_path: Any | None,
    outcomes_path: Any | None,
    transformed: Mapping[str, Any] | None = None,
    planned: Mapping[str, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
    timings: Mapping[str, Any] | None = None,
    progress: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Write the run's ``outcomes.csv`` and ``report.html`` for people: every record sent with its display
    name, HR change (joiner, mover, leaver, rehire, missing from the export, inactive) and, for movers, the
    attributes that changed; the quarantined rows (count, top reasons, where the file is); the people held at
    their last state; the stuck records with Entra's reason.

    :param out_dir: the run folder (local path, URL or ``ObjectStoragePath``).
    :param run_id: the Airflow run id.
    :param sent_path: what was sent (``delta.parquet``/``selected.parquet``); ``None`` when nothing was
        planned.
    :param outcomes_path: the verification's ``outcomes.parquet`` (``None``/missing: nothing verified).
    :param transformed: the transform step's summary (quarantine counts and file).
    :param planned: the plan step's summary (held and stuck records).
    :param summary: run details for the report's table.
    :param timings: timings for the report's table.
    :param progress: :func:`load_progress` (the load's progress and what waits for the daily quota).
    :return: ``{"report_html", "report_csv"}``.
    """
    if outcomes_path is not None and exists(outcomes_path):
        outcomes = read_frame(outcomes_path)
    else:
        outcomes = pd.DataFrame({c: pd.Series([], dtype=object) for c in OUTCOME_COLUMNS})
    transformed = transformed or {}
    planned = planned or {}
    quarantine = (
        {
            "count": int(transformed.get("quarantined") or 0),
            "rows": int(transformed.get("input_rows") or 0),
            "top_reasons": transformed.get("top_reasons") or [],
            "path": transformed.get("quarantine_path"),
        }
        if transformed
        else None
    )
    paths = write_report(
        _with_changes(outcomes, sent_path),
        out_dir,
        run_id=run_id,
        summary=summary,
        timings=timings,
        quarantine=quarantine,
        held={"count": int(planned.get("held") or 0), "ids": list(planned.get("held_ids") or [])},
        stuck=list(planned.get("stuck") or []),
        progress=progress,
    )
    return {"report_html": str(paths.html), "report_csv": str(paths.csv)}


def write_run_summary(out_dir: Any, summary: Mapping[str, Any]) -> str:
    """Write ``run-summary.json`` (what ``make demo`` and people read after a run).

    :param out_dir: the run folder.
    :param summary: JSON-safe values.
    :return: the path written.
    """
    data = json.dumps(dict(summary), indent=2, sort_keys=False, default=str).encode("utf-8")
    return str(write_bytes(join(out_dir, RUN_SUMMARY_NAME), data))


def write_stopped_run(
    out_dir: Any,
    *,
    dag_id: str,
    run_id: str,
    decision: Mapping[str, Any],
    approval_minutes: float | None = None,
    transformed: Mapping[str, Any] | None = None,
    planned: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a run the deletion guard or the data-quality gate stopped leaves: ``run-summary.json`` with what
    to do (:func:`~airflow_provider_entra.provisioning.guard.stop_notice`) and, for an HR run (``transformed``
    given), the report with its quarantined, held and stuck people.

    :param decision: :func:`~airflow_provider_entra.provisioning.guard.decide`'s decision.
    :param approval_minutes: how long an approval task in the UI waits (``None``: no approval task).
    :return: the notice (``status``, ``message``, ``ask_approval``) and ``report_html`` (``None`` without
        a report).
    """
    notice = stop_notice(decision, approval_minutes=approval_minutes)
    log.warning("%s", notice["message"])
    summary: dict[str, Any] = {
        "dag_id": dag_id,
        "run_id": run_id,
        "status": notice["status"],
        "message": notice["message"],
        "records_sent": 0,
        "guard": dict(decision),
    }
    report: dict[str, str] = {}
    if transformed is not None:
        report = write_run_report(
            out_dir,
            run_id=str(run_id),
            sent_path=None,
            outcomes_path=None,
            transformed=transformed,
            planned=planned,
            summary={"status": notice["status"], "guard": decision["message"]},
        )
        summary.update(
            plan=planned,
            transform=public_summary(transformed),
            files={"quarantine": transformed["quarantine_path"], **report},
        )
    write_run_summary(out_dir, summary)
    return {**notice, "report_html": report.get("report_html")}


def _finish(
    *,
    dag_id: str,
    run_id: str,
    uploaded: Mapping[str, Any],
    verified: Mapping[str, Any],
    committed: Mapping[str, Any],
    **details: Any,
) -> dict[str, Any]:
    """The fields every run summary has, around the DAG's own ``details``: ``status`` is ``dry_run``,
    ``partial`` (the daily allowance left records for the next run: ``records_not_sent``, ``progress``) or
    ``done``."""
    dry_run = bool(uploaded.get("dry_run"))
    unsent = 0 if dry_run else int(uploaded.get("unsent_records") or 0)
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "status": "dry_run" if dry_run else "partial" if unsent else "done",
        "finished_at": now_utc(),
        **details,
        "records_sent": 0 if dry_run else uploaded.get("records", 0) - unsent,
        "records_not_sent": unsent,
        "progress": load_progress(uploaded, committed),
        "requests": uploaded.get("requests", 0),
        "outcomes": verified.get("outcomes", {}),
        "committed": committed.get("verified", 0),
        "ledger_active": committed.get("active"),
    }


def report_hr_run(
    out_dir: Any,
    *,
    dag_id: str,
    run_id: str,
    extracted: Mapping[str, Any],
    transformed: Mapping[str, Any],
    planned: Mapping[str, Any],
    staged: Mapping[str, Any],
    uploaded: Mapping[str, Any],
    verified: Mapping[str, Any],
    committed: Mapping[str, Any],
    decision: Mapping[str, Any],
) -> dict[str, Any]:
    """Write an HR run's ``report.html``/``outcomes.csv`` and ``run-summary.json``; return the summary.

    Each mapping is the summary of the step of that name (``{}`` for a step that did not run: a dry run
    verifies and commits nothing).
    """
    summary = _finish(
        dag_id=dag_id,
        run_id=run_id,
        uploaded=uploaded,
        verified=verified,
        committed=committed,
        source={"path": extracted["source"], "rows": extracted["rows"]},
        transform=public_summary(transformed),
        changes=planned["changes"],
        held=planned["held"],
        stuck=planned["stuck"],
        stage_sizes=staged["stage_sizes"],
        guard=dict(decision),
        verification=verified.get("status"),
    )
    files = write_run_report(
        out_dir,
        run_id=str(run_id),
        sent_path=planned["delta_path"],
        outcomes_path=verified.get("outcomes_path") or None,
        transformed=transformed,
        planned=planned,
        summary={
            k: summary[k] for k in ("status", "records_sent", "records_not_sent", "requests", "committed")
        },
        timings={
            "first_submitted_at": uploaded.get("first_submit"),
            "first_accepted_at": uploaded.get("first_accepted"),
            "last_accepted_at": uploaded.get("last_accepted"),
        },
        progress=summary["progress"],
    )
    summary["files"] = {
        "run_dir": str(out_dir),
        "quarantine": transformed["quarantine_path"],
        **files,
        "dry_run_requests": uploaded.get("dry_run_requests_path"),
        "ledger": committed.get("ledger"),
    }
    summary["files"]["run_summary"] = write_run_summary(out_dir, summary)
    outcomes = ", ".join(f"{n} {status}" for status, n in summary["outcomes"].items() if n)
    if summary["progress"]:
        log.info("Load: %s", summary["progress"]["text"])
    log.info(
        "Sent %s record(s) in %s request(s); outcomes: %s; %d row(s) quarantined, %d held, %d stuck. "
        "Report: %s; summary: %s",
        summary["records_sent"],
        summary["requests"],
        outcomes or "none",
        transformed["quarantined"],
        planned["held"],
        len(planned["stuck"]),
        files["report_html"],
        summary["files"]["run_summary"],
    )
    return summary


def report_admin_run(
    out_dir: Any,
    *,
    dag_id: str,
    run_id: str,
    derived: Mapping[str, Any],
    planned: Mapping[str, Any],
    uploaded: Mapping[str, Any],
    verified: Mapping[str, Any],
    committed: Mapping[str, Any],
) -> dict[str, Any]:
    """Write an admin-accounts run's ``run-summary.json`` (its report is the verification's); return it."""
    summary = _finish(
        dag_id=dag_id,
        run_id=run_id,
        uploaded=uploaded,
        verified=verified,
        committed=committed,
        source={"path": derived["source"], "rows": derived["people"]},
        transform={"admins": derived["admins"], "quarantined": derived["quarantined"]},
        changes=planned["changes"],
    )
    summary["files"] = {
        "run_dir": str(out_dir),
        "quarantine": derived["quarantine_path"],
        "report_html": verified.get("report_html"),
        "report_csv": verified.get("report_csv"),
        "ledger": committed.get("ledger"),
    }
    summary["files"]["run_summary"] = write_run_summary(out_dir, summary)
    log.info("Sent %s admin account(s); outcomes %s", summary["records_sent"], summary["outcomes"])
    return summary


# --- provisioning-log review ------------------------------------------------------------------------------


def summarise_logs(
    entries: Iterable[Mapping[str, Any]], *, since: datetime | None = None, top: int = 5
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Reduce a window of provisioning-log entries to one final outcome per record, and summarise them.

    :param entries: the log entries (any order).
    :param since: the window start (entries before it are ignored).
    :param top: how many failure reasons to list.
    :return: the outcomes frame (one row per externalId, see the reconcile module) and
        ``{"entries", "records", "failures", "missing", "outcomes": {status: n}, "actions": {action:
        {status: n}}, "failure_reasons": [[code, n], ...], "failure_percent"}`` (``records``, ``failures``
        and ``missing`` as in a verification's summary, for the run's verdict).
    """
    entries = list(entries)
    ids = [
        str((e.get("sourceIdentity") or {}).get("id")).strip()
        for e in entries
        if (e.get("sourceIdentity") or {}).get("id")
    ]
    result = reconcile_detailed(entries, list(dict.fromkeys(ids)), since=since)
    outcomes = result.outcomes
    counts = outcome_counts(outcomes)
    records = len(outcomes)
    return outcomes, {
        "entries": result.total_entries,
        "records": records,
        "failures": counts["failure"],
        "missing": counts["missing"],
        "outcomes": counts,
        "actions": outcome_table(outcomes),
        "failure_reasons": [[code, n] for code, n in failure_reasons(outcomes, top=top)],
        "failure_percent": round(100.0 * counts["failure"] / records, 2) if records else 0.0,
    }


def review_logs(
    entries: Iterable[Mapping[str, Any]],
    out_dir: Any,
    *,
    since: datetime,
    job_id: str,
    dag_id: str,
    run_id: str,
) -> dict[str, Any]:
    """Review a window of a job's provisioning logs: :func:`summarise_logs`, then ``report.html``,
    ``outcomes.csv`` and ``run-summary.json`` in ``out_dir``; the action x status table and the top failure
    reasons are logged.

    :return: the summary (``files`` names what was written, by local path when ``out_dir`` is on this
        machine).
    """
    out_dir = local_path(out_dir) or out_dir
    outcomes, counts = summarise_logs(entries, since=since)
    start = since.isoformat(timespec="seconds")
    paths = write_report(
        outcomes, out_dir, run_id=run_id or "", summary={"job_id": job_id, "window_start": start, **counts}
    )
    summary = {
        "dag_id": dag_id,
        "run_id": run_id,
        "job_id": job_id,
        "since": start,
        **counts,
        "files": {"report_html": str(paths.html), "report_csv": str(paths.csv)},
    }
    summary["files"]["run_summary"] = write_run_summary(out_dir, summary)
    log.info(
        "Job %s: %d log entries, %d records since %s", job_id, counts["entries"], counts["records"], start
    )
    if len(outcomes):
        log.info("Final outcome per record, action x status:\n%s", outcome_summary(outcomes).to_string())
    for code, count in counts["failure_reasons"]:
        log.info("  %5d x %s", count, code)
    log.info("Report: %s", summary["files"]["report_html"])
    return summary


def top_reasons_text(summary: Mapping[str, Any]) -> str:
    """``Top reasons: <code> (<n>), ...`` from a summary's ``failure_reasons`` (empty text when none)."""
    reasons = ", ".join(f"{code} ({count})" for code, count in summary.get("failure_reasons") or ())
    return f"Top reasons: {reasons}." if reasons else ""
