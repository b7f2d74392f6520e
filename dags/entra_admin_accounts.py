"""Separate admin accounts for privileged staff, provisioned by their own app and job.

Runs whenever ``entra_hr_provisioning`` commits its HR snapshot (the ``entra_hr_snapshot`` Asset). From
the committed HR feed it derives one admin account per person in IT, Information Technology or Security, or
with an admin-like job title (``provisioning/admin.py``): externalId ``A<WorkerID>``, UPN
``adm-<first.last>@<upn_domain>``, display name ``<name> (admin)``, linked to the person. An admin account
is disabled (never deleted) when the person leaves or no longer qualifies.

The accounts go through a separate provisioning app and job: the connection ``entra_admin`` (same form as
``entra_default``, with the admin app's client id/secret and job id). The pipeline is the HR one with its
own mapping (``data/admin_mapping.yaml``), its own job's ledger and a stricter deletion guard (by default:
stop when more than 5 admin accounts, or more than 20% of them, would be disabled); to go ahead anyway,
trigger the DAG with ``approve_disables: true``. Every admin account must reach Entra: one that failed or
has no log entry fails the run (it is sent again next run).

Files: ``<staging root>/entra_admin_accounts/<run id>/`` per run, the admin job's ledger in
``<staging root>/ledger/<admin job id>/``. The HR feed is read from the Param ``hr_current_path``, else the
triggering Asset event (its ``extra`` names the files), else
``<staging root>/entra_hr_provisioning/snapshot/hr_current.parquet``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, dag, task

from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator
from airflow_provider_entra.operators.job_health import EntraJobHealthOperator
from airflow_provider_entra.params import DELETION_GUARD, HOUSEKEEPING, VERIFY, VERIFY_FROM_PARAMS, dag_params
from airflow_provider_entra.provisioning import pipeline
from airflow_provider_entra.provisioning.verdict import Tally, verdict
from airflow_provider_entra.sensors.provisioning_logs import EntraProvisioningLogSensor
from airflow_provider_entra.staging import cleanup, committed_hr_feed, hr_snapshot_schedule, start_run

DAG_ID = "entra_admin_accounts"
CONN_ID = "entra_admin"
DATA = Path(__file__).parent / "data"


@dag(
    dag_id=DAG_ID,
    description="Admin accounts for privileged staff, through their own provisioning job",
    schedule=hr_snapshot_schedule(),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 0},
    tags=["entra", "provisioning", "admin"],
    doc_md=__doc__,
    params=dag_params(
        "mapping_path",
        "upn_domain",
        "hr_current_path",
        "dry_run",
        *DELETION_GUARD,
        *VERIFY,
        *HOUSEKEEPING,
        mapping_path=str(DATA / "admin_mapping.yaml"),
        upn_domain="contoso.onmicrosoft.com",
        max_disable_count=5,  # admin accounts: stricter than the HR guard
        max_disable_percent=20.0,
    ),
)
def entra_admin_accounts() -> None:
    preflight = EntraJobHealthOperator(task_id="preflight", entra_conn_id=CONN_ID)

    @task(multiple_outputs=True)
    def derive(
        params: dict | None = None, run_id: str | None = None, triggering_asset_events: Any = None
    ) -> dict:
        """Derive the admin accounts from the committed HR feed; map them."""
        run = start_run(
            params, DAG_ID, run_id, conn_id=CONN_ID, dag_data_folder=DATA, source_params=("hr_current_path",)
        )
        source = committed_hr_feed(params, triggering_asset_events)
        summary = pipeline.derive_admins(
            source, run["ledger"], params["mapping_path"], run["run_dir"], upn_domain=params["upn_domain"]
        )
        return {**summary, "source": source, **run}

    @task(multiple_outputs=True)
    def plan(derived: dict[str, Any]) -> dict[str, Any]:
        """Compare with the admin job's own ledger."""
        return pipeline.plan(derived["mapped_path"], derived["ledger"], derived["run_dir"])

    @task
    def guard(derived: dict[str, Any], planned: dict[str, Any], params: dict | None = None, ti: Any = None):
        """The stricter deletion guard of admin accounts."""
        decision = pipeline.guard(planned, **pipeline.guard_limits(params, quality_gate=False))
        if not decision["proceed"]:
            stop = pipeline.write_stopped_run(
                derived["run_dir"], dag_id=DAG_ID, run_id=ti.run_id, decision=decision
            )
            raise AirflowFailException(stop["message"])
        return decision

    @task
    def commit(derived: dict, planned: dict, verified: dict, run_id: str | None = None) -> dict[str, Any]:
        """Fold the admin accounts the logs prove into the admin job's ledger."""
        return pipeline.commit(
            derived["ledger"],
            planned["delta_path"],
            verified["outcomes_path"],
            run_id=str(run_id),
            sent_records=verified.get("records"),
        )

    @task(trigger_rule="none_failed")
    def report(derived: dict, planned: dict, uploaded: dict, ti: Any = None) -> dict[str, Any]:
        """Write run-summary.json; fail the run when an admin account did not reach Entra."""
        verified = ti.xcom_pull(task_ids="verify") or {}
        summary = pipeline.report_admin_run(
            derived["run_dir"],
            dag_id=DAG_ID,
            run_id=ti.run_id,
            derived=derived,
            planned=planned,
            uploaded=uploaded,
            verified=verified,
            committed=ti.xcom_pull(task_ids="commit") or {},
        )
        problem = verdict(Tally.of(verified), max_failures=0)  # admin accounts: every one must be right
        if problem:
            raise AirflowFailException(f"{problem} Report: {summary['files']['report_html']}")
        return summary

    derived = derive()
    planned = plan(derived)
    decided = guard(derived, planned)
    upload = EntraBulkUploadOperator(
        task_id="upload",
        pool="entra_api",  # one tenant, one budget: docs/deployment.md
        entra_conn_id=CONN_ID,
        input_path=planned["delta_path"],
        mapping="{{ params.mapping_path }}",
        input_kind="mapped",
        output_dir=derived["run_dir"],
        build_only_param="dry_run",
    )
    verify = EntraProvisioningLogSensor(
        task_id="verify",
        pool="entra_api",  # one tenant, one budget: docs/deployment.md
        entra_conn_id=CONN_ID,
        upload_summary=upload.output,
        report_dir=derived["run_dir"],
        max_failures=None,  # judged by the report task, after the proven accounts are committed
        deferrable=True,
        **VERIFY_FROM_PARAMS,
    )
    committed = commit(derived, planned, verify.output)
    reported = report(derived, planned, upload.output)
    preflight >> derived
    decided >> upload >> verify >> committed >> reported
    cleanup(DAG_ID)


entra_admin_accounts()
