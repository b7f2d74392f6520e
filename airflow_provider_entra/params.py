"""The run Params of the example DAGs: one definition, one meaning and one description per name.

A DAG picks the Params it reads by name, and gives a default of its own where it needs one::

    from airflow_provider_entra.params import DELETION_GUARD, HOUSEKEEPING, VERIFY, dag_params

    @dag(..., params=dag_params("mapping_path", "dry_run", *DELETION_GUARD, *VERIFY, *HOUSEKEEPING,
                                mapping_path="/opt/airflow/dags/data/hr_mapping.yaml", max_disable_count=5))

The same name means the same thing in every DAG (``max_failures`` counts the records that failed, have no log
entry or are stuck, wherever it appears), and the code that reads a Param is in the package: the staging root
(:mod:`airflow_provider_entra.staging`), the guard (:mod:`airflow_provider_entra.provisioning.guard`), the
run's verdict, the sensor's timings. This module ships with ``pip install``, so a copied DAG keeps working.
"""

from __future__ import annotations

import copy
from typing import Any

from airflow.providers.common.compat.sdk import Param

from airflow_provider_entra.provisioning.guard import (
    DEFAULT_MAX_DISABLE_COUNT,
    DEFAULT_MAX_DISABLE_PERCENT,
    DEFAULT_MAX_QUARANTINE_COUNT,
    DEFAULT_MAX_QUARANTINE_PERCENT,
)
from airflow_provider_entra.provisioning.sync import PREHIRE_POLICIES
from airflow_provider_entra.staging import DEFAULT_RETENTION_DAYS

__all__ = [
    "DELETION_GUARD",
    "FAILURE_LIMITS",
    "HOUSEKEEPING",
    "HR_PROVISIONING",
    "HR_SOURCE",
    "PARAMS",
    "PLAN",
    "QUALITY_GATE",
    "VERIFY",
    "VERIFY_FROM_PARAMS",
    "dag_params",
]

_COUNT = {"type": ["null", "integer"], "minimum": 0}
_PERCENT = {"type": ["null", "number"], "minimum": 0, "maximum": 100}

#: Every Param: ``name -> (default, JSON schema keywords, description)``. ``None`` as the default of a
#: ``string`` Param means the DAG must give one (a path to its own data folder).
PARAMS: dict[str, tuple[Any, dict[str, Any], str]] = {
    # --- where the people come from -------------------------------------------------------------------------
    "hr_source": (
        "csv",
        {"enum": ["csv", "sql"]},
        "Where the HR rows come from: the CSV at hr_path, or sql_query on sql_conn_id.",
    ),
    "hr_path": (
        None,
        {"type": "string"},
        "HR export (CSV, header row): a local path or a URL such as s3://bucket/hr.csv.",
    ),
    "sql_conn_id": (
        None,
        {"type": ["null", "string"]},
        "With hr_source sql: an Airflow SQL connection (Postgres, MySQL, MSSQL, ...).",
    ),
    "sql_query": (
        "SELECT * FROM hr_employees",
        {"type": "string"},
        "With hr_source sql: the query returning one row per employee (the columns the mapping's source "
        "block names).",
    ),
    "mapping_path": (
        None,
        {"type": "string"},
        "Mapping file (YAML): the HR export's layout (source: id, status, manager, names, dates, UPN) and "
        "the SCIM attributes of each account (docs/mapping.md). Any column names.",
    ),
    "upn_domain": (
        "contoso.com",
        {"type": "string"},
        "Domain of the user principal names this DAG derives (first.last@..., adm-first.last@... for admin "
        "accounts), unless the mapping's source block declares one.",
    ),
    "hr_current_path": (
        None,
        {"type": ["null", "string"]},
        "The committed HR feed to derive admin accounts from; default: the triggering Asset event's, else "
        "the HR DAG's snapshot folder under the staging root.",
    ),
    "employee_ids": (
        [],
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "WorkerIDs to provision now (their managers that Entra never received come along).",
    ),
    # --- what is sent ---------------------------------------------------------------------------------------
    "dry_run": (
        False,
        {"type": "boolean"},
        "Build and stage the requests, send nothing (so nothing is verified or committed).",
    ),
    "full_sync": (
        False,
        {"type": "boolean"},
        "Send every record, not only the changes since the last run (stuck records too).",
    ),
    "missing_policy": (
        "disable",
        {"enum": ["disable", "ignore"]},
        "Accounts active in Entra but missing from the export: disable them, or ignore (for partial "
        "exports).",
    ),
    "prehire_policy": (
        "disabled",
        {"enum": list(PREHIRE_POLICIES)},
        "Joiners whose hire date is still to come: created disabled and enabled on that day (disabled), or "
        "enabled at once (enabled).",
    ),
    "inactive_scope_days": (
        None,
        _COUNT,
        "Inactive workers the ledger does not know are sent disabled (their account may exist). A number: "
        "leave out those whose termination date is more than that many days ago (0: leave out every one).",
    ),
    # --- the deletion guard and the data-quality gate -------------------------------------------------------
    "max_disable_count": (
        DEFAULT_MAX_DISABLE_COUNT,
        _COUNT,
        "Deletion guard: stop before sending when the run would disable more accounts (null: off).",
    ),
    "max_disable_percent": (
        DEFAULT_MAX_DISABLE_PERCENT,
        _PERCENT,
        "Deletion guard: stop before sending when the run would disable more than this percentage of the "
        "active accounts (null: off).",
    ),
    "approve_disables": (
        False,
        {"type": "boolean"},
        "Approve this run's disables even when the deletion guard trips.",
    ),
    "max_quarantine_count": (
        DEFAULT_MAX_QUARANTINE_COUNT,
        _COUNT,
        "Data-quality gate: stop before sending when more HR rows were quarantined (null: off).",
    ),
    "max_quarantine_percent": (
        DEFAULT_MAX_QUARANTINE_PERCENT,
        _PERCENT,
        "Data-quality gate: stop before sending when more than this percentage of the HR rows were "
        "quarantined (null: off). A run whose rows were all quarantined always fails.",
    ),
    "approve_quarantine": (
        False,
        {"type": "boolean"},
        "Go ahead even when the data-quality gate trips (quarantined people are held).",
    ),
    "approval_timeout_minutes": (
        60,
        {"type": "number", "minimum": 0},
        "Airflow >= 3.1: how long the approval task waits for an answer in the UI before it rejects. 0: no "
        "approval task, a tripped guard fails at once (re-run with approve_disables).",
    ),
    # --- the run's verdict ----------------------------------------------------------------------------------
    "max_failures": (
        None,
        _COUNT,
        "Fail the run (and alert) when more records than this failed in Entra, have no log entry or are "
        "stuck (null: off).",
    ),
    "max_failure_percent": (
        5.0,
        _PERCENT,
        "Fail the run (and alert) when more than this percentage of the records failed in Entra, have no "
        "log entry or are stuck (null: off).",
    ),
    # --- verification timing (the provisioning-log sensor) --------------------------------------------------
    "verify_poke_interval": (
        60,
        {"type": "number", "minimum": 1},
        "Seconds between provisioning-log polls.",
    ),
    "verify_settle_seconds": (
        60,
        {"type": "number", "minimum": 0},
        "Extra wait for Entra's follow-up log entries when manager references were unresolved.",
    ),
    "verify_timeout_minutes": (
        60,
        {"type": "number", "minimum": 1},
        "Stop waiting for log entries after this long; the rest are reported missing and sent again next "
        "run.",
    ),
    # --- the provisioning-log review ------------------------------------------------------------------------
    "entra_conn_id": (
        "entra_default",
        {"type": "string"},
        "The entra connection: the tenant, app and provisioning job to work on.",
    ),
    "hours": (24, {"type": "number", "minimum": 1}, "How many hours of provisioning logs to review."),
    "page_size": (500, {"type": "integer", "minimum": 1}, "Provisioning-log entries per page."),
    # --- housekeeping ---------------------------------------------------------------------------------------
    "retention_days": (
        DEFAULT_RETENTION_DAYS,
        {"type": "number", "minimum": 0},
        "Delete the personal data of this DAG's run folders older than this many days (run summaries with "
        "their counts, and the ledger, are kept).",
    ),
    "staging_path": (
        None,
        {"type": ["null", "string"]},
        "Staging root for this run; default: the Variable entra_staging_path, else "
        "$AIRFLOW_HOME/entra-staging.",
    ),
}

#: The HR source and its mapping.
HR_SOURCE = ("hr_source", "hr_path", "sql_conn_id", "sql_query", "mapping_path", "upn_domain")
#: What the plan sends.
PLAN = ("full_sync", "missing_policy", "prehire_policy", "inactive_scope_days")
#: The deletion guard.
DELETION_GUARD = ("max_disable_count", "max_disable_percent", "approve_disables")
#: The data-quality gate and the approval in the UI.
QUALITY_GATE = (
    "max_quarantine_count",
    "max_quarantine_percent",
    "approve_quarantine",
    "approval_timeout_minutes",
)
#: The run's verdict after verification.
FAILURE_LIMITS = ("max_failures", "max_failure_percent")
#: The provisioning-log sensor's timing.
VERIFY = ("verify_poke_interval", "verify_settle_seconds", "verify_timeout_minutes")
#: Where files go and how long personal data stays.
HOUSEKEEPING = ("retention_days", "staging_path")
#: Everything a scheduled HR run reads (``entra_hr_provisioning``), in the order of the trigger form.
HR_PROVISIONING = (
    *HR_SOURCE,
    "dry_run",
    *PLAN,
    *DELETION_GUARD,
    *QUALITY_GATE,
    *FAILURE_LIMITS,
    *VERIFY,
    *HOUSEKEEPING,
)
#: ``EntraProvisioningLogSensor(..., **VERIFY_FROM_PARAMS)``: the sensor reads its timing from the
#: :data:`VERIFY` Params at execute time, so the trigger form can change it.
VERIFY_FROM_PARAMS = {
    "poke_interval_param": "verify_poke_interval",
    "settle_seconds_param": "verify_settle_seconds",
    "timeout_minutes_param": "verify_timeout_minutes",
}


def dag_params(*names: str, **defaults: Any) -> dict[str, Param]:
    """The DAG's ``params``: a fresh Param for each name, with its schema and description from
    :data:`PARAMS`; a keyword argument gives that Param this DAG's default (and adds it when not named).

    :raises KeyError: for a name :data:`PARAMS` does not define.
    :raises ValueError: when a Param that needs a default from the DAG (a path) got none.
    """
    params = {}
    for name in dict.fromkeys([*names, *defaults]):
        default, schema, description = PARAMS[name]
        default = copy.deepcopy(defaults.get(name, default))
        if default is None and schema.get("type") == "string":
            raise ValueError(f"Param {name} needs a default from the DAG, e.g. dag_params({name}='...')")
        params[name] = Param(default, description=description, **schema)
    return params
