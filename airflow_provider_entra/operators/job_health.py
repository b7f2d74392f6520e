"""Preflight: check the provisioning job before anything is uploaded.

A paused job accepts uploads but processes nothing and writes no logs; a quarantined one processes nothing
until the cause is fixed and it is restarted; a job that is not configured cannot provision at all. Each of
these would make an upload look fine (202 Accepted) and its verification wait in vain, so the example DAGs
run :class:`EntraJobHealthOperator` first.

:func:`assess_job` holds the rules (a pure function on the job resource Graph returns); the operator reads
the job through :class:`~airflow_provider_entra.hooks.entra.EntraHook` and applies them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, BaseOperator

from airflow_provider_entra._constants import DEFAULT_RESET_SCOPE
from airflow_provider_entra.hooks.entra import EntraHook

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = [
    "JOB_ACTIVE",
    "JOB_NOT_CONFIGURED",
    "JOB_NOT_RUN",
    "JOB_PAUSED",
    "JOB_QUARANTINE",
    "EntraJobHealthOperator",
    "JobHealth",
    "assess_job",
]

# synchronizationStatus.code, https://learn.microsoft.com/en-us/graph/api/resources/synchronization-synchronizationstatus
JOB_NOT_CONFIGURED = "NotConfigured"
JOB_NOT_RUN = "NotRun"
JOB_ACTIVE = "Active"
JOB_PAUSED = "Paused"
JOB_QUARANTINE = "Quarantine"
# synchronizationTaskExecution.state
EXECUTION_SUCCEEDED = "Succeeded"
EXECUTION_FAILED = "Failed"
EXECUTION_ENTRY_LEVEL_ERRORS = "EntryLevelErrors"
# Quarantine reasons with a specific remedy.
QUARANTINE_TOO_MANY_DELETES = "TooManyDeletes"
QUARANTINE_ESCROW_THRESHOLD = "EncounteredEscrowProportionThreshold"
#: Counters of ``lastExecution`` copied into the result.
EXECUTION_COUNTS: tuple[str, ...] = (
    "countImported",
    "countExported",
    "countEscrowed",
    "countEntitled",
    "countImportedReferenceDeltas",
)


@dataclass(frozen=True)
class JobHealth:
    """Verdict on one job resource.

    :param job_id: the job id.
    :param status: ``status.code`` (NotConfigured, NotRun, Active, Paused, Quarantine).
    :param errors: reasons the run must stop, each with what to do.
    :param warnings: things worth a look that do not stop the run.
    :param last_execution_state: ``status.lastExecution.state`` (Succeeded, Failed, EntryLevelErrors) or None.
    :param last_execution_ended: ``status.lastExecution.timeEnded`` or None.
    :param counts: selected ``lastExecution`` counters.
    :param quarantine: ``status.quarantine`` (reason, currentBegan, nextAttempt) or None.
    """

    job_id: str | None
    status: str | None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    last_execution_state: str | None = None
    last_execution_ended: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    quarantine: dict[str, Any] | None = None

    @property
    def healthy(self) -> bool:
        """No error."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """Small JSON-safe summary for XCom."""
        return {
            "job_id": self.job_id,
            "status": self.status,
            "last_execution_state": self.last_execution_state,
            "last_execution_ended": self.last_execution_ended,
            "counts": dict(self.counts),
            "quarantine_reason": (self.quarantine or {}).get("reason"),
            "warnings": list(self.warnings),
        }


def _restart_hint(conn_id: str, reset_scope: str) -> str:
    return f"EntraHook({conn_id!r}).restart_job(reset_scope={reset_scope!r})"


def _error_text(error: Any) -> str:
    """``lastExecution.error`` (a synchronizationError or text) as one line."""
    if not error:
        return ""
    if isinstance(error, Mapping):
        parts = [str(error.get(key)) for key in ("code", "message") if error.get(key)]
        return ": ".join(parts)
    return str(error)


def assess_job(
    job: Mapping[str, Any],
    *,
    conn_id: str = "entra_default",
    fail_on_last_execution_failed: bool = False,
) -> JobHealth:
    """Judge a provisioning job resource (``GET .../synchronization/jobs/{id}``).

    * ``Quarantine``: error with the reason, since when, the next attempt and how to restart.
    * ``Paused`` and ``NotRun``: error (uploads would be accepted but not processed); start the job.
    * ``NotConfigured``: error; finish the provisioning setup of the app in the Entra portal.
    * ``lastExecution.state`` ``Failed``: warning (error with ``fail_on_last_execution_failed``);
      ``EntryLevelErrors``: warning (some records failed in the last cycle).

    :param job: the job as Graph returns it.
    :param conn_id: connection id used in the remedy hints.
    :param fail_on_last_execution_failed: make a failed last execution an error.
    """
    status = job.get("status") or {}
    code = status.get("code")
    job_id = job.get("id")
    last = status.get("lastExecution") or {}
    last_state = last.get("state")
    health = JobHealth(
        job_id=job_id,
        status=code,
        last_execution_state=last_state,
        last_execution_ended=last.get("timeEnded"),
        counts={key: int(last[key]) for key in EXECUTION_COUNTS if isinstance(last.get(key), int)},
        quarantine=dict(status["quarantine"]) if isinstance(status.get("quarantine"), Mapping) else None,
    )
    name = f"Provisioning job {job_id}"
    if code == JOB_QUARANTINE:
        quarantine = health.quarantine or {}
        reason = quarantine.get("reason") or "(no reason given)"
        scope = DEFAULT_RESET_SCOPE
        remedy = "Fix the cause"
        if reason == QUARANTINE_TOO_MANY_DELETES:
            remedy = (
                "Too many disables or deletes were requested at once (accidental-deletion prevention). "
                "Check that the HR feed is complete; if the disables are intended, release them with reset "
                "scope 'ForceDeletes, QuarantineState', otherwise fix the feed"
            )
            scope = "ForceDeletes, QuarantineState"
        elif reason == QUARANTINE_ESCROW_THRESHOLD:
            remedy = (
                "Too many records failed (escrowed). Read the failures in the provisioning logs and fix them "
                "in the HR data or the attribute mapping"
            )
        health.errors.append(
            f"{name} is in quarantine: reason {reason}, since {quarantine.get('currentBegan') or 'unknown'}, "
            f"next attempt {quarantine.get('nextAttempt') or 'unknown'}. While quarantined it processes "
            f"nothing. {remedy}, then restart the job with reset scope QuarantineState: "
            f"{_restart_hint(conn_id, scope)} (or 'Restart provisioning' in the Entra portal)."
        )
    elif code in (JOB_PAUSED, JOB_NOT_RUN):
        state = "paused" if code == JOB_PAUSED else "not started (NotRun)"
        health.errors.append(
            f"{name} is {state}: uploads would be accepted (202) but not processed and no provisioning "
            f"logs written until it runs. Start it once with EntraHook({conn_id!r}).start_job() or "
            "'Start provisioning' in the Entra portal, or run this task with start_if_paused=True."
        )
    elif code == JOB_NOT_CONFIGURED:
        health.errors.append(
            f"{name} is NotConfigured: the app's provisioning is not set up. In the Entra portal open the "
            "API-driven provisioning app, set up provisioning (mappings and a notification email) and start "
            "it; then check the connection's job_id."
        )
    elif code not in (JOB_ACTIVE,):
        health.warnings.append(f"{name} reports an unknown status code {code!r}.")

    if last_state == EXECUTION_FAILED:
        error = _error_text(last.get("error"))
        text = (
            f"{name}: the last execution failed"
            + (f" ({error})" if error else "")
            + f", ended {last.get('timeEnded') or 'unknown'}. "
            "Check the job's provisioning logs and audit logs."
        )
        (health.errors if fail_on_last_execution_failed else health.warnings).append(text)
    elif last_state == EXECUTION_ENTRY_LEVEL_ERRORS:
        escrowed = health.counts.get("countEscrowed")
        health.warnings.append(
            f"{name}: the last execution had entry-level errors"
            + (f" ({escrowed} record(s) escrowed)" if escrowed else "")
            + f", ended {last.get('timeEnded') or 'unknown'}. Some records failed; the provisioning logs "
            "name them and why."
        )
    return health


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

    def execute(self, context: Context) -> dict[str, Any]:
        hook = EntraHook(self.entra_conn_id)
        job = hook.get_job()
        started = False
        code = (job.get("status") or {}).get("code")
        if code in (JOB_PAUSED, JOB_NOT_RUN) and self.start_if_paused:
            self.log.info(
                "Provisioning job %s is %s; starting it (start_if_paused=True)", job.get("id"), code
            )
            hook.start_job()
            started = True
            job = hook.get_job()
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
