"""Is the provisioning job able to process an upload? The rules, on the job resource Graph returns.

A paused job accepts uploads but processes nothing and writes no logs; a quarantined one processes nothing
until the cause is fixed and it is restarted; a job that is not configured cannot provision at all. Each of
these would make an upload look fine (202 Accepted) and its verification wait in vain. :func:`assess_job`
judges a job resource (``GET .../synchronization/jobs/{id}``) and says what to do;
:class:`~airflow_provider_entra.operators.job_health.EntraJobHealthOperator` reads the job and applies it.

>>> assess_job({"id": "API2AAD.t.j", "status": {"code": "Active"}}).healthy
True

Pure: no Airflow, no network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_entra._constants import DEFAULT_RESET_SCOPE

__all__ = [
    "EXECUTION_COUNTS",
    "JOB_ACTIVE",
    "JOB_NOT_CONFIGURED",
    "JOB_NOT_RUN",
    "JOB_PAUSED",
    "JOB_QUARANTINE",
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
