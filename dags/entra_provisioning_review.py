"""Daily review of the provisioning job: its health, and the last 24 hours of provisioning logs.

Two tasks, side by side (and ``cleanup``, which deletes old run folders' personal data):

* ``job_health``: fails when the job is quarantined, paused or not configured (with what to do).
* ``review_logs``: reads the job's provisioning logs of the last ``hours`` hours (one paged listing, paced
  at the logs API's 5 requests per 10 s), keeps each record's final outcome, and logs the action x status
  table and the most frequent failure reasons. It writes ``report.html``, ``outcomes.csv`` and
  ``run-summary.json`` to ``<staging root>/entra_provisioning_review/<run id>/``, and fails when more
  records failed or have no log entry than ``max_failures`` or ``max_failure_percent`` allow (the same rule
  as the provisioning DAGs' verdict).

A failed task fails the run, so whatever alerting the deployment has on failures (``on_failure_callback``,
email, or an Airflow notifier such as Slack's, set in ``default_args`` below) tells someone. Use the
``entra_admin`` connection (Param ``entra_conn_id``) to review the admin accounts' job.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, dag, task

from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.operators.job_health import EntraJobHealthOperator
from airflow_provider_entra.params import FAILURE_LIMITS, HOUSEKEEPING, dag_params
from airflow_provider_entra.provisioning import pipeline
from airflow_provider_entra.provisioning.verdict import Tally, verdict
from airflow_provider_entra.staging import cleanup, resolve_staging_root

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
    params=dag_params(
        "entra_conn_id",
        "hours",
        *FAILURE_LIMITS,
        "page_size",
        *HOUSEKEEPING,
        max_failures=0,  # any failure in the window alerts
        max_failure_percent=None,
    ),
)
def entra_provisioning_review() -> None:
    EntraJobHealthOperator(task_id="job_health", entra_conn_id="{{ params.entra_conn_id }}")

    @task(pool="entra_api")  # one tenant, one budget: docs/deployment.md
    def review_logs(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
        """Summarise the window's provisioning logs; fail past the thresholds."""
        hook = EntraHook(params["entra_conn_id"])
        since = datetime.now(timezone.utc) - timedelta(hours=float(params["hours"]))
        summary = pipeline.review_logs(
            hook.iter_provisioning_logs(since=since, page_size=int(params["page_size"])),
            pipeline.run_dir(resolve_staging_root(params), DAG_ID, run_id),
            since=since,
            job_id=hook.job_id,
            dag_id=DAG_ID,
            run_id=run_id,
        )
        problem = verdict(
            Tally.of(summary),
            max_failures=params["max_failures"],
            max_failure_percent=params["max_failure_percent"],
        )
        if problem:
            raise AirflowFailException(
                f"Last {params['hours']} h: {problem} {pipeline.top_reasons_text(summary)} "
                f"Report: {summary['files']['report_html']}"
            )
        return summary

    review_logs()
    cleanup(DAG_ID)


entra_provisioning_review()
