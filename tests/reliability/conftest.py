"""Helpers for the reliability tests: synthetic HR rows, a private emulator per test, the upload operator.

Each test here that needs special emulator options (token lifetime, faults, restarts) starts its own
:class:`EmulatorProcess` in ``tmp_path``; the connection is set through ``AIRFLOW_CONN_ENTRA_DEFAULT`` exactly
as a deployment would, and the hook talks to the emulator over HTTPS.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_provider_entra.emulator.process import EmulatorProcess

#: HR column -> SCIM attribute, the same shape as dags/data/hr_mapping.yaml (a subset).
MAPPING: dict[str, Any] = {
    "externalId": "WorkerID",
    "userName": "UserPrincipalName",
    "active": {"expr": 'WorkerStatus == "Active"'},
    "displayName": "FullName",
    "name.givenName": "FirstName",
    "name.familyName": "LastName",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Department",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value": "ManagerID",
}


def hr_frame(n: int, *, first_id: int = 100_000, managers: bool = False) -> pd.DataFrame:
    """``n`` synthetic HR rows (text columns). With ``managers``, a 20-ary tree under the first worker."""
    ids = np.arange(first_id, first_id + n).astype(str)
    k = np.arange(n).astype(str)
    manager = np.full(n, "", dtype=object)
    if managers and n > 1:
        manager[1:] = (first_id + (np.arange(1, n) - 1) // 20).astype(str)
    return pd.DataFrame(
        {
            "WorkerID": ids,
            "WorkerStatus": "Active",
            "FirstName": np.char.add("First", k),
            "LastName": np.char.add("Last", k),
            "FullName": np.char.add(np.char.add("First", k), np.char.add(" Last", k)),
            "UserPrincipalName": np.char.add(np.char.add("user", ids), "@contoso.com"),
            "Department": "Sales",
            "ManagerID": manager,
        }
    )


def stage_hr(folder: Path, frame: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hr.parquet"
    frame.to_parquet(path, index=False)
    return path


def use_emulator(monkeypatch: pytest.MonkeyPatch, emu: EmulatorProcess) -> None:
    """Point ``entra_default`` at ``emu`` and forget cached msal apps and pacing state."""
    from airflow_provider_entra.hooks.entra import clear_msal_apps

    monkeypatch.setenv("AIRFLOW_CONN_ENTRA_DEFAULT", json.dumps(emu.info["airflow_conn"]))
    clear_msal_apps()


def arrivals_per_request(emu: EmulatorProcess) -> Counter[str]:
    """How many times each bulkUpload request (by client-request-id) reached the emulator."""
    log = emu.request_log("bulkUpload")
    assert all(entry["client_request_id"] for entry in log), "the hook sends a client-request-id"
    return Counter(entry["client_request_id"] for entry in log)


def accepted_digests(emu: EmulatorProcess) -> Counter[str]:
    """How many times each distinct request (by its bulkIds) was accepted (202), across processes."""
    return Counter(
        entry["upload"]["bulk_ids_sha256"] for entry in emu.request_log("bulkUpload") if "upload" in entry
    )


class Support:
    """The helpers above, for test modules (conftest modules cannot be imported by name in importlib mode)."""

    MAPPING = MAPPING
    hr_frame = staticmethod(hr_frame)
    stage_hr = staticmethod(stage_hr)
    use_emulator = staticmethod(use_emulator)
    arrivals_per_request = staticmethod(arrivals_per_request)
    accepted_digests = staticmethod(accepted_digests)


@pytest.fixture
def support() -> type[Support]:
    """The shared helpers (:class:`Support`)."""
    return Support


@pytest.fixture
def private_emulator(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``private_emulator(**options)`` starts an emulator in tmp_path; all are stopped at the end."""
    started: list[EmulatorProcess] = []

    def start(**options: Any) -> EmulatorProcess:
        emu = EmulatorProcess(tmp_path / f"emulator-{len(started)}", **options)
        started.append(emu)
        return emu.start()

    yield start
    for emu in started:
        emu.stop()
