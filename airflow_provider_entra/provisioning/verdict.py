"""The one failure-threshold rule: when has a run (or a review window) left too many records short of Entra?

Every task that judges outcomes uses :func:`verdict`, so ``max_failures`` and ``max_failure_percent`` mean the
same thing wherever they appear (the sensor's arguments, the HR, on-demand, admin and review DAGs' Params):

- a record **did not reach Entra** when its log entry is a failure, when it has no log entry at all (not
  proven is not provisioned), or when it is *stuck* (skipped by Entra the same way run after run, not resent);
- ``max_failures`` is the most such records allowed, ``max_failure_percent`` the most as a percentage of the
  records judged (sent plus stuck); ``None`` turns a limit off.

A review of past logs has no missing or stuck records: only its failures count. Pure: no Airflow import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Tally", "verdict"]


@dataclass(frozen=True)
class Tally:
    """What a verdict is about: records judged and those that did not reach Entra, by kind."""

    records: int
    failures: int
    missing: int = 0
    stuck: int = 0

    @classmethod
    def of(cls, verified: Mapping[str, Any], *, stuck: int = 0) -> Tally:
        """From a verification summary (``records``, ``failures``, ``missing``) and the plan's stuck count."""
        return cls(
            records=int(verified.get("records") or 0) + int(stuck),
            failures=int(verified.get("failures") or 0),
            missing=int(verified.get("missing") or 0),
            stuck=int(stuck),
        )

    @property
    def short(self) -> int:
        """Records that did not reach Entra."""
        return self.failures + self.missing + self.stuck

    @property
    def percent(self) -> float:
        return 100.0 * self.short / self.records if self.records else 0.0


def verdict(
    tally: Tally, *, max_failures: int | None = None, max_failure_percent: float | None = None
) -> str | None:
    """``None`` when ``tally`` is within the limits, else the sentence to fail with.

    :param tally: the records judged.
    :param max_failures: most records allowed not to reach Entra (``None``: no count limit).
    :param max_failure_percent: the same as a percentage of ``tally.records`` (``None``: no limit).
    """
    limits = []
    if max_failures is not None and tally.short > int(max_failures):
        limits.append(f"max_failures={int(max_failures)}")
    if max_failure_percent is not None and tally.records and tally.percent > float(max_failure_percent):
        limits.append(f"max_failure_percent={float(max_failure_percent):g}")
    if not limits:
        return None
    parts = [f"{tally.failures} failed"]
    if tally.missing:
        parts.append(f"{tally.missing} have no log entry")
    if tally.stuck:
        parts.append(f"{tally.stuck} are stuck")
    return (
        f"{tally.short} of {tally.records} record(s) did not reach Entra ({', '.join(parts)}; "
        f"{tally.percent:.1f}%), over {' and '.join(limits)}."
    )
