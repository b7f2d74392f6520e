"""Benchmark: SCIM bulkUpload payloads for a million HR rows, column-wise vs two per-row baselines.

Builds every request (the JSON bytes that would be POSTed) for ``--rows`` synthetic employees in Microsoft's
CSV2SCIM layout with the bundled default mapping (``dags/data/hr_mapping.yaml``: 23 attributes, core,
enterprise and a custom namespace with a date), then does the same work on a sample of
``--baseline-rows`` rows with two per-row approaches, all in this one process:

- ``iterrows``: a ``DataFrame.iterrows()`` loop building one dict per employee, ``json.dumps`` per request;
- ``scim2-models``: one ``User[EnterpriseUser, <custom>]`` object per employee, one ``BulkRequest`` per 50,
  serialised with ``model_dump_json``.

Baselines run on a sample and are compared per row (rows/s). Peak memory is the process's peak resident set
(VmHWM, reset before the build), so it includes the input DataFrame. Timings are the best of ``--repeat``
runs; nothing is asserted, the table is for reading.

Run ``python bench/bench_payloads.py [--rows 1000000] [--baseline-rows 20000] [--repeat 3]``, or import it
and call :func:`main`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_entra.scim import AttributeMapping, build_bulk_requests, map_records

MAPPING_FILE = Path(__file__).resolve().parents[1] / "dags" / "data" / "hr_mapping.yaml"
TARGET_ROWS_PER_SECOND = 200_000
TARGET_SPEEDUP_VS_SCIM2 = 20
TARGET_PEAK_MB = 2048
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CONTOSO = "urn:ietf:params:scim:schemas:extension:contoso:1.0:User"
LS = pa.large_string()

FIRST = [
    "José",
    "Zoë",
    "Anaïs",
    "Björn",
    "Ana",
    "Ben",
    "Carla",
    "David",
    "Emma",
    "Farah",
    "Kenji",
    "Ngozi",
    "Wei",
]
LAST = ["Núñez", "Ødegård", "Müller", "O'Brien", "García", "Smith", "Chen", "Kowalski", "Okafor", "Patel"]
DEPARTMENTS = ["Sales", "Engineering", "Finance", "People", "IT", "Marketing", "Operations"]
TITLES = [
    "Account Executive",
    "Software Engineer",
    "Accountant",
    "Recruiter",
    "Systems Administrator",
    "Manager",
]
CITIES = [
    ("Oslo", "NO", "0154"),
    ("Paris", "FR", "75004"),
    ("Seattle", "US", "98101"),
    ("München", "DE", "80331"),
]


# -- data ----------------------------------------------------------------------------------------


def _choice(rng: np.random.Generator, options: list[str], n: int, empty: float = 0.0) -> pa.Array:
    dictionary = pa.array([*options, ""], LS)
    index = rng.integers(0, len(options), n)
    if empty:
        index[rng.random(n) < empty] = len(options)
    return pc.take(dictionary, pa.array(index))


def _numbers(values: np.ndarray) -> pa.Array:
    return pa.array(values).cast(LS)


def synthetic_hr(rows: int, seed: int = 7) -> pd.DataFrame:
    """``rows`` employees in the CSV2SCIM layout plus Email and UserPrincipalName, built column-wise."""
    rng = np.random.default_rng(seed)
    ids = _numbers(np.arange(1_000_000, 1_000_000 + rows))
    first, last = _choice(rng, FIRST, rows), _choice(rng, LAST, rows)
    login = pc.binary_join_element_wise(pc.utf8_slice_codeunits(first, 0, 1), ids, pa.scalar("", LS))
    city = rng.integers(0, len(CITIES), rows)
    days = rng.integers(0, 9000, rows)
    hire = pa.array(np.datetime64("2000-01-01") + days.astype("timedelta64[D]")).cast(pa.date32())
    columns: dict[str, pa.Array] = {
        "WorkerID": ids,
        "WorkerStatus": _choice(rng, ["Active"] * 19 + ["Inactive"], rows),
        "WorkerType": _choice(rng, ["Employee"] * 9 + ["Contractor"], rows),
        "UserID": pc.utf8_lower(login),
        "FirstName": first,
        "LastName": last,
        "FullName": pc.binary_join_element_wise(first, last, pa.scalar(" ", LS)),
        "GenderPronoun": _choice(rng, ["SHE/HER", "HE/HIM", "THEY/THEM"], rows),
        "ManagerID": _numbers(1_000_000 + rng.integers(0, rows, rows)),
        "HireDate": pc.strftime(hire, "%Y-%m-%d").cast(LS),
        "OnLeave": _choice(rng, ["False"] * 30 + ["True"], rows),
        "Department": _choice(rng, DEPARTMENTS, rows),
        "Division": _choice(rng, ["Commercial", "Product", "Corporate"], rows),
        "CostCenter": _choice(rng, ["CC1100", "CC2100", "CC3100"], rows),
        "Company": _choice(rng, ["Contoso"], rows),
        "Location": _choice(rng, [c[0] for c in CITIES], rows),
        "JobTitle": _choice(rng, TITLES, rows),
        "StreetAddress": _choice(rng, ["Karl Johans gate 1", "500 Pine St"], rows, empty=0.1),
        "City": pc.take(pa.array([c[0] for c in CITIES], LS), pa.array(city)),
        "CountryCode": pc.take(pa.array([c[1] for c in CITIES], LS), pa.array(city)),
        "OfficePhone": pc.binary_join_element_wise(
            pa.scalar("+47 22 00 ", LS), _numbers(rng.integers(1000, 9999, rows)), pa.scalar("", LS)
        ),
        "Custom01": _choice(rng, ["B1001", "B2002"], rows),
        "Custom02": _choice(rng, ["Hybrid", "Remote"], rows, empty=0.3),
        "ZipCode": pc.take(pa.array([c[2] for c in CITIES], LS), pa.array(city)),
    }  # fmt: skip
    columns["Email"] = pc.binary_join_element_wise(
        columns["UserID"], pa.scalar("@contoso.com", LS), pa.scalar("", LS)
    )
    columns["UserPrincipalName"] = columns["Email"]
    return pd.DataFrame({name: values.to_pandas() for name, values in columns.items()})


# -- measurements --------------------------------------------------------------------------------


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM; elsewhere ru_maxrss is the peak since the process started
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Timing:
    """The fastest of some runs: wall-clock seconds, and the CPU seconds this process spent in that run."""

    wall: float
    cpu: float


def _best(runs: int, work: Any) -> tuple[Timing, Any]:
    best, result = Timing(float("inf"), float("inf")), None
    for _ in range(runs):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if wall < best.wall:
            best = Timing(wall, cpu)
    return best, result


def column_wise(df: pd.DataFrame, mapping: AttributeMapping) -> tuple[int, int]:
    """Build every request and produce its bytes: (requests, total bytes)."""
    result = build_bulk_requests(df, mapping)
    total = sum(len(body) for body in result.iter_request_bytes())
    return len(result.requests), total


def _iso(date_text: str) -> str | None:
    if not date_text:
        return None
    return datetime.fromisoformat(date_text).replace(tzinfo=timezone.utc).isoformat()


def _record(row: Any) -> dict[str, Any]:
    """One employee as a dict, the way a per-row script maps the default mapping."""

    def put(target: dict[str, Any], key: str, value: Any) -> None:
        if value is not None and value != "":
            target[key] = value

    data: dict[str, Any] = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE]}
    put(data, "externalId", row["WorkerID"])
    put(data, "userName", row["UserPrincipalName"])
    data["active"] = row["WorkerStatus"] == "Active"
    put(data, "displayName", row["FullName"])
    name: dict[str, Any] = {}
    put(name, "givenName", row["FirstName"])
    put(name, "familyName", row["LastName"])
    put(data, "name", name or None)
    for key, column in (("nickName", "UserID"), ("userType", "WorkerType"), ("title", "JobTitle")):
        put(data, key, row[column])
    if row["Email"]:
        data["emails"] = [{"type": "work", "value": row["Email"]}]
    address: dict[str, Any] = {"type": "work"}
    for key, column in (("streetAddress", "StreetAddress"), ("locality", "City"), ("postalCode", "ZipCode")):
        put(address, key, row[column])
    put(address, "country", row["CountryCode"])
    if len(address) > 1:
        data["addresses"] = [address]
    if row["OfficePhone"]:
        data["phoneNumbers"] = [{"type": "work", "value": row["OfficePhone"]}]
    enterprise: dict[str, Any] = {}
    for key, column in (
        ("employeeNumber", "WorkerID"), ("costCenter", "CostCenter"), ("organization", "Company"),
        ("division", "Division"), ("department", "Department"),
    ):  # fmt: skip
        put(enterprise, key, row[column])
    if row["ManagerID"]:
        enterprise["manager"] = {"value": row["ManagerID"]}
    put(data, ENTERPRISE, enterprise or None)
    custom: dict[str, Any] = {}
    put(custom, "HireDate", _iso(row["HireDate"]))
    put(custom, "Location", row["Location"])
    if custom:
        data[CONTOSO] = custom
        data["schemas"].append(CONTOSO)
    return data


def _requests(operations: list[dict[str, Any]]) -> list[str]:
    return [
        json.dumps(
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": operations[i : i + 50],
                "failOnErrors": None,
            },
            ensure_ascii=False,
        )
        for i in range(0, len(operations), 50)
    ]


def iterrows_baseline(df: pd.DataFrame) -> int:
    """A ``DataFrame.iterrows()`` loop: one dict per row, ``json.dumps`` per 50."""
    operations = [
        {"method": "POST", "bulkId": row["WorkerID"], "path": "/Users", "data": _record(row)}
        for _, row in df.iterrows()
    ]
    return sum(len(body) for body in _requests(operations))


def scim2_baseline(df: pd.DataFrame) -> int:
    """One scim2-models ``User`` per row (from ``itertuples``), one ``BulkRequest`` per 50."""
    from pydantic import create_model
    from scim2_models import URN, BulkOperation, BulkRequest, EnterpriseUser, Extension, User
    from scim2_models.resources.enterprise_user import Manager
    from scim2_models.resources.user import Address, Email, Name, PhoneNumber

    contoso = create_model(
        "Contoso",
        __base__=Extension,
        hire_date=(Optional[datetime], None),  # noqa: UP045
        location=(Optional[str], None),  # noqa: UP045
    )
    contoso.__schema__ = URN(CONTOSO)
    user_model = User[Union[EnterpriseUser, contoso]]  # noqa: UP007
    request_model, operation_model = BulkRequest[user_model], BulkOperation[user_model]

    def text(value: str) -> str | None:
        return value or None

    operations = []
    for row in df.itertuples(index=False):
        user = user_model(
            external_id=row.WorkerID,
            user_name=row.UserPrincipalName,
            active=row.WorkerStatus == "Active",
            display_name=text(row.FullName),
            name=Name(given_name=text(row.FirstName), family_name=text(row.LastName)),
            nick_name=text(row.UserID),
            user_type=text(row.WorkerType),
            title=text(row.JobTitle),
            emails=[Email(type="work", value=row.Email)] if row.Email else None,
            addresses=[
                Address(
                    type="work",
                    street_address=text(row.StreetAddress),
                    locality=text(row.City),
                    postal_code=text(row.ZipCode),
                    country=text(row.CountryCode),
                )
            ],
            phone_numbers=[PhoneNumber(type="work", value=row.OfficePhone)] if row.OfficePhone else None,
        )
        user[EnterpriseUser] = EnterpriseUser(
            employee_number=row.WorkerID,
            cost_center=text(row.CostCenter),
            organization=text(row.Company),
            division=text(row.Division),
            department=text(row.Department),
            manager=Manager(value=row.ManagerID) if row.ManagerID else None,
        )
        user[contoso] = contoso(hire_date=_iso(row.HireDate), location=text(row.Location))
        operations.append(operation_model(method="POST", bulk_id=row.WorkerID, path="/Users", data=user))
    total = 0
    for i in range(0, len(operations), 50):
        total += len(request_model(operations=operations[i : i + 50]).model_dump_json(exclude_none=True))
    return total


# -- report --------------------------------------------------------------------------------------


def _column_wise_runs(
    rows: int, baseline_rows: int, repeat: int, mapping: AttributeMapping
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Time the column-wise build on ``rows`` rows; returns the numbers and the sample for the baselines."""
    _reset_peak_rss()
    df = synthetic_hr(rows)
    input_mb = _peak_rss_mb()
    column_wise(df.head(1000), mapping)  # warm up: first calls load pyarrow kernels
    timing, (requests, total_bytes) = _best(repeat, lambda: column_wise(df, mapping))
    peak_mb = _peak_rss_mb()
    map_timing, _ = _best(1, lambda: build_bulk_requests(map_records(df, mapping)).operation_count)
    measured = {
        "timing": timing,
        "requests": requests,
        "total_bytes": total_bytes,
        "peak_mb": peak_mb,
        "input_mb": input_mb,
        "map_timing": map_timing,
    }
    return measured, df.head(baseline_rows).copy()


def main(
    rows: int = 1_000_000, baseline_rows: int = 20_000, repeat: int = 3, verbose: bool = True
) -> dict[str, Any]:
    """Run the benchmark and return its numbers (rows/s, seconds, peak MB, speed-ups, targets met).

    Rates are given on wall-clock time (``*_rows_per_s``, what the targets use) and on this process's CPU
    time (``*_cpu_rows_per_s``), which other programs on a busy machine do not slow down.

    :param rows: synthetic employees for the column-wise build.
    :param baseline_rows: rows of the same data for each per-row baseline.
    :param repeat: runs of each measurement; the best time is kept.
    :param verbose: print the table.
    """
    mapping = AttributeMapping.from_file(MAPPING_FILE)
    baseline_rows = min(baseline_rows, rows)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    measured, sample = _column_wise_runs(rows, baseline_rows, repeat, mapping)
    gc.collect()
    iterrows, _ = _best(repeat, lambda: iterrows_baseline(sample))
    scim2, _ = _best(repeat, lambda: scim2_baseline(sample))
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    timing: Timing = measured["timing"]
    results: dict[str, Any] = {
        "rows": rows,
        "baseline_rows": baseline_rows,
        "repeat": repeat,
        "requests": measured["requests"],
        "payload_mb": measured["total_bytes"] / 1e6,
        "seconds": timing.wall,
        "cpu_seconds": timing.cpu,
        "rows_per_s": rows / timing.wall,
        "cpu_rows_per_s": rows / timing.cpu,
        "peak_rss_mb": measured["peak_mb"],
        "input_rss_mb": measured["input_mb"],
        "map_then_build_rows_per_s": rows / measured["map_timing"].wall,
        "map_then_build_cpu_rows_per_s": rows / measured["map_timing"].cpu,
        "iterrows_rows_per_s": baseline_rows / iterrows.wall,
        "iterrows_cpu_rows_per_s": baseline_rows / iterrows.cpu,
        "scim2_rows_per_s": baseline_rows / scim2.wall,
        "scim2_cpu_rows_per_s": baseline_rows / scim2.cpu,
        "load_average": (load_before, load_after),
    }
    for name in ("iterrows", "scim2"):
        results[f"speedup_vs_{name}"] = results["rows_per_s"] / results[f"{name}_rows_per_s"]
        results[f"cpu_speedup_vs_{name}"] = results["cpu_rows_per_s"] / results[f"{name}_cpu_rows_per_s"]
    results["targets_met"] = {
        f">= {TARGET_ROWS_PER_SECOND:,} rows/s": results["rows_per_s"] >= TARGET_ROWS_PER_SECOND,
        f">= {TARGET_SPEEDUP_VS_SCIM2}x scim2-models": results["speedup_vs_scim2"] >= TARGET_SPEEDUP_VS_SCIM2,
        f"< {TARGET_PEAK_MB} MB peak": results["peak_rss_mb"] < TARGET_PEAK_MB,
    }
    if verbose:
        print(_table(results))
    return results


def _row(name: str, rows: int, rate: float, cpu_rate: float, versus: str) -> str:
    return f"{name:<44}{rows:>11,}{rows / rate:>9.2f}{rate:>11,.0f}{cpu_rate:>14,.0f}{versus:>18}"


def _table(r: dict[str, Any]) -> str:
    targets = ", ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in r["targets_met"].items())
    lines = [
        f"SCIM bulk payloads: {r['rows']:,} synthetic employees, mapping {MAPPING_FILE.name} "
        f"({r['requests']:,} requests, {r['payload_mb']:,.0f} MB of JSON); best of {r['repeat']} run(s)",
        "",
        f"{'approach':<44}{'rows':>11}{'seconds':>9}{'rows/s':>11}{'rows/s (CPU)':>14}{'speed-up':>18}",
        "-" * 107,
        _row("column-wise build_bulk_requests", r["rows"], r["rows_per_s"], r["cpu_rows_per_s"], "1.0x"),
        _row(
            "  map_records, then build from its frame",
            r["rows"],
            r["map_then_build_rows_per_s"],
            r["map_then_build_cpu_rows_per_s"],
            "",
        ),
    ]
    for label, name in (
        ("DataFrame.iterrows() dicts + json.dumps *", "iterrows"),
        ("scim2-models objects per row *", "scim2"),
    ):
        lines.append(
            _row(
                label,
                r["baseline_rows"],
                r[f"{name}_rows_per_s"],
                r[f"{name}_cpu_rows_per_s"],
                f"{r[f'speedup_vs_{name}']:.1f}x ({r[f'cpu_speedup_vs_{name}']:.1f}x)",
            )
        )
    lines += [
        "",
        f"* run on the first {r['baseline_rows']:,} rows of the same data; speed-up = column-wise rows/s "
        "over "
        "that rows/s (in brackets: on CPU time).",
        f"Peak RSS during the column-wise build: {r['peak_rss_mb']:,.0f} MB (whole process; "
        f"{r['input_rss_mb']:,.0f} MB before it: interpreter and input DataFrame).",
        f"Load average (1 min) before/after: {r['load_average'][0]:.1f}/{r['load_average'][1]:.1f} on "
        f"{os.cpu_count()} CPUs; wall-clock rates drop when other programs compete, CPU rates much less.",
        "",
        f"targets (wall clock): {targets}",
    ]
    return "\n".join(lines)


def _cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    main(args.rows, args.baseline_rows, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
