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
trigger the DAG with ``approve_disables: true``.

Files: ``<staging root>/entra_admin_accounts/<run id>/`` per run, the admin job's ledger in
``<staging root>/ledger/<admin job id>/``. The HR feed is read from the triggering Asset event
(its ``extra`` names the files), else from
``<staging root>/entra_hr_provisioning/snapshot/hr_current.parquet``.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, Param, dag, task

from airflow_provider_entra._compat import asset_ref
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

DAG_ID = "entra_admin_accounts"
HR_DAG_ID = "entra_hr_provisioning"
CONN_ID = "entra_admin"
DATA = Path(__file__).parent / "data"
#: The first release's admin snapshot, adopted into the admin job's ledger on the first run after an upgrade.
ADMIN_SNAPSHOT_NAME = "admin_snapshot.parquet"
log = logging.getLogger(__name__)
#: Where entra_hr_provisioning declares its snapshot Asset (computed as there): Airflow 2.11 matches by URI.
HR_SNAPSHOT_URI = pipeline.join(
    pipeline.snapshot_dir(
        pipeline.staging_root(
            None,
            os.environ.get("AIRFLOW_VAR_ENTRA_STAGING_PATH"),
            os.environ.get("AIRFLOW_HOME", "~/airflow"),
        ),
        HR_DAG_ID,
    ),
    pipeline.SNAPSHOT_NAME,
)


@dag(
    dag_id=DAG_ID,
    description="Admin accounts for privileged staff, through their own provisioning job",
    schedule=[asset_ref(name="entra_hr_snapshot", uri=HR_SNAPSHOT_URI)],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 0},
    tags=["entra", "provisioning", "admin"],
    doc_md=__doc__,
    params={
        "mapping_path": Param(
            str(DATA / "admin_mapping.yaml"),
            type="string",
            description="Attribute mapping of admin accounts.",
        ),
        "upn_domain": Param(
            "contoso.onmicrosoft.com", type="string", description="Domain of admin UPNs (adm-first.last@...)."
        ),
        "hr_current_path": Param(
            None,
            type=["null", "string"],
            description="The committed HR feed to derive from; default: the triggering Asset event's, else "
            "the HR DAG's snapshot folder under the staging root.",
        ),
        "dry_run": Param(False, type="boolean", description="Build and stage the requests, send nothing."),
        "max_disable_count": Param(
            5,
            type=["null", "integer"],
            minimum=0,
            description="Stop when more admin accounts would be disabled.",
        ),
        "max_disable_percent": Param(
            20.0,
            type=["null", "number"],
            minimum=0,
            maximum=100,
            description="Stop when more than this percentage of the admin accounts would be disabled.",
        ),
        "approve_disables": Param(
            False, type="boolean", description="Approve this run's disables even when the guard trips."
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
            description="Staging root; default: the Variable entra_staging_path, else "
            "$AIRFLOW_HOME/entra-staging.",
        ),
        "verify_poke_interval": Param(60, type="number", minimum=1, description="Seconds between log polls."),
        "verify_settle_seconds": Param(
            60, type="number", minimum=0, description="Extra wait for Entra's follow-up log entries."
        ),
        "verify_timeout_minutes": Param(
            60, type="number", minimum=1, description="Stop waiting for log entries after this long."
        ),
    },
)
def entra_admin_accounts() -> None:
    preflight = EntraJobHealthOperator(task_id="preflight", entra_conn_id=CONN_ID)

    @task(multiple_outputs=True)
    def derive(
        params: dict[str, Any] | None = None,
        run_id: str | None = None,
        triggering_asset_events: Any = None,
    ) -> dict[str, Any]:
        """Derive the admin accounts from the committed HR feed; map them."""
        check_run_inputs(params, DATA, source_params=("hr_current_path",))
        root = resolve_staging_root(params)
        source = params.get("hr_current_path")
        for events in (triggering_asset_events or {}).values():
            for event in events:
                source = source or (event.extra or {}).get("hr_current_path")
        source = source or str(
            pipeline.join(pipeline.snapshot_dir(root, HR_DAG_ID), pipeline.HR_CURRENT_NAME)
        )
        if not to_path(source).exists():
            raise AirflowFailException(
                f"No committed HR feed at {source}: run {HR_DAG_ID} first (this DAG runs after each of its "
                "commits), or pass hr_current_path."
            )
        run = to_path(str(pipeline.run_dir(root, DAG_ID, run_id)))
        ledger = pipeline.ledger_path(root, EntraHook(CONN_ID).job_id)
        pipeline.adopt_legacy_snapshot(
            ledger, to_path(str(pipeline.snapshot_dir(root, DAG_ID))) / ADMIN_SNAPSHOT_NAME
        )
        summary = pipeline.derive_admins(
            to_path(source), ledger, to_path(params["mapping_path"]), run, upn_domain=params["upn_domain"]
        )
        log.info(
            "%d admin account(s) (%d active) for %d people in %s; %d quarantined",
            summary["admins"],
            summary["active_admins"],
            summary["people"],
            source,
            summary["quarantined"],
        )
        return {**summary, "source": source, "run_dir": str(run), "ledger": ledger}

    @task(multiple_outputs=True)
    def plan(derived: dict[str, Any]) -> dict[str, Any]:
        """Compare with the admin job's own ledger."""
        summary = pipeline.plan(
            to_path(derived["mapped_path"]), derived["ledger"], to_path(derived["run_dir"])
        )
        changes = ", ".join(f"{n} {kind}" for kind, n in summary["changes"].items() if n)
        log.info("Plan: %d admin account(s) to send (%s)", summary["to_send"], changes or "no changes")
        return summary

    @task
    def guard(derived: dict[str, Any], planned: dict[str, Any], params: dict[str, Any] | None = None) -> dict:
        """The stricter deletion guard of admin accounts."""
        decision = pipeline.guard(
            planned,
            max_disable_count=params["max_disable_count"],
            max_disable_percent=params["max_disable_percent"],
            approved=params["approve_disables"],
        )
        log.info("%s", decision["message"])
        if not decision["proceed"]:
            pipeline.write_run_summary(
                to_path(derived["run_dir"]),
                {"dag_id": DAG_ID, "status": "guard_tripped", "records_sent": 0, "guard": decision},
            )
            raise AirflowFailException(
                f"{decision['message']} To go ahead, trigger {DAG_ID} again with the Param "
                "approve_disables: true."
            )
        return decision

    @task
    def commit(
        derived: dict[str, Any], planned: dict[str, Any], verified: dict[str, Any], run_id: str | None = None
    ) -> dict[str, Any]:
        """Fold the admin accounts the logs prove into the admin job's ledger."""
        summary = pipeline.commit(
            derived["ledger"],
            to_path(planned["delta_path"]),
            to_path(verified["outcomes_path"]),
            run_id=str(run_id),
        )
        log.info("Ledger: %d admin account(s) proven; %d active", summary["verified"], summary["active"])
        return summary

    @task(trigger_rule="none_failed")
    def report(
        derived: dict[str, Any],
        planned: dict[str, Any],
        uploaded: dict[str, Any],
        ti: Any = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """Write run-summary.json."""
        verified = ti.xcom_pull(task_ids="verify") or {}
        committed = ti.xcom_pull(task_ids="commit") or {}
        summary = {
            "dag_id": DAG_ID,
            "run_id": run_id,
            "status": "dry_run" if uploaded.get("dry_run") else "done",
            "finished_at": pipeline.now_utc(),
            "source": {"path": derived["source"], "rows": derived["people"]},
            "transform": {"admins": derived["admins"], "quarantined": derived["quarantined"]},
            "changes": planned["changes"],
            "records_sent": 0 if uploaded.get("dry_run") else uploaded.get("records", 0),
            "requests": uploaded.get("requests", 0),
            "outcomes": verified.get("outcomes", {}),
            "committed": committed.get("verified", 0),
            "ledger_active": committed.get("active"),
            "files": {
                "run_dir": derived["run_dir"],
                "quarantine": derived["quarantine_path"],
                "report_html": verified.get("report_html"),
                "report_csv": verified.get("report_csv"),
                "ledger": committed.get("ledger"),
            },
        }
        summary["files"]["run_summary"] = pipeline.write_run_summary(to_path(derived["run_dir"]), summary)
        log.info("Sent %s admin account(s); outcomes %s", summary["records_sent"], summary["outcomes"])
        failed = int(verified.get("failures") or 0) + int(verified.get("missing") or 0)
        if failed:  # admin accounts: every one must be right
            raise AirflowFailException(
                f"{failed} admin account(s) failed or have no log entry; they will be sent again next run. "
                f"Report: {summary['files']['report_html']}"
            )
        return summary

    @task
    def cleanup(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Delete the personal data of this DAG's run folders older than ``retention_days`` (independent of
        the other tasks: it never holds up provisioning, and a failure shows in the run)."""
        return purge_old_runs(params, DAG_ID)

    derived = derive()
    planned = plan(derived)
    decided = guard(derived, planned)
    upload = EntraBulkUploadOperator(
        task_id="upload",
        entra_conn_id=CONN_ID,
        input_path=planned["delta_path"],
        mapping="{{ params.mapping_path }}",
        input_kind="mapped",
        output_dir=derived["run_dir"],
        build_only_param="dry_run",
    )
    verify = EntraProvisioningLogSensor(
        task_id="verify",
        entra_conn_id=CONN_ID,
        upload_summary=upload.output,
        report_dir=derived["run_dir"],
        max_failures=None,
        deferrable=True,
        poke_interval_param="verify_poke_interval",
        settle_seconds_param="verify_settle_seconds",
        timeout_minutes_param="verify_timeout_minutes",
    )
    committed = commit(derived, planned, verify.output)
    reported = report(derived, planned, upload.output)
    preflight >> derived
    decided >> upload >> verify >> committed >> reported
    cleanup()


entra_admin_accounts()
