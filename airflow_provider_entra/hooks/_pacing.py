"""Client-side pacing: a sliding-window limiter, shared within a process.

Microsoft answers 429 past 40 bulkUpload calls in any 5-second window and past 5 provisioning-log reads per
10 seconds. Rather than run into those walls, every request takes a slot first. A slot counts from the
moment it is taken until its response has arrived (then it expires a window later), so a request is never
counted as "out of the window" while the server may still be receiving it.

Limiters live in a process-wide registry keyed by tenant, client and job, so several hook instances in one
worker share them; :func:`clear_pacing` empties it (tests). The tenant's daily quota is not counted here,
per process, but by the upload where every worker sees it (:mod:`airflow_provider_entra.upload.quota`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

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

    def seed(self, ages: Iterable[float]) -> int:
        """Count calls made elsewhere (another task, maybe on another worker) whose responses arrived ``ages``
        seconds ago: a new process then starts with the tenant's window as it is, not empty.

        :param ages: seconds since each call's response arrived (one per call; negative ages, from clocks
            that differ a little between hosts, count as just now).
        :return: the calls still inside the window, now counted.
        """
        with self._lock:
            now = self._clock()
            taken = [_Slot(ends=now - max(0.0, age)) for age in ages if age < self.window_seconds]
            self._slots.extend(taken)
            return len(taken)

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


_registry_lock = threading.Lock()
_limiters: dict[Hashable, SlidingWindowLimiter] = {}


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


def clear_pacing() -> None:
    """Forget every shared limiter (tests; a worker never needs it)."""
    with _registry_lock:
        _limiters.clear()
