"""The one failure-threshold rule, as the sensor and the DAGs apply it."""

from __future__ import annotations

from airflow_provider_entra.provisioning.verdict import Tally, verdict


def test_within_the_limits_there_is_no_verdict():
    assert verdict(Tally(records=100, failures=1), max_failures=1, max_failure_percent=1.0) is None
    assert verdict(Tally(records=100, failures=50, missing=50)) is None  # both limits off


def test_failures_missing_and_stuck_all_count_against_max_failures():
    tally = Tally(records=10, failures=1, missing=1, stuck=1)
    assert tally.short == 3
    assert verdict(tally, max_failures=3) is None
    message = verdict(tally, max_failures=2)
    assert message == (
        "3 of 10 record(s) did not reach Entra (1 failed, 1 have no log entry, 1 are stuck; 30.0%), "
        "over max_failures=2."
    )


def test_the_percentage_is_of_the_records_judged_and_names_every_limit_passed():
    message = verdict(Tally(records=200, failures=3), max_failures=2, max_failure_percent=1)
    assert message is not None
    assert "(3 failed; 1.5%)" in message and "over max_failures=2 and max_failure_percent=1." in message
    assert verdict(Tally(records=0, failures=0), max_failure_percent=0) is None


def test_a_tally_from_the_verification_summary_adds_the_stuck_records():
    tally = Tally.of({"records": 8, "failures": 1, "missing": 2}, stuck=2)
    assert tally == Tally(records=10, failures=1, missing=2, stuck=2)
    assert Tally.of({}) == Tally(records=0, failures=0)


def test_records_without_a_log_entry_are_never_left_out():
    # Not proven is not provisioned: there is no switch that stops missing records counting.
    assert verdict(Tally(records=10, failures=2), max_failures=2) is None
    assert verdict(Tally(records=10, failures=2, missing=4), max_failures=2) == (
        "6 of 10 record(s) did not reach Entra (2 failed, 4 have no log entry; 60.0%), over max_failures=2."
    )
