"""Daily review of the provisioning job: its health, and the last 24 hours of provisioning logs.

Two tasks, side by side:

* ``job_health``: fails when the job is quarantined, paused or not configured (with what to do).
* ``review_logs``: reads the job's provisioning logs of the last ``hours`` hours (one paged listing, paced
  at the logs API's 5 requests per 10 s), keeps each record's final outcome, and logs the action x status
  table and the most frequent failure reasons. It writes ``report.html``, ``outcomes.csv`` and
  ``run-summary.json`` to ``<staging root>/entra_provisioning_review/<run id>/``, and fails when more
  records failed than ``max_failures`` or ``max_failure_percent`` allow.

A failed task fails the run, so whatever alerting the deployment has on failures (``on_failure_callback``,
email, or an Airflow notifier such as Slack's, set in ``default_args`` below) tells someone. Use the
``entra_admin`` connection (Param ``entra_conn_id``) to review the admin accounts' job.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, Param, dag, task

from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.operators.job_health import EntraJobHealthOperator
from airflow_provider_entra.provisioning import pipeline
from airflow_provider_entra.provisioning.reconcile import outcome_summary
from airflow_provider_entra.provisioning.report import write_report
from airflow_provider_entra.staging import (
    DEFAULT_RETENTION_DAYS,
    purge_old_runs,
    resolve_staging_root,
    to_path,
)

DAG_ID = "entra_provisioning_review"


@dag(
    dag_id=DAG_ID,
    description="Daily provisioning-job health and provisioning-log review, failing (and alerting) on errors",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # Add your alerting here, e.g. "on_failure_callback": SlackNotifier(...) or "email_on_failure": True.
    default_args={"retries": 0},
    tags=["entra", "provisioning", "review"],
    doc_md=__doc__,
    params={
        "entra_conn_id": Param(
            "entra_default", type="string", description="The entra connection (job) to review."
        ),
        "hours": Param(24, type="number", minimum=1, description="How many hours of logs to review."),
        "max_failures": Param(
            0, type=["null", "integer"], minimum=0, description="Fail when more records failed (null: off)."
        ),
        "max_failure_percent": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=100,
            description="Fail when more than this percentage of the records failed (null: off).",
        ),
        "page_size": Param(500, type="integer", minimum=1, description="Log entries per page."),
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
            description="Where the review's report goes; default: the Variable entra_staging_path, else "
            "$AIRFLOW_HOME/entra-staging.",
        ),
    },
)
def entra_provisioning_review() -> None:
    EntraJobHealthOperator(task_id="job_health", entra_conn_id="{{ params.entra_conn_id }}")

    @task
    def review_logs(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
        """Summarise the window's provisioning logs; fail past the thresholds."""
        hook = EntraHook(params["entra_conn_id"])
        since = datetime.now(timezone.utc) - timedelta(hours=float(params["hours"]))
        entries = hook.iter_provisioning_logs(since=since, page_size=int(params["page_size"]))
        outcomes, summary = pipeline.summarise_logs(entries, since=since)
        run = to_path(str(pipeline.run_dir(resolve_staging_root(params), DAG_ID, run_id)))
        local = Path(run.path) if run.protocol in ("file", "local") else run
        paths = write_report(
            outcomes,
            local,
            run_id=run_id or "",
            summary={"job_id": hook.job_id, "window_start": since.isoformat(timespec="seconds"), **summary},
        )
        summary = {
            "dag_id": DAG_ID,
            "run_id": run_id,
            "job_id": hook.job_id,
            "since": since.isoformat(timespec="seconds"),
            **summary,
            "files": {"report_html": str(paths.html), "report_csv": str(paths.csv)},
        }
        summary["files"]["run_summary"] = pipeline.write_run_summary(run, summary)

        print(
            f"Job {hook.job_id}: {summary['entries']} log entries, {summary['records']} records since {since}"
        )
        if len(outcomes):
            print("Final outcome per record, action x status:\n" + outcome_summary(outcomes).to_string())
        for code, count in summary["failure_reasons"]:
            print(f"  {count:>5} x {code}")
        print(f"Report: {summary['files']['report_html']}")

        failures = summary["outcomes"]["failure"]
        limits = []
        if params["max_failures"] is not None and failures > params["max_failures"]:
            limits.append(f"max_failures={params['max_failures']}")
        if (
            params["max_failure_percent"] is not None
            and summary["failure_percent"] > params["max_failure_percent"]
        ):
            limits.append(f"max_failure_percent={params['max_failure_percent']}")
        if limits:
            reasons = ", ".join(f"{code} ({count})" for code, count in summary["failure_reasons"])
            raise AirflowFailException(
                f"{failures} of {summary['records']} records failed in the last {params['hours']} h "
                f"({summary['failure_percent']}%), over {' and '.join(limits)}. Top reasons: {reasons}. "
                f"Report: {summary['files']['report_html']}"
            )
        return summary

    @task
    def cleanup(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Delete the personal data of this DAG's run folders older than ``retention_days`` (independent of
        the other tasks: it never holds up provisioning, and a failure shows in the run)."""
        return purge_old_runs(params, DAG_ID)

    review_logs()
    cleanup()


entra_provisioning_review()
