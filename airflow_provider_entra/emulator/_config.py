"""The emulator's runtime options: set on the command line, changed by ``POST /_emulator/config``.

Defaults follow Microsoft's documented limits (``docs/entra-facts.md``); the options that decide what
Microsoft leaves undocumented are listed in ``docs/emulator.md``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any

from airflow_provider_entra.emulator._protocol import (
    DEFAULT_DAILY_QUOTA,
    DEFAULT_RATE_LIMIT,
    LOG_RATE_LIMIT,
)

#: Kinds of planned faults (``faults: [{"kind": ...}]``) and the endpoints they can target.
FAULT_KINDS = {"500", "503", "429", "drop", "drop_after", "slow"}
FAULT_ENDPOINTS = {"*", "bulkUpload", "provisioningLogs", "job", "token", "discovery", "managedIdentity"}

_RATE_LIMIT_KEYS = ("rate_limit", "log_rate_limit")


def parse_rate(text: str) -> tuple[int, float]:
    """Parse ``"calls/seconds"`` (e.g. ``"40/5"``)."""
    try:
        calls, seconds = str(text).split("/")
        parsed = int(calls), float(seconds)
    except ValueError as exc:
        raise ValueError(f"rate limit must look like 'calls/seconds', got {text!r}") from exc
    if parsed[0] < 1 or parsed[1] <= 0:
        raise ValueError(f"rate limit must be positive, got {text!r}")
    return parsed


@dataclass
class Config:
    """Runtime options; each can be changed through ``POST /_emulator/config``."""

    processing_delay: float = 1.0
    rate_limit: str = DEFAULT_RATE_LIMIT
    daily_quota: int = DEFAULT_DAILY_QUOTA
    token_lifetime: int = 3600
    log_page_size: int = 100
    log_rate_limit: str = LOG_RATE_LIMIT
    log_delay: float = 0.0
    fault_rate: float = 0.0
    throttle_rate: float = 0.0
    drop_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 2.0
    retry_after: int | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)
    #: Inject faults (random and planned) only into a request's first arrival (by ``client-request-id``);
    #: its retries pass, so a client's resend count can be checked against the faults it met.
    fault_first_attempt_only: bool = False
    reject_duplicate_external_ids: bool = False
    missing_active_disables: bool = True
    create_inactive: bool = True
    delete_window_seconds: float = 86400.0
    max_payload_bytes: int = 1_048_576

    def update(self, changes: dict[str, Any]) -> None:
        """Apply changes, rejecting unknown keys and malformed values before anything changes."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(
                f"unknown config key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        trial = copy.deepcopy(self)
        for key, value in changes.items():
            setattr(trial, key, self._checked(key, value))
        for key in changes:
            setattr(self, key, getattr(trial, key))

    def _checked(self, key: str, value: Any) -> Any:
        """``value`` converted to the option's type; ValueError when it does not fit."""
        current = getattr(self, key)
        if key in _RATE_LIMIT_KEYS:
            parse_rate(value)
        elif key == "faults":
            if not isinstance(value, list) or not all(isinstance(f, dict) for f in value):
                raise ValueError("faults must be a list of objects")
            value = [_check_fault(f) for f in value]
        elif key == "retry_after":
            value = None if value is None else int(value)
        elif isinstance(current, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be a boolean")
        elif isinstance(current, int):
            value = int(value)
        elif isinstance(current, float):
            value = float(value)
        if key.endswith("_rate") and key not in _RATE_LIMIT_KEYS and not 0 <= value <= 1:
            raise ValueError(f"{key} must be between 0 and 1")
        return value


def _check_fault(fault: dict[str, Any]) -> dict[str, Any]:
    kind = str(fault.get("kind", ""))
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault kind must be one of {sorted(FAULT_KINDS)}, got {kind!r}")
    endpoint = fault.get("endpoint", "*")
    if endpoint not in FAULT_ENDPOINTS:
        raise ValueError(f"fault endpoint must be one of {sorted(FAULT_ENDPOINTS)}, got {endpoint!r}")
    return {
        "kind": kind,
        "endpoint": endpoint,
        "count": int(fault.get("count", 1)),
        "retry_after": fault.get("retry_after"),
        "seconds": float(fault.get("seconds", 2.0)),
    }
