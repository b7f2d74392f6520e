"""Benchmark: plan a day of a million-employee HR feed with 1% churn, from the export to the request bytes.

Setup (not timed): ``--rows`` synthetic employees (``bench_payloads.synthetic_hr``, CSV2SCIM layout) are run
through the pipeline once and every record sent is committed as verified, giving yesterday's snapshot
(a Parquet file, as the DAG keeps it). Today's export is yesterday's with 1% churn:

* movers (half the churn): a new JobTitle;
* leavers (a quarter): WorkerStatus Inactive;
* joiners (a quarter): new active employees (yesterday had that many fewer rows).

Timed, in the order the DAG runs them: read the snapshot; ``validate_hr``; ``normalise_hr`` (UPNs kept from
the snapshot); ``map_records``; ``plan_delta``; ``build_bulk_requests`` for the records to send, with the
bytes of every request produced. Peak memory is the process's peak resident set during that work
(VmHWM, reset after setup; it includes the export held in memory). The operations planned must equal the
churn. Nothing is asserted here; ``run_all.py`` compares with the targets.

Run ``python bench/bench_planning.py [--rows 1000000] [--churn 0.01]`` or import :func:`main`.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_payloads import MAPPING_FILE, _peak_rss_mb, _reset_peak_rss, synthetic_hr  # noqa: E402

from airflow_provider_entra.provisioning.ledger import apply_outcomes, read_ledger  # noqa: E402
from airflow_provider_entra.provisioning.ledger import commit as commit_to_ledger  # noqa: E402
from airflow_provider_entra.provisioning.normalise import normalise_hr  # noqa: E402
from airflow_provider_entra.provisioning.plan import SENT_CHANGES, plan_delta  # noqa: E402
from airflow_provider_entra.provisioning.snapshot import empty_snapshot  # noqa: E402
from airflow_provider_entra.provisioning.validate import validate_hr  # noqa: E402
from airflow_provider_entra.scim import AttributeMapping, build_bulk_requests, map_records  # noqa: E402

UPN_DOMAIN = "contoso.com"
TARGET_SECONDS = 30.0
TARGET_PEAK_MB = 3 * 1024


def _plan(hr: pd.DataFrame, snapshot: pd.DataFrame, mapping: AttributeMapping) -> dict[str, Any]:
    """validate -> normalise -> map -> plan -> build; returns the plan and counts."""
    checked = validate_hr(hr, known_ids=snapshot["externalId"])
    existing = snapshot.set_index("externalId")["UserPrincipalName"] if len(snapshot) else None
    normalised = normalise_hr(checked.valid, upn_domain=UPN_DOMAIN, existing_upns=existing)
    mapped = map_records(normalised.frame, mapping)
    delta = plan_delta(mapped.frame, snapshot)
    requests = build_bulk_requests(mapped.select(delta.to_send_ids.tolist()))
    total_bytes = sum(len(body) for body in requests.iter_request_bytes())
    return {
        "delta": delta,
        "requests": len(requests.requests),
        "operations": requests.operation_count,
        "bytes": total_bytes,
        "quarantined": len(checked.rejected) + len(normalised.rejected) + len(mapped.rejected),
    }


def _all_verified(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"external_id": frame["externalId"].astype(str), "status": "success"})


def todays_export(
    yesterday: pd.DataFrame, snapshot: pd.DataFrame, joiners: int, changes: int, seed: int = 11
):
    """Yesterday's export plus ``joiners`` new employees, ``changes`` changes in all; and their counts."""
    rng = np.random.default_rng(seed)
    movers = changes // 2
    leavers = changes - movers - joiners
    active_sent = np.flatnonzero(
        yesterday["WorkerID"].isin(snapshot.loc[snapshot["active"], "externalId"]).to_numpy()
    )
    picked = rng.choice(active_sent, size=movers + leavers, replace=False)
    today = yesterday.copy()
    today.iloc[picked[:movers], today.columns.get_loc("JobTitle")] = "Benchmark Mover"
    today.iloc[picked[movers:], today.columns.get_loc("WorkerStatus")] = "Inactive"
    new = synthetic_hr(joiners, seed=seed + 1)
    new["WorkerID"] = [str(9_000_000 + i) for i in range(joiners)]
    new["WorkerStatus"] = "Active"
    new["ManagerID"] = ""
    today = pd.concat([today, new], ignore_index=True)
    return today, {"mover": movers, "leaver": leavers, "joiner": joiners}


def main(rows: int = 1_000_000, churn: float = 0.01, verbose: bool = True) -> dict[str, Any]:
    """Run the benchmark; return seconds, peak MB, operations planned and the expected churn.

    :param rows: employees in the export.
    :param churn: share of them that changed since yesterday.
    :param verbose: print a summary line.
    """
    mapping = AttributeMapping.from_file(MAPPING_FILE)
    setup_started = time.perf_counter()
    changes = int(round(rows * churn))
    joiners = changes // 4
    yesterday = synthetic_hr(rows - joiners)
    # The synthetic managers are random; a fixed tree keeps the feed free of cycles and self-managers.
    position = np.arange(len(yesterday))
    yesterday["ManagerID"] = np.where(position == 0, "", (1_000_000 + (position - 1) // 20).astype(str))
    first = _plan(yesterday, empty_snapshot(), mapping)
    sent = first["delta"].frame
    snapshot = apply_outcomes(empty_snapshot(), sent, _all_verified(sent))
    today, expected = todays_export(yesterday, snapshot, joiners, changes)
    del yesterday, snapshot
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ledger"
        commit_to_ledger(path, sent, _all_verified(sent), run_id="yesterday")
        del first, sent
        gc.collect()
        setup_seconds = time.perf_counter() - setup_started

        _reset_peak_rss()
        before_mb = _peak_rss_mb()
        started, cpu_started = time.perf_counter(), time.process_time()
        result = _plan(today, read_ledger(path).state, mapping)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        peak_mb = _peak_rss_mb()

    delta = result["delta"]
    planned = {kind: int(delta.counts[kind]) for kind in SENT_CHANGES if delta.counts[kind]}
    out = {
        "rows": rows,
        "churn": churn,
        "expected_changes": expected,
        "expected_operations": sum(expected.values()),
        "planned_changes": planned,
        "operations_planned": result["operations"],
        "requests": result["requests"],
        "payload_mb": result["bytes"] / 1e6,
        "quarantined": result["quarantined"],
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mb": peak_mb,
        "rss_before_mb": before_mb,
        "setup_seconds": setup_seconds,
        "target_seconds": TARGET_SECONDS,
        "target_peak_mb": TARGET_PEAK_MB,
    }
    if verbose:
        print(
            f"planning {rows:,} rows, {churn:.0%} churn: {seconds:.1f} s ({cpu_seconds:.1f} s CPU), peak "
            f"{peak_mb:,.0f} MB; {result['operations']:,} operations planned for "
            f"{out['expected_operations']:,} changes {planned}"
        )
    return out


def _cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    result = main(args.rows, args.churn)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
