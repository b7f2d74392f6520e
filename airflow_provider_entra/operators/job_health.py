"""Preflight: check the provisioning job before anything is uploaded.

:class:`EntraJobHealthOperator` reads the job through :class:`~airflow_provider_entra.hooks.entra.EntraHook`
and applies :func:`~airflow_provider_entra.upload.job_health.assess_job`, which holds the rules (a paused,
quarantined or unconfigured job would accept an upload and process nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, BaseOperator

from airflow_provider_entra.exceptions import EntraError
from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.upload.job_health import JOB_NOT_RUN, JOB_PAUSED, JobHealth, assess_job

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["EntraJobHealthOperator", "JobHealth", "assess_job"]


class EntraJobHealthOperator(BaseOperator):
    """Check the provisioning job before uploading; fail with what to do when it cannot process uploads.

    Fails on Quarantine (with reason, since when, next attempt and the restart call), Paused or NotRun (unless
    ``start_if_paused``), NotConfigured; warns on a last execution that Failed or had EntryLevelErrors.

    :param entra_conn_id: connection of type ``entra``. (templated)
    :param start_if_paused: start a Paused (or NotRun) job once instead of failing. Never called in a loop.
    :param fail_on_last_execution_failed: fail, rather than warn, when ``lastExecution.state`` is Failed.
    :return: ``{"job_id", "status", "last_execution_state", "last_execution_ended", "counts",
        "quarantine_reason", "warnings", "started"}``.
    """

    template_fields: Sequence[str] = ("entra_conn_id",)
    ui_color = "#cfe8fc"

    def __init__(
        self,
        *,
        entra_conn_id: str = EntraHook.default_conn_name,
        start_if_paused: bool = False,
        fail_on_last_execution_failed: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.entra_conn_id = entra_conn_id
        self.start_if_paused = start_if_paused
        self.fail_on_last_execution_failed = fail_on_last_execution_failed

    @cached_property
    def hook(self) -> EntraHook:
        """The task's hook."""
        return EntraHook(self.entra_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            job = self.hook.get_job()
            started = False
            code = (job.get("status") or {}).get("code")
            if code in (JOB_PAUSED, JOB_NOT_RUN) and self.start_if_paused:
                self.log.info(
                    "Provisioning job %s is %s; starting it (start_if_paused=True)", job.get("id"), code
                )
                self.hook.start_job()
                started = True
                job = self.hook.get_job()
        except EntraError as exc:  # a missing permission or a bad connection: no retry can fix it
            if exc.retryable:
                raise
            raise AirflowFailException(str(exc)) from exc
        health = assess_job(
            job, conn_id=self.entra_conn_id, fail_on_last_execution_failed=self.fail_on_last_execution_failed
        )
        for warning in health.warnings:
            self.log.warning("%s", warning)
        if health.errors:
            raise AirflowException(" ".join(health.errors))
        self.log.info(
            "Provisioning job %s is %s (last execution: %s)",
            health.job_id,
            health.status,
            health.last_execution_state or "none yet",
        )
        return {**health.to_dict(), "started": started}
