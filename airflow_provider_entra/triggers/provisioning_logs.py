"""Wait in the triggerer until every record of an upload has an outcome in the provisioning logs.

Microsoft writes provisioning-log entries 5 to 10 minutes after it processed a record, so the verification
of an upload mostly waits. :class:`EntraProvisioningLogTrigger` does that waiting in the triggerer instead of
a worker slot; :class:`ProvisioningLogCollector` is the polling logic it shares with the sensor's
non-deferrable mode.

One poll is ONE filtered, paged listing of the job's log (never a query per user)::

    GET /auditLogs/provisioning?$filter=jobid eq '<job>' and activityDateTime ge <window start>&$top=<page>

The window starts at the upload's earliest acceptance (the 202's ``Date``, Microsoft's clock) minus a
tolerance of seconds on the first poll (the sensor computes it; without ``Date`` headers it falls back to the
local submit time minus a clock-skew margin). Later polls start at the newest ``activityDateTime`` seen
minus ``lookback_seconds``: Microsoft's log delay varies
between 5 and 10 minutes, so an entry may become visible after a newer one; the lookback re-reads that band
and entries already collected are skipped by their ``id``. Requests are paced by the hook's logs limiter
(5 requests per 10 seconds per app).

Entries about the upload's externalIds are appended to a JSON Lines file (``entries_path``) as they arrive,
with a small state file beside it, so a restarted triggerer (or a rescheduled sensor) resumes where it was.
The file is under the run's staging root, the one storage the triggerer and every worker reach (object
storage when they run on different machines: preflight refuses a local root with a distributed executor).
The event that ends the wait stays small (counts, no entries: it is stored in the Airflow database) and says
how many entries were collected, so the resumed sensor notices when it cannot see them all.

Each record is verified only by its own entries: an entry counts for record X only when it is dated at or
after X's acceptance (``accepted_at`` column of the upload's ids file, see :func:`load_acceptance`) minus
``tolerance_seconds``; a record without a known acceptance takes the window start. So the entry an earlier
run wrote seconds before this run's upload neither resolves a record here nor enters the entries file, and
the same rule applies when entries are restored after a restart. A record has an outcome when it has at least
one such entry; the poll is complete when every record has one
and, if some record's latest entry still skipped its manager reference
(``UnableToResolveReferenceAttributeValue``), ``settle_seconds`` have passed since then, for the follow-up
``update`` Entra writes when the manager appears.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pandas as pd
from airflow.providers.common.compat.connection import get_async_connection
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_entra import _fsio
from airflow_provider_entra._time import utc
from airflow_provider_entra.exceptions import EntraAuthError, EntraError
from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.provisioning.reconcile import (
    DEFAULT_TOLERANCE_SECONDS,
    acceptance_times,
    skip_details,
)
from airflow_provider_entra.staging import append_jsonl, read_frame, read_jsonl, to_path, write_bytes

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

__all__ = [
    "DEFAULT_LOOKBACK_SECONDS",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_SETTLE_SECONDS",
    "EntraProvisioningLogTrigger",
    "PollResult",
    "ProvisioningLogCollector",
    "load_acceptance",
    "load_external_ids",
]

#: ``$top`` per page. Graph documents no maximum for this API that we rely on; the emulator accepts 1000.
DEFAULT_PAGE_SIZE = 500
#: Re-read band behind the newest entry seen: the spread of Microsoft's 5-10 minute log delay.
DEFAULT_LOOKBACK_SECONDS = 300.0
#: Extra wait for follow-up ``update`` entries once every record has an outcome but some manager references
#: were still unresolved.
DEFAULT_SETTLE_SECONDS = 60.0
#: Consecutive failed polls (other than authentication errors) the trigger tolerates before giving up.
MAX_CONSECUTIVE_POLL_ERRORS = 5
STATUS_COMPLETE = "complete"
STATUS_TIMEOUT = "timeout"
STATUS_ERROR = "error"
_ACTION_CREATE = "create"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def load_external_ids(path: str | os.PathLike[str] | ObjectStoragePath) -> list[str]:
    """The externalIds an upload sent, in order, from its staged ids file or its manifest.

    :param path: a ``.parquet``/``.csv`` file with an ``externalId`` column (the upload's
        ``external_ids_path``), or an upload manifest (``.jsonl``, one ``external_ids`` list per line).
    """
    target = to_path(path)
    if target.suffix.lower() == ".jsonl":
        ids: list[str] = []
        for line in read_jsonl(target):
            ids.extend(str(value) for value in line.get("external_ids") or ())
        return list(dict.fromkeys(ids))
    frame = read_frame(target)
    column = "externalId" if "externalId" in frame.columns else frame.columns[0]
    return list(dict.fromkeys(frame[column].astype(str).str.strip().tolist()))


def load_acceptance(path: str | os.PathLike[str] | ObjectStoragePath) -> dict[str, datetime]:
    """externalId -> when Graph accepted the request carrying it (UTC), for the records where it is known.

    :param path: the upload's ids file (its ``accepted_at`` column; a file without one gives ``{}``) or its
        manifest (``.jsonl``: each line's ``accepted_at`` for its ``external_ids``). The earliest time is
        kept for a record listed more than once.
    """
    target = to_path(path)
    if target.suffix.lower() == ".jsonl":
        ids: list[str] = []
        times: list[Any] = []
        for line in read_jsonl(target):
            for value in line.get("external_ids") or ():
                ids.append(str(value))
                times.append(line.get("accepted_at"))
        earliest = acceptance_times(pd.Series(times, index=ids, dtype=object))
    else:
        frame = read_frame(target)
        if "accepted_at" not in frame.columns:
            return {}
        column = "externalId" if "externalId" in frame.columns else frame.columns[0]
        earliest = acceptance_times(
            pd.Series(frame["accepted_at"].to_numpy(), index=frame[column].astype(str).str.strip().to_numpy())
        )
    return {str(key): stamp.to_pydatetime() for key, stamp in earliest.items()}


@dataclass(frozen=True)
class PollResult:
    """What one poll found.

    :param complete: every record has a final outcome.
    :param resolved: records with at least one entry.
    :param expected: records sent.
    :param pending_references: records whose latest entry still skipped the manager reference.
    :param new_entries: entries about our records first seen in this poll.
    :param log_requests: log API requests of this poll.
    """

    complete: bool
    resolved: int
    expected: int
    pending_references: int
    new_entries: int
    log_requests: int


def _rank_key(entry: Mapping[str, Any]) -> tuple[datetime, int, str] | None:
    """Order of entries for one record, as :func:`~airflow_provider_entra.provisioning.reconcile.reconcile`
    orders them: time, then a create before anything else, then the entry id."""
    try:
        stamp = utc(str(entry["activityDateTime"]))
    except (KeyError, ValueError):
        return None
    action = str(entry.get("provisioningAction") or entry.get("action") or "").lower()
    return stamp, 0 if action.startswith(_ACTION_CREATE) else 1, str(entry.get("id") or "")


class ProvisioningLogCollector:
    """Collect the provisioning-log entries of a set of externalIds, poll by poll (blocking calls).

    :param external_ids: the externalIds sent.
    :param since: the first window start: the earliest acceptance minus the tolerance (or, without
        acceptance times, the first submit minus a clock-skew margin); also the cutoff of records whose
        acceptance is unknown.
    :param entries_path: JSON Lines file the entries are appended to; ``<entries_path>.state.json`` holds the
        poll counters.
    :param page_size: ``$top`` of each page.
    :param lookback_seconds: re-read band behind the newest entry seen (see the module docstring).
    :param settle_seconds: wait for follow-up entries when references are still unresolved.
    :param accepted_at: externalId -> acceptance time of its request (see :func:`load_acceptance`); an entry
        counts for a record only at or after that time minus ``tolerance_seconds``.
    :param tolerance_seconds: seconds an entry may predate its record's acceptance (clock resolution).
    """

    def __init__(
        self,
        external_ids: Iterable[str],
        *,
        since: datetime | str,
        entries_path: str | os.PathLike[str] | ObjectStoragePath,
        page_size: int = DEFAULT_PAGE_SIZE,
        lookback_seconds: float = DEFAULT_LOOKBACK_SECONDS,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
        accepted_at: Mapping[str, datetime | str] | None = None,
        tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    ) -> None:
        if not tolerance_seconds >= 0:
            raise ValueError(f"tolerance_seconds must be 0 or more, got {tolerance_seconds!r}")
        self.expected = frozenset(str(value) for value in external_ids)
        self.since = utc(since)
        tolerance = timedelta(seconds=tolerance_seconds)
        #: Per record: entries dated before this belong to another run (records not here: ``since``).
        self.cutoffs = {
            str(key): utc(value) - tolerance
            for key, value in (accepted_at or {}).items()
            if str(key) in self.expected and value
        }
        self.entries_path = to_path(entries_path)
        self.state_path = to_path(f"{self.entries_path}.state.json")
        self.page_size = page_size
        self.lookback = timedelta(seconds=lookback_seconds)
        self.settle = timedelta(seconds=settle_seconds)
        self.log_requests = 0
        self.polls = 0
        self.all_seen_at: datetime | None = None
        self.watermark: datetime | None = None
        self._seen_entries: set[str] = set()
        self._latest: dict[str, tuple[tuple[datetime, int, str], bool]] = {}

    # --- state --------------------------------------------------------------------------------------------

    def restore(self) -> ProvisioningLogCollector:
        """Load entries and counters collected earlier (by another process or try); returns ``self``."""
        for entry in read_jsonl(self.entries_path, missing_ok=True):
            self._take(entry)
        if _fsio.exists(self.state_path):
            state = json.loads(_fsio.read_bytes(self.state_path))
            self.log_requests = int(state.get("log_requests", 0))
            self.polls = int(state.get("polls", 0))
            if state.get("all_seen_at"):
                self.all_seen_at = utc(state["all_seen_at"])
            if state.get("watermark"):
                self.watermark = utc(state["watermark"])
        return self

    def _save_state(self) -> None:
        state = {
            "log_requests": self.log_requests,
            "polls": self.polls,
            "all_seen_at": self.all_seen_at.isoformat() if self.all_seen_at else None,
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "resolved": self.resolved,
            "expected": len(self.expected),
        }
        write_bytes(self.state_path, json.dumps(state).encode())

    def _take(self, entry: Mapping[str, Any]) -> bool:
        """Record one entry of ours; False when already seen or not one of ours."""
        source = entry.get("sourceIdentity") or {}
        external_id = str(source.get("id") or "").strip()
        if external_id not in self.expected:
            return False
        rank = _rank_key(entry)
        if rank is not None and rank[0] < self.cutoffs.get(external_id, self.since):
            return False  # dated before this record's acceptance: another (earlier) run's entry
        key = str(entry.get("id") or "") or f"{external_id}|{entry.get('activityDateTime')}"
        if key in self._seen_entries:
            return False
        self._seen_entries.add(key)
        if rank is None:
            return True
        stamp = rank[0]
        if self.watermark is None or stamp > self.watermark:
            self.watermark = stamp
        current = self._latest.get(external_id)
        if current is None or rank > current[0]:
            self._latest[external_id] = (rank, skip_details(entry)[0])
        return True

    # --- progress -----------------------------------------------------------------------------------------

    @property
    def resolved(self) -> int:
        """Records with at least one entry."""
        return len(self._latest)

    @property
    def entries(self) -> int:
        """Entries of ours collected (in ``entries_path``), all polls and processes together."""
        return len(self._seen_entries)

    @property
    def pending_references(self) -> int:
        """Records whose latest entry still skipped the manager reference."""
        return sum(1 for _, skipped in self._latest.values() if skipped)

    def is_complete(self, now: datetime | None = None) -> bool:
        """Every record has an outcome, and unresolved references had ``settle_seconds`` to resolve."""
        if self.resolved < len(self.expected):
            return False
        if not self.pending_references:
            return True
        return self.all_seen_at is not None and (now or _now()) >= self.all_seen_at + self.settle

    def next_wait(self, poll_interval: float, now: datetime | None = None) -> float:
        """Seconds to sleep before the next poll: ``poll_interval``, shorter when only settling remains."""
        if self.resolved >= len(self.expected) and self.all_seen_at is not None:
            remaining = (self.all_seen_at + self.settle - (now or _now())).total_seconds()
            return max(0.0, min(poll_interval, remaining))
        return poll_interval

    def window_start(self) -> datetime:
        """Start of the next poll's ``activityDateTime ge`` window."""
        if self.watermark is None:
            return self.since
        return max(self.since, self.watermark - self.lookback)

    # --- polling ------------------------------------------------------------------------------------------

    def poll(self, hook: EntraHook) -> PollResult:
        """One filtered, paged listing of the job's log; new entries of ours are appended to ``entries_path``.

        :param hook: the hook to read the logs with (its logs limiter paces the pages).
        """
        if self.is_complete():
            return self._result(0, 0)
        before = hook.calls_made
        start = self.window_start()
        fresh: list[Mapping[str, Any]] = []
        newest_listed: datetime | None = None
        try:
            for entry in hook.iter_provisioning_logs(since=start, page_size=self.page_size):
                rank = _rank_key(entry)
                if rank is not None and (newest_listed is None or rank[0] > newest_listed):
                    newest_listed = rank[0]
                if self._take(entry):
                    fresh.append(entry)
        finally:
            requests = hook.calls_made - before
            self.log_requests += requests
            self.polls += 1
            if fresh:
                append_jsonl(self.entries_path, fresh)
            # Other records' entries move the watermark too: the log is visible up to there.
            if newest_listed is not None and (self.watermark is None or newest_listed > self.watermark):
                self.watermark = newest_listed
            if self.all_seen_at is None and self.resolved >= len(self.expected):
                self.all_seen_at = _now()
            self._save_state()
        return self._result(len(fresh), requests)

    def _result(self, new_entries: int, requests: int) -> PollResult:
        return PollResult(
            complete=self.is_complete(),
            resolved=self.resolved,
            expected=len(self.expected),
            pending_references=self.pending_references,
            new_entries=new_entries,
            log_requests=requests,
        )


class EntraProvisioningLogTrigger(BaseTrigger):
    """Poll the provisioning logs until every externalId sent has an outcome, or ``timeout_at`` passes.

    Yields one event (plain JSON, a few hundred bytes whatever the upload's size): ``{"status": "complete" |
    "timeout" | "error", "entries_path", "entries", "log_requests", "polls", "resolved", "expected",
    "pending_references", "started_at"}`` (``"message"`` on error). ``entries`` counts the entries collected
    in ``entries_path``: the resumed task, maybe on another machine, checks it reads as many.

    The connection is read with common-compat's ``get_async_connection`` (``aget_connection`` on Airflow
    >= 3.3.2, a worker thread before); the hook's blocking calls (token, HTTP, pacing) run in a worker thread
    (``asyncio.to_thread``), so the triggerer's event loop never blocks. (On Airflow < 3.3.2 a synchronous
    connection read on the event loop could deadlock; neither happens here.)

    :param entra_conn_id: connection of type ``entra``.
    :param external_ids_path: the upload's ids file (``.parquet``/``.csv`` with ``externalId``) or manifest.
    :param since: ISO 8601 start of the first poll window (the earliest acceptance minus the tolerance, or
        the first submit minus a clock-skew margin when the upload saw no ``Date`` header).
    :param poll_interval: seconds between polls.
    :param first_poll_at: ISO 8601 time before which the trigger does not poll (the deferring task has just
        polled: the next read is one interval later, within the logs API's rate limit). In the past (a
        triggerer restart), the trigger polls at once.
    :param timeout_at: ISO 8601 time after which the trigger stops with status ``timeout``.
    :param page_size: ``$top`` of each page.
    :param state_path: JSON Lines file the collected entries go to (``entries_path`` in the event).
    :param lookback_seconds: re-read band behind the newest entry seen.
    :param settle_seconds: wait for follow-up entries when manager references are still unresolved.
    :param started_at: when the verification started (ISO 8601), echoed in every event as ``started_at`` so
        the resumed task has it whatever happens to ``defer(kwargs=...)`` (``dag.test()`` drops them).
    :param tolerance_seconds: an entry counts for a record only when dated at or after the record's
        acceptance (read from ``external_ids_path``) minus this many seconds.
    """

    def __init__(
        self,
        *,
        entra_conn_id: str,
        external_ids_path: str,
        since: str,
        poll_interval: float,
        timeout_at: str,
        page_size: int = DEFAULT_PAGE_SIZE,
        state_path: str,
        lookback_seconds: float = DEFAULT_LOOKBACK_SECONDS,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
        started_at: str | None = None,
        tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
        first_poll_at: str | None = None,
    ) -> None:
        super().__init__()
        self.entra_conn_id = entra_conn_id
        self.external_ids_path = external_ids_path
        self.since = since
        self.poll_interval = poll_interval
        self.timeout_at = timeout_at
        self.page_size = page_size
        self.state_path = state_path
        self.lookback_seconds = lookback_seconds
        self.settle_seconds = settle_seconds
        self.started_at = started_at
        self.tolerance_seconds = tolerance_seconds
        self.first_poll_at = first_poll_at

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{self.__class__.__module__}.{self.__class__.__name__}",
            {
                "entra_conn_id": self.entra_conn_id,
                "external_ids_path": self.external_ids_path,
                "since": self.since,
                "poll_interval": self.poll_interval,
                "timeout_at": self.timeout_at,
                "page_size": self.page_size,
                "state_path": self.state_path,
                "lookback_seconds": self.lookback_seconds,
                "settle_seconds": self.settle_seconds,
                "started_at": self.started_at,
                "tolerance_seconds": self.tolerance_seconds,
                "first_poll_at": self.first_poll_at,
            },
        )

    def _collector(self) -> ProvisioningLogCollector:
        return ProvisioningLogCollector(
            load_external_ids(self.external_ids_path),
            since=self.since,
            entries_path=self.state_path,
            page_size=self.page_size,
            lookback_seconds=self.lookback_seconds,
            settle_seconds=self.settle_seconds,
            accepted_at=load_acceptance(self.external_ids_path),
            tolerance_seconds=self.tolerance_seconds,
        ).restore()

    def _event(self, status: str, collector: ProvisioningLogCollector | None, **extra: Any) -> TriggerEvent:
        payload: dict[str, Any] = {
            "status": status,
            "entries_path": self.state_path,
            "started_at": self.started_at,
        }
        if collector is not None:
            payload.update(
                entries=collector.entries,
                log_requests=collector.log_requests,
                polls=collector.polls,
                resolved=collector.resolved,
                expected=len(collector.expected),
                pending_references=collector.pending_references,
            )
        payload.update(extra)
        return TriggerEvent(payload)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            connection = await get_async_connection(self.entra_conn_id, hook=EntraHook)
            # Building the hook parses credentials and loads CA bundles: off the event loop too.
            hook = await asyncio.to_thread(EntraHook.from_connection, connection)
            collector = await asyncio.to_thread(self._collector)
        except Exception as exc:  # the task must learn why, not hang until its timeout
            yield self._event(STATUS_ERROR, None, message=f"{type(exc).__name__}: {exc}")
            return
        deadline = utc(self.timeout_at)
        if self.first_poll_at:
            await asyncio.sleep(max(0.0, (min(utc(self.first_poll_at), deadline) - _now()).total_seconds()))
        errors = 0
        while True:
            try:
                result = await asyncio.to_thread(collector.poll, hook)
                errors = 0
                self.log.info(
                    "Provisioning logs: %d/%d records have an outcome (%d new entries, %d log request(s))%s",
                    result.resolved,
                    result.expected,
                    result.new_entries,
                    result.log_requests,
                    f", {result.pending_references} manager reference(s) pending"
                    if result.pending_references
                    else "",
                )
                if result.complete:
                    yield self._event(STATUS_COMPLETE, collector)
                    return
            except EntraAuthError as exc:
                yield self._event(STATUS_ERROR, collector, message=str(exc))
                return
            except EntraError as exc:
                errors += 1
                self.log.warning("Reading the provisioning logs failed (%d in a row): %s", errors, exc)
                if errors >= MAX_CONSECUTIVE_POLL_ERRORS:
                    yield self._event(STATUS_ERROR, collector, message=str(exc))
                    return
            now = _now()
            if now >= deadline:
                yield self._event(STATUS_TIMEOUT, collector)
                return
            wait = collector.next_wait(self.poll_interval, now)
            await asyncio.sleep(min(wait, (deadline - now).total_seconds()))
