"""Pure pandas HR provisioning: normalise, validate, plan, guard, stage, reconcile, report.

No Airflow and no network here: each function takes and returns DataFrames (or small values), so every step
is tested directly, on Microsoft's own sample files too. The Airflow tasks of the example DAGs are thin
wrappers over :mod:`~airflow_provider_entra.provisioning.pipeline`, which chains these steps over staged
files.

=======================  ====================================================================================
module                   what it does
=======================  ====================================================================================
``hr_source``            read an HR CSV export: encoding and delimiter detection, clear errors
``normalise``            HR text cleaned (NFC, trimmed), statuses, flags and dates read, stable unique UPNs
``validate``             whole-file gates and row quarantine with a reason naming the field
``plan``                 delta against the last snapshot: joiners, movers, leavers, rehires, missing-from-feed
``guard``                the deletion guard: stop a run that would disable too many accounts
``stages``               managers-first upload stages
``admin``                separate admin accounts for privileged staff
``snapshot``             the committed snapshot (verified records only), atomic writes
``reconcile``            each record's final outcome from the provisioning logs
``report``               per-run ``outcomes.csv`` and ``report.html``
``pipeline``             the steps above over staged files (what the example DAGs run)
=======================  ====================================================================================
"""

from airflow_provider_entra.provisioning import pipeline
from airflow_provider_entra.provisioning.admin import (
    DEFAULT_PRIVILEGE_RULE,
    PrivilegeRule,
    derive_admin_accounts,
)
from airflow_provider_entra.provisioning.guard import (
    DEFAULT_MAX_DISABLE_COUNT,
    DEFAULT_MAX_DISABLE_PERCENT,
    GuardDecision,
    check_deletion_guard,
)
from airflow_provider_entra.provisioning.hr_source import HrSourceError, read_hr_csv
from airflow_provider_entra.provisioning.normalise import (
    CSV2SCIM_COLUMNS,
    HrSchema,
    NormaliseResult,
    assign_upns,
    normalise_hr,
)
from airflow_provider_entra.provisioning.plan import (
    ALL_CHANGES,
    INACTIVE_CHANGED,
    JOINER,
    LEAVER,
    MISSING_DISABLE,
    MISSING_IGNORED,
    MOVER,
    REHIRE,
    SENT_CHANGES,
    SKIPPED_INACTIVE_NEW,
    UNCHANGED,
    DeltaPlan,
    plan_delta,
)
from airflow_provider_entra.provisioning.reconcile import (
    STATUSES,
    ReconcileResult,
    failure_reasons,
    outcome_summary,
    reconcile,
    reconcile_detailed,
    records_to_resend,
)
from airflow_provider_entra.provisioning.report import ReportPaths, neutralise_formulas, write_report
from airflow_provider_entra.provisioning.snapshot import (
    active_count,
    commit_verified,
    empty_snapshot,
    read_snapshot,
    write_snapshot,
)
from airflow_provider_entra.provisioning.stages import SCIM_MANAGER_COLUMN, StagePlan, plan_stages
from airflow_provider_entra.provisioning.validate import (
    QUARANTINE_COLUMNS,
    HrSchemaError,
    ValidationResult,
    concat_quarantine,
    validate_hr,
)

__all__ = [
    "ALL_CHANGES",
    "CSV2SCIM_COLUMNS",
    "DEFAULT_MAX_DISABLE_COUNT",
    "DEFAULT_MAX_DISABLE_PERCENT",
    "DEFAULT_PRIVILEGE_RULE",
    "INACTIVE_CHANGED",
    "JOINER",
    "LEAVER",
    "MISSING_DISABLE",
    "MISSING_IGNORED",
    "MOVER",
    "QUARANTINE_COLUMNS",
    "REHIRE",
    "SCIM_MANAGER_COLUMN",
    "SENT_CHANGES",
    "SKIPPED_INACTIVE_NEW",
    "STATUSES",
    "UNCHANGED",
    "DeltaPlan",
    "GuardDecision",
    "HrSchema",
    "HrSchemaError",
    "HrSourceError",
    "NormaliseResult",
    "PrivilegeRule",
    "ReconcileResult",
    "ReportPaths",
    "StagePlan",
    "ValidationResult",
    "active_count",
    "assign_upns",
    "check_deletion_guard",
    "commit_verified",
    "concat_quarantine",
    "derive_admin_accounts",
    "empty_snapshot",
    "failure_reasons",
    "neutralise_formulas",
    "normalise_hr",
    "outcome_summary",
    "pipeline",
    "plan_delta",
    "plan_stages",
    "read_hr_csv",
    "read_snapshot",
    "reconcile",
    "reconcile_detailed",
    "records_to_resend",
    "validate_hr",
    "write_report",
    "write_snapshot",
]
