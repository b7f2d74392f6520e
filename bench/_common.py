"""Shared set-up for the benchmarks that talk to the emulator: Airflow home, emulator, connection, upload."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MAPPING_FILE = REPO / "dags" / "data" / "hr_mapping.yaml"


def airflow_home() -> None:
    """Give Airflow a throw-away home before its first import (the operator imports it)."""
    if "AIRFLOW_HOME" not in os.environ:
        os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="entra-bench-airflow-")
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")


@contextmanager
def emulator(folder: Path, **options: Any):
    """A private emulator, with ``entra_default`` pointing at it."""
    from airflow_provider_entra.emulator.process import EmulatorProcess
    from airflow_provider_entra.hooks.entra import clear_msal_apps

    with EmulatorProcess(folder / "emulator", **options) as emu:
        os.environ["AIRFLOW_CONN_ENTRA_DEFAULT"] = json.dumps(emu.info["airflow_conn"])
        clear_msal_apps()
        try:
            yield emu
        finally:
            clear_msal_apps()


def hr_rows(rows: int) -> Any:
    """``rows`` synthetic employees in the CSV2SCIM layout (no managers: one upload stage)."""
    sys.path.insert(0, str(BENCH))
    from bench_payloads import synthetic_hr

    frame = synthetic_hr(rows)
    frame["WorkerStatus"] = "Active"
    frame["ManagerID"] = ""
    return frame


def upload(folder: Path, frame: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Upload ``frame`` with :class:`EntraBulkUploadOperator` (default pacing); summary and manifest lines."""
    from airflow_provider_entra.operators.bulk_upload import MANIFEST_NAME, EntraBulkUploadOperator
    from airflow_provider_entra.staging import read_jsonl

    path = folder / "hr.parquet"
    frame.to_parquet(path, index=False)
    operator = EntraBulkUploadOperator(
        task_id="upload", input_path=str(path), mapping=str(MAPPING_FILE), progress_every=100
    )
    summary = operator.execute({"run_id": f"bench__{datetime.now().isoformat()}"})
    return summary, read_jsonl(folder / MANIFEST_NAME)


def machine() -> dict[str, Any]:
    """Where the numbers were measured."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": model,
        "cpus": cpus,
        "memory_gb": memory_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
    }
