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
    "write_run_report",
    "write_run_summary",
    "write_stopped_run",
]
