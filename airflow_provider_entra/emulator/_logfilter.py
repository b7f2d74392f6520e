"""The OData ``$filter`` subset the provisioning-logs API supports, translated to SQL over the logs table.

Supported: clauses joined with ``and``; ``eq`` on jobid, cycleid, changeid, id, sourceIdentity/id,
targetIdentity/id, servicePrincipal/id, provisioningAction, provisioningStatusInfo/status (and beta's
statusInfo/status, action); ``ge``/``gt``/``le``/``lt``/``eq`` on activityDateTime. Anything else is a 400
naming the clause, as Graph answers for an unsupported filter.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any


class FilterError(ValueError):
    """The filter cannot be parsed or uses an unsupported property or operator."""


_STRING_COLUMNS = {
    "jobid": "job_id",
    "cycleid": "cycle_id",
    "changeid": "change_id",
    "id": "id",
    "sourceidentity/id": "source_id",
    "targetidentity/id": "target_id",
    "serviceprincipal/id": "sp_id",
    "provisioningstatusinfo/status": "status",
    "statusinfo/status": "status",
    "provisioningaction": "action",
    "action": "action",
}
_CASE_INSENSITIVE = {"status", "action"}
_SQL_OPS = {"eq": "=", "ne": "!=", "ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_CLAUSE = re.compile(
    r"^\s*(?P<prop>[A-Za-z][A-Za-z0-9/]*)\s+(?P<op>eq|ne|ge|gt|le|lt)\s+(?P<value>'(?:[^']|'')*'|\S+)\s*$",
    re.IGNORECASE,
)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


def _split_and(text: str) -> list[str]:
    """Split on ``and`` outside quoted strings."""
    parts: list[str] = []
    buf: list[str] = []
    i = 0
    in_quote = False
    while i < len(text):
        ch = text[i]
        if ch == "'":
            in_quote = not in_quote
            buf.append(ch)
            i += 1
            continue
        if not in_quote:
            match = _AND.match(text, i)
            if match:
                parts.append("".join(buf))
                buf = []
                i = match.end()
                continue
        buf.append(ch)
        i += 1
    if in_quote:
        raise FilterError(f"unterminated string literal in $filter: {text!r}")
    parts.append("".join(buf))
    return parts


def parse_datetime(text: str) -> float:
    """Parse an OData DateTimeOffset literal to a POSIX timestamp."""
    value = text.strip("'")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FilterError(f"'{value}' is not a valid DateTimeOffset (use e.g. 2026-01-01T00:00:00Z)") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def to_sql(filter_text: str | None) -> tuple[list[str], list[Any]]:
    """Translate ``$filter`` into SQL conditions and parameters.

    :raises FilterError: naming the unsupported clause.
    """
    if not filter_text or not filter_text.strip():
        return [], []
    conditions: list[str] = []
    params: list[Any] = []
    for clause in _split_and(filter_text.strip()):
        match = _CLAUSE.match(clause)
        if not match:
            raise FilterError(f"Invalid filter clause: '{clause.strip()}'")
        prop, op, raw = match.group("prop").lower(), match.group("op").lower(), match.group("value")
        if prop == "activitydatetime":
            if op == "ne":
                raise FilterError("activityDateTime supports eq, ge, gt, le and lt")
            # Entries show whole seconds; compare what the client sees.
            conditions.append(f"ts_s {_SQL_OPS[op]} ?")
            params.append(parse_datetime(raw))
            continue
        column = _STRING_COLUMNS.get(prop)
        if column is None:
            raise FilterError(f"Property '{match.group('prop')}' is not supported in $filter")
        if op not in ("eq", "ne"):
            raise FilterError(f"Operator '{op}' is not supported for '{match.group('prop')}'; use eq")
        if not (raw.startswith("'") and raw.endswith("'")):
            raise FilterError(f"The value for '{match.group('prop')}' must be a quoted string: {raw}")
        value = raw[1:-1].replace("''", "'")
        if column in _CASE_INSENSITIVE:
            conditions.append(f"lower({column}) {_SQL_OPS[op]} ?")
            params.append(value.lower())
        else:
            conditions.append(f"{column} {_SQL_OPS[op]} ?")
            params.append(value)
    return conditions, params
