"""Provision HR employees into Microsoft Entra ID, daily, and prove every record's outcome from the logs.

New here? Start with ``entra_quickstart``; this is the full run you schedule. Each task is one call into
``airflow_provider_entra.provisioning`` (docs/pipeline.md) and writes its files into the run's folder:

1. ``preflight``: stop, saying what to do, when the provisioning job is paused or quarantined.
2. ``extract``: the HR export (the CSV at ``hr_path``, or ``sql_query`` on ``sql_conn_id`` with
   ``hr_source: sql``) staged as ``hr_raw.parquet``.
3. ``transform``: rows validated and normalised, stable unique UPNs derived, SCIM records mapped with the
   mapping at ``mapping_path``; bad rows quarantined with a reason (``quarantine.csv``), the rest go on.
4. ``plan``: compared with the job's ledger (what Entra is proven to hold, shared with ``entra_on_demand``):
   joiners, movers, leavers, rehires, inactive workers the ledger does not know (sent disabled), accounts
   missing from the export (disabled); a person whose row was quarantined is *held*. Only changes are sent,
   unless ``full_sync``.
5. ``guard``: nothing is sent when the plan disables more than ``max_disable_count`` /
   ``max_disable_percent`` (a truncated export looks like a mass departure), or when more rows than
   ``max_quarantine_count`` / ``max_quarantine_percent`` were quarantined. To go ahead: approve the
   ``approve_disables`` task in the UI (Airflow >= 3.1, "Required actions"), or trigger again with
   ``approve_disables: true`` / ``approve_quarantine: true``.
6. ``stages`` + ``upload``: managers first, 50 records per bulkUpload call, paced, resumable, within the
   tenant's daily allowance (the connection's ``daily_call_budget``): a load larger than a day's quota sends
   what today allows and the run ends ``partial``; the next run carries on (docs/connection.md).
7. ``verify``: wait in the triggerer for every record's outcome in the provisioning logs.
8. ``commit``: only what the logs prove enters the ledger (the rest is sent again next run); publishes the
   ``entra_hr_snapshot`` Asset, which starts ``entra_admin_accounts``.
9. ``report``: ``report.html`` and ``run-summary.json``; the run fails (and alerts) when more records failed,
   have no log entry or are stuck than ``max_failures`` / ``max_failure_percent`` allow.
10. ``cleanup``: personal data of run folders older than ``retention_days`` deleted.

Set up an ``entra`` connection named ``entra_default`` (docs/connection.md) and trigger. Files go to
``<staging root>/entra_hr_provisioning/<run id>/``, the ledger to ``<staging root>/ledger/<job id>/``; the
staging root is the Param ``staging_path``, else the Variable ``entra_staging_path`` (``s3://...`` when
workers share no disk), else ``$AIRFLOW_HOME/entra-staging``. Params: ``airflow_provider_entra.params``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowOptionalProviderFeatureException,
    dag,
    task,
)

from airflow_provider_entra._compat import EmptyOperator
from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator
from airflow_provider_entra.operators.job_health import EntraJobHealthOperator
from airflow_provider_entra.params import HR_PROVISIONING, PLAN, VERIFY_FROM_PARAMS, dag_params
from airflow_provider_entra.provisioning import pipeline
from airflow_provider_entra.provisioning.verdict import Tally, verdict
from airflow_provider_entra.sensors.provisioning_logs import EntraProvisioningLogSensor
from airflow_provider_entra.staging import cleanup, extract_hr, hr_current_path, hr_snapshot_asset, start_run

try:  # human approval in the UI: Airflow >= 3.1 (standard provider)
    from airflow.providers.standard.operators.hitl import ApprovalOperator
except (ImportError, AirflowOptionalProviderFeatureException):  # pragma: no cover - Airflow < 3.1
    ApprovalOperator = None

DAG_ID = "entra_hr_provisioning"
CONN_ID = EntraHook.default_conn_name
DATA = Path(__file__).parent / "data"
HR_SNAPSHOT = hr_snapshot_asset()

if ApprovalOperator is not None:

    class DisableApprovalOperator(ApprovalOperator):
        """Ask a person to approve what the guard stopped; no answer in ``approval_timeout_minutes`` rejects
        (the default option), and a rejection fails the run."""

        def execute(self, context: Any) -> Any:
            self.response_timeout = timedelta(minutes=float(context["params"]["approval_timeout_minutes"]))
            return super().execute(context)


@dag(
    dag_id=DAG_ID,
    description="HR export -> Entra ID (API-driven inbound provisioning), verified from the logs",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # runs plan against the job's ledger: one at a time
    default_args={"retries": 0},
    tags=["entra", "provisioning"],
    doc_md=__doc__,
    params=dag_params(
        *HR_PROVISIONING, hr_path=str(DATA / "hr_employees.csv"), mapping_path=str(DATA / "hr_mapping.yaml")
    ),
)
def entra_hr_provisioning() -> None:
    preflight = EntraJobHealthOperator(task_id="preflight", entra_conn_id=CONN_ID)

    @task(multiple_outputs=True)
    def extract(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
        """Check the Params; stage the HR rows as text in ``hr_raw.parquet``; name the run's folders."""
        run = start_run(params, DAG_ID, run_id, conn_id=CONN_ID, dag_data_folder=DATA)
        return {**extract_hr(params, run["run_dir"]), **run, "hr_current_path": hr_current_path(params)}

    @task(multiple_outputs=True)
    def transform(paths: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate, normalise and map; quarantine bad rows with a reason each."""
        return pipeline.transform(
            paths["path"],
            params["mapping_path"],
            paths["run_dir"],
            upn_domain=params["upn_domain"],
            ledger=paths["ledger"],
        )

    @task(multiple_outputs=True)
    def plan(
        paths: dict[str, Any], transformed: dict[str, Any], params: dict[str, Any] | None = None
    ) -> dict:
        """Compare with the job's ledger: what to send, who is held, who is stuck."""
        return pipeline.plan(
            transformed["mapped_path"],
            paths["ledger"],
            paths["run_dir"],
            held_path=transformed["held_path"],
            normalised_path=transformed["normalised_path"],
            mapping_path=params["mapping_path"],
            **{name: params[name] for name in PLAN},
        )

    @task.branch
    def guard(paths: dict, transformed: dict, planned: dict, params: dict | None = None, ti: Any = None):
        """The deletion guard and the data-quality gate: go on, ask for approval, or stop before sending."""
        decision = pipeline.guard(planned, transform_summary=transformed, **pipeline.guard_limits(params))
        ti.xcom_push(key="decision", value=decision)
        if decision["proceed"]:
            return "guard_passed"
        minutes = float(params["approval_timeout_minutes"]) if ApprovalOperator is not None else None
        stop = pipeline.write_stopped_run(
            paths["run_dir"],
            dag_id=DAG_ID,
            run_id=ti.run_id,
            decision=decision,
            approval_minutes=minutes,
            transformed=transformed,
            planned=planned,
        )
        if stop["ask_approval"]:
            return "approve_disables"
        raise AirflowFailException(f"{stop['message']} Report: {stop['report_html']}")

    @task(multiple_outputs=True, trigger_rule="none_failed_min_one_success")
    def stages(paths: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
        """Managers first: the order the upload will follow."""
        return pipeline.stages(planned["delta_path"], paths["ledger"], paths["run_dir"])

    @task(outlets=[HR_SNAPSHOT])
    def commit(paths: dict, transformed: dict, planned: dict, verified: dict, **context: Any) -> dict:
        """Fold the records the logs prove into the job's ledger; publish the HR snapshot Asset."""
        summary = pipeline.commit(
            paths["ledger"],
            planned["delta_path"],
            verified["outcomes_path"],
            run_id=context["run_id"],
            normalised_path=transformed["normalised_path"],
            hr_current_path=paths["hr_current_path"],
            mapping_path=context["params"]["mapping_path"],
            sent_records=verified.get("records"),
        )
        context["outlet_events"][HR_SNAPSHOT].extra = {k: summary[k] for k in ("ledger", "hr_current_path")}
        return summary

    @task(trigger_rule="none_failed")
    def report(paths: dict, transformed: dict, planned: dict, staged: dict, uploaded: dict, **context: Any):
        """Write report.html and run-summary.json; fail the run when too many records failed or are stuck."""
        ti, params = context["ti"], context["params"]
        verified = ti.xcom_pull(task_ids="verify") or {}
        summary = pipeline.report_hr_run(
            paths["run_dir"],
            dag_id=DAG_ID,
            run_id=ti.run_id,
            extracted=paths,
            transformed=transformed,
            planned=planned,
            staged=staged,
            uploaded=uploaded,
            verified=verified,
            committed=ti.xcom_pull(task_ids="commit") or {},
            decision=ti.xcom_pull(task_ids="guard", key="decision") or {},
        )
        problem = verdict(
            Tally.of(verified, stuck=pipeline.stuck_not_sent(planned)),
            max_failures=params["max_failures"],
            max_failure_percent=params["max_failure_percent"],
        )
        if problem:
            raise AirflowFailException(f"{problem} Report: {summary['files']['report_html']}")
        return summary

    extracted = extract()
    transformed = transform(extracted)
    planned = plan(extracted, transformed)
    decided = guard(extracted, transformed, planned)
    staged = stages(extracted, planned)
    upload = EntraBulkUploadOperator(
        task_id="upload",
        pool="entra_api",  # one tenant, one budget: docs/deployment.md
        entra_conn_id=CONN_ID,
        input_path=planned["delta_path"],
        mapping="{{ params.mapping_path }}",
        input_kind="mapped",
        stage_order_path=staged["stage_order_path"],  # the order the stages task staged
        output_dir=extracted["run_dir"],
        build_only_param="dry_run",
        retries=2,  # a retry resumes after the requests its manifest records as accepted
        retry_delay=timedelta(minutes=2),
    )
    verify = EntraProvisioningLogSensor(
        task_id="verify",
        pool="entra_api",  # one tenant, one budget: docs/deployment.md
        entra_conn_id=CONN_ID,
        upload_summary=upload.output,
        report_dir=extracted["run_dir"],
        max_failures=None,  # judged by the report task, after the proven records are committed
        deferrable=True,
        **VERIFY_FROM_PARAMS,
    )
    committed = commit(extracted, transformed, planned, verify.output)
    reported = report(extracted, transformed, planned, staged, upload.output)
    preflight >> extracted
    decided >> EmptyOperator(task_id="guard_passed") >> staged
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
    cleanup(DAG_ID)


entra_hr_provisioning()
