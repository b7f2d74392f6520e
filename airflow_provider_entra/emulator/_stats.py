"""Counters and the request log the tests read (``GET /_emulator/stats``, ``GET /_emulator/requests``)."""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any

#: Most recent Graph and token calls kept in the request log (``GET /_emulator/requests``).
REQUEST_LOG_SIZE = 100_000
#: Endpoint -> seconds of the window whose busiest stretch :class:`Stats` keeps (``peak_calls``): Microsoft's
#: bulkUpload limit counts calls per tenant in any 5 seconds, the provisioning logs' per app in any 10.
PEAK_WINDOWS = {"bulkUpload": 5.0, "provisioningLogs": 10.0}


class PeakWindow:
    """The most arrivals seen in any ``seconds``-long window (sliding, to the arrival's timestamp)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.times: deque[float] = deque()
        self.peak = 0

    def add(self, now: float) -> None:
        """Count one arrival at ``now`` (non-decreasing)."""
        while self.times and self.times[0] <= now - self.seconds:
            self.times.popleft()
        self.times.append(now)
        self.peak = max(self.peak, len(self.times))


class Stats:
    """Counters the tests read through ``GET /_emulator/stats``, and the request log."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls: Counter = Counter()
        self.throttled: Counter = Counter()
        self.status: Counter = Counter()
        self.faults: Counter = Counter()
        self.operations_received = 0
        self.operations_processed = 0
        self.uploads_accepted = 0
        self.uploads_rejected = 0
        self.uploads_processed = 0
        self.uploads_purged = 0
        self.uploads_failed = 0
        self.tokens_issued: Counter = Counter()
        self.started = time.time()
        #: One entry per arrival (not control calls): seq, time, endpoint, method, client_request_id,
        #: fault, status and, for an accepted bulkUpload, ``upload`` (seq, operations, bulk_ids_sha256).
        self.requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.request_seq = 0
        self.client_request_ids: set[str] = set()
        #: Endpoint -> the most calls that arrived in any window of its :data:`PEAK_WINDOWS` length, every
        #: arrival counted (answered 429 or faulted too): what the tenant's clients sent together.
        self.peak_windows = {endpoint: PeakWindow(seconds) for endpoint, seconds in PEAK_WINDOWS.items()}

    def log_request(self, endpoint: str, method: str, client_request_id: str | None) -> tuple[dict, bool]:
        """Record an arrival; return the entry and whether this client-request-id arrived before."""
        self.request_seq += 1
        entry: dict[str, Any] = {
            "seq": self.request_seq,
            "time": time.time(),
            "endpoint": endpoint,
            "method": method,
            "client_request_id": client_request_id,
            "fault": None,
            "status": None,
        }
        self.requests.append(entry)
        window = self.peak_windows.get(endpoint)
        if window is not None:
            window.add(entry["time"])
        repeat = client_request_id is not None and client_request_id in self.client_request_ids
        if client_request_id is not None:
            self.client_request_ids.add(client_request_id)
        return entry, repeat

    def peak_calls(self) -> dict[str, int]:
        """``"<endpoint>_per_<seconds>s"`` -> the most calls that arrived in any window of that length."""
        return {
            f"{endpoint}_per_{window.seconds:g}s": window.peak
            for endpoint, window in self.peak_windows.items()
        }
