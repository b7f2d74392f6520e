"""Provision chosen employees now, and show what Entra did with each one.

Entra offers no "provision on demand" for API-driven inbound provisioning apps; this DAG is ours. Trigger
it by hand with the employees' WorkerIDs (Param ``employee_ids``, a list). It reads the current HR export
(``hr_path``), validates, normalises and maps it exactly like ``entra_hr_provisioning`` (same UPNs), picks
those employees, adds every manager up their chain that Entra has never received (so the manager
references resolve), uploads managers first, waits for the provisioning logs, and writes one line per
record into the ``outcomes`` task's log::

    EMP 1513: success (create) upn=ginnie.fadiman@contoso.com
    EMP 1959: success (create) upn=kim.larsen@contoso.com [manager, never sent before]

An id that is not in the export (or is quarantined there) fails the run with the list of such ids; the
known ones are still sent. ``dry_run`` builds and stages the requests without sending them.

What the logs prove enters the job's ledger, the one ``entra_hr_provisioning`` plans against, so the next
scheduled run knows these people (it will not send them again, and disables them when they leave). Runs
that overlap a scheduled run, or each other, are safe: each commits only its own proven records, and each
record is verified only by log entries written after its own upload was accepted.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, dag, task

from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator
from airflow_provider_entra.operators.job_health import EntraJobHealthOperator
from airflow_provider_entra.params import HOUSEKEEPING, VERIFY, VERIFY_FROM_PARAMS, dag_params
from airflow_provider_entra.provisioning import pipeline
from airflow_provider_entra.sensors.provisioning_logs import EntraProvisioningLogSensor
from airflow_provider_entra.staging import cleanup, map_hr_export

DAG_ID = "entra_on_demand"
CONN_ID = EntraHook.default_conn_name
DATA = Path(__file__).parent / "data"
log = logging.getLogger(__name__)


@dag(
    dag_id=DAG_ID,
    description="Provision chosen employees now (Entra has no provision-on-demand for API-driven apps)",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 0},
    tags=["entra", "provisioning", "on-demand"],
    doc_md=__doc__,
    params=dag_params(
        "employee_ids",
        "dry_run",
        "hr_path",
        "mapping_path",
        "upn_domain",
        *VERIFY,
        *HOUSEKEEPING,
        hr_path=str(DATA / "hr_employees.csv"),
        mapping_path=str(DATA / "hr_mapping.yaml"),
        verify_poke_interval=10,  # one person: answer quickly
        verify_settle_seconds=30,
        verify_timeout_minutes=30,
    ),
)
def entra_on_demand() -> None:
    preflight = EntraJobHealthOperator(task_id="preflight", entra_conn_id=CONN_ID)

    @task(multiple_outputs=True)
    def select(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
        """Read and map the HR export; pick the employees asked for and their never-sent managers."""
        run = map_hr_export(params, DAG_ID, run_id, dag_data_folder=DATA, conn_id=CONN_ID)
        chosen = pipeline.select_on_demand(
            run["mapped_path"], run["ledger"], run["run_dir"], params["employee_ids"]
        )
        staged = pipeline.stages(chosen["selected_path"], run["ledger"], run["run_dir"])
        return {
            **chosen,
            "run_dir": run["run_dir"],
            "ledger": run["ledger"],
            "stage_order_path": staged["stage_order_path"],
        }

    @task
    def commit(selected: dict[str, Any], verified: dict[str, Any], run_id: str | None = None) -> dict:
        """Fold what the logs prove into the job's ledger (shared with entra_hr_provisioning)."""
        return pipeline.commit(
            selected["ledger"],
            selected["selected_path"],
            verified["outcomes_path"],
            run_id=str(run_id),
            sent_records=verified.get("records"),
        )

    @task(trigger_rule="none_failed")
    def outcomes(selected: dict[str, Any], uploaded: dict[str, Any], ti: Any = None) -> dict[str, Any]:
        """One line per record: what Entra did with it. Fails on unknown ids or failed records."""
        verified = ti.xcom_pull(task_ids="verify") or {}
        frame = None
        if uploaded.get("dry_run"):
            log.info(
                "Dry run: %s record(s) staged in %s",
                uploaded["records"],
                uploaded.get("dry_run_requests_path"),
            )
        elif verified.get("outcomes_path"):
            frame = pipeline.read_frame(verified["outcomes_path"])
            for line in pipeline.outcome_lines(frame, selected["managers_added"]):
                log.info("%s", line)
        problem = pipeline.problems(selected, frame)
        if problem:
            raise AirflowFailException(problem)
        return {"sent": uploaded.get("records", 0), "outcomes": verified.get("outcomes", {})}

    selected = select()
    upload = EntraBulkUploadOperator(
        task_id="upload",
        pool="entra_api",  # one tenant, one budget: docs/deployment.md
        entra_conn_id=CONN_ID,
        input_path=selected["selected_path"],
        mapping="{{ params.mapping_path }}",
        input_kind="mapped",
        stage_order_path=selected["stage_order_path"],
        output_dir=selected["run_dir"],
        build_only_param="dry_run",
    )
    verify = EntraProvisioningLogSensor(
        task_id="verify",
        pool="entra_api",  # one tenant, one budget: docs/deployment.md
        entra_conn_id=CONN_ID,
        upload_summary=upload.output,
        report_dir=selected["run_dir"],
        max_failures=None,  # the outcomes task names each failure
        deferrable=True,
        **VERIFY_FROM_PARAMS,
    )
    preflight >> selected
    upload >> verify >> commit(selected, verify.output) >> outcomes(selected, upload.output)
    cleanup(DAG_ID)


entra_on_demand()
