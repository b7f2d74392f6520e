"""Client-side pacing: a sliding-window limiter and a rolling daily call budget, shared within a process.

Microsoft answers 429 past 40 bulkUpload calls in any 5-second window, past 5 provisioning-log reads per
10 seconds, and past the tenant's daily quota. Rather than run into those walls, every request takes a slot
first. A slot counts from the moment it is taken until its response has arrived (then it expires a window
later), so a request is never counted as "out of the window" while the server may still be receiving it.

Limiters and budgets live in process-wide registries keyed by tenant (and client and job), so several hook
instances in one worker share them; :func:`clear_pacing` empties the registries (tests).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from airflow_provider_entra.exceptions import EntraQuotaExhaustedError

_IN_FLIGHT = math.inf


@dataclass
class _Slot:
    """A request's place in a window: ``ends`` is ``inf`` while in flight, then its completion time."""

    ends: float = _IN_FLIGHT


class SlidingWindowLimiter:
    """At most ``max_calls`` requests in any ``window_seconds``, counting each until its response arrives.

    Thread-safe; :meth:`acquire` blocks (sleeping, never spinning) until a slot is free.

    :param max_calls: requests allowed per window.
    :param window_seconds: window length in seconds.
    :param name: label used in stats and logs.
    :param clock: monotonic clock (seconds).
    :param sleep: sleep function.
    """

    def __init__(
        self,
        max_calls: int,
        window_seconds: float,
        *,
        name: str = "graph",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_calls < 1 or window_seconds <= 0:
            raise ValueError("max_calls must be >= 1 and window_seconds > 0")
        self.max_calls = max_calls
        self.window_seconds = window_seconds
        self.name = name
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._slots: deque[_Slot] = deque()
        self.calls = 0
        self.waits = 0
        self.wait_seconds = 0.0

    def _prune(self, now: float) -> None:
        # Slots are in start order, not end order: keep scanning the whole (small) deque.
        if any(s.ends + self.window_seconds <= now for s in self._slots):
            self._slots = deque(s for s in self._slots if s.ends + self.window_seconds > now)

    def acquire(self) -> _Slot:
        """Wait for a free slot and take it; pass it to :meth:`release` once the response has arrived."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._prune(now)
                if len(self._slots) < self.max_calls:
                    slot = _Slot()
                    self._slots.append(slot)
                    self.calls += 1
                    if waited:
                        self.waits += 1
                        self.wait_seconds += waited
                    return slot
                earliest = min(s.ends for s in self._slots) + self.window_seconds
            # All slots in flight: poll briefly until one response arrives.
            pause = 0.05 if math.isinf(earliest) else max(earliest - now, 0.001)
            self._sleep(pause)
            waited += pause

    def release(self, slot: _Slot | None) -> None:
        """Mark the slot's response as arrived; it stops counting one window later. Idempotent."""
        if slot is not None and math.isinf(slot.ends):
            with self._lock:
                slot.ends = self._clock()

    def stats(self) -> dict[str, float | int | str]:
        """Counters for progress logs: calls let through, how many had to wait, and for how long in total."""
        with self._lock:
            self._prune(self._clock())
            return {
                "name": self.name,
                "max_calls": self.max_calls,
                "window_seconds": self.window_seconds,
                "calls": self.calls,
                "waits": self.waits,
                "wait_seconds": round(self.wait_seconds, 3),
                "in_window": len(self._slots),
            }


class DailyCallBudget:
    """Counts calls per rolling 24 hours (or ``period_seconds``) and refuses once the budget is spent.

    The count is shared; the budget is the caller's (each connection may configure its own).

    :param name: what is counted, for messages (e.g. the tenant id).
    :param period_seconds: the rolling period.
    :param clock: monotonic clock (seconds).
    """

    def __init__(
        self, name: str, period_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.period_seconds = period_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._calls: deque[float] = deque()

    def _prune(self, now: float) -> None:
        while self._calls and self._calls[0] + self.period_seconds <= now:
            self._calls.popleft()

    def consume(self, budget: int) -> int:
        """Count one call, or raise before it is sent if ``budget`` calls were made in the period.

        :param budget: calls allowed in the rolling period.
        :return: calls left after this one.
        :raises EntraQuotaExhaustedError: with ``retry_after`` = seconds until a call frees up.
        """
        with self._lock:
            now = self._clock()
            self._prune(now)
            if len(self._calls) >= budget:
                retry_after = self._calls[len(self._calls) - budget] + self.period_seconds - now
                raise EntraQuotaExhaustedError(
                    f"Daily call budget exhausted for tenant {self.name}: {len(self._calls)} bulkUpload "
                    f"calls in the last {self.period_seconds / 3600:g} h (budget {budget}). Nothing was "
                    f"sent; the next call is allowed in {retry_after / 60:.0f} min. Send deltas, or raise "
                    "'daily_call_budget' if your licence allows more (Governance: 6000, P1/P2: 2000).",
                    error_code="DailyCallBudgetExhausted",
                    retry_after=max(retry_after, 0.0),
                )
            self._calls.append(now)
            return budget - len(self._calls)

    def used(self) -> int:
        """Calls counted in the current rolling period."""
        with self._lock:
            self._prune(self._clock())
            return len(self._calls)


_registry_lock = threading.Lock()
_limiters: dict[Hashable, SlidingWindowLimiter] = {}
_budgets: dict[Hashable, DailyCallBudget] = {}


def shared_limiter(
    key: Hashable, max_calls: int, window_seconds: float, *, name: str
) -> SlidingWindowLimiter:
    """The process-wide limiter for ``key`` (created on first use). ``max_calls``/``window_seconds`` are part
    of the key, so two connections configured differently for one job get separate limiters."""
    full_key = (key, max_calls, window_seconds)
    with _registry_lock:
        limiter = _limiters.get(full_key)
        if limiter is None:
            limiter = _limiters[full_key] = SlidingWindowLimiter(max_calls, window_seconds, name=name)
        return limiter


def shared_budget(key: Hashable, period_seconds: float, *, name: str) -> DailyCallBudget:
    """The process-wide daily budget counter for ``key`` (a tenant)."""
    with _registry_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = DailyCallBudget(name, period_seconds)
        return budget


def clear_pacing() -> None:
    """Forget every shared limiter and budget (tests; a worker never needs it)."""
    with _registry_lock:
        _limiters.clear()
        _budgets.clear()
