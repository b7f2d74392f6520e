"""Provision HR employees into Microsoft Entra ID, daily, and prove every record's outcome from the logs.

What a run does (each box in the graph is one step; every step's files land in the run's staging folder):

1. ``preflight``: read the provisioning job; stop with what to do when it is paused or quarantined.
2. ``extract``: read the HR export (the CSV at Param ``hr_path``, or a query on any Airflow SQL connection
   with ``hr_source: sql``) into ``hr_raw.parquet``.
3. ``transform``: validate and normalise the rows, derive stable unique UPNs, map them to SCIM with the
   mapping at ``mapping_path``. Bad rows are quarantined with a reason (``quarantine.csv``); the rest go on.
4. ``plan``: compare with the last committed snapshot: joiners, movers, leavers, rehires, and accounts
   missing from the export (disabled). Only changes are sent, unless ``full_sync`` is on.
5. ``guard``: stop before anything is sent when the plan disables more than ``max_disable_count`` accounts
   or ``max_disable_percent`` of the active ones (a truncated export looks like a mass departure). To go
   ahead anyway: answer the ``approve_disables`` task in the UI (Airflow >= 3.1, "Required actions"), or
   trigger the DAG again with ``approve_disables: true``.
6. ``stages`` + ``upload``: managers before their reports, 50 records per bulkUpload call, paced,
   resumable.
7. ``verify``: wait (in the triggerer) for every record's outcome in the provisioning logs; write
   ``report.html``/``outcomes.csv``.
8. ``commit``: only verified records enter the snapshot (failures are sent again next run); publishes the
   ``entra_hr_snapshot`` Asset, which starts ``entra_admin_accounts``.
9. ``report``: ``run-summary.json``; the run fails when more records failed than ``max_failures`` /
   ``max_failure_percent`` allow, so Airflow's failure callbacks and notifiers alert.

Set up: an ``entra`` connection named ``entra_default`` (see docs/connection.md), then trigger the DAG.
Staged files go to ``<staging root>/entra_hr_provisioning/<run id>/``; the staging root is the Param
``staging_path``, else the Variable ``entra_staging_path`` (e.g. ``s3://bucket/entra`` when workers do not
share a disk), else ``$AIRFLOW_HOME/entra-staging``. See docs/dags.md.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowOptionalProviderFeatureException,
    BaseHook,
    Param,
    dag,
    task,
)

try:  # Airflow 3: the standard provider
    from airflow.providers.standard.operators.empty import EmptyOperator
except ImportError:  # Airflow 2.11
    from airflow.operators.empty import EmptyOperator  # type: ignore[no-redef]

from airflow_provider_entra._compat import make_asset
from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator
from airflow_provider_entra.operators.job_health import EntraJobHealthOperator
from airflow_provider_entra.provisioning import pipeline
from airflow_provider_entra.sensors.provisioning_logs import EntraProvisioningLogSensor
from airflow_provider_entra.staging import resolve_staging_root, to_path

try:  # human approval in the UI: Airflow >= 3.1 (standard provider)
    from airflow.providers.standard.operators.hitl import ApprovalOperator
except (ImportError, AirflowOptionalProviderFeatureException):  # pragma: no cover - Airflow < 3.1
    ApprovalOperator = None

DAG_ID = "entra_hr_provisioning"
DATA = Path(__file__).parent / "data"
AIRFLOW_HOME = os.environ.get("AIRFLOW_HOME", "~/airflow")
#: The committed HR snapshot. Its URI is the snapshot file under the deployment's staging root (the Variable
#: as an ``AIRFLOW_VAR_`` environment variable, else the default); each event's ``extra`` carries the paths a
#: run actually wrote, which is what ``entra_admin_accounts`` reads.
HR_SNAPSHOT_ASSET = make_asset(
    name="entra_hr_snapshot",
    uri=pipeline.join(
        pipeline.snapshot_dir(
            pipeline.staging_root(None, os.environ.get("AIRFLOW_VAR_ENTRA_STAGING_PATH"), AIRFLOW_HOME),
            DAG_ID,
        ),
        pipeline.SNAPSHOT_NAME,
    ),
)


if ApprovalOperator is not None:

    class DisableApprovalOperator(ApprovalOperator):
        """Ask a person to approve the disables the deletion guard stopped; no answer in
        ``approval_timeout_minutes`` rejects (the default option), and a rejection fails the run."""

        def execute(self, context: Any) -> Any:
            self.response_timeout = timedelta(minutes=float(context["params"]["approval_timeout_minutes"]))
            return super().execute(context)


@dag(
    dag_id=DAG_ID,
    description="HR export -> Entra ID (API-driven inbound provisioning), verified from the logs",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # runs share the snapshot: one at a time
    default_args={"retries": 0},
    tags=["entra", "provisioning"],
    doc_md=__doc__,
    params={
        "hr_source": Param(
            "csv",
            enum=["csv", "sql"],
            description="Where the HR rows come from: the CSV at hr_path, or sql_query on sql_conn_id.",
        ),
        "hr_path": Param(
            str(DATA / "hr_employees.csv"),
            type="string",
            description="HR export (CSV, header row): a local path or a URL such as s3://bucket/hr.csv.",
        ),
        "sql_conn_id": Param(
            None,
            type=["null", "string"],
            description="With hr_source sql: an Airflow SQL connection (Postgres, MySQL, MSSQL, ...).",
        ),
        "sql_query": Param(
            "SELECT * FROM hr_employees",
            type="string",
            description="With hr_source sql: the query returning one row per employee (CSV2SCIM columns).",
        ),
        "mapping_path": Param(
            str(DATA / "hr_mapping.yaml"),
            type="string",
            description="Attribute mapping (YAML) from HR columns to SCIM attributes (docs/mapping.md).",
        ),
        "upn_domain": Param(
            "contoso.com",
            type="string",
            description="Domain of derived user principal names (first.last@...).",
        ),
        "dry_run": Param(
            False, type="boolean", description="Build and stage the requests, send nothing, commit nothing."
        ),
        "full_sync": Param(
            False,
            type="boolean",
            description="Send every active record, not only the changes since last run.",
        ),
        "missing_policy": Param(
            "disable",
            enum=["disable", "ignore"],
            description="Accounts active in Entra but missing from the export: disable them, or ignore "
            "(for partial exports).",
        ),
        "max_disable_count": Param(
            50,
            type=["null", "integer"],
            minimum=0,
            description="Deletion guard: stop when the run would disable more accounts (null: off).",
        ),
        "max_disable_percent": Param(
            10.0,
            type=["null", "number"],
            minimum=0,
            maximum=100,
            description="Deletion guard: stop when the run would disable more than this percentage of the "
            "active accounts (null: off).",
        ),
        "approve_disables": Param(
            False,
            type="boolean",
            description="Approve this run's disables even when the deletion guard trips.",
        ),
        "approval_timeout_minutes": Param(
            60,
            type="number",
            minimum=0,
            description="Airflow >= 3.1: how long the approval task waits for an answer in the UI before it "
            "rejects. 0: no approval task, a tripped guard fails at once (re-run with approve_disables).",
        ),
        "max_failures": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            description="Fail the run (and alert) when more records than this failed in Entra (null: off).",
        ),
        "max_failure_percent": Param(
            5.0,
            type=["null", "number"],
            minimum=0,
            maximum=100,
            description="Fail the run when more than this percentage of the records sent failed (null: off).",
        ),
        "staging_path": Param(
            None,
            type=["null", "string"],
            description="Staging root for this run; default: Variable entra_staging_path, else "
            "$AIRFLOW_HOME/entra-staging.",
        ),
        "verify_poke_interval": Param(
            60, type="number", minimum=1, description="Seconds between provisioning-log polls."
        ),
        "verify_settle_seconds": Param(
            60,
            type="number",
            minimum=0,
            description="Extra wait for Entra's follow-up entries when manager references were unresolved.",
        ),
        "verify_timeout_minutes": Param(
            60,
            type="number",
            minimum=1,
            description="Stop waiting for log entries after this long; the rest are reported missing and "
            "sent again next run.",
        ),
    },
)
def entra_hr_provisioning() -> None:
    preflight = EntraJobHealthOperator(task_id="preflight")

    @task(multiple_outputs=True)
    def extract(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
        """Stage the HR rows as text in ``hr_raw.parquet``; return the run's paths."""
        root = resolve_staging_root(params)
        run = to_path(str(pipeline.run_dir(root, DAG_ID, run_id)))
        snap = to_path(str(pipeline.snapshot_dir(root, DAG_ID)))
        out = run / pipeline.RAW_NAME
        if params["hr_source"] == "sql":
            conn_id = params["sql_conn_id"]
            if not conn_id:
                raise AirflowFailException("hr_source is sql but sql_conn_id is empty")
            hook = BaseHook.get_connection(conn_id).get_hook()
            summary = pipeline.extract_sql(hook, params["sql_query"], out, source=f"SQL connection {conn_id}")
        else:
            summary = pipeline.extract_csv(to_path(params["hr_path"]), out)
        print(f"Read {summary['rows']} HR rows from {summary['source']}")
        for warning in summary.get("warnings") or ():
            print(f"Warning: {warning}")
        return {
            **summary,
            "run_dir": str(run),
            "snapshot_path": str(snap / pipeline.SNAPSHOT_NAME),
            "hr_current_path": str(snap / pipeline.HR_CURRENT_NAME),
        }

    @task(multiple_outputs=True)
    def transform(paths: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate, normalise and map; quarantine bad rows with a reason each."""
        summary = pipeline.transform(
            to_path(paths["path"]),
            to_path(params["mapping_path"]),
            to_path(paths["run_dir"]),
            upn_domain=params["upn_domain"],
            snapshot_path=to_path(paths["snapshot_path"]),
        )
        print(
            f"{summary['input_rows']} rows: {summary['mapped']} ready, {summary['quarantined']} quarantined "
            f"{summary['quarantined_by_stage']}, {summary['collapsed_duplicates']} duplicates collapsed, "
            f"{summary['warnings']} warnings. Quarantine: {summary['quarantine_path']}"
        )
        return summary

    @task(multiple_outputs=True)
    def plan(
        paths: dict[str, Any], transformed: dict[str, Any], params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Compare with the committed snapshot: what to send."""
        summary = pipeline.plan(
            to_path(transformed["mapped_path"]),
            to_path(paths["snapshot_path"]),
            to_path(paths["run_dir"]),
            full_sync=params["full_sync"],
            missing_policy=params["missing_policy"],
        )
        changes = ", ".join(f"{n} {kind}" for kind, n in summary["changes"].items() if n)
        print(f"Plan: {summary['to_send']} record(s) to send ({changes or 'no changes'})")
        return summary

    @task.branch
    def guard(
        paths: dict[str, Any], planned: dict[str, Any], params: dict[str, Any] | None = None, ti: Any = None
    ) -> str:
        """The deletion guard: go on, ask for approval, or stop before anything is sent."""
        decision = pipeline.guard(
            planned,
            max_disable_count=params["max_disable_count"],
            max_disable_percent=params["max_disable_percent"],
            approved=params["approve_disables"],
        )
        ti.xcom_push(key="decision", value=decision)
        print(decision["message"])
        if not decision["tripped"]:
            return "guard_passed"
        if decision["approved"]:
            print("approve_disables is set: going ahead with the disables.")
            return "guard_passed"
        ui = ApprovalOperator is not None and float(params["approval_timeout_minutes"]) > 0
        how = (
            "To go ahead, approve the 'approve_disables' task of this run in the UI (Required actions), "
            f"within {params['approval_timeout_minutes']} minute(s), or trigger"
            if ui
            else "To go ahead, trigger"
        )
        message = f"{decision['message']} {how} the DAG again with the Param approve_disables: true."
        pipeline.write_run_summary(
            to_path(paths["run_dir"]),
            {
                "dag_id": DAG_ID,
                "status": "guard_tripped",
                "records_sent": 0,
                "guard": decision,
                "plan": planned,
            },
        )
        if ui:
            print(message)
            return "approve_disables"
        raise AirflowFailException(message)

    passed = EmptyOperator(task_id="guard_passed")

    @task(multiple_outputs=True, trigger_rule="none_failed_min_one_success")
    def stages(paths: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
        """Managers first: the order the upload will follow."""
        summary = pipeline.stages(
            to_path(planned["delta_path"]), to_path(paths["snapshot_path"]), to_path(paths["run_dir"])
        )
        print(f"{summary['records']} record(s) in managers-first stages {summary['stage_sizes']}")
        for cycle in summary["cycles"]:
            print(f"Not sent: {cycle['externalId']}: {cycle['reason']}")
        return summary

    @task(outlets=[HR_SNAPSHOT_ASSET])
    def commit(
        paths: dict[str, Any],
        transformed: dict[str, Any],
        planned: dict[str, Any],
        verified: dict[str, Any],
        outlet_events: Any = None,
    ) -> dict[str, Any]:
        """Fold the verified records into the snapshot; publish the HR snapshot Asset."""
        summary = pipeline.commit(
            to_path(paths["snapshot_path"]),
            to_path(planned["delta_path"]),
            to_path(verified["outcomes_path"]),
            to_path(paths["snapshot_path"]),
            normalised_path=to_path(transformed["normalised_path"]),
            hr_current_path=to_path(paths["hr_current_path"]),
        )
        print(
            f"Committed {summary['verified']} verified record(s); {summary['not_verified']} to send again "
            f"next run. Snapshot: {summary['snapshot_rows']} accounts, {summary['active']} active."
        )
        outlet_events[HR_SNAPSHOT_ASSET].extra = {
            "snapshot_path": summary["snapshot_path"],
            "hr_current_path": summary["hr_current_path"],
        }
        return summary

    @task(trigger_rule="none_failed")
    def report(
        paths: dict[str, Any],
        transformed: dict[str, Any],
        planned: dict[str, Any],
        staged: dict[str, Any],
        uploaded: dict[str, Any],
        params: dict[str, Any] | None = None,
        ti: Any = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """Write run-summary.json; fail the run when too many records failed in Entra."""
        verified = ti.xcom_pull(task_ids="verify") or {}
        committed = ti.xcom_pull(task_ids="commit") or {}
        decision = ti.xcom_pull(task_ids="guard", key="decision") or {}
        summary = {
            "dag_id": DAG_ID,
            "run_id": run_id,
            "status": "dry_run" if uploaded.get("dry_run") else "done",
            "finished_at": pipeline.now_utc(),
            "source": {"path": paths["source"], "rows": paths["rows"]},
            "transform": {k: v for k, v in transformed.items() if not k.endswith("_path")},
            "changes": planned["changes"],
            "records_sent": 0 if uploaded.get("dry_run") else uploaded.get("records", 0),
            "requests": uploaded.get("requests", 0),
            "stage_sizes": staged["stage_sizes"],
            "guard": decision,
            "outcomes": verified.get("outcomes", {}),
            "verification": verified.get("status"),
            "committed": committed.get("verified", 0),
            "snapshot_active": committed.get("active"),
            "files": {
                "run_dir": paths["run_dir"],
                "quarantine": transformed["quarantine_path"],
                "report_html": verified.get("report_html"),
                "report_csv": verified.get("report_csv"),
                "dry_run_requests": uploaded.get("dry_run_requests_path"),
                "snapshot": committed.get("snapshot_path"),
            },
        }
        summary["files"]["run_summary"] = pipeline.write_run_summary(to_path(paths["run_dir"]), summary)
        outcomes = ", ".join(f"{n} {status}" for status, n in summary["outcomes"].items() if n)
        print(
            f"Sent {summary['records_sent']} record(s) in {summary['requests']} request(s); outcomes: "
            f"{outcomes or 'none'}; {summary['transform']['quarantined']} row(s) quarantined. "
            f"Report: {summary['files']['report_html']}; summary: {summary['files']['run_summary']}"
        )
        records = int(verified.get("records") or 0)
        failed = int(verified.get("failures") or 0) + int(verified.get("missing") or 0)
        limits = []
        if params["max_failures"] is not None and failed > params["max_failures"]:
            limits.append(f"max_failures={params['max_failures']}")
        if (
            params["max_failure_percent"] is not None
            and records
            and 100.0 * failed / records > float(params["max_failure_percent"])
        ):
            limits.append(f"max_failure_percent={params['max_failure_percent']}")
        if limits:
            raise AirflowFailException(
                f"{failed} of {records} record(s) failed or have no log entry, over {' and '.join(limits)}. "
                f"They are not in the snapshot and will be sent again next run. Report: "
                f"{summary['files']['report_html']}"
            )
        return summary

    extracted = extract()
    transformed = transform(extracted)
    planned = plan(extracted, transformed)
    decided = guard(extracted, planned)
    staged = stages(extracted, planned)
    upload = EntraBulkUploadOperator(
        task_id="upload",
        input_path=planned["delta_path"],
        mapping="{{ params.mapping_path }}",
        input_kind="mapped",
        known_manager_ids_path=staged["known_ids_path"],
        output_dir=extracted["run_dir"],
        dry_run="{{ params.dry_run }}",
        retries=2,  # a retry resumes after the requests its manifest records as accepted
        retry_delay=timedelta(minutes=2),
    )
    verify = EntraProvisioningLogSensor(
        task_id="verify",
        upload_summary=upload.output,
        report_dir=extracted["run_dir"],
        max_failures=None,  # judged by the report task, after the verified records are committed
        deferrable=True,
        poke_interval_param="verify_poke_interval",
        settle_seconds_param="verify_settle_seconds",
        timeout_minutes_param="verify_timeout_minutes",
    )
    committed = commit(extracted, transformed, planned, verify.output)
    reported = report(extracted, transformed, planned, staged, upload.output)
    preflight >> extracted
    decided >> passed >> staged
    if ApprovalOperator is not None:
        approval = DisableApprovalOperator(
            task_id="approve_disables",
            subject="Entra HR provisioning: approve the disables the deletion guard stopped?",
            body="{{ ti.xcom_pull(task_ids='guard', key='decision')['message'] }}\n\n"
            "Approve to send them; Reject (or no answer in time) stops this run with nothing sent.",
            defaults="Reject",
            fail_on_reject=True,
        )
        decided >> approval >> staged
    staged >> upload >> verify >> committed >> reported


entra_hr_provisioning()
