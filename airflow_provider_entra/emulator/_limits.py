"""Rate limits, the daily quota and fault injection: what decides a call gets a 429, a 5xx or no answer.

Microsoft's limits (``docs/entra-facts.md`` section 3): bulkUpload 40 calls in any 5 seconds and 6,000
calls in 24 hours per tenant; provisioning logs 5 calls in 10 seconds per app. Not thread-safe on its own:
the :class:`~airflow_provider_entra.emulator._core.Emulator` calls in under its lock.
"""

from __future__ import annotations

import copy
import random
from collections import deque
from typing import Any

from airflow_provider_entra.emulator._config import Config, parse_rate
from airflow_provider_entra.emulator._protocol import DAILY_WINDOW_SECONDS

#: Endpoints that get random faults (``fault_rate``, ``throttle_rate``, ...); planned faults can hit any.
_RANDOM_FAULT_ENDPOINTS = ("bulkUpload", "provisioningLogs", "job")


class SlidingWindow:
    """At most ``calls`` events in any ``seconds``-long window."""

    def __init__(self, calls: int, seconds: float) -> None:
        self.calls, self.seconds = calls, seconds
        self.events: deque[float] = deque()

    def acquire(self, now: float) -> float:
        """Record an event if allowed and return 0; otherwise return the seconds until one is allowed."""
        while self.events and self.events[0] <= now - self.seconds:
            self.events.popleft()
        if len(self.events) >= self.calls:
            return self.events[len(self.events) - self.calls] + self.seconds - now
        self.events.append(now)
        return 0.0


def _window(current: SlidingWindow | None, rate: str) -> SlidingWindow:
    """``current`` while it still enforces ``rate``; a fresh window once the option changed."""
    calls, seconds = parse_rate(rate)
    if current is not None and (current.calls, current.seconds) == (calls, seconds):
        return current
    return SlidingWindow(calls, seconds)


class Limits:
    """The tenant's upload limits, the per-app log limits and the plan of faults still to inject."""

    def __init__(self, config: Config) -> None:
        self._rng = random.Random()  # noqa: S311
        self.reset(config)

    def reset(self, config: Config) -> None:
        """Forget every call counted and every planned fault."""
        self._upload_window = _window(None, config.rate_limit)
        self._daily: deque[float] = deque()
        self._log_windows: dict[str, SlidingWindow] = {}
        self.fault_plan: list[dict[str, Any]] = []

    def plan_faults(self, faults: list[dict[str, Any]]) -> None:
        """Replace the planned faults (consumed in order by :meth:`pick_fault`)."""
        self.fault_plan = copy.deepcopy(faults)

    def take_upload_call(self, config: Config, now: float) -> float:
        """Count a bulkUpload call against the burst and daily limits; return Retry-After seconds or 0."""
        self._upload_window = _window(self._upload_window, config.rate_limit)
        self._prune_daily(now)
        if len(self._daily) >= config.daily_quota:
            return max(1.0, self._daily[0] + DAILY_WINDOW_SECONDS - now)
        wait = self._upload_window.acquire(now)
        if wait > 0:
            return wait
        self._daily.append(now)
        return 0.0

    def daily_used(self, now: float) -> int:
        """bulkUpload calls counted in the 24 hours before ``now``."""
        self._prune_daily(now)
        return len(self._daily)

    def advance_daily_window(self, seconds: float, now: float) -> int:
        """Move the daily window ``seconds`` on: every call counted so far looks that much older (a test
        starts the tenant's next day without waiting for it). The burst window and the clock are untouched.

        :return: the calls still counted in the 24 hours before ``now``.
        """
        self._daily = deque(stamp - seconds for stamp in self._daily)
        return self.daily_used(now)

    def _prune_daily(self, now: float) -> None:
        while self._daily and self._daily[0] <= now - DAILY_WINDOW_SECONDS:
            self._daily.popleft()

    def take_log_call(self, config: Config, client_id: str, now: float) -> float:
        """Count a provisioning-logs call for an app; return Retry-After seconds or 0."""
        window = self._log_windows[client_id] = _window(
            self._log_windows.get(client_id), config.log_rate_limit
        )
        return window.acquire(now)

    def pick_fault(self, config: Config, endpoint: str, *, repeat: bool = False) -> dict[str, Any] | None:
        """Return the fault to inject into this call, if any (the planned ones first, then random ones).

        :param repeat: the call's ``client-request-id`` arrived before (a retry); with
            ``fault_first_attempt_only`` such a call gets no fault and consumes no planned one.
        """
        if repeat and config.fault_first_attempt_only:
            return None
        for fault in self.fault_plan:
            if fault["count"] > 0 and fault["endpoint"] in ("*", endpoint):
                fault["count"] -= 1
                self.fault_plan = [f for f in self.fault_plan if f["count"] > 0]
                return fault
        if endpoint not in _RANDOM_FAULT_ENDPOINTS:
            return None
        roll = self._rng.random()
        for kind, rate in (
            ("drop", config.drop_rate),
            ("429", config.throttle_rate),
            (self._rng.choice(["500", "503"]), config.fault_rate),
            ("slow", config.slow_rate),
        ):
            if roll < rate:
                return {
                    "kind": kind,
                    "endpoint": endpoint,
                    "retry_after": None,
                    "seconds": config.slow_seconds,
                }
            roll -= rate
        return None
