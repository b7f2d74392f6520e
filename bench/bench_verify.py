"""Benchmark: provisioning-log API requests needed to verify 10,000 records.

Uploads ``--records`` synthetic employees to a private emulator (with :class:`EntraBulkUploadOperator`),
lets it process them, then verifies them the way :class:`EntraProvisioningLogSensor` does, with its
:class:`ProvisioningLogCollector`: one filtered, paged listing of the job's log per poll (``$top`` = page
size), polled until every record has its outcome. Counted: the log API requests the emulator received for
it, against ``ceil(records / page size)`` (one page per ``page size`` entries; each record here has one
entry) plus a constant of 2 (an extra poll and a final page boundary). The log API allows 5 requests per
10 s, so every request saved is two seconds of waiting saved.

Run ``python bench/bench_verify.py [--records 10000] [--page-size 500]`` or import :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import airflow_home, emulator, hr_rows, upload  # noqa: E402

CONSTANT = 2
MAX_POLLS = 50


def main(records: int = 10_000, page_size: int | None = None, verbose: bool = True) -> dict[str, Any]:
    """Run the benchmark and return its numbers.

    :param records: employees to upload and verify.
    :param page_size: ``$top`` per page; default: the sensor's default.
    :param verbose: print a summary line.
    """
    airflow_home()
    from airflow_provider_entra.hooks.entra import EntraHook
    from airflow_provider_entra.triggers.provisioning_logs import DEFAULT_PAGE_SIZE, ProvisioningLogCollector

    page_size = page_size or DEFAULT_PAGE_SIZE
    frame = hr_rows(records)
    with tempfile.TemporaryDirectory() as folder, emulator(Path(folder), processing_delay=0.2) as emu:
        summary, manifest = upload(Path(folder), frame)
        emu.process()
        first_submit = min(datetime.fromisoformat(line["submitted_at"]) for line in manifest)
        before = emu.stats()["calls"].get("provisioningLogs", 0)
        collector = ProvisioningLogCollector(
            frame["WorkerID"].astype(str),
            since=first_submit - timedelta(minutes=1),
            entries_path=Path(folder) / "entries.jsonl",
            page_size=page_size,
            settle_seconds=0,
        )
        hook = EntraHook()
        started = time.perf_counter()
        polls = 0
        while not collector.is_complete() and polls < MAX_POLLS:
            collector.poll(hook)
            polls += 1
        seconds = time.perf_counter() - started
        received = emu.stats()["calls"].get("provisioningLogs", 0) - before
    target = math.ceil(records / page_size) + CONSTANT
    out = {
        "records": summary["records"],
        "resolved": collector.resolved,
        "page_size": page_size,
        "polls": polls,
        "log_requests": received,
        "log_requests_counted_by_collector": collector.log_requests,
        "pages_needed": math.ceil(records / page_size),
        "target_requests": target,
        "verify_seconds": seconds,
    }
    if verbose:
        print(
            f"verify {out['resolved']:,}/{records:,} records: {received} log API requests in {polls} poll(s) "
            f"(page size {page_size}; target <= {target}), {seconds:.0f} s at 5 requests / 10 s"
        )
    return out


def _cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=None)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    result = main(args.records, args.page_size)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
