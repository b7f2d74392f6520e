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

This DAG does not change ``entra_hr_provisioning``'s snapshot: the next scheduled run compares with what
it committed and may send these records again (a POST of the same record changes nothing in Entra).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, Param, dag, task

from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator
from airflow_provider_entra.operators.job_health import EntraJobHealthOperator
from airflow_provider_entra.provisioning import pipeline
from airflow_provider_entra.sensors.provisioning_logs import EntraProvisioningLogSensor
from airflow_provider_entra.staging import resolve_staging_root, to_path

DAG_ID = "entra_on_demand"
HR_DAG_ID = "entra_hr_provisioning"
DATA = Path(__file__).parent / "data"


@dag(
    dag_id=DAG_ID,
    description="Provision chosen employees now (Entra has no provision-on-demand for API-driven apps)",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 0},
    tags=["entra", "provisioning", "on-demand"],
    doc_md=__doc__,
    params={
        "employee_ids": Param(
            [],
            type="array",
            items={"type": "string"},
            minItems=1,
            description="WorkerIDs to provision now (their managers that Entra never received come along).",
        ),
        "dry_run": Param(False, type="boolean", description="Build and stage the requests, send nothing."),
        "hr_path": Param(
            str(DATA / "hr_employees.csv"),
            type="string",
            description="The current HR export (CSV, path or URL).",
        ),
        "mapping_path": Param(
            str(DATA / "hr_mapping.yaml"), type="string", description="Attribute mapping (as the HR DAG's)."
        ),
        "upn_domain": Param("contoso.com", type="string", description="Domain of derived UPNs."),
        "staging_path": Param(
            None,
            type=["null", "string"],
            description="Staging root; default: the Variable entra_staging_path, else "
            "$AIRFLOW_HOME/entra-staging.",
        ),
        "verify_poke_interval": Param(10, type="number", minimum=1, description="Seconds between log polls."),
        "verify_settle_seconds": Param(
            30, type="number", minimum=0, description="Extra wait for Entra's follow-up log entries."
        ),
        "verify_timeout_minutes": Param(
            30, type="number", minimum=1, description="Stop waiting for log entries after this long."
        ),
    },
)
def entra_on_demand() -> None:
    preflight = EntraJobHealthOperator(task_id="preflight")

    @task(multiple_outputs=True)
    def select(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
        """Read and map the HR export; pick the employees asked for and their never-sent managers."""
        root = resolve_staging_root(params)
        run = to_path(str(pipeline.run_dir(root, DAG_ID, run_id)))
        snapshot = to_path(str(pipeline.join(pipeline.snapshot_dir(root, HR_DAG_ID), pipeline.SNAPSHOT_NAME)))
        extracted = pipeline.extract_csv(to_path(params["hr_path"]), run / pipeline.RAW_NAME)
        transformed = pipeline.transform(
            run / pipeline.RAW_NAME,
            to_path(params["mapping_path"]),
            run,
            upn_domain=params["upn_domain"],
            snapshot_path=snapshot,
        )
        chosen = pipeline.select_on_demand(transformed["mapped_path"], snapshot, run, params["employee_ids"])
        staged = pipeline.stages(to_path(chosen["selected_path"]), snapshot, run)
        print(
            f"Asked for {len(chosen['requested'])} employee(s) in {extracted['rows']} HR rows: "
            f"{len(chosen['found'])} found, managers added {chosen['managers_added'] or 'none'}, "
            f"unknown {chosen['unknown'] or 'none'}; stages {staged['stage_sizes']}"
        )
        return {**chosen, "run_dir": str(run), "known_ids_path": staged["known_ids_path"]}

    @task(trigger_rule="none_failed")
    def outcomes(selected: dict[str, Any], uploaded: dict[str, Any], ti: Any = None) -> dict[str, Any]:
        """One line per record: what Entra did with it. Fails on unknown ids or failed records."""
        verified = ti.xcom_pull(task_ids="verify") or {}
        managers = set(selected["managers_added"])
        problems = []
        if uploaded.get("dry_run"):
            print(
                f"Dry run: {uploaded['records']} record(s) staged in {uploaded.get('dry_run_requests_path')}"
            )
        elif verified.get("outcomes_path"):
            frame = pipeline.read_frame(to_path(verified["outcomes_path"]))
            for row in frame.itertuples(index=False):
                note = " [manager, never sent before]" if row.external_id in managers else ""
                error = (
                    f" error={row.error_code}: {row.reason}" if row.status in ("failure", "skipped") else ""
                )
                action = row.action or "no log entry"
                print(f"EMP {row.external_id}: {row.status} ({action}) upn={row.upn}{error}{note}")
            failed = frame.loc[frame["status"].isin(["failure", "missing"]), "external_id"].tolist()
            if failed:
                problems.append(f"record(s) {', '.join(failed)} failed or have no log entry")
        if selected["unknown"]:
            problems.append(
                f"employee id(s) not in the HR export (or quarantined there, see "
                f"{selected['run_dir']}/quarantine.csv): {', '.join(selected['unknown'])}"
            )
        if problems:
            raise AirflowFailException("; ".join(problems) + ". The others were sent.")
        return {"sent": uploaded.get("records", 0), "outcomes": verified.get("outcomes", {})}

    selected = select()
    upload = EntraBulkUploadOperator(
        task_id="upload",
        input_path=selected["selected_path"],
        mapping="{{ params.mapping_path }}",
        input_kind="mapped",
        known_manager_ids_path=selected["known_ids_path"],
        output_dir=selected["run_dir"],
        dry_run="{{ params.dry_run }}",
    )
    verify = EntraProvisioningLogSensor(
        task_id="verify",
        upload_summary=upload.output,
        report_dir=selected["run_dir"],
        max_failures=None,  # the outcomes task names each failure
        deferrable=True,
        poke_interval_param="verify_poke_interval",
        settle_seconds_param="verify_settle_seconds",
        timeout_minutes_param="verify_timeout_minutes",
    )
    preflight >> selected
    upload >> verify >> outcomes(selected, upload.output)


entra_on_demand()
