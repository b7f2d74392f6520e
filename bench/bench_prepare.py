"""Benchmark: how fast the upload operator prepares its requests, against the SCIM builder alone.

``--rows`` synthetic employees (``bench_payloads.synthetic_hr``, the default mapping, a management tree 20
wide, so six managers-first stages) are mapped once (not timed). Then, in this one process, best of
``--repeat`` runs each:

* ``builder``: :func:`~airflow_provider_entra.scim.build_bulk_requests` on the mapped records, every
  request's bytes produced (``iter_request_bytes``): the floor;
* ``planning``: what the operator calls, :func:`~airflow_provider_entra.upload.plan_records`, with the stage
  order the DAG's ``stages`` step hands it: one build per stage, each request's bytes kept and fingerprinted
  (SHA-256), no decoding; ``planning_computed``: the same with the stage order computed (no ``stages``
  step);
* ``operator``: :meth:`EntraBulkUploadOperator.plan` from the mapped records staged as Parquet, with the
  stage order file: reading both files, checking the staged records' shape
  (``MappedRecords.from_staged``: their values were checked when they were mapped), then the same planning.

Each ratio is that measure's time over the builder's (1.0: as fast as the builder; the aim is within 2x).
The planned requests must be the builder's bytes, stage by stage. Nothing is asserted; ``run_all.py`` shows
the table.

Run ``python bench/bench_prepare.py [--rows 200000] [--repeat 3]`` or import :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import airflow_home  # noqa: E402
from bench_payloads import MAPPING_FILE, synthetic_hr  # noqa: E402

from airflow_provider_entra.scim import AttributeMapping, build_bulk_requests, map_records  # noqa: E402
from airflow_provider_entra.upload import STAGE_ORDER_NAME, PlanOptions, plan_records, stage_order  # noqa: E402

TARGET_RATIO = 2.0
PREFIX = "bench-"


def _best(repeat: int, work: Callable[[], Any]) -> tuple[float, Any]:
    """Shortest wall time of ``repeat`` runs of ``work``, and its last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


def _builder(records: Any) -> int:
    built = build_bulk_requests(records, bulk_id_prefix=PREFIX)
    return sum(len(body) for body in built.iter_request_bytes())


def main(rows: int = 200_000, repeat: int = 3, verbose: bool = True) -> dict[str, Any]:
    """Run the benchmark and return its numbers.

    :param rows: employees.
    :param repeat: runs of each measure (the best counts).
    :param verbose: print a summary line.
    """
    airflow_home()
    from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator

    hr = synthetic_hr(rows)
    position = np.arange(rows)
    hr["ManagerID"] = np.where(position == 0, "", (1_000_000 + (position - 1) // 20).astype(str))
    records = map_records(hr, AttributeMapping.from_file(MAPPING_FILE))
    builder_s, builder_bytes = _best(repeat, lambda: _builder(records))
    order = stage_order(records.frame).order
    planning_s, plan = _best(repeat, lambda: plan_records(records, PlanOptions(PREFIX, order=order)))
    computed_s, _ = _best(repeat, lambda: plan_records(records, PlanOptions(PREFIX)))
    with tempfile.TemporaryDirectory() as folder:
        path, order_path = Path(folder) / "mapped.parquet", Path(folder) / STAGE_ORDER_NAME
        records.frame.to_parquet(path)
        order.to_parquet(order_path, index=False)
        operator = EntraBulkUploadOperator(
            task_id="upload", input_path=str(path), stage_order_path=str(order_path), bulk_id_prefix=PREFIX
        )
        operator_s, operator_plan = _best(repeat, lambda: operator.plan({"run_id": "bench"}))
    sent = len(records.frame)
    stage_bytes = [
        b"".join(build_bulk_requests(records.select(ids), bulk_id_prefix=PREFIX).iter_request_bytes())
        for ids in _stage_ids(plan)
    ]
    same_bytes = stage_bytes == [
        b"".join(r.body for r in plan.requests if r.stage == stage) for stage in range(len(stage_bytes))
    ]
    out = {
        "rows": rows,
        "records": sent,
        "requests": len(plan.requests),
        "stages": len(plan.stage_sizes),
        "request_mb": builder_bytes / 1e6,
        "builder_seconds": builder_s,
        "builder_records_per_s": sent / builder_s,
        "planning_seconds": planning_s,
        "planning_records_per_s": sent / planning_s,
        "planning_ratio": planning_s / builder_s,
        "planning_computed_seconds": computed_s,
        "planning_computed_ratio": computed_s / builder_s,
        "operator_seconds": operator_s,
        "operator_records_per_s": sent / operator_s,
        "operator_ratio": operator_s / builder_s,
        "same_bytes_as_builder": same_bytes
        and [r.body for r in operator_plan.requests] == [r.body for r in plan.requests],
        "target_ratio": TARGET_RATIO,
    }
    if verbose:
        print(
            f"prepare {sent:,} records ({out['stages']} stages, {out['requests']:,} requests, "
            f"{out['request_mb']:.0f} MB): builder {out['builder_records_per_s']:,.0f} records/s; planning "
            f"{out['planning_records_per_s']:,.0f}/s = {out['planning_ratio']:.2f}x the builder's time "
            f"({out['planning_computed_ratio']:.2f}x ordering the stages itself); operator.plan() from the "
            f"files {out['operator_records_per_s']:,.0f}/s = {out['operator_ratio']:.2f}x (aim: within "
            f"{TARGET_RATIO:g}x); same bytes as the builder: {out['same_bytes_as_builder']}"
        )
    return out


def _stage_ids(plan: Any) -> list[list[str]]:
    stages: dict[int, list[str]] = {}
    for request in plan.requests:
        stages.setdefault(request.stage, []).extend(request.external_ids)
    return [stages[stage] for stage in sorted(stages)]


def _cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    result = main(args.rows, args.repeat)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
