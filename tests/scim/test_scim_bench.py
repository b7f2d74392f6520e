"""The payload benchmark runs end to end on a small size and returns its numbers (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from airflow_provider_entra.scim import AttributeMapping, build_bulk_requests

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_payloads.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_payloads", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_main_returns_the_numbers(bench, capsys: pytest.CaptureFixture[str]) -> None:
    results = bench.main(rows=3000, baseline_rows=100, repeat=1)
    table = capsys.readouterr().out
    assert "column-wise build_bulk_requests" in table and "scim2-models objects per row *" in table
    assert "run on the first 100 rows" in table and "targets (wall clock):" in table
    assert results["rows"] == 3000 and results["baseline_rows"] == 100 and results["requests"] == 60
    for key in (
        "rows_per_s",
        "cpu_rows_per_s",
        "iterrows_rows_per_s",
        "scim2_rows_per_s",
        "speedup_vs_scim2",
        "cpu_speedup_vs_scim2",
        "peak_rss_mb",
    ):
        assert results[key] > 0
    assert set(results["targets_met"]) == {">= 200,000 rows/s", ">= 20x scim2-models", "< 2048 MB peak"}


def test_baselines_build_the_same_records(bench) -> None:
    """The per-row baselines do the same work as the column-wise build, not less."""
    df = bench.synthetic_hr(120)
    mapping = AttributeMapping.from_file(bench.MAPPING_FILE)
    built = [
        op["data"] for request in build_bulk_requests(df, mapping).requests for op in request["Operations"]
    ]
    by_hand = [bench._record(row) for _, row in df.iterrows()]
    assert json.dumps(built, sort_keys=True) == json.dumps(by_hand, sort_keys=True)
    assert bench.scim2_baseline(df.head(20)) > 0 and bench.iterrows_baseline(df.head(20)) > 0
