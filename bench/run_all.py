"""Run every benchmark (``make bench``) and print one table: measured, target, ratio.

* upload throughput: 20,000 records to the emulator at Microsoft's limits (``bench_upload.py``);
* verification: log API requests to reconcile 10,000 records (``bench_verify.py``);
* planning: 1,000,000 HR rows with 1% churn through validate, normalise, map, delta and payload build
  (``bench_planning.py``);
* payload builder: column-wise against ``iterrows()`` and scim2-models (``bench_payloads.py``);
* request preparation: the upload operator's planning against the builder alone (``bench_prepare.py``);
* the HR DAG: a generated export of 1,000,000 rows through its tasks in dry run, each task in its own
  process (wall time, the largest task's peak memory, planning at 1% churn, the upload against the builder;
  ``bench_dag.py``), beside issue 16's figures.

All but the payload benchmark run in their own process each (so one's memory does not count against
another's peak); the payload benchmark runs in this one. Numbers go to ``bench/results.json``, and a
Markdown copy with the date and the machine to ``bench/RESULTS.md``. Nothing is asserted: a missed target
is shown as ``MISSED``.

Run ``python bench/run_all.py`` (a few minutes), or ``--quick`` for a smoke run on small sizes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from _common import machine  # noqa: E402

FULL = {
    "upload": 20_000,
    "verify": 10_000,
    "planning": 1_000_000,
    "payloads": 1_000_000,
    "prepare": 500_000,
    "dag": 1_000_000,
}
QUICK = {
    "upload": 4_000,
    "verify": 1_000,
    "planning": 50_000,
    "payloads": 50_000,
    "prepare": 50_000,
    "dag": 50_000,
}


def _run_script(script: str, *args: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        done = subprocess.run(
            [sys.executable, str(BENCH / script), *args, "--json", out.name],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        summary = [line for line in done.stdout.splitlines() if line and not line.startswith("20")]
        if summary:
            print(f"  {summary[-1]}", flush=True)
        return json.loads(Path(out.name).read_text())


def _rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, bool]]:
    """(measure, measured, target, ratio, met) for the table."""
    up, ver, plan, pay = results["upload"], results["verify"], results["planning"], results["payloads"]
    rows = [
        (
            f"upload {up['records']:,} records: records/s after the first 5-s window",
            f"{up['steady_records_per_s']:.0f}/s",
            ">= 95% of 400/s",
            f"{up['steady_fraction_of_ceiling']:.1%}",
            up["steady_fraction_of_ceiling"] >= 0.95,
        ),
        (
            "  records/s, first to last request (burst included)",
            f"{up['records_per_s']:.0f}/s",
            "(400/s ceiling)",
            f"{up['records_per_s'] / up['ceiling_records_per_s']:.1%}",
            True,
        ),
        (
            "  span vs best 40-per-5-s schedule",
            f"{up['span_seconds']:.1f} s",
            f"{up['best_span_seconds']:.0f} s",
            f"{up['fraction_of_best_schedule']:.1%}",
            True,
        ),
        ("  429 responses received", str(up["throttled_429"]), "0", "", up["throttled_429"] == 0),
        (
            f"planning {plan['rows']:,} rows, {plan['churn']:.0%} churn: seconds",
            f"{plan['seconds']:.1f} s",
            f"< {plan['target_seconds']:.0f} s",
            f"{plan['seconds'] / plan['target_seconds']:.0%} of budget",
            plan["seconds"] < plan["target_seconds"],
        ),
        (
            "  peak memory (RSS)",
            f"{plan['peak_rss_mb']:,.0f} MB",
            f"< {plan['target_peak_mb'] / 1024:.0f} GB",
            f"{plan['peak_rss_mb'] / plan['target_peak_mb']:.0%} of budget",
            plan["peak_rss_mb"] < plan["target_peak_mb"],
        ),
        (
            "  operations planned",
            f"{plan['operations_planned']:,}",
            f"= churn {plan['expected_operations']:,}",
            "",
            plan["operations_planned"] == plan["expected_operations"],
        ),
        (
            f"verify {ver['records']:,} records: log API requests (page {ver['page_size']})",
            str(ver["log_requests"]),
            f"<= {ver['pages_needed']} + 2",
            f"{ver['log_requests'] / ver['pages_needed']:.2f} per page needed",
            ver["log_requests"] <= ver["target_requests"] and ver["resolved"] == ver["records"],
        ),
        (
            f"payloads {pay['rows']:,} rows: column-wise build",
            f"{pay['rows_per_s']:,.0f} rows/s",
            "",
            f"{pay['seconds']:.1f} s",
            True,
        ),
        (
            "  vs iterrows() dicts + json.dumps",
            f"{pay['iterrows_rows_per_s']:,.0f} rows/s",
            "",
            f"{pay['speedup_vs_iterrows']:.0f}x faster",
            True,
        ),
        (
            "  vs scim2-models objects",
            f"{pay['scim2_rows_per_s']:,.0f} rows/s",
            "",
            f"{pay['speedup_vs_scim2']:.0f}x faster",
            True,
        ),
    ]
    for name, ok in pay["targets_met"].items():
        rows.append((f"  payload target {name}", "", name, "", bool(ok)))
    prep = results.get("prepare")
    if prep:
        target = f"<= {prep['target_ratio']:g}x builder"
        rows += [
            (
                f"prepare {prep['records']:,} records ({prep['stages']} stages): builder alone",
                f"{prep['builder_records_per_s']:,.0f} records/s",
                "",
                "1.00x",
                True,
            ),
            (
                "  upload planning, staged order given (bytes, fingerprints)",
                f"{prep['planning_records_per_s']:,.0f} records/s",
                target,
                f"{prep['planning_ratio']:.2f}x",
                prep["planning_ratio"] <= prep["target_ratio"] and prep["same_bytes_as_builder"],
            ),
            (
                "  upload planning, ordering the stages itself",
                f"{prep['records'] / prep['planning_computed_seconds']:,.0f} records/s",
                "",
                f"{prep['planning_computed_ratio']:.2f}x",
                True,
            ),
            (
                "  operator.plan() from the staged files (read, shape check, plan)",
                f"{prep['operator_records_per_s']:,.0f} records/s",
                target,
                f"{prep['operator_ratio']:.2f}x",
                prep["operator_ratio"] <= prep["target_ratio"],
            ),
        ]
    dag = results.get("dag")
    if dag:
        rows += _dag_rows(dag)
    return rows


def _dag_rows(dag: dict[str, Any]) -> list[tuple[str, str, str, str, bool]]:
    """The HR DAG's dry run (``bench_dag.py``): each figure beside issue 16's (200,000 rows, one process)."""
    base, target = dag["baseline"], dag["targets"]
    issue = f"issue 16: {base['rows']:,} rows"
    rows = [
        (
            f"HR DAG dry run, {dag['rows']:,} rows: seconds in its tasks",
            f"{dag['wall_seconds']:.1f} s",
            f"< {target['wall_seconds']:.0f} s",
            f"{dag['wall_vs_builder']:.1f}x the builder alone",
            dag["wall_seconds"] < target["wall_seconds"],
        ),
        (
            f"  {issue}, one process",
            f"{base['wall_seconds']} s",
            "",
            f"{dag['wall_seconds'] / base['wall_seconds']:.2f}x the time, "
            f"{dag['rows'] / base['rows']:g}x the rows",
            True,
        ),
        (
            f"  largest task's peak memory ({dag['largest_task']})",
            f"{dag['largest_peak_rss_mb']:,.0f} MB",
            f"< {target['peak_rss_mb']:,.0f} MB",
            f"{dag['largest_peak_rss_mb'] / target['peak_rss_mb']:.0%} of budget",
            dag["largest_peak_rss_mb"] < target["peak_rss_mb"],
        ),
        (
            f"  {issue}, peak of the one process",
            f"{base['peak_rss_mb']:,.0f} MB",
            "",
            f"{dag['largest_peak_rss_mb'] / base['peak_rss_mb']:.2f}x",
            True,
        ),
    ]
    for day, tasks in (("first run", dag["tasks_day1"]), ("next day", dag["tasks_day2"])):
        for name, task in tasks.items():
            rows.append(
                (
                    f"    {day}: task {name}",
                    f"{task['seconds']:.1f} s",
                    f"< {target['peak_rss_mb']:,.0f} MB",
                    f"{task['peak_rss_mb']:,.0f} MB",
                    task["peak_rss_mb"] < target["peak_rss_mb"],
                )
            )
    rows += [
        (
            f"  planning {dag['rows']:,} rows at {dag['churn']:.0%} churn (plan task)",
            f"{dag['planning_seconds']:.1f} s",
            f"< {target['planning_seconds']:.0f} s",
            f"{dag['planning_seconds'] / target['planning_seconds']:.0%} of budget",
            dag["planning_seconds"] < target["planning_seconds"],
        ),
        (
            f"    its peak memory ({dag['planning_over_airflow_mb']:,.0f} MB above Airflow alone)",
            f"{dag['planning_peak_rss_mb']:,.0f} MB",
            f"< {target['planning_peak_mb']:,.0f} MB",
            f"{dag['planning_peak_rss_mb'] / target['planning_peak_mb']:.0%} of budget",
            dag["planning_peak_rss_mb"] < target["planning_peak_mb"],
        ),
        (
            "  request preparation: upload task (dry run) vs builder",
            f"{dag['upload_records_per_s']:,.0f} records/s",
            f"<= {target['prepare_ratio']:g}x builder",
            f"{dag['prepare_ratio']:.2f}x (builder {dag['builder_records_per_s']:,.0f}/s)",
            dag["prepare_ratio"] <= target["prepare_ratio"],
        ),
        (
            f"  {issue}: upload vs builder",
            f"{base['upload_records_per_s']:,} records/s",
            "",
            f"{base['builder_vs_upload']:.0f}x",
            True,
        ),
    ]
    return rows


def table(results: dict[str, Any]) -> str:
    rows = _rows(results)
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    header = ("measure", "measured", "target", "ratio")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + "  met"]
    lines.append("-" * (sum(widths) + 2 * len(widths) + 3))
    for *cells, ok in rows:
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
            + ("  yes" if ok else "  MISSED")
        )
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    rows = _rows(results)
    flag = " --quick" if results["quick"] else ""
    lines = [
        "# Benchmark results",
        "",
        f"Measured {results['date']} with `make bench` (`python bench/run_all.py{flag}`), in "
        f"{results['total_seconds'] / 60:.1f} minutes.",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['memory_gb']} GB RAM, {m['os']}, Python {m['python']}.",
        "The emulator runs on the same machine and shares its CPUs with the client.",
        "",
        "| measure | measured | target | ratio | met |",
        "|---|---|---|---|---|",
    ]
    for measure, measured, target, ratio, ok in rows:
        lines.append(f"| {measure.strip()} | {measured} | {target} | {ratio} | {'yes' if ok else 'MISSED'} |")
    lines += ["", "Every number of the run is also written to `bench/results.json` (not committed).", ""]
    return "\n".join(lines)


def main(quick: bool = False) -> dict[str, Any]:
    """Run every benchmark; print the table; write ``results.json`` and ``RESULTS.md``.

    :param quick: small sizes (a smoke run; the numbers are not comparable with the targets).
    """
    sizes = QUICK if quick else FULL
    started = time.perf_counter()
    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "quick": quick,
        "sizes": sizes,
    }
    print(f"Benchmarks on {results['machine']['cpus']} CPUs, {results['machine']['cpu']}", flush=True)
    print("upload throughput ...", flush=True)
    results["upload"] = _run_script("bench_upload.py", "--records", str(sizes["upload"]))
    print("verification ...", flush=True)
    results["verify"] = _run_script("bench_verify.py", "--records", str(sizes["verify"]))
    print("planning ...", flush=True)
    results["planning"] = _run_script("bench_planning.py", "--rows", str(sizes["planning"]))
    print("payload builder ...", flush=True)
    from bench_payloads import main as payloads

    results["payloads"] = payloads(sizes["payloads"], verbose=False)
    print("request preparation ...", flush=True)
    results["prepare"] = _run_script("bench_prepare.py", "--rows", str(sizes["prepare"]))
    print("HR DAG dry run ...", flush=True)
    results["dag"] = _run_script("bench_dag.py", "--rows", str(sizes["dag"]))
    results["total_seconds"] = time.perf_counter() - started

    print()
    print(table(results))
    (BENCH / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (BENCH / "RESULTS.md").write_text(markdown(results))
    print(f"\nwrote {BENCH / 'results.json'} and {BENCH / 'RESULTS.md'} ({results['total_seconds']:.0f} s)")
    return results


def _cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = parser.parse_args()
    main(args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
