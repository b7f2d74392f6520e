"""Timestamps in UTC: the one helper for reading them and the one for stamping summaries.

Graph writes ``2026-03-02T01:00:00Z``; Python 3.10's :meth:`datetime.fromisoformat` refuses the ``Z``, and a
timestamp without an offset is taken as UTC. Pure standard library.
"""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["now_utc", "utc"]


def utc(value: str | datetime) -> datetime:
    """``value`` as an aware UTC datetime: ISO 8601 text (a trailing ``Z`` too) or a datetime; naive is UTC.

    :raises ValueError: when the text is not ISO 8601.
    """
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return stamp.replace(tzinfo=timezone.utc) if stamp.tzinfo is None else stamp.astimezone(timezone.utc)


def now_utc() -> str:
    """The current time, ISO 8601 in UTC to the second (for summaries)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
