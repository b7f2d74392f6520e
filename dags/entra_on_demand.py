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

from airflow.providers.common.compat.sdk import AirflowFailException, Param, dag, task

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

DAG_ID = "entra_on_demand"
HR_DAG_ID = "entra_hr_provisioning"
CONN_ID = EntraHook.default_conn_name
log = logging.getLogger(__name__)
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
    preflight = EntraJobHealthOperator(task_id="preflight", entra_conn_id=CONN_ID)

    @task(multiple_outputs=True)
    def select(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
        """Read and map the HR export; pick the employees asked for and their never-sent managers."""
        check_run_inputs(params, DATA)
        root = resolve_staging_root(params)
        run = to_path(str(pipeline.run_dir(root, DAG_ID, run_id)))
        ledger = pipeline.ledger_path(root, EntraHook(CONN_ID).job_id)
        legacy = pipeline.join(pipeline.snapshot_dir(root, HR_DAG_ID), pipeline.SNAPSHOT_NAME)
        pipeline.adopt_legacy_snapshot(ledger, to_path(str(legacy)))
        extracted = pipeline.extract_csv(to_path(params["hr_path"]), run / pipeline.RAW_NAME)
        transformed = pipeline.transform(
            run / pipeline.RAW_NAME,
            to_path(params["mapping_path"]),
            run,
            upn_domain=params["upn_domain"],
            ledger=ledger,
        )
        chosen = pipeline.select_on_demand(transformed["mapped_path"], ledger, run, params["employee_ids"])
        staged = pipeline.stages(to_path(chosen["selected_path"]), ledger, run)
        log.info(
            "Asked for %d employee(s) in %d HR rows: %d found, managers added %s, unknown %s; stages %s",
            len(chosen["requested"]),
            extracted["rows"],
            len(chosen["found"]),
            chosen["managers_added"] or "none",
            chosen["unknown"] or "none",
            staged["stage_sizes"],
        )
        return {**chosen, "run_dir": str(run), "ledger": ledger, "known_ids_path": staged["known_ids_path"]}

    @task
    def commit(
        selected: dict[str, Any], verified: dict[str, Any], run_id: str | None = None
    ) -> dict[str, Any]:
        """Fold what the logs prove into the job's ledger (shared with entra_hr_provisioning)."""
        summary = pipeline.commit(
            selected["ledger"],
            to_path(selected["selected_path"]),
            to_path(verified["outcomes_path"]),
            run_id=str(run_id),
        )
        log.info(
            "Ledger: %d record(s) proven; %d to send again", summary["verified"], summary["not_verified"]
        )
        return summary

    @task(trigger_rule="none_failed")
    def outcomes(selected: dict[str, Any], uploaded: dict[str, Any], ti: Any = None) -> dict[str, Any]:
        """One line per record: what Entra did with it. Fails on unknown ids or failed records."""
        verified = ti.xcom_pull(task_ids="verify") or {}
        managers = set(selected["managers_added"])
        problems = []
        if uploaded.get("dry_run"):
            log.info(
                "Dry run: %s record(s) staged in %s",
                uploaded["records"],
                uploaded.get("dry_run_requests_path"),
            )
        elif verified.get("outcomes_path"):
            frame = pipeline.read_frame(to_path(verified["outcomes_path"]))
            for row in frame.itertuples(index=False):
                note = " [manager, never sent before]" if row.external_id in managers else ""
                error = (
                    f" error={row.error_code}: {row.reason}" if row.status in ("failure", "skipped") else ""
                )
                action = row.action or "no log entry"
                log.info(
                    "EMP %s: %s (%s) upn=%s%s%s", row.external_id, row.status, action, row.upn, error, note
                )
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

    @task
    def cleanup(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Delete the personal data of this DAG's run folders older than ``retention_days`` (independent of
        the other tasks: it never holds up provisioning, and a failure shows in the run)."""
        return purge_old_runs(params, DAG_ID)

    selected = select()
    upload = EntraBulkUploadOperator(
        task_id="upload",
        entra_conn_id=CONN_ID,
        input_path=selected["selected_path"],
        mapping="{{ params.mapping_path }}",
        input_kind="mapped",
        known_manager_ids_path=selected["known_ids_path"],
        output_dir=selected["run_dir"],
        build_only_param="dry_run",
    )
    verify = EntraProvisioningLogSensor(
        task_id="verify",
        entra_conn_id=CONN_ID,
        upload_summary=upload.output,
        report_dir=selected["run_dir"],
        max_failures=None,  # the outcomes task names each failure
        deferrable=True,
        poke_interval_param="verify_poke_interval",
        settle_seconds_param="verify_settle_seconds",
        timeout_minutes_param="verify_timeout_minutes",
    )
    preflight >> selected
    upload >> verify >> commit(selected, verify.output) >> outcomes(selected, upload.output)
    cleanup()


entra_on_demand()
