"""Provision HR employees into Microsoft Entra ID, daily, and prove every record's outcome from the logs.

What a run does (each box in the graph is one step; every step's files land in the run's staging folder):

1. ``preflight``: read the provisioning job; stop with what to do when it is paused or quarantined.
2. ``extract``: read the HR export (the CSV at Param ``hr_path``, or a query on any Airflow SQL connection
   with ``hr_source: sql``) into ``hr_raw.parquet``.
3. ``transform``: validate and normalise the rows, derive stable unique UPNs, map them to SCIM with the
   mapping at ``mapping_path``. Bad rows are quarantined with a reason (``quarantine.csv``); the rest go on.
4. ``plan``: compare with the job's ledger (what Entra is proven to hold, shared with ``entra_on_demand``
   and any DAG writing to the same job): joiners, movers, leavers, rehires, inactive workers the ledger does
   not know (sent disabled), and accounts missing from the export (disabled). A person whose row was
   quarantined is *held* (neither updated nor disabled). Only changes are sent, unless ``full_sync`` is on.
5. ``guard``: stop before anything is sent when the plan disables more than ``max_disable_count`` accounts
   or ``max_disable_percent`` of the active ones (a truncated export looks like a mass departure), or when
   more rows than ``max_quarantine_count`` / ``max_quarantine_percent`` were quarantined. To go ahead anyway:
   answer the ``approve_disables`` task in the UI (Airflow >= 3.1, "Required actions"), or trigger the DAG
   again with ``approve_disables: true`` / ``approve_quarantine: true``. A run whose rows were all
   quarantined always fails.
6. ``stages`` + ``upload``: managers before their reports, 50 records per bulkUpload call, paced,
   resumable.
7. ``verify``: wait (in the triggerer) for every record's outcome in the provisioning logs; write
   ``report.html``/``outcomes.csv``.
8. ``commit``: only records the logs prove enter the ledger (failures are sent again next run); publishes
   the ``entra_hr_snapshot`` Asset, which starts ``entra_admin_accounts``.
9. ``report``: ``report.html`` (every record with its HR change, quarantined rows, held and stuck people)
   and ``run-summary.json``; the run fails when more records failed, have no log entry or are stuck than
   ``max_failures`` / ``max_failure_percent`` allow, so Airflow's failure callbacks and notifiers alert.

Set up: an ``entra`` connection named ``entra_default`` (see docs/connection.md), then trigger the DAG.
Staged files go to ``<staging root>/entra_hr_provisioning/<run id>/``, the ledger to
``<staging root>/ledger/<job id>/``; the staging root is the Param
``staging_path``, else the Variable ``entra_staging_path`` (e.g. ``s3://bucket/entra`` when workers do not
share a disk), else ``$AIRFLOW_HOME/entra-staging``. See docs/dags.md.
"""

from __future__ import annotations

import logging
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
from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator
from airflow_provider_entra.operators.job_health import EntraJobHealthOperator
from airflow_provider_entra.provisioning import pipeline
from airflow_provider_entra.sensors.provisioning_logs import EntraProvisioningLogSensor
from airflow_provider_entra.staging import (
    DEFAULT_RETENTION_DAYS,
    check_run_inputs,
    purge_old_runs,
    resolve_staging_root,
    to_path,
)

try:  # human approval in the UI: Airflow >= 3.1 (standard provider)
    from airflow.providers.standard.operators.hitl import ApprovalOperator
except (ImportError, AirflowOptionalProviderFeatureException):  # pragma: no cover - Airflow < 3.1
    ApprovalOperator = None

DAG_ID = "entra_hr_provisioning"
CONN_ID = EntraHook.default_conn_name
log = logging.getLogger(__name__)
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
            description="With hr_source sql: the query returning one row per employee (the columns the "
            "mapping's source block names).",
        ),
        "mapping_path": Param(
            str(DATA / "hr_mapping.yaml"),
            type="string",
            description="Mapping file (YAML): the HR export's layout (source: id, status, manager, names, "
            "dates, UPN) and its SCIM attributes (docs/mapping.md). Any column names.",
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
        "max_quarantine_count": Param(
            pipeline.DEFAULT_MAX_QUARANTINE_COUNT,
            type=["null", "integer"],
            minimum=0,
            description="Data-quality gate: stop when more HR rows were quarantined (null: off).",
        ),
        "max_quarantine_percent": Param(
            pipeline.DEFAULT_MAX_QUARANTINE_PERCENT,
            type=["null", "number"],
            minimum=0,
            maximum=100,
            description="Data-quality gate: stop when more than this percentage of the HR rows were "
            "quarantined (null: off). A run whose rows were all quarantined always fails.",
        ),
        "approve_quarantine": Param(
            False,
            type="boolean",
            description="Go ahead even when the data-quality gate trips (quarantined people are held).",
        ),
        "prehire_policy": Param(
            "disabled",
            enum=list(pipeline.PREHIRE_POLICIES),
            description="Joiners whose HireDate is still to come: created disabled and enabled on that day "
            "(disabled), or enabled at once (enabled).",
        ),
        "inactive_scope_days": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            description="Inactive workers the ledger does not know are sent disabled (their account may "
            "exist). A number: leave out those whose TerminationDate is more than that many days ago "
            "(0: leave out every one).",
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
            description="Fail the run (and alert) when more records than this failed in Entra, have no log "
            "entry or are stuck (null: off).",
        ),
        "max_failure_percent": Param(
            5.0,
            type=["null", "number"],
            minimum=0,
            maximum=100,
            description="Fail the run when more than this percentage of the records sent failed (null: off).",
        ),
        "retention_days": Param(
            DEFAULT_RETENTION_DAYS,
            type="number",
            minimum=0,
            description="Delete the personal data of this DAG's run folders older than this many days "
            "(run summaries with their counts, and the ledger, are kept).",
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
    preflight = EntraJobHealthOperator(task_id="preflight", entra_conn_id=CONN_ID)

    @task(multiple_outputs=True)
    def extract(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
        """Stage the HR rows as text in ``hr_raw.parquet``; return the run's paths and the job's ledger."""
        check_run_inputs(params, DATA, source_params=("hr_path",) if params["hr_source"] == "csv" else ())
        root = resolve_staging_root(params)
        run = to_path(str(pipeline.run_dir(root, DAG_ID, run_id)))
        snap = to_path(str(pipeline.snapshot_dir(root, DAG_ID)))
        ledger = pipeline.ledger_path(root, EntraHook(CONN_ID).job_id)
        adopted = pipeline.adopt_legacy_snapshot(ledger, snap / pipeline.SNAPSHOT_NAME)
        if adopted:
            log.info("Adopted the first release's snapshot (%d accounts) into the ledger %s", adopted, ledger)
        out = run / pipeline.RAW_NAME
        if params["hr_source"] == "sql":
            conn_id = params["sql_conn_id"]
            if not conn_id:
                raise AirflowFailException("hr_source is sql but sql_conn_id is empty")
            hook = BaseHook.get_connection(conn_id).get_hook()
            summary = pipeline.extract_sql(hook, params["sql_query"], out, source=f"SQL connection {conn_id}")
        else:
            summary = pipeline.extract_csv(to_path(params["hr_path"]), out)
        log.info("Read %d HR rows from %s", summary["rows"], summary["source"])
        for warning in summary.get("warnings") or ():
            log.warning("%s", warning)
        return {
            **summary,
            "run_dir": str(run),
            "ledger": ledger,
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
            ledger=paths["ledger"],
        )
        log.info(
            "%d rows: %d ready, %d quarantined %s, %d duplicates collapsed, %d warnings, ids restored %s. "
            "Quarantine: %s",
            summary["input_rows"],
            summary["mapped"],
            summary["quarantined"],
            summary["quarantined_by_stage"],
            summary["collapsed_duplicates"],
            summary["warnings"],
            summary["ids_restored"] or "none",
            summary["quarantine_path"],
        )
        return summary

    @task(multiple_outputs=True)
    def plan(
        paths: dict[str, Any], transformed: dict[str, Any], params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Compare with the job's ledger: what to send, who is held, who is stuck."""
        summary = pipeline.plan(
            to_path(transformed["mapped_path"]),
            paths["ledger"],
            to_path(paths["run_dir"]),
            full_sync=params["full_sync"],
            missing_policy=params["missing_policy"],
            held_path=to_path(transformed["held_path"]),
            normalised_path=to_path(transformed["normalised_path"]),
            inactive_scope_days=params["inactive_scope_days"],
            prehire_policy=params["prehire_policy"],
            mapping_path=to_path(params["mapping_path"]),
        )
        changes = ", ".join(f"{n} {kind}" for kind, n in summary["changes"].items() if n)
        log.info("Plan: %d record(s) to send (%s)", summary["to_send"], changes or "no changes")
        for stuck in summary["stuck"]:
            log.warning(
                "Stuck, not sent again: %s skipped by Entra in %d runs: %s",
                stuck["externalId"],
                stuck["runs"],
                stuck["reason"],
            )
        return summary

    @task.branch
    def guard(
        paths: dict[str, Any],
        transformed: dict[str, Any],
        planned: dict[str, Any],
        params: dict[str, Any] | None = None,
        ti: Any = None,
        run_id: str | None = None,
    ) -> str:
        """The deletion guard and the data-quality gate: go on, ask for approval, or stop before sending."""
        decision = pipeline.guard(
            planned,
            max_disable_count=params["max_disable_count"],
            max_disable_percent=params["max_disable_percent"],
            approved=params["approve_disables"],
            transform_summary=transformed,
            max_quarantine_count=params["max_quarantine_count"],
            max_quarantine_percent=params["max_quarantine_percent"],
            quarantine_approved=params["approve_quarantine"],
        )
        ti.xcom_push(key="decision", value=decision)
        log.info("%s", decision["message"])
        if decision["proceed"]:
            return "guard_passed"
        quality = decision["quality"] or {}
        ui = (
            ApprovalOperator is not None
            and float(params["approval_timeout_minutes"]) > 0
            and not quality.get("nothing_valid")
        )
        to_set = [
            f"{name}: true"
            for name, tripped in (
                ("approve_disables", decision["guard_tripped"]),
                ("approve_quarantine", quality.get("tripped")),
            )
            if tripped
        ]
        params_to_set = ("Param " if len(to_set) == 1 else "Params ") + " and ".join(to_set)
        how = (
            "To go ahead, approve the 'approve_disables' task of this run in the UI (Required actions), "
            f"within {params['approval_timeout_minutes']} minute(s), or trigger"
            if ui
            else "To go ahead, trigger"
        )
        message = decision["message"]
        if not quality.get("nothing_valid"):
            message += f" {how} the DAG again with the {params_to_set}."
        status = "rejected" if quality.get("nothing_valid") else "guard_tripped"
        report = pipeline.write_run_report(
            to_path(paths["run_dir"]),
            run_id=str(run_id),
            sent_path=None,
            outcomes_path=None,
            transformed=transformed,
            planned=planned,
            summary={"status": status, "guard": decision["message"]},
        )
        pipeline.write_run_summary(
            to_path(paths["run_dir"]),
            {
                "dag_id": DAG_ID,
                "run_id": run_id,
                "status": status,
                "message": message,
                "records_sent": 0,
                "guard": decision,
                "plan": planned,
                "transform": pipeline.public_summary(transformed),
                "files": {"quarantine": transformed["quarantine_path"], **report},
            },
        )
        if ui:
            log.warning("%s", message)
            return "approve_disables"
        raise AirflowFailException(f"{message} Report: {report['report_html']}")

    passed = EmptyOperator(task_id="guard_passed")

    @task(multiple_outputs=True, trigger_rule="none_failed_min_one_success")
    def stages(paths: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
        """Managers first: the order the upload will follow."""
        summary = pipeline.stages(to_path(planned["delta_path"]), paths["ledger"], to_path(paths["run_dir"]))
        log.info("%d record(s) in managers-first stages %s", summary["records"], summary["stage_sizes"])
        for cycle in summary["cycles"]:
            log.warning("Not sent: %s: %s", cycle["externalId"], cycle["reason"])
        return summary

    @task(outlets=[HR_SNAPSHOT_ASSET])
    def commit(
        paths: dict[str, Any],
        transformed: dict[str, Any],
        planned: dict[str, Any],
        verified: dict[str, Any],
        outlet_events: Any = None,
        run_id: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Fold the records the logs prove into the job's ledger; publish the HR snapshot Asset."""
        summary = pipeline.commit(
            paths["ledger"],
            to_path(planned["delta_path"]),
            to_path(verified["outcomes_path"]),
            run_id=str(run_id),
            normalised_path=to_path(transformed["normalised_path"]),
            hr_current_path=to_path(paths["hr_current_path"]),
            mapping_path=to_path(params["mapping_path"]),
        )
        log.info(
            "Ledger: %d record(s) proven (%d by a skip saying Entra already holds them), %d to send again "
            "next run; %d accounts, %d active.",
            summary["verified"],
            summary["proven_by_skip"],
            summary["not_verified"],
            summary["ledger_rows"],
            summary["active"],
        )
        outlet_events[HR_SNAPSHOT_ASSET].extra = {
            "ledger": summary["ledger"],
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
        """Write report.html and run-summary.json; fail the run when too many records failed or are stuck."""
        verified = ti.xcom_pull(task_ids="verify") or {}
        committed = ti.xcom_pull(task_ids="commit") or {}
        decision = ti.xcom_pull(task_ids="guard", key="decision") or {}
        dry_run = bool(uploaded.get("dry_run"))
        summary = {
            "dag_id": DAG_ID,
            "run_id": run_id,
            "status": "dry_run" if dry_run else "done",
            "finished_at": pipeline.now_utc(),
            "source": {"path": paths["source"], "rows": paths["rows"]},
            "transform": pipeline.public_summary(transformed),
            "changes": planned["changes"],
            "held": planned["held"],
            "stuck": planned["stuck"],
            "records_sent": 0 if dry_run else uploaded.get("records", 0),
            "requests": uploaded.get("requests", 0),
            "stage_sizes": staged["stage_sizes"],
            "guard": decision,
            "outcomes": verified.get("outcomes", {}),
            "verification": verified.get("status"),
            "committed": committed.get("verified", 0),
            "ledger_active": committed.get("active"),
        }
        files = pipeline.write_run_report(
            to_path(paths["run_dir"]),
            run_id=str(run_id),
            sent_path=to_path(planned["delta_path"]),
            outcomes_path=to_path(verified["outcomes_path"]) if verified.get("outcomes_path") else None,
            transformed=transformed,
            planned=planned,
            summary={k: summary[k] for k in ("status", "records_sent", "requests", "committed")},
            timings={
                "first_submitted_at": uploaded.get("first_submit"),
                "first_accepted_at": uploaded.get("first_accepted"),
                "last_accepted_at": uploaded.get("last_accepted"),
            },
        )
        summary["files"] = {
            "run_dir": paths["run_dir"],
            "quarantine": transformed["quarantine_path"],
            **files,
            "dry_run_requests": uploaded.get("dry_run_requests_path"),
            "ledger": committed.get("ledger"),
        }
        summary["files"]["run_summary"] = pipeline.write_run_summary(to_path(paths["run_dir"]), summary)
        outcomes = ", ".join(f"{n} {status}" for status, n in summary["outcomes"].items() if n)
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
        problem = pipeline.verdict(
            verified,
            stuck=planned["changes"].get("stuck", 0) if not planned["full_sync"] else 0,
            max_failures=params["max_failures"],
            max_failure_percent=params["max_failure_percent"],
        )
        if problem:
            raise AirflowFailException(f"{problem} Report: {files['report_html']}")
        return summary

    @task
    def cleanup(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Delete the personal data of this DAG's run folders older than ``retention_days`` (independent of
        the other tasks: it never holds up provisioning, and a failure shows in the run)."""
        return purge_old_runs(params, DAG_ID)

    extracted = extract()
    transformed = transform(extracted)
    planned = plan(extracted, transformed)
    decided = guard(extracted, transformed, planned)
    staged = stages(extracted, planned)
    upload = EntraBulkUploadOperator(
        task_id="upload",
        entra_conn_id=CONN_ID,
        input_path=planned["delta_path"],
        mapping="{{ params.mapping_path }}",
        input_kind="mapped",
        known_manager_ids_path=staged["known_ids_path"],
        output_dir=extracted["run_dir"],
        build_only_param="dry_run",
        retries=2,  # a retry resumes after the requests its manifest records as accepted
        retry_delay=timedelta(minutes=2),
    )
    verify = EntraProvisioningLogSensor(
        task_id="verify",
        entra_conn_id=CONN_ID,
        upload_summary=upload.output,
        report_dir=extracted["run_dir"],
        max_failures=None,  # judged by the report task, after the proven records are committed
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
            subject="Entra HR provisioning: approve what the deletion guard or data-quality gate stopped?",
            body="{{ ti.xcom_pull(task_ids='guard', key='decision')['message'] }}\n\n"
            "Approve to send them; Reject (or no answer in time) stops this run with nothing sent.",
            defaults="Reject",
            fail_on_reject=True,
        )
        decided >> approval >> staged
    staged >> upload >> verify >> committed >> reported
    cleanup()


entra_hr_provisioning()
