"""The emulator's own count of the busiest window: what all clients of the tenant sent together."""

from __future__ import annotations

from airflow_provider_entra.emulator._stats import PeakWindow
from airflow_provider_entra.emulator.testing import Graph, bulk, user


def test_peak_window_counts_the_busiest_stretch_not_the_total() -> None:
    window = PeakWindow(5.0)
    for now in (0.0, 1.0, 2.0, 4.9, 5.0, 9.0, 9.5, 30.0):
        window.add(now)
    # 0.0-4.9 holds four arrivals; at 5.0 the arrival at 0.0 has left the window (it is 5 s old).
    assert window.peak == 4


def test_stats_report_the_peak_of_bulk_upload_calls_including_throttled(graph: Graph) -> None:
    graph.emu.configure(rate_limit="3/60")
    statuses = [graph.upload(bulk(user(str(i)))).status_code for i in range(5)]
    assert statuses.count(202) == 3 and statuses.count(429) == 2
    graph.logs()
    peaks = graph.emu.stats()["peak_calls"]
    assert peaks["bulkUpload_per_5s"] == 5  # every arrival counts, answered 429 or not
    assert peaks["provisioningLogs_per_10s"] == 1
    graph.emu.reset()
    assert graph.emu.stats()["peak_calls"]["bulkUpload_per_5s"] == 0
