"""The HR provisioning run as plain functions over staged files, in one namespace for DAGs and scripts::

    from airflow_provider_entra.provisioning import pipeline

    pipeline.extract_csv("hr.csv", "run/hr_raw.parquet")
    summary = pipeline.transform("run/hr_raw.parquet", "mapping.yaml", "run", upn_domain="contoso.com",
                                 ledger="staging/ledger/<job>")

Each step reads the files the previous step staged, writes its own and returns a small JSON-safe summary, so
an Airflow task is a one-line wrapper and the whole run can be called, and tested, without Airflow. The
functions live in the modules below; this one only gathers them:

=============================================  ==============================================================
module                                         what
=============================================  ==============================================================
:mod:`~.provisioning.paths`                    the staging layout, file names, the HR snapshot Asset
:mod:`~.provisioning.feed`                     extract and transform: an HR export to SCIM records
:mod:`~.provisioning.sync`                     plan, stages and commit against the job's ledger
:mod:`~.provisioning.guard`                    the deletion guard and data-quality gate (``guard``)
:mod:`~.provisioning.admin`                    admin accounts derived from the committed HR feed
:mod:`~.provisioning.on_demand`                chosen employees and their never-sent managers
:mod:`~.provisioning.summary`                  reports, run summaries, the provisioning-log review
=============================================  ==============================================================

Pure pandas and fsspec: no Airflow import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_entra._fsio import join, read_frame
from airflow_provider_entra._time import now_utc
from airflow_provider_entra.provisioning.admin import derive_admins
from airflow_provider_entra.provisioning.feed import (
    extract_csv,
    extract_frame,
    extract_sql,
    hr_schema,
    load_mapping,
    map_export,
    top_reasons,
    transform,
)
from airflow_provider_entra.provisioning.guard import (
    DEFAULT_MAX_QUARANTINE_COUNT,
    DEFAULT_MAX_QUARANTINE_PERCENT,
    guard_limits,
    stop_notice,
)
from airflow_provider_entra.provisioning.guard import decide as guard
from airflow_provider_entra.provisioning.ledger import adopt_legacy_snapshot
from airflow_provider_entra.provisioning.on_demand import outcome_lines, problems, select_on_demand
from airflow_provider_entra.provisioning.paths import (
    ADMIN_SNAPSHOT_NAME,
    ADMINS_NAME,
    DELTA_NAME,
    HELD_NAME,
    HR_CURRENT_NAME,
    KNOWN_IDS_NAME,
    MAPPED_NAME,
    NORMALISED_NAME,
    QUARANTINE_NAME,
    RAW_NAME,
    RUN_SUMMARY_NAME,
    SELECTED_NAME,
    SNAPSHOT_DIR_NAME,
    SNAPSHOT_NAME,
    WARNINGS_NAME,
    ledger_path,
    run_dir,
    sanitise_run_id,
    snapshot_dir,
    staging_root,
)
from airflow_provider_entra.provisioning.summary import (
    public_summary,
    report_admin_run,
    report_hr_run,
    review_logs,
    summarise_logs,
    top_reasons_text,
    write_run_report,
    write_run_summary,
    write_stopped_run,
)
from airflow_provider_entra.provisioning.sync import (
    PREHIRE_POLICIES,
    canonical_feed,
    commit,
    plan,
    stages,
    stuck_not_sent,
)

__all__ = [
    "ADMINS_NAME",
    "ADMIN_SNAPSHOT_NAME",
    "DEFAULT_MAX_QUARANTINE_COUNT",
    "DEFAULT_MAX_QUARANTINE_PERCENT",
    "DELTA_NAME",
    "HELD_NAME",
    "HR_CURRENT_NAME",
    "KNOWN_IDS_NAME",
    "MAPPED_NAME",
    "NORMALISED_NAME",
    "PREHIRE_POLICIES",
    "QUARANTINE_NAME",
    "RAW_NAME",
    "RUN_SUMMARY_NAME",
    "SELECTED_NAME",
    "SNAPSHOT_DIR_NAME",
    "SNAPSHOT_NAME",
    "WARNINGS_NAME",
    "adopt_legacy_snapshot",
    "canonical_feed",
    "commit",
    "derive_admins",
    "extract_csv",
    "extract_frame",
    "extract_sql",
    "guard",
    "hr_schema",
    "join",
    "ledger_path",
    "load_mapping",
    "map_export",
    "now_utc",
    "guard_limits",
    "outcome_lines",
    "plan",
    "problems",
    "public_summary",
    "read_frame",
    "report_admin_run",
    "report_hr_run",
    "review_logs",
    "run_dir",
    "sanitise_run_id",
    "select_on_demand",
    "snapshot_dir",
    "stages",
    "staging_root",
    "stop_notice",
    "stuck_not_sent",
    "summarise_logs",
    "top_reasons",
    "top_reasons_text",
    "transform",
    "verdict",
    "write_run_report",
    "write_run_summary",
    "write_stopped_run",
]


def verdict(
    verified: Mapping[str, Any],
    *,
    stuck: int = 0,
    max_failures: int | None = None,
    max_failure_percent: float | None = None,
) -> str | None:
    """The run's verdict: a sentence when more records failed, have no log entry or are stuck than allowed.

    One rule for every DAG: failures, records missing from the logs and stuck records (skipped by Entra the
    same way run after run, not sent again) all count, against the records sent plus the stuck ones.

    :param verified: the verification summary (``records``, ``failures``, ``missing``).
    :param stuck: records the plan did not send because they are stuck.
    :param max_failures: most such records allowed (``None``: no count limit).
    :param max_failure_percent: most such records allowed, as a percentage (``None``: no limit).
    :return: ``None`` when within the limits, else the message to fail with.
    """
    records = int(verified.get("records") or 0) + int(stuck)
    failures = int(verified.get("failures") or 0)
    missing = int(verified.get("missing") or 0)
    bad = failures + missing + int(stuck)
    limits = []
    if max_failures is not None and bad > max_failures:
        limits.append(f"max_failures={max_failures}")
    if max_failure_percent is not None and records and 100.0 * bad / records > float(max_failure_percent):
        limits.append(f"max_failure_percent={max_failure_percent:g}")
    if not limits:
        return None
    parts = [f"{failures} failed", f"{missing} have no log entry"] + ([f"{stuck} are stuck"] if stuck else [])
    return (
        f"{bad} of {records} record(s) did not reach Entra ({', '.join(parts)}), "
        f"over {' and '.join(limits)}. "
        "Failed and missing records are not in the ledger and will be sent again next run; stuck records are "
        "not sent again until they change."
    )
