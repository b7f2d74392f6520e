"""Progress of an upload, logged every N requests or every few seconds, and of a load spread over days.

>>> format_progress(412, 2000, 7.9, 240)
'412/2,000 records (20%), 7.9 calls/s, ETA 4m'
>>> format_load_progress(142000, 500000, 4)
"142,000 of 500,000 records sent; about 4 more days at this tenant's quota"
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Log", "Progress", "format_duration", "format_load_progress", "format_progress"]


class Log(Protocol):
    """Where the upload layer logs: a :class:`logging.Logger`, or an operator's ``self.log``."""

    def info(self, msg: Any, /, *args: Any) -> Any: ...

    def warning(self, msg: Any, /, *args: Any) -> Any: ...


def format_duration(seconds: float) -> str:
    """``45s``, ``3m 20s``, ``12m``, ``2h 5m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m" if minutes >= 10 or not seconds else f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"


def format_progress(
    done: int,
    total: int,
    calls_per_second: float | None,
    eta_seconds: float | None,
    rejected_by_graph: int = 0,
) -> str:
    """``412/2,000 records (20%), 7.9 calls/s, ETA 4m`` (``, 2 rejected by Graph`` after the count when any).

    :param done: records handled so far (sent, already in the manifest, or rejected by Graph).
    :param total: records to handle.
    :param calls_per_second: bulkUpload calls per second so far, ``None`` before the first.
    :param eta_seconds: estimated seconds left, ``None`` when unknown.
    :param rejected_by_graph: records Graph rejected (400) so far.
    """
    percent = int(done * 100 / total) if total else 100
    text = f"{done:,}/{total:,} records ({percent}%)"
    if rejected_by_graph:
        text += f", {rejected_by_graph:,} rejected by Graph"
    if calls_per_second is not None:
        text += f", {calls_per_second:.1f} calls/s"
    if eta_seconds is not None:
        text += f", ETA {format_duration(eta_seconds)}"
    return text


def format_load_progress(sent: int, total: int, days_left: int) -> str:
    """``142,000 of 500,000 records sent; about 4 more days at this tenant's quota``, or ``...; nothing waits
    for the daily quota`` when everything is sent.

    :param sent: records the job holds or was sent.
    :param total: those and the records still waiting for the daily quota.
    :param days_left: days of the tenant's daily quota the rest takes.
    """
    text = f"{sent:,} of {total:,} records sent"
    if sent >= total or days_left < 1:
        return f"{text}; nothing waits for the daily quota"
    return f"{text}; about {days_left} more day{'s' if days_left > 1 else ''} at this tenant's quota"


class Progress:
    """Counts records as requests are sent, skipped or rejected, and logs :func:`format_progress` lines.

    :param log: where the lines go (an operator's ``self.log``).
    :param total: records to handle.
    :param every: log after this many calls...
    :param seconds: ...or when this many seconds have passed since the last line.
    :param clock: monotonic seconds (``time.monotonic``).
    """

    def __init__(
        self,
        log: Log,
        total: int,
        every: int = 10,
        seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.total = total
        self.every = max(1, every)
        self.seconds = seconds
        self.clock = clock
        self.done = 0
        self.calls = 0
        self.records_sent = 0
        self.rejected_by_graph = 0
        self.started = clock()
        self.last_logged = self.started
        self.since_log = 0

    def skipped(self, records: int) -> None:
        """Records already accepted in an earlier try."""
        self.done += records

    def sent(self, records: int) -> None:
        """A call Graph accepted."""
        now = self.clock()
        self.calls += 1
        self.done += records
        self.records_sent += records
        self.since_log += 1
        if self.since_log >= self.every or now - self.last_logged >= self.seconds:
            self._log(now)

    def refused(self) -> None:
        """A call Graph answered 400 (the request is split or its record set aside)."""
        self.calls += 1

    def rejected(self, records: int) -> None:
        """Records set aside because Graph rejected them."""
        self.done += records
        self.rejected_by_graph += records

    def line(self, now: float | None = None) -> str:
        """The progress line as of ``now``."""
        now = self.clock() if now is None else now
        elapsed = now - self.started
        rate = self.calls / elapsed if elapsed > 0 else None
        eta = None
        if rate and self.records_sent:
            eta = (self.total - self.done) / (self.records_sent / self.calls) / rate
        return format_progress(self.done, self.total, rate, eta, self.rejected_by_graph)

    def _log(self, now: float) -> None:
        self.log.info("%s", self.line(now))
        self.last_logged = now
        self.since_log = 0

    def finish(self) -> None:
        """Log the last line, unless nothing happened since the previous one."""
        if self.since_log:
            self._log(self.clock())
