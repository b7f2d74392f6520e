"""The limiter on a virtual clock (no sleeping, no wall-clock asserts)."""

from __future__ import annotations

import threading

from airflow_provider_entra.hooks._pacing import SlidingWindowLimiter, clear_pacing, shared_limiter


class VirtualClock:
    """A monotonic clock that only moves when someone sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = 0
    for i, start in enumerate(times):
        best = max(best, sum(1 for t in times[i:] if t < start + window))
    return best


def test_limiter_never_lets_more_than_max_calls_into_a_window():
    clock = VirtualClock()
    limiter = SlidingWindowLimiter(40, 5, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(130):
        slot = limiter.acquire()
        sent.append(clock())
        clock.sleep(0.01)  # the response takes 10 ms
        limiter.release(slot)
    assert max_in_any_window(sent, 5) == 40
    stats = limiter.stats()
    assert stats["calls"] == 130
    assert stats["waits"] >= 3  # 130 calls need at least 4 windows
    assert stats["wait_seconds"] > 0


def test_a_slot_in_flight_keeps_counting_until_its_response_arrives():
    clock = VirtualClock()
    limiter = SlidingWindowLimiter(2, 5, clock=clock, sleep=clock.sleep)
    slow = limiter.acquire()
    clock.sleep(100)  # a slow response: the server may still be receiving it
    assert limiter.stats()["in_window"] == 1
    limiter.release(slow)
    clock.sleep(4.9)
    assert limiter.stats()["in_window"] == 1  # counts for a whole window after its response
    clock.sleep(0.2)
    assert limiter.stats()["in_window"] == 0


def test_seeded_calls_of_another_process_count_until_they_leave_the_window():
    """A new process told of 3 calls that ended 1 s ago and 2 that ended 6 s ago (outside a 5 s window) has 2
    of 5 slots left; the seeded ones free up 4 s later."""
    clock = VirtualClock()
    limiter = SlidingWindowLimiter(5, 5, clock=clock, sleep=clock.sleep)
    assert limiter.seed([1.0, 1.0, 1.0, 6.0, 6.0]) == 3
    start = clock()
    taken = [limiter.acquire() for _ in range(3)]
    for slot in taken:
        limiter.release(slot)
    waited = clock() - start
    assert 3.9 <= waited <= 4.1  # two slots at once, the third once the seeded calls left the window
    assert limiter.stats()["waits"] == 1


def test_a_negative_age_from_a_clock_ahead_counts_as_now():
    clock = VirtualClock()
    limiter = SlidingWindowLimiter(1, 5, clock=clock, sleep=clock.sleep)
    assert limiter.seed([-2.0]) == 1
    limiter.acquire()
    assert clock() - 1000.0 >= 5  # the seeded call counted for a whole window from now


def test_release_is_idempotent():
    clock = VirtualClock()
    limiter = SlidingWindowLimiter(1, 5, clock=clock, sleep=clock.sleep)
    slot = limiter.acquire()
    limiter.release(slot)
    first_end = slot.ends
    clock.sleep(3)
    limiter.release(slot)
    limiter.release(None)
    assert slot.ends == first_end


def test_shared_registries_share_per_key_and_clear():
    a = shared_limiter(("t", "c", "j"), 40, 5, name="a")
    assert shared_limiter(("t", "c", "j"), 40, 5, name="b") is a
    assert shared_limiter(("t", "c", "other-job"), 40, 5, name="c") is not a
    clear_pacing()
    assert shared_limiter(("t", "c", "j"), 40, 5, name="a") is not a
