"""Provisioning jobs: their state, the transitions start/pause/restart/quarantine make, and the Graph view.

Microsoft's job (``docs/entra-facts.md`` section 5,
https://learn.microsoft.com/en-us/graph/api/resources/synchronization-synchronizationjob): a paused job
accepts uploads but processes nothing; restarting a job that is not running purges its unprocessed uploads;
past the accidental-deletions threshold the job quarantines (``TooManyDeletes``) and holds the disables
until a restart with ``ForceDeletes``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from airflow_provider_entra.emulator._protocol import (
    DEFAULT_DELETE_THRESHOLD,
    JOB_STATUS_ACTIVE,
    JOB_STATUS_PAUSED,
    JOB_STATUS_QUARANTINE,
    QUARANTINE_TOO_MANY_DELETES,
    iso,
)

#: How long a quarantined job waits before Entra tries it again (shown as ``quarantine.nextAttempt``).
_QUARANTINE_RETRY_SECONDS = 12 * 3600


def new_job_id(tenant_id: str) -> str:
    """An API-driven job id: ``API2AAD.<tenant id without dashes>.<guid>``."""
    return f"API2AAD.{tenant_id.replace('-', '')}.{uuid.uuid4()}"


@dataclass
class Upload:
    """An accepted bulkUpload waiting to be processed (one cycle)."""

    seq: int
    job_id: str
    received: float
    due: float
    request_id: str
    operations: list[dict[str, Any]]


@dataclass
class Job:
    """A provisioning job of an API-driven provisioning app (one service principal)."""

    job_id: str
    service_principal_id: str
    app_name: str
    display_name: str
    application_id: str
    status: str = JOB_STATUS_ACTIVE
    quarantine: dict[str, Any] | None = None
    delete_threshold: int = DEFAULT_DELETE_THRESHOLD
    #: Mapped custom attributes: source path -> Entra attribute.
    custom_attributes: dict[str, str] = field(default_factory=dict)
    #: Custom attributes the job schema's API directory declares.
    declared_attributes: list[str] = field(default_factory=list)
    last_execution: dict[str, Any] | None = None
    last_successful_execution: dict[str, Any] | None = None
    #: Disables held by the accidental-deletions threshold: ``ext``, ``change_id``, ``user_id``.
    held: list[dict[str, Any]] = field(default_factory=list)
    delete_times: list[float] = field(default_factory=list)
    source_system_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    target_system_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    # -- transitions -----------------------------------------------------------------------------------------
    def start(self) -> None:
        """``POST .../start``: run again; a quarantine's held disables are dropped."""
        if self.status == JOB_STATUS_QUARANTINE:
            self.held = []
            self.delete_times = []
        self.status = JOB_STATUS_ACTIVE
        self.quarantine = None

    def pause(self) -> None:
        """``POST .../pause``: an Active job stops processing (a quarantined one stays quarantined)."""
        if self.status == JOB_STATUS_ACTIVE:
            self.status = JOB_STATUS_PAUSED

    def restart(self) -> list[dict[str, Any]]:
        """``POST .../restart``: run again with the deletion count and quarantine cleared; return the held
        disables (the caller applies them for ``ForceDeletes``, or drops them)."""
        held, self.held = self.held, []
        self.delete_times = []
        self.status = JOB_STATUS_ACTIVE
        self.quarantine = None
        return held

    def reset(self) -> None:
        """``POST /_emulator/reset``: back to a new job's state (ids, app and name kept)."""
        self.restart()
        self.last_execution = None
        self.last_successful_execution = None
        self.delete_threshold = DEFAULT_DELETE_THRESHOLD
        self.custom_attributes = {}
        self.declared_attributes = []

    # -- accidental deletions --------------------------------------------------------------------------------
    def over_delete_threshold(self, now: float, window_seconds: float) -> bool:
        """Whether one more disable now would pass the threshold (always, while quarantined)."""
        self.delete_times = [t for t in self.delete_times if t > now - window_seconds]
        return self.status == JOB_STATUS_QUARANTINE or len(self.delete_times) + 1 > self.delete_threshold

    def hold_disable(self, now: float, ext: str, change_id: str, user_id: str) -> None:
        """Hold a disable past the threshold, quarantining the job (``TooManyDeletes``) if it is not yet."""
        if self.status != JOB_STATUS_QUARANTINE:
            self.status = JOB_STATUS_QUARANTINE
            self.quarantine = {
                "currentBegan": iso(now),
                "nextAttempt": iso(now + _QUARANTINE_RETRY_SECONDS),
                "reason": QUARANTINE_TOO_MANY_DELETES,
                "seriesBegan": iso(now),
                "seriesCount": 1,
                "error": {
                    "code": QUARANTINE_TOO_MANY_DELETES,
                    "message": (
                        f"The job exceeded its accidental deletions threshold of {self.delete_threshold} "
                        f"disables/deletes; the rest are held until the job is restarted with ForceDeletes."
                    ),
                    "tenantActionable": True,
                },
            }
        self.held.append({"ext": ext, "change_id": change_id, "user_id": user_id})

    # -- Graph -----------------------------------------------------------------------------------------------
    def view(self, *, synced: int, domain: str) -> dict[str, Any]:
        """The job as ``GET .../synchronization/jobs/{id}`` shows it."""
        schedule_state = {"Active": "Active", "Paused": "Disabled"}.get(self.status, "Active")
        return {
            "id": self.job_id,
            "templateId": "API2AAD",
            "schedule": {"expiration": None, "interval": "PT40M", "state": schedule_state},
            "status": {
                "code": self.status,
                "countSuccessiveCompleteFailures": 0,
                "escrowsPruned": False,
                "lastExecution": self.last_execution,
                "lastSuccessfulExecution": self.last_successful_execution,
                "lastSuccessfulExecutionWithExports": self.last_successful_execution,
                "progress": [],
                "quarantine": self.quarantine,
                "steadyStateFirstAchievedTime": None,
                "steadyStateLastAchievedTime": None,
                "synchronizedEntryCountByType": [{"key": "User", "value": synced}],
                "troubleshootingUrl": None,
            },
            "synchronizationJobSettings": [
                {"name": "QuarantineTooManyDeletesThreshold", "value": str(self.delete_threshold)},
                {"name": "Domain", "value": json.dumps({"domain": domain})},
            ],
        }
