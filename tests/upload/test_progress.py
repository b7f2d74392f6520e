"""Progress lines and their cadence."""

from __future__ import annotations

import logging

from airflow_provider_entra.upload.progress import Progress, format_duration, format_progress


def test_progress_line_format():
    assert format_progress(412, 2000, 7.9, 240) == "412/2,000 records (20%), 7.9 calls/s, ETA 4m"
    assert format_progress(0, 10, None, None) == "0/10 records (0%)"
    assert format_progress(0, 0, None, None) == "0/0 records (100%)"
    assert (
        format_progress(10, 10, 8.0, 0, 2) == "10/10 records (100%), 2 rejected by Graph, 8.0 calls/s, ETA 0s"
    )


def test_durations():
    assert [format_duration(s) for s in (0.4, 59, 200, 600, 7500)] == ["0s", "59s", "3m 20s", "10m", "2h 5m"]


def test_a_line_every_n_calls_or_seconds_and_a_last_one(caplog):
    now = [0.0]
    progress = Progress(
        logging.getLogger("tests.progress"), total=500, every=3, seconds=60, clock=lambda: now[0]
    )
    with caplog.at_level(logging.INFO, "tests.progress"):
        progress.skipped(100)
        for _ in range(3):
            now[0] += 1
            progress.sent(50)
        now[0] += 100  # a slow call: logged by time
        progress.sent(50)
        progress.refused()  # a 400: a call, no record done
        progress.rejected(1)
        now[0] += 1
        progress.sent(49)  # below both thresholds...
        progress.finish()  # ...so the last line comes from finish()
        progress.finish()  # nothing new: no line
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "250/500 records (50%), 1.0 calls/s, ETA 5s",
        "300/500 records (60%), 0.0 calls/s, ETA 1m 43s",
        "350/500 records (70%), 1 rejected by Graph, 0.1 calls/s, ETA 1m 3s",
    ]
