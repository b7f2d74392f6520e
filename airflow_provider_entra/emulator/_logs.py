"""Provisioning-log entries: how a cycle writes them, how they are stored, and the ``$skiptoken`` of a page.

The entry is Microsoft's ``provisioningObjectSummary`` (``docs/entra-facts.md`` section 4,
https://learn.microsoft.com/en-us/graph/api/resources/provisioningobjectsummary), shaped after Microsoft's
sample log (``tests/data/microsoft-sample/provisioning-logs-response.json``). Entries are stored compressed
in the ``logs`` table (``_store.LOG_COLUMNS``) and read back with SQL built from ``$filter`` (``_logfilter``).
"""

from __future__ import annotations

import base64
import json
import math
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_entra.emulator._jobs import Job
from airflow_provider_entra.emulator._protocol import ENTERPRISE_USER_SCHEMA, iso


def step(name: str, kind: str, status: str, description: str, details: dict | None = None) -> dict[str, Any]:
    """One ``provisioningSteps[]`` item."""
    return {
        "name": name,
        "provisioningStepType": kind,
        "status": status,
        "description": description,
        "details": details or {},
    }


def job_parts(job: Job) -> dict[str, Any]:
    """The parts of an entry that name the job's systems (the same for each entry of the job)."""
    return {
        "initiatedBy": {
            "id": "",
            "displayName": "Azure AD Provisioning Service",
            "initiatorType": "system",
        },
        "servicePrincipal": {"id": job.service_principal_id, "displayName": job.display_name},
        "sourceSystem": {"id": job.source_system_id, "displayName": "API", "details": {}},
        "targetSystem": {
            "id": job.target_system_id,
            "displayName": "Azure Active Directory",
            "details": {
                "ApplicationId": job.application_id,
                "ServicePrincipalId": job.service_principal_id,
                "ServicePrincipalDisplayName": job.display_name,
            },
        },
    }


def error_info(code: str, reason: str, recommended_action: str) -> dict[str, Any]:
    """An entry's ``provisioningStatusInfo.errorInformation``."""
    return {
        "errorCode": code,
        "reason": reason,
        "additionalDetails": None,
        "errorCategory": "NonServiceFailure",
        "recommendedAction": recommended_action,
    }


@dataclass
class Draft:
    """An entry being built: the record's externalId, its changeId and the steps so far."""

    ext: str
    change_id: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def step(self, name: str, kind: str, status: str, description: str, details: dict | None = None) -> None:
        self.steps.append(step(name, kind, status, description, details))


class CycleLog:
    """The entries one cycle of a job writes, as rows of the ``logs`` table."""

    def __init__(self, tenant_id: str, job: Job, cycle_id: str) -> None:
        self.tenant_id, self.job_id, self.cycle_id = tenant_id, job.job_id, cycle_id
        self._job_parts = job_parts(job)
        self.rows: list[tuple] = []

    def write(
        self,
        draft: Draft,
        action: str,
        status: str,
        target: tuple[str, str, str],
        mods: Sequence[tuple[str, Any, Any]],
        error: dict[str, Any] | None,
    ) -> None:
        """Finish the entry; ``target`` is the user's (object id, userPrincipalName, displayName)."""
        now = time.time()
        target_id, upn, display_name = target
        body = {
            "id": str(uuid.uuid4()),
            "activityDateTime": iso(now),
            "tenantId": self.tenant_id,
            "jobId": self.job_id,
            "cycleId": self.cycle_id,
            "changeId": draft.change_id,
            "provisioningAction": action,
            "durationInMilliseconds": max(1, int((time.perf_counter() - draft.started) * 1000)),
            **self._job_parts,
            "sourceIdentity": {
                "id": draft.ext,
                "displayName": "",
                "identityType": ENTERPRISE_USER_SCHEMA,
                "details": {},
            },
            "targetIdentity": {
                "id": target_id,
                "displayName": display_name,
                "identityType": "User",
                "details": {
                    "id": target_id,
                    "odatatype": "User",
                    "DisplayName": display_name,
                    "UserPrincipalName": upn,
                },
            },
            "provisioningStatusInfo": {"status": status, "errorInformation": error},
            "provisioningSteps": draft.steps,
            "modifiedProperties": [{"displayName": k, "oldValue": o, "newValue": n} for k, o, n in mods],
        }
        self.rows.append(log_row(body, now))


def log_row(body: dict[str, Any], ts: float) -> tuple:
    """The ``logs`` table row (``LOG_COLUMNS`` order) of an entry written at ``ts``."""
    return (
        body["id"],
        ts,
        math.floor(ts),
        body["jobId"],
        body["servicePrincipal"]["id"],
        body["cycleId"],
        body["changeId"],
        body["sourceIdentity"]["id"],
        body["targetIdentity"]["id"],
        body["provisioningStatusInfo"]["status"],
        body["provisioningAction"],
        zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 1),
    )


def unpack(blob: bytes) -> dict[str, Any]:
    """An entry as :func:`log_row` stored it."""
    return json.loads(zlib.decompress(blob))


def encode_token(state: dict[str, Any]) -> str:
    """A ``$skiptoken`` carrying the paging state (``max``: last seq of the first page's read, ``after``)."""
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(state, dict) or not isinstance(state.get("max"), int):
            raise ValueError
        return state
    except (ValueError, TypeError) as exc:
        raise ValueError(f"$skiptoken '{token}' is not valid") from exc
