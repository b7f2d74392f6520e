"""Pure pandas HR provisioning: normalise, validate, plan, guard, stage, reconcile, report.

No Airflow and no network here: each function takes and returns DataFrames (or small values), so every step
is tested directly, on Microsoft's own sample files too. The Airflow tasks of the example DAGs are thin
wrappers over :mod:`~airflow_provider_entra.provisioning.pipeline`, which chains these steps over staged
files. ``docs/package-map.md`` maps every module of the package to its step.

=======================  ====================================================================================
module                   what it does
=======================  ====================================================================================
``hr_source``            read an HR CSV export: encoding and delimiter detection, clear errors
``normalise``            HR text cleaned (NFC, trimmed), statuses, flags and dates read, stable unique UPNs
``ids``                  id hygiene: Excel-mangled WorkerIDs/ManagerIDs restored or quarantined
``validate``             whole-file gates and row quarantine with a reason naming the field
``plan``                 delta against the job's ledger: joiners, movers, leavers, rehires, inactive, held
``guard``                the deletion guard and the data-quality gate: stop a run before it sends
``stages``               managers-first upload stages
``admin``                separate admin accounts for privileged staff
``snapshot``             the state table's columns (what Entra is proven to hold)
``ledger``               the job's ledger: proven states and skips, shared by every DAG of a job
``retention``            delete personal data of old run folders, keep counts and the ledger
``reconcile``            each record's final outcome from the provisioning logs
``report``               per-run ``outcomes.csv`` and ``report.html``
``verdict``              the one failure-threshold rule (``max_failures``, ``max_failure_percent``)
``inputs``               a run's inputs checked against its Params
``paths``                a run folder's layout and file names, the HR snapshot Asset
``feed``                 the ``extract`` and ``transform`` steps over staged files
``sync``                 the ``plan``, ``stages`` and ``commit`` steps against the ledger
``summary``              a run's report, ``run-summary.json``, the log review
``on_demand``            choose employees to provision now
``pipeline``             the steps above in one namespace (what the example DAGs run)
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
from airflow_provider_entra.provisioning.ledger import Ledger, apply_outcomes, read_ledger
from airflow_provider_entra.provisioning.normalise import (
    CSV2SCIM_COLUMNS,
    HrSchema,
    NormaliseResult,
    assign_upns,
    normalise_hr,
)
from airflow_provider_entra.provisioning.plan import (
    ALL_CHANGES,
    HELD,
    INACTIVE_CHANGED,
    INACTIVE_NEW,
    JOINER,
    LEAVER,
    MISSING_DISABLE,
    MISSING_IGNORED,
    MOVER,
    OUT_OF_SCOPE,
    REHIRE,
    SENT_CHANGES,
    STUCK,
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
from airflow_provider_entra.provisioning.snapshot import active_count, empty_snapshot, read_snapshot
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
    "HELD",
    "INACTIVE_NEW",
    "OUT_OF_SCOPE",
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
    "STUCK",
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
    "Ledger",
    "apply_outcomes",
    "read_ledger",
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
]
