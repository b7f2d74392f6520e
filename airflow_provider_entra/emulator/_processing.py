"""Processing: one cycle turns a job's records into directory changes and provisioning-log entries.

Each record is one ``changeId``; its entry says what happened (``create``, ``update``, ``disable``,
``stageddelete`` or ``other``) with Microsoft's steps (``docs/entra-facts.md`` sections 2 and 4). The rules
the emulator implements, and which of them are our reading, are in ``docs/emulator.md`` ("Processing").
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_entra.emulator._config import Config
from airflow_provider_entra.emulator._directory import Directory, visible
from airflow_provider_entra.emulator._jobs import Job
from airflow_provider_entra.emulator._logs import CycleLog, Draft, error_info
from airflow_provider_entra.emulator._mapping import import_details, map_record, order_key, show, valid_upn
from airflow_provider_entra.emulator._protocol import (
    ENTERPRISE_USER_SCHEMA,
    ERROR_INVALID_UPN,
    ERROR_REQUIRED_MISSING,
    QUARANTINE_TOO_MANY_DELETES,
    SKIP_NOT_EFFECTIVELY_ENTITLED,
    SKIP_REDUNDANT,
    SKIP_UNRESOLVED_REFERENCE,
    iso,
    iso_ms,
)

_ENT = ENTERPRISE_USER_SCHEMA
_ENT_CAP = "U" + ENTERPRISE_USER_SCHEMA[1:]
_AAD = "Azure Active Directory"

Mods = Sequence[tuple[str, Any, Any]]


@dataclass
class _Entry(Draft):
    #: The manager's externalId, when it is new to the job in this cycle: resolved in the second pass.
    deferred_manager: str | None = None


class Cycle:
    """One provisioning cycle of a job: applies records to the directory and writes their log entries.

    The caller persists the result: the :attr:`touched` users, the rows of :attr:`log`, and the job.
    """

    def __init__(
        self,
        job: Job,
        directory: Directory,
        config: Config,
        *,
        tenant_id: str,
        domain: str,
        exts: Iterable[str],
    ) -> None:
        self.began = time.time()
        self.job, self.directory, self.config, self.domain = job, directory, config, domain
        self.cycle_id = str(uuid.uuid4())
        self.log = CycleLog(tenant_id, job, self.cycle_id)
        self.exts = set(exts)
        self.known_before = {e: directory.known_to_job(job.job_id, e) for e in self.exts}
        # (user id, externalId, changeId, manager externalId) to resolve after the cycle's records
        self.deferred: list[tuple[str, str, str, str]] = []
        self.touched: dict[str, dict[str, Any]] = {}
        self.counts: Counter = Counter()

    # -- a cycle ---------------------------------------------------------------------------------------------
    def apply_records(self, records: Iterable[dict[str, Any]]) -> None:
        """Apply records in order, then resolve the managers that were new to the job in this cycle."""
        for data in records:
            self._apply(data)
        self._second_pass()

    def release_held(self, held: list[dict[str, Any]]) -> None:
        """Apply disables held by the deletion threshold (restart with ``ForceDeletes``)."""
        for item in held:
            user = self.directory.users.get(item["user_id"])
            if user is None or user.get("accountEnabled") is False:
                continue
            entry = _Entry(ext=item["ext"], change_id=item["change_id"])
            old = user.get("accountEnabled", True)
            self._modify(user, {"accountEnabled": False})
            self.counts["exported"] += 1
            self._exported(
                entry,
                "disable",
                user,
                [("accountEnabled", show(old), "False")],
                f"{_ENT_CAP} '{user.get('userPrincipalName')}' was updated in {_AAD} "
                f"(held disable released by ForceDeletes)",
            )

    def finish(self, imported: int) -> None:
        """Record the cycle as the job's last execution."""
        failures = self.counts["failure"]
        execution = {
            "activityIdentifier": self.cycle_id,
            "countEntitled": imported,
            "countEntitledForProvisioning": imported,
            "countEscrowed": failures,
            "countEscrowedRaw": failures,
            "countExported": self.counts["exported"],
            "countExports": self.counts["exported"],
            "countImported": imported,
            "countImportedDeltas": imported,
            "countImportedReferenceDeltas": self.counts["references"],
            "error": None,
            "state": "EntryLevelErrors" if failures else "Succeeded",
            "timeBegan": iso_ms(self.began),
            "timeEnded": iso_ms(time.time()),
        }
        self.job.last_execution = execution
        if not failures:
            self.job.last_successful_execution = execution

    # -- records ---------------------------------------------------------------------------------------------
    def _apply(self, data: dict[str, Any]) -> None:
        entry = _Entry(ext=data["externalId"], change_id=str(uuid.uuid4()))
        target, manager_ext = map_record(
            data,
            self.job.custom_attributes,
            domain=self.domain,
            missing_active_disables=self.config.missing_active_disables,
        )
        active = target.get("accountEnabled", True)
        ext = entry.ext
        entry.step(
            "EntryImportAdd",
            "import",
            "success",
            f"Received {_ENT} '{ext}' change of type (Add) from API",
            import_details(data),
        )
        user = self.directory.by_external_id(ext)
        if user is not None:
            entry.step(
                "EntryImport",
                "matching",
                "success",
                f"Retrieved  '{user.get('userPrincipalName')}' from {_AAD}",
                {"objectId": user["id"], **{k: show(v) for k, v in visible(user).items() if k != "id"}},
            )
        entry.step(
            "EntrySynchronizationScoping",
            "scoping",
            "success",
            f"Determine if {_ENT} in scope by evaluating against each scoping filter",
            {
                "Active in the source system": show(active),
                "Scoping filter evaluation passed": "True",
                "ScopeEvaluationResult": "{}",
            },
        )
        if user is None:
            self._create(entry, target, manager_ext, active)
        else:
            self._update(entry, user, target, manager_ext)

    def _create(self, entry: _Entry, target: dict, manager_ext: str | None, active: bool) -> None:
        ext = entry.ext
        upn = target.get("userPrincipalName") or ""
        display_name = target.get("displayName") or ""
        if not active and not self.config.create_inactive:
            entry.step(
                "EntrySynchronizationSkip",
                "scoping",
                "skipped",
                f"{_ENT} '{ext}' will be skipped: it is not active in API and no matching {_ENT} was found "
                f"in {_AAD}",
                {"SkipReason": SKIP_NOT_EFFECTIVELY_ENTITLED, "IsActive": "False"},
            )
            self._emit(entry, "other", "skipped", None, target=("", upn, display_name))
            return
        entry.step(
            "EntrySynchronizationAdd",
            "matching",
            "success",
            f"{_ENT} '{ext}' will be created in {_AAD} ({_ENT} is active and assigned in API, but no "
            f"matching {_ENT} was found in {_AAD})",
        )
        error: tuple[str, str] | None
        if not upn:
            error = (ERROR_INVALID_UPN, "The userPrincipalName is missing: the record has no userName.")
        else:
            error = self._upn_problem(upn)
        if error is None and not display_name:
            error = (
                ERROR_REQUIRED_MISSING,
                "The required property displayName is missing: send displayName.",
            )
        if error:
            self._fail(entry, "create", "EntryExportAdd", error, None, target=("", upn or ext, display_name))
            return
        manager = self._reference(entry, upn, manager_ext, None)
        if manager:
            target["manager"] = manager
        now = iso(time.time())
        user = {
            "id": str(uuid.uuid4()),
            **target,
            "createdDateTime": now,
            "lastModifiedDateTime": now,
            "_jobs": [self.job.job_id],
        }
        self.directory.add(user)
        self.touched[user["id"]] = user
        self._defer(entry, user)
        mods = [(k, None, show(v)) for k, v in sorted(target.items(), key=lambda kv: order_key(kv[0]))]
        mods += [("IsSoftDeleted", None, "False"), ("passwordProfile.password", None, "[Redacted]")]
        details = {k.replace(".", ""): v for k, _, v in mods} | {"ReportableIdentifier": ext}
        entry.step(
            "EntryExportAdd", "export", "success", f"{_ENT_CAP} '{upn}' was created in {_AAD}", details
        )
        self.counts["exported"] += 1
        self._emit(entry, "create", "success", user, mods)

    def _update(self, entry: _Entry, user: dict, target: dict, manager_ext: str | None) -> None:
        job = self.job
        upn_now = user.get("userPrincipalName", "")
        new_upn = target.get("userPrincipalName") or ""
        renamed = bool(new_upn) and new_upn.lower() != upn_now.lower()
        if renamed:
            error = self._upn_problem(new_upn, user["id"])
            if error:
                self._fail(entry, "update", "EntryExportUpdate", error, user)
                return
        manager = self._reference(entry, new_upn or upn_now, manager_ext, user.get("manager"))
        if manager:
            target["manager"] = manager
        mods = [
            (k, show(user.get(k)), show(v))
            for k, v in sorted(target.items(), key=lambda kv: order_key(kv[0]))
            if user.get(k) != v
        ]
        is_disable = user.get("accountEnabled", True) is True and target.get("accountEnabled") is False
        if is_disable and job.over_delete_threshold(time.time(), self.config.delete_window_seconds):
            self._stage_delete(entry, user)
            return
        self._defer(entry, user)
        if job.job_id not in user.get("_jobs", []):
            user.setdefault("_jobs", []).append(job.job_id)
            self.touched[user["id"]] = user
        if not mods:
            entry.step(
                "EntrySynchronizationNone",
                "processing",
                "skipped",
                f"No changes are needed for {_ENT} '{entry.ext}': the values in {_AAD} already match the "
                f"source",
                {"SkipReason": SKIP_REDUNDANT, "ReportableIdentifier": entry.ext},
            )
            self._emit(entry, "other", "skipped", user)
            return
        if renamed:
            self.directory.rename(user, upn_now, new_upn)
        self._modify(user, {key: target[key] for key, _, _ in mods})
        if is_disable:
            job.delete_times.append(time.time())
        self.counts["exported"] += 1
        self._exported(
            entry,
            "disable" if is_disable else "update",
            user,
            mods,
            f"{_ENT_CAP} '{user['userPrincipalName']}' was updated in {_AAD}",
        )

    def _upn_problem(self, upn: str, user_id: str | None = None) -> tuple[str, str] | None:
        """Why ``upn`` cannot be given to the user ``user_id`` (a new user: None), or None."""
        if not valid_upn(upn):
            return ERROR_INVALID_UPN, f"The userPrincipalName '{upn}' is not a valid user principal name."
        owner = self.directory.upn_owner(upn)
        if owner is not None and owner != user_id:
            return (
                ERROR_INVALID_UPN,
                f"Another object with the same value for property userPrincipalName already exists "
                f"(userPrincipalName '{upn}').",
            )
        return None

    def _stage_delete(self, entry: _Entry, user: dict) -> None:
        job = self.job
        job.hold_disable(time.time(), entry.ext, entry.change_id, user["id"])
        reason = (
            f"The accidental deletions threshold of {job.delete_threshold} was exceeded; disabling "
            f"'{user.get('userPrincipalName')}' is held until an administrator restarts the job with "
            "ForceDeletes."
        )
        entry.step(
            "EntrySynchronizationSkip",
            "processing",
            "skipped",
            reason,
            {"SkipReason": QUARANTINE_TOO_MANY_DELETES, "Threshold": str(job.delete_threshold)},
        )
        action = "Review the held disables, then restart the job with resetScope ForceDeletes."
        error = error_info(QUARANTINE_TOO_MANY_DELETES, reason, action)
        self._emit(entry, "stageddelete", "skipped", user, error=error)

    def _fail(
        self,
        entry: _Entry,
        action: str,
        step_name: str,
        error: tuple[str, str],
        user: dict | None,
        *,
        target: tuple[str, str, str] | None = None,
    ) -> None:
        """A failed export: the failure step and a ``failure`` entry (``target``: see :meth:`_emit`)."""
        code, reason = error
        upn = target[1] if target else _identity(user)[1]
        verb = "create" if action == "create" else "update"
        entry.step(
            step_name,
            "export",
            "failure",
            f"Failed to {verb} {_ENT} '{upn}' in {_AAD}; Error: {reason}",
            {"ReportableIdentifier": entry.ext},
        )
        recommended = (
            "Make the userPrincipalName unique and valid in the source (userName), then send the record "
            "again."
            if code == ERROR_INVALID_UPN
            else "Send the missing attribute, then send the record again."
        )
        self._emit(entry, action, "failure", user, error=error_info(code, reason, recommended), target=target)

    # -- manager references ----------------------------------------------------------------------------------
    def _reference(self, entry: _Entry, upn: str, manager_ext: str | None, current: str | None) -> str | None:
        """Resolve the manager now, or add the skipped step (and queue the second pass when documented)."""
        if not manager_ext:
            return None
        new_in_cycle = manager_ext in self.exts and not self.known_before.get(manager_ext)
        # A manager resolves only if this job processed it in an earlier cycle.
        if not new_in_cycle and self.directory.known_to_job(self.job.job_id, manager_ext):
            return self.directory.by_emp[manager_ext]
        if current and self.directory.users.get(current, {}).get("employeeId") == manager_ext:
            return current
        entry.step(
            "EntrySynchronizationSkip",
            "processing",
            "success",
            f"We were unable to assign {manager_ext} as the manager of {upn}. In order to ensure that "
            f"the references are updated properly, you have two options. First, ensure that "
            f"{manager_ext} is in scope for provisioning. Provision {manager_ext} on-demand and then "
            f"provision {upn} on-demand. Alternatively, you can restart provisioning after ensuring that "
            f"{manager_ext} is in scope for provisioning. ",
            {manager_ext: "manager Add", "PropertyName": "manager", "SkipReason": SKIP_UNRESOLVED_REFERENCE},
        )
        if new_in_cycle:
            entry.deferred_manager = manager_ext
        return None

    def _defer(self, entry: _Entry, user: dict) -> None:
        if entry.deferred_manager:
            self.deferred.append((user["id"], entry.ext, entry.change_id, entry.deferred_manager))

    def _second_pass(self) -> None:
        """Entries for managers created in this cycle: an ``update`` with the same changeId."""
        for user_id, ext, change_id, manager_ext in self.deferred:
            user = self.directory.users.get(user_id)
            manager_id = self.directory.by_emp.get(manager_ext)
            if user is None or manager_id is None or user.get("manager") == manager_id:
                continue
            if not self.directory.known_to_job(self.job.job_id, manager_ext):
                continue
            entry = _Entry(ext=ext, change_id=change_id)
            old = user.get("manager")
            self._modify(user, {"manager": manager_id})
            self.counts["references"] += 1
            self._exported(
                entry,
                "update",
                user,
                [("manager", old, manager_id)],
                f"{_ENT_CAP} '{ext}' was updated in {_AAD}",
            )

    # -- writing ---------------------------------------------------------------------------------------------
    def _modify(self, user: dict, changes: dict[str, Any]) -> None:
        user.update(changes)
        user["lastModifiedDateTime"] = iso(time.time())
        self.touched[user["id"]] = user

    def _exported(self, entry: _Entry, action: str, user: dict, mods: Mods, description: str) -> None:
        """A successful change of an existing user: the ``EntryExportUpdate`` step and its entry."""
        entry.step("EntryExportUpdate", "export", "success", description, {"ReportableIdentifier": entry.ext})
        self._emit(entry, action, "success", user, mods)

    def _emit(
        self,
        entry: _Entry,
        action: str,
        status: str,
        user: dict | None,
        mods: Mods = (),
        *,
        error: dict[str, Any] | None = None,
        target: tuple[str, str, str] | None = None,
    ) -> None:
        """Write the entry; ``target`` (object id, userPrincipalName, displayName) defaults to the user's."""
        self.counts[status] += 1
        self.log.write(entry, action, status, target or _identity(user), mods, error)


def _identity(user: dict | None) -> tuple[str, str, str]:
    """The user's object id, userPrincipalName and displayName for an entry's ``targetIdentity``."""
    if user is None:
        return "", "", ""
    return user["id"], user.get("userPrincipalName", ""), user.get("displayName", "")
