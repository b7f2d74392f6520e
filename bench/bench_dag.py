"""Benchmark: the HR DAG's tasks on a million-employee export, dry run, each task in its own process.

Setup (not timed): an export of ``--rows`` employees in the layout of ``dags/data/generate_hr_sample.py``
(Microsoft's CSV2SCIM columns plus Email, the generator's names, departments and locations; a management
tree ten wide, so seven managers-first stages; about 5% leavers; rows shuffled), written as CSV. The
generator builds the rows column-wise (:func:`generate_export`): its per-row original would take minutes.

Day one (empty ledger, every employee a joiner): the tasks of ``entra_hr_provisioning`` up to the upload,
with the arguments the DAG passes, each in a fresh Python process that has imported Airflow and the
provider (as a worker's task process has): ``extract``, ``transform``, ``plan``, ``stages`` and ``upload``
(``EntraBulkUploadOperator`` with ``build_only``: every request built and written, nothing sent). Each
process's peak resident set is its own ``VmHWM``; the run's wall time is the sum of the tasks' (no
scheduler overhead).

Day two: every record of day one is committed to the ledger as verified (not timed), and the export
changes by ``--churn`` (movers, leavers, joiners). Then ``extract``, ``transform`` and ``plan``:
the plan task's time and peak memory are "planning with 1% churn".

Baselines, in this same run: ``builder``, :func:`~airflow_provider_entra.scim.build_bulk_requests` over day
one's mapped records (read from ``mapped.parquet``, every request's bytes produced) in its own process
(the upload's ratio to it is the request preparation's); and ``airflow``, a process that only imports
Airflow and the provider (the floor of every task's memory). Issue 16's figures (200,000 rows, one
``airflow dags test`` process) are printed beside, for reading: they are not from this machine's run.

Run ``python bench/bench_dag.py [--rows 1000000] [--churn 0.01]`` or import :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "dags" / "data"))

from _common import airflow_home  # noqa: E402

MAPPING_FILE = REPO / "dags" / "data" / "hr_mapping.yaml"
UPN_DOMAIN = "contoso.com"
FAN_OUT = 10
#: Issue 16's measurements (200,000 rows, one ``airflow dags test`` process, dry run).
ISSUE_BASELINE = {
    "rows": 200_000,
    "wall_seconds": 30.6,
    "peak_rss_mb": 2.41 * 1024,
    "upload_seconds": 13.4,
    "upload_records_per_s": 15_000,
    "builder_vs_upload": 30.0,
    "planning_seconds": 10.7,  # bench_planning at 1,000,000 rows (validate to build, one process)
    "planning_peak_mb": 1688,
}
TARGETS = {"wall_seconds": 60.0, "peak_rss_mb": 1500.0, "planning_seconds": 5.0, "planning_peak_mb": 1000.0}
TARGET_PREPARE_RATIO = 2.0
LS = pa.large_string()


# -- the export --------------------------------------------------------------------------------------------


def _s(text: str) -> pa.Scalar:
    return pa.scalar(text, LS)


def _pick(rng: np.random.Generator, options: list[str], n: int) -> pa.Array:
    return pc.take(pa.array(options, LS), pa.array(rng.integers(0, len(options), n)))


def generate_export(rows: int, seed: int = 20240601, first_id: int = 1_000_000) -> pd.DataFrame:
    """``rows`` employees in ``generate_hr_sample``'s layout and vocabulary, built column-wise, shuffled.

    Row ``i`` (before the shuffle) reports to row ``(i - 1) // 10``; row 0 (the CEO) to nobody. WorkerIDs are
    ``first_id + i``; logins and emails are unique (a number after the name).
    """
    from generate_hr_sample import COLUMNS, DEPARTMENTS, EMAIL_DOMAIN, FIRST_NAMES, LAST_NAMES, LOCATIONS
    from generate_hr_sample import _slug as slug

    rng = np.random.default_rng(seed)
    position = np.arange(rows)
    ids = pa.array(first_id + position).cast(LS)
    manager = np.where(position == 0, -1, (position - 1) // FAN_OUT)
    manager_ids = pc.if_else(
        pa.array(manager < 0), pa.scalar("", LS), pa.array(first_id + np.maximum(manager, 0)).cast(LS)
    )
    has_reports = np.zeros(rows, dtype=bool)
    has_reports[manager[manager >= 0]] = True
    first_i = rng.integers(0, len(FIRST_NAMES), rows)
    last_i = rng.integers(0, len(LAST_NAMES), rows)
    first = pc.take(pa.array(FIRST_NAMES, LS), pa.array(first_i))
    last = pc.take(pa.array(LAST_NAMES, LS), pa.array(last_i))
    first_slug = pc.take(pa.array([slug(n) for n in FIRST_NAMES], LS), pa.array(first_i))
    last_slug = pc.take(pa.array([slug(n) for n in LAST_NAMES], LS), pa.array(last_i))
    number = pa.array(position).cast(LS)
    login = pc.binary_join_element_wise(pc.utf8_slice_codeunits(first_slug, 0, 1), last_slug, number, _s(""))
    email = pc.binary_join_element_wise(
        first_slug, _s("."), last_slug, number, _s("@" + EMAIL_DOMAIN), _s("")
    )
    departments = list(DEPARTMENTS)
    dept_i = rng.integers(0, len(departments), rows)
    spec = [DEPARTMENTS[d] for d in departments]
    title = np.array([s[4][0] for s in spec], dtype=object)[dept_i]
    ic_pick = rng.integers(0, 4, rows)
    for d, s in enumerate(spec):
        mask = dept_i == d
        title[mask] = np.array(s[4], dtype=object)[ic_pick[mask] % len(s[4])]
    title[has_reports] = np.array([s[3] for s in spec], dtype=object)[dept_i[has_reports]]
    loc_names = list(LOCATIONS)
    loc_i = rng.integers(0, len(loc_names), rows)
    loc = [LOCATIONS[n] for n in loc_names]
    hired = np.datetime64("2005-01-01") + rng.integers(0, 7300, rows).astype("timedelta64[D]")
    status = np.where(rng.random(rows) < 0.05, "Inactive", "Active")
    status[has_reports] = "Active"
    two_digits = pc.utf8_lpad(pa.array(rng.integers(0, 100, rows)).cast(LS), 2, "0")
    phone = pc.binary_join_element_wise(
        pc.take(pa.array([p[4][:-2] for p in loc], LS), pa.array(loc_i)), two_digits, _s("")
    )

    def by_location(k: int) -> pa.Array:
        return pc.take(pa.array([p[k] for p in loc], LS), pa.array(loc_i))

    def by_department(k: int) -> pa.Array:
        return pc.take(pa.array([s[k] for s in spec], LS), pa.array(dept_i))

    columns: dict[str, Any] = {
        "WorkerID": ids,
        "WorkerStatus": pa.array(status, LS),
        "WorkerType": pa.array(np.where(rng.random(rows) < 0.13, "Contractor", "Employee"), LS),
        "UserID": login,
        "FirstName": first,
        "LastName": last,
        "FullName": pc.binary_join_element_wise(first, last, _s(" ")),
        "GenderPronoun": _pick(rng, ["SHE/HER", "HE/HIM", "THEY/THEM"], rows),
        "ManagerID": manager_ids,
        "HireDate": pa.array(hired.astype(str), LS),
        "OnLeave": pa.array(np.where(rng.random(rows) < 0.03, "True", "False"), LS),
        "Department": pc.take(pa.array(departments, LS), pa.array(dept_i)),
        "Division": by_department(0),
        "CostCenter": by_department(1),
        "Company": pa.array(np.full(rows, "Contoso", dtype=object), LS),
        "Location": pc.take(pa.array(loc_names, LS), pa.array(loc_i)),
        "JobTitle": pa.array(title, LS),
        "StreetAddress": pc.if_else(pa.array(rng.random(rows) < 0.9), by_location(0), pa.scalar("", LS)),
        "City": by_location(1),
        "CountryCode": by_location(2),
        "OfficePhone": phone,
        "Custom01": pc.binary_join_element_wise(
            _s("B"), pa.array(rng.integers(1000, 10000, rows)).cast(LS), _s("")
        ),
        "Custom02": _pick(rng, ["Hybrid", "Remote", "Onsite", ""], rows),
        "ZipCode": by_location(3),
        "Email": email,
    }
    table = pa.table({name: columns[name] for name in COLUMNS})
    table = table.take(pa.array(rng.permutation(rows)))
    return table.to_pandas()


def next_day(export: pd.DataFrame, churn: float, seed: int = 11) -> tuple[pd.DataFrame, dict[str, int]]:
    """The export a day later: ``churn`` of its size changed, half movers (new title), a quarter leavers
    (Inactive), a quarter joiners (new rows reporting to existing managers)."""
    rng = np.random.default_rng(seed)
    changes = int(round(len(export) * churn))
    joiners = changes // 4
    movers = changes // 2
    leavers = changes - movers - joiners
    candidates = np.flatnonzero(
        (export["WorkerStatus"] == "Active").to_numpy() & (export["ManagerID"] != "").to_numpy()
    )
    reports = set(export["ManagerID"])
    candidates = candidates[~export["WorkerID"].iloc[candidates].isin(reports).to_numpy()]
    picked = rng.choice(candidates, size=movers + leavers, replace=False)
    today = export.copy()
    today.iloc[picked[:movers], today.columns.get_loc("JobTitle")] = "Benchmark Mover"
    today.iloc[picked[movers:], today.columns.get_loc("WorkerStatus")] = "Inactive"
    new = generate_export(joiners, seed=seed + 1, first_id=9_000_000)
    new["ManagerID"] = export["WorkerID"].iloc[rng.integers(0, len(export), joiners)].to_numpy()
    new["WorkerStatus"] = "Active"
    new["UserID"] = "n" + new["UserID"]
    new["Email"] = "n" + new["Email"]
    return pd.concat([today, new], ignore_index=True), {"mover": movers, "leaver": leavers, "joiner": joiners}


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), path)


# -- one task per process ----------------------------------------------------------------------------------


def _task(name: str, args: dict[str, Any]) -> Any:
    """Run one task as the DAG does (in the child process)."""
    from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator
    from airflow_provider_entra.provisioning import pipeline

    run = args.get("run_dir")
    if name == "import":
        return {}
    if name == "extract":
        return pipeline.extract_csv(args["csv"], f"{run}/{pipeline.RAW_NAME}")
    if name == "transform":
        return pipeline.transform(
            args["raw"], str(MAPPING_FILE), run, upn_domain=UPN_DOMAIN, ledger=args["ledger"]
        )
    if name == "plan":
        return pipeline.plan(
            args["mapped"],
            args["ledger"],
            run,
            held_path=args["held"],
            normalised_path=args["normalised"],
            mapping_path=str(MAPPING_FILE),
            full_sync=False,
            missing_policy="disable",
            prehire_policy="disabled",
        )
    if name == "stages":
        return pipeline.stages(args["delta"], args["ledger"], run)
    if name == "upload":
        operator = EntraBulkUploadOperator(
            task_id="upload",
            input_path=args["delta"],
            mapping=str(MAPPING_FILE),
            input_kind="mapped",
            stage_order_path=args["order"],
            output_dir=run,
            build_only=True,
        )
        return operator.execute({"run_id": "bench__day", "params": {}})  # type: ignore[arg-type]
    if name == "builder":
        from airflow_provider_entra._fsio import read_frame
        from airflow_provider_entra.scim import MappedRecords, build_bulk_requests
        from airflow_provider_entra.scim.mapping import AttributeMapping

        frame = read_frame(args["mapped"])
        records = MappedRecords(
            frame, pd.DataFrame(), pd.DataFrame(), AttributeMapping.from_file(MAPPING_FILE), len(frame)
        )
        started = time.perf_counter()
        built = build_bulk_requests(records, bulk_id_prefix="bench-")
        size = sum(len(body) for body in built.iter_request_bytes())
        return {
            "records": built.operation_count,
            "bytes": size,
            "build_seconds": time.perf_counter() - started,
        }
    if name == "commit":
        from airflow_provider_entra.provisioning.ledger import commit

        sent = pd.read_parquet(args["delta"])
        outcomes = pd.DataFrame({"external_id": sent["externalId"].astype(str), "status": "success"})
        return {k: v for k, v in commit(args["ledger"], sent, outcomes, run_id="bench-day-1").items()}
    raise ValueError(f"no task {name!r}")


def _peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``: since its ``exec``, so nothing of the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (this benchmark measures memory on Linux)")


def run_task(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one task in a fresh process; its seconds (inside the process, after the imports), peak RSS (the
    child's own ``VmHWM``: ``ru_maxrss`` of a child counts the parent's pages at fork) and summary."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        result_path = out.name
    process = subprocess.Popen(
        [sys.executable, __file__, "--task", name, "--args", json.dumps(args), "--json", result_path],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = process.stdout.read() if process.stdout else ""
    if process.wait() != 0:
        raise RuntimeError(f"task {name} failed ({process.returncode}):\n{output[-4000:]}")
    result: dict[str, Any] = json.loads(Path(result_path).read_text())
    os.unlink(result_path)
    return result


def _child(name: str, args: dict[str, Any], out: str) -> None:
    airflow_home()
    import airflow_provider_entra.operators.bulk_upload  # noqa: F401 - a task process has Airflow loaded
    import airflow_provider_entra.provisioning.pipeline  # noqa: F401

    started = time.perf_counter()
    summary = _task(name, args)
    seconds = time.perf_counter() - started
    Path(out).write_text(
        json.dumps({"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "summary": summary}, default=str)
    )


# -- the run -----------------------------------------------------------------------------------------------


def _day(folder: Path, csv: Path, ledger: Path, tasks: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    folder.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict[str, Any]] = {}
    args: dict[str, Any] = {"run_dir": str(folder), "ledger": str(ledger), "csv": str(csv)}
    for name in tasks:
        result = run_task(name, args)
        done[name] = result
        summary = result["summary"]
        print(f"  {name:<10} {result['seconds']:6.1f} s  peak {result['peak_rss_mb']:7,.0f} MB", flush=True)
        if name == "extract":
            args["raw"] = summary["path"]
        elif name == "transform":
            args.update(
                mapped=summary["mapped_path"],
                held=summary["held_path"],
                normalised=summary["normalised_path"],
            )
        elif name == "plan":
            args["delta"] = summary["delta_path"]
        elif name == "stages":
            args["order"] = summary["stage_order_path"]
    return done


def main(rows: int = 1_000_000, churn: float = 0.01, verbose: bool = True) -> dict[str, Any]:
    """Run the benchmark and return its numbers.

    :param rows: employees in the export.
    :param churn: share of them changed on day two.
    :param verbose: print what each task took.
    """
    with tempfile.TemporaryDirectory(prefix="entra-bench-dag-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        export = generate_export(rows)
        write_csv(export, root / "day1.csv")
        today, expected = next_day(export, churn)
        write_csv(today, root / "day2.csv")
        del export, today
        setup_seconds = time.perf_counter() - started
        ledger = root / "ledger"
        floor = run_task("import", {})
        if verbose:
            print(
                f"export of {rows:,} rows generated ({setup_seconds:.0f} s); Airflow imported: "
                f"{floor['peak_rss_mb']:,.0f} MB",
                flush=True,
            )
            print("day one (empty ledger), dry run:", flush=True)
        day1 = _day(
            root / "day1", root / "day1.csv", ledger, ("extract", "transform", "plan", "stages", "upload")
        )
        builder = run_task("builder", {"mapped": day1["transform"]["summary"]["mapped_path"]})
        run_task("commit", {"delta": day1["plan"]["summary"]["delta_path"], "ledger": str(ledger)})
        if verbose:
            print(f"  builder    {builder['summary']['build_seconds']:6.1f} s (alone, same records)")
            print(f"day two ({churn:.0%} churn, every record of day one in the ledger):", flush=True)
        day2 = _day(root / "day2", root / "day2.csv", ledger, ("extract", "transform", "plan"))

    wall = sum(t["seconds"] for t in day1.values())
    largest = max(day1, key=lambda name: day1[name]["peak_rss_mb"])
    records = day1["upload"]["summary"]["records"]
    build_s = builder["summary"]["build_seconds"]
    plan2 = day2["plan"]
    planned = day2["plan"]["summary"]["to_send"]
    out = {
        "rows": rows,
        "churn": churn,
        "tasks_day1": {
            k: {"seconds": v["seconds"], "peak_rss_mb": v["peak_rss_mb"]} for k, v in day1.items()
        },
        "tasks_day2": {
            k: {"seconds": v["seconds"], "peak_rss_mb": v["peak_rss_mb"]} for k, v in day2.items()
        },
        "wall_seconds": wall,
        "largest_task": largest,
        "largest_peak_rss_mb": day1[largest]["peak_rss_mb"],
        "airflow_import_rss_mb": floor["peak_rss_mb"],
        "records": records,
        "requests": day1["upload"]["summary"]["requests"],
        "builder_seconds": build_s,
        "builder_records_per_s": records / build_s,
        "upload_seconds": day1["upload"]["seconds"],
        "upload_records_per_s": records / day1["upload"]["seconds"],
        "prepare_ratio": day1["upload"]["seconds"] / build_s,
        "wall_vs_builder": wall / build_s,
        "planning_seconds": plan2["seconds"],
        "planning_peak_rss_mb": plan2["peak_rss_mb"],
        "planning_vs_builder": plan2["seconds"] / build_s,
        "planning_over_airflow_mb": plan2["peak_rss_mb"] - floor["peak_rss_mb"],
        "planned": planned,
        "quarantined": day1["transform"]["summary"]["quarantined"],
        "top_reasons": day1["transform"]["summary"]["top_reasons"],
        "stages": day1["stages"]["summary"]["stage_sizes"],
        "expected_changes": expected,
        "baseline": ISSUE_BASELINE,
        "targets": {**TARGETS, "prepare_ratio": TARGET_PREPARE_RATIO},
        "setup_seconds": setup_seconds,
    }
    if verbose:
        print(report(out))
    return out


def report(out: dict[str, Any]) -> str:
    """Lines: each figure beside the issue's baseline and the target."""
    b, t = out["baseline"], out["targets"]
    return "\n".join(
        [
            f"dry run of {out['rows']:,} rows: {out['wall_seconds']:.1f} s in the tasks "
            f"({out['wall_vs_builder']:.1f}x the builder alone; issue: {b['wall_seconds']} s for "
            f"{b['rows']:,} rows; target < {t['wall_seconds']:.0f} s)",
            f"largest task: {out['largest_task']}, peak {out['largest_peak_rss_mb']:,.0f} MB (issue: "
            f"{b['peak_rss_mb']:,.0f} MB for {b['rows']:,} rows in one process; target < "
            f"{t['peak_rss_mb']:,.0f} MB; Airflow alone {out['airflow_import_rss_mb']:,.0f} MB)",
            f"planning {out['rows']:,} rows at {out['churn']:.0%} churn: {out['planning_seconds']:.1f} s, "
            f"peak {out['planning_peak_rss_mb']:,.0f} MB ({out['planning_over_airflow_mb']:,.0f} MB above a "
            f"process with Airflow loaded), {out['planned']:,} to send (issue: "
            f"{b['planning_seconds']} s, {b['planning_peak_mb']:,} MB; target < "
            f"{t['planning_seconds']:.0f} s, < {t['planning_peak_mb']:,.0f} MB)",
            f"request preparation: upload task {out['upload_records_per_s']:,.0f} records/s, builder "
            f"{out['builder_records_per_s']:,.0f} records/s: {out['prepare_ratio']:.2f}x the builder's time "
            f"(issue: {b['builder_vs_upload']:.0f}x; target <= {t['prepare_ratio']:g}x)",
        ]
    )


def _cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--args", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.task:
        _child(args.task, json.loads(args.args), args.json)
        return 0
    result = main(args.rows, args.churn)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
