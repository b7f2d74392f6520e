"""Preflight: check the deployment and the provisioning job before anything is uploaded.

:class:`EntraJobHealthOperator` first checks that the run's staging root is one every task can reach: with a
distributed executor (Celery, Kubernetes, Edge...) the upload, the verification's trigger and the resumed
sensor may each run on another machine, and a local staging root would be a different folder on each (the
verification would find none of the entries the triggerer collected). Then it reads the job through
:class:`~airflow_provider_entra.hooks.entra.EntraHook` and applies
:func:`~airflow_provider_entra.upload.job_health.assess_job`, which holds the rules (a paused, quarantined or
unconfigured job would accept an upload and process nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, BaseOperator, conf

from airflow_provider_entra import _fsio
from airflow_provider_entra._compat import get_variable
from airflow_provider_entra.exceptions import EntraError
from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.staging import STAGING_PATH_PARAM, STAGING_PATH_VARIABLE, resolve_staging_root
from airflow_provider_entra.upload.job_health import JOB_NOT_RUN, JOB_PAUSED, JobHealth, assess_job

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = [
    "LOCAL_EXECUTORS",
    "SHARED_STAGING_VARIABLE",
    "EntraJobHealthOperator",
    "JobHealth",
    "assess_job",
    "distributed_executors",
    "staging_problem",
]

#: Executors that run every task on the scheduler's own machine; any other one is distributed.
LOCAL_EXECUTORS = frozenset({"LocalExecutor", "SequentialExecutor", "DebugExecutor"})
#: The Airflow Variable that declares a local staging root to be one mount every worker and the triggerer
#: share (NFS...): ``true`` lets a distributed deployment stage there.
SHARED_STAGING_VARIABLE = "entra_staging_shared"
_TRUE = ("1", "true", "yes", "on")


def distributed_executors(setting: str | None = None) -> list[str]:
    """The executors of ``[core] executor`` that may run a task on another machine than the scheduler's.

    :param setting: the setting's value (default: the deployment's): one or more executors separated by
        commas, each a class name, a class path or ``alias:class path``.
    :return: their class names, in order; empty when every executor is local.
    """
    value = conf.get("core", "executor", fallback="") if setting is None else setting
    names = [part.strip().rpartition(":")[2].rpartition(".")[2] for part in value.split(",")]
    return [name for name in names if name and name not in LOCAL_EXECUTORS]


def staging_problem(staging_root: str, executors: Sequence[str], *, shared: bool) -> str | None:
    """Why ``staging_root`` cannot serve a deployment with ``executors``, or ``None`` when it can.

    :param staging_root: the run's staging root (local path or URL).
    :param executors: :func:`distributed_executors`.
    :param shared: the local staging root is declared a mount every machine shares.
    """
    if not executors or shared or _fsio.local_path(staging_root) is None:
        return None
    return (
        f"The staging root {staging_root} is on this machine's disk, but the executor "
        f"({', '.join(executors)}) runs tasks on other machines, and the triggerer may run on yet another: "
        "the upload, the verification's trigger and the resumed sensor would each stage files on their own "
        "disk, and the verification would find none of the outcomes. Nothing was sent. Set the Airflow "
        f"Variable {STAGING_PATH_VARIABLE} (or the run's Param {STAGING_PATH_PARAM}) to object storage every "
        "worker and the triggerer reach, e.g. s3://<aws_conn_id>@<bucket>/entra or "
        f"abfs://<conn_id>@<container>/entra; or, if {staging_root} is one mount they all share (NFS), set "
        f"the Variable {SHARED_STAGING_VARIABLE} to true."
    )


class EntraJobHealthOperator(BaseOperator):
    """Check the deployment and the provisioning job before uploading; fail with what to do when they
    cannot process uploads.

    Fails, before any Graph call, when the executor is distributed (:func:`distributed_executors`) and the
    run's staging root (:func:`~airflow_provider_entra.staging.resolve_staging_root`) is a local path not
    declared shared (:func:`staging_problem`). Then fails on Quarantine (with reason, since when, next
    attempt and the restart call), Paused or NotRun (unless ``start_if_paused``), NotConfigured; warns on
    a last execution that Failed or had EntryLevelErrors.

    :param entra_conn_id: connection of type ``entra``. (templated)
    :param start_if_paused: start a Paused (or NotRun) job once instead of failing. Never called in a loop.
    :param fail_on_last_execution_failed: fail, rather than warn, when ``lastExecution.state`` is Failed.
    :param staging_shared: the local staging root is one mount every worker and the triggerer share (NFS);
        default (``None``): the Variable ``entra_staging_shared`` (``true``/``false``, unset: false).
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
        staging_shared: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.entra_conn_id = entra_conn_id
        self.start_if_paused = start_if_paused
        self.fail_on_last_execution_failed = fail_on_last_execution_failed
        self.staging_shared = staging_shared

    @cached_property
    def hook(self) -> EntraHook:
        """The task's hook."""
        return EntraHook(self.entra_conn_id)

    def check_staging(self, params: Mapping[str, Any] | None) -> None:
        """Fail when the deployment is distributed and the run's staging root is a local, unshared path.

        :param params: the run's Params (``staging_path``).
        :raises AirflowFailException: naming what to set (no retry can fix it).
        """
        executors = distributed_executors()
        if not executors:
            return
        root = resolve_staging_root(params)
        shared = self.staging_shared
        if shared is None:
            shared = str(get_variable(SHARED_STAGING_VARIABLE, "") or "").strip().lower() in _TRUE
        problem = staging_problem(root, executors, shared=shared)
        if problem:
            raise AirflowFailException(problem)
        self.log.info(
            "Staging root %s: reachable from every worker (executor: %s)", root, ", ".join(executors)
        )

    def execute(self, context: Context) -> dict[str, Any]:
        self.check_staging(context.get("params") if hasattr(context, "get") else None)
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
