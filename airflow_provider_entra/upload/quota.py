"""The tenant's daily bulkUpload allowance, counted where every worker sees it.

Microsoft allows a tenant 2,000 (Entra ID P1/P2) or 6,000 (Governance) bulkUpload calls in any 24 hours, then
answers 429 (``docs/entra-facts.md`` section 3). The allowance is the connection's ``daily_call_budget``; an
upload asks :class:`DailyUsage` before each call and stops cleanly, before sending, when it is spent. A 429
for the daily quota from Microsoft stops it the same way, and is written down so that other uploads to the
tenant do not try again before Microsoft's ``Retry-After`` has passed.

The record
----------
``<staging root>/quota/<tenant id>/`` holds one JSON Lines file per upload task, written by that task only
(an object store cannot append: each task rewrites its own object, so no two writers share one)::

    {"at": "2026-03-02T01:00:07+00:00", "calls": 1}
    {"at": "2026-03-02T01:09:41+00:00", "calls": 0, "exhausted_until": "2026-03-03T01:00:07+00:00"}

Every attempt counts, retries included (Microsoft may not count the 429s it answers: this errs on the safe
side). The tenant's usage is the sum of ``calls`` stamped in the last 24 hours over every file of the
folder; a line whose ``exhausted_until`` is still ahead means Microsoft said the quota is spent: nothing is
sent before then, whatever the count says. Files with nothing newer than two days are deleted when read.

Consistency: an upload reads the folder once, when it starts (:meth:`DailyUsage.open`), then counts its own
calls. Uploads to one tenant run one at a time (the example DAGs put them in the ``entra_api`` Airflow
pool), so what one reads is the tenant's count. Two uploads running at once would both see the same
remainder and could together spend more than it; Microsoft's 429 then stops the later one as above.

No Airflow: files go through :mod:`airflow_provider_entra._fsio` (a local path, a URL or an
``ObjectStoragePath``).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any

from airflow_provider_entra._constants import DAILY_BUDGET_WINDOW_SECONDS
from airflow_provider_entra._fsio import fs_and_path, join, read_jsonl
from airflow_provider_entra._time import utc
from airflow_provider_entra.upload.errors import QuotaSpent
from airflow_provider_entra.upload.manifest import LineWriter

__all__ = ["QUOTA_FOLDER", "WINDOW", "DailyUsage", "days_left", "now", "record_name"]

log = logging.getLogger(__name__)

#: The folder under the staging root that holds one sub-folder per tenant.
QUOTA_FOLDER = "quota"
#: Microsoft's daily window: any 24 hours.
WINDOW = timedelta(seconds=DAILY_BUDGET_WINDOW_SECONDS)
#: A file with nothing newer than this is deleted when the folder is read.
KEEP_FILES_FOR = 2 * WINDOW
_SUFFIX = ".jsonl"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def now() -> datetime:
    """The current time (UTC) the daily window is measured against."""
    return datetime.now(timezone.utc)


def record_name(*parts: str) -> str:
    """A file name for one upload task's record, from its DAG, run and task ids (one name per task, so a
    retry goes on counting in the same file)."""
    return _UNSAFE.sub("_", "__".join(parts)).strip("_") + _SUFFIX


def days_left(requests: int, per_day: int) -> int:
    """Days of ``per_day`` calls that ``requests`` more calls take (0 when nothing is left)."""
    return math.ceil(requests / per_day) if requests > 0 and per_day > 0 else 0


class DailyUsage:
    """One upload task's view of the tenant's daily allowance, and its record of the calls it makes.

    Use as a context manager (the record is made durable when it closes)::

        with DailyUsage(folder, "upload.jsonl", budget=2000).open() as usage:
            usage.check()          # QuotaSpent when nothing is left
            ... post ...
            usage.spend(calls)     # the attempts the post made

    :param folder: the tenant's folder (``<staging root>/quota/<tenant id>``).
    :param name: this task's file in it (:func:`record_name`).
    :param budget: calls allowed in any 24 hours (the connection's ``daily_call_budget``).
    :param clock: the current UTC time; default :func:`now`.
    """

    def __init__(
        self, folder: Any, name: str, *, budget: int, clock: Callable[[], datetime] | None = None
    ) -> None:
        if budget < 1:
            raise ValueError("the daily call budget must be at least 1")
        self.folder = folder
        self.path = join(folder, name)
        self.budget = budget
        self._clock = clock
        self.used_before = 0
        self.calls = 0
        self.exhausted_until: datetime | None = None
        self.stopped: str | None = None
        #: calls counted when Microsoft answered that the quota is spent (``None``: it did not).
        self.counted_at_refusal: int | None = None
        self._stamps: list[tuple[datetime, int]] = []
        self._writer: LineWriter | None = None

    def _now(self) -> datetime:
        return self._clock() if self._clock is not None else now()

    def open(self) -> DailyUsage:
        """Read every task's record of the tenant: the calls of the last 24 hours, Microsoft's last word."""
        current = self._now()
        fs, inner = fs_and_path(self.folder)
        names = (
            sorted(str(p).rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(inner, detail=False))
            if fs.exists(inner)
            else []
        )
        for name in names:
            if not name.endswith(_SUFFIX):
                continue
            lines = read_jsonl(join(self.folder, name), missing_ok=True)
            stamps = [(utc(line["at"]), int(line.get("calls") or 0)) for line in lines if line.get("at")]
            if not stamps or max(at for at, _ in stamps) < current - KEEP_FILES_FOR:
                fs.rm(f"{inner}/{name}")
                continue
            self._stamps += [(at, n) for at, n in stamps if at > current - WINDOW and n]
            for line in lines:
                until = line.get("exhausted_until")
                if until and utc(until) > current and (self.exhausted_until or current) <= utc(until):
                    self.exhausted_until = utc(until)
        self._stamps.sort()
        self.used_before = sum(n for _, n in self._stamps)
        self._writer = LineWriter(self.path)
        return self

    def __enter__(self) -> DailyUsage:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Make the record durable."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def left(self) -> int:
        """Calls still allowed now (0 while Microsoft's ``exhausted_until`` is ahead)."""
        if self.exhausted_until is not None and self.exhausted_until > self._now():
            return 0
        return max(0, self.budget - self.used_before - self.calls)

    def frees_at(self) -> datetime | None:
        """When the next call is allowed again: Microsoft's word, else when enough counted calls have left
        the 24-hour window; ``None`` while calls are left."""
        if self.exhausted_until is not None and self.exhausted_until > self._now():
            return self.exhausted_until
        if self.left:
            return None
        over = self.used_before + self.calls - self.budget + 1  # calls that must leave the window
        for at, n in self._stamps:
            over -= n
            if over <= 0:
                return at + WINDOW
        return self._now() + WINDOW

    def check(self) -> None:
        """Raise :class:`QuotaSpent` when no call is left (before sending anything)."""
        if self.left < 1:
            said = self.exhausted_until is not None and self.exhausted_until > self._now()
            self.stopped = "microsoft" if said else "allowance"
            raise QuotaSpent(self._spent_message(), retry_after=self._seconds_to(self.frees_at()))

    def spend(self, calls: int) -> None:
        """Count ``calls`` attempts made now, in the shared record."""
        if calls <= 0:
            return
        at = self._now()
        self.calls += calls
        self._stamps.append((at, calls))
        self._write({"at": at.isoformat(), "calls": calls})

    def refused(self, retry_after: float | None) -> QuotaSpent:
        """Microsoft answered 429 for the daily quota: write it down for every upload to this tenant and
        return the :class:`QuotaSpent` to raise.

        :param retry_after: Microsoft's ``Retry-After`` in seconds (``None``: a day from now).
        """
        at = self._now()
        wait = timedelta(seconds=retry_after) if retry_after and retry_after > 0 else WINDOW
        self.exhausted_until = at + wait
        self.stopped = "microsoft"
        self._write({"at": at.isoformat(), "calls": 0, "exhausted_until": self.exhausted_until.isoformat()})
        counted = self.counted_at_refusal = self.used_before + self.calls
        log.warning(
            "Microsoft answered that the tenant's daily bulkUpload quota is spent after %d call(s) counted "
            "in the last 24 h (daily_call_budget %d)%s",
            counted,
            self.budget,
            ": the tenant's quota is lower than the budget, or other clients use it"
            if counted < self.budget
            else "",
        )
        return QuotaSpent(
            f"Microsoft answered 429: the tenant's daily bulkUpload quota is spent until "
            f"{self.exhausted_until.isoformat(timespec='seconds')} ({counted} call(s) counted in the last "
            f"24 h, daily_call_budget {self.budget}).",
            by_microsoft=True,
            retry_after=wait.total_seconds(),
        )

    def recent_call_ages(self, seconds: float) -> list[float]:
        """Seconds since each call the tenant's record holds from the last ``seconds`` (one entry per call):
        what uploads before this one, maybe on other workers, spent of Microsoft's burst window. Each call is
        stamped when its response arrived."""
        current = self._now()
        ages = ((current - at).total_seconds() for at, n in self._stamps for _ in range(n))
        return [age for age in ages if age < seconds]

    def calls_per_day(self) -> int:
        """The calls a day gives, as far as we know: the budget, or fewer when Microsoft answered that the
        quota was spent before the budget was."""
        if self.counted_at_refusal is not None:
            return max(1, min(self.budget, self.counted_at_refusal))
        return self.budget

    def summary(self) -> dict[str, Any]:
        """JSON-safe: ``daily_call_budget``, ``used_before``, ``calls``, ``left``, ``stopped`` (``None``,
        ``"allowance"``: our count, ``"microsoft"``: a 429) and ``frees_at`` (ISO text or ``None``)."""
        frees = self.frees_at()
        return {
            "daily_call_budget": self.budget,
            "used_before": self.used_before,
            "calls": self.calls,
            "left": self.left,
            "stopped": self.stopped,
            "frees_at": frees.isoformat(timespec="seconds") if frees is not None else None,
        }

    def _write(self, line: dict[str, Any]) -> None:
        if self._writer is None:
            raise RuntimeError("DailyUsage.open() first")
        self._writer.append(line)

    def _seconds_to(self, when: datetime | None) -> float | None:
        return max(0.0, (when - self._now()).total_seconds()) if when is not None else None

    def _spent_message(self) -> str:
        frees = self.frees_at()
        when = f"; the next call is allowed at {frees.isoformat(timespec='seconds')}" if frees else ""
        if self.stopped == "microsoft":
            return f"Microsoft said the tenant's daily bulkUpload quota is spent{when}."
        return (
            f"The tenant's daily allowance is spent: {self.used_before + self.calls} bulkUpload call(s) in "
            f"the last 24 h, daily_call_budget {self.budget}{when}."
        )
