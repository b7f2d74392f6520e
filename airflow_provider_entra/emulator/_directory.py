"""The emulated tenant's users, indexed the ways processing looks them up.

A user is a dict of Entra attributes (``id``, ``userPrincipalName``, ``employeeId``, ...) plus private keys
starting with ``_`` (``_jobs``: the provisioning jobs that processed it), which no answer shows.
Matching is by ``employeeId`` = the record's ``externalId`` (``docs/entra-facts.md`` section 2).
"""

from __future__ import annotations

from typing import Any


def visible(user: dict[str, Any]) -> dict[str, Any]:
    """The user without the emulator's private keys."""
    return {k: v for k, v in user.items() if not k.startswith("_")}


class Directory:
    """Users by object id, with indexes by employeeId and (lower-case) userPrincipalName."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.by_emp: dict[str, str] = {}
        self.by_upn: dict[str, str] = {}

    def clear(self) -> None:
        self.users.clear()
        self.by_emp.clear()
        self.by_upn.clear()

    def add(self, user: dict[str, Any]) -> None:
        """Add (or re-index) a user."""
        self.users[user["id"]] = user
        if user.get("employeeId"):
            self.by_emp[user["employeeId"]] = user["id"]
        if user.get("userPrincipalName"):
            self.by_upn[user["userPrincipalName"].lower()] = user["id"]

    def by_external_id(self, ext: str) -> dict[str, Any] | None:
        oid = self.by_emp.get(ext)
        return self.users.get(oid) if oid else None

    def upn_owner(self, upn: str) -> str | None:
        """The object id of the user holding ``upn`` (case-insensitive), if any."""
        return self.by_upn.get(upn.lower())

    def rename(self, user: dict[str, Any], old_upn: str, new_upn: str) -> None:
        """Move the UPN index from ``old_upn`` to ``new_upn`` (the caller sets the attribute)."""
        self.by_upn.pop(old_upn.lower(), None)
        self.by_upn[new_upn.lower()] = user["id"]

    def known_to_job(self, job_id: str, ext: str) -> bool:
        """Whether the user with this externalId exists and the job processed it."""
        user = self.by_external_id(ext)
        return user is not None and job_id in user.get("_jobs", [])

    def synced_count(self, job_id: str) -> int:
        return sum(1 for u in self.users.values() if job_id in u.get("_jobs", []))

    def public(self) -> list[dict[str, Any]]:
        """Every user as ``GET /_emulator/users`` shows it."""
        return [self._public(u) for u in self.users.values()]

    def _public(self, user: dict[str, Any]) -> dict[str, Any]:
        out = visible(user)
        manager = self.users.get(user.get("manager") or "")
        out["manager"] = user.get("manager")
        out["managerEmployeeId"] = manager.get("employeeId") if manager else None
        out["provisionedByJobs"] = list(user.get("_jobs", []))
        return out
