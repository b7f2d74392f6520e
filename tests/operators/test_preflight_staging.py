"""Preflight stops a distributed deployment staging on one machine's disk, before any Graph call."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_entra.emulator.process import EmulatorProcess
from airflow_provider_entra.operators.job_health import (
    EntraJobHealthOperator,
    distributed_executors,
    staging_problem,
)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("LocalExecutor", []),
        ("SequentialExecutor", []),
        ("CeleryExecutor", ["CeleryExecutor"]),
        ("airflow.providers.celery.executors.celery_executor.CeleryExecutor", ["CeleryExecutor"]),
        ("LocalExecutor, k8s:airflow.providers.cncf.kubernetes.KubernetesExecutor", ["KubernetesExecutor"]),
        ("EdgeExecutor", ["EdgeExecutor"]),
    ],
)
def test_distributed_executors_are_all_but_the_local_ones(setting: str, expected: list[str]) -> None:
    assert distributed_executors(setting) == expected


def test_only_a_local_unshared_root_with_a_distributed_executor_is_a_problem(tmp_path: Path) -> None:
    local = str(tmp_path / "staging")
    assert staging_problem(local, [], shared=False) is None
    assert staging_problem(local, ["CeleryExecutor"], shared=True) is None
    assert staging_problem("memory://bucket/entra", ["CeleryExecutor"], shared=False) is None
    problem = staging_problem(f"file://{local}", ["CeleryExecutor"], shared=False)
    assert problem is not None
    assert (
        "entra_staging_path" in problem
        and "entra_staging_shared" in problem
        and "Nothing was sent" in problem
    )


def _calls(emulator: EmulatorProcess) -> int:
    return int(emulator.stats()["calls_total"])


def test_celery_with_local_staging_stops_before_any_graph_call(
    entra_env: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    before = _calls(entra_env)
    with pytest.raises(AirflowFailException) as raised:
        EntraJobHealthOperator(task_id="preflight").execute({"params": {"staging_path": str(tmp_path)}})
    message = str(raised.value)
    assert str(tmp_path) in message and "CeleryExecutor" in message
    assert "Set the Airflow Variable entra_staging_path" in message
    assert _calls(entra_env) == before  # not even the job was read


@pytest.mark.parametrize("how", ["argument", "variable"])
def test_a_shared_mount_can_be_declared(
    entra_env: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, how: str
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    if how == "variable":
        monkeypatch.setenv("AIRFLOW_VAR_ENTRA_STAGING_SHARED", "true")
        operator = EntraJobHealthOperator(task_id="preflight")
    else:
        operator = EntraJobHealthOperator(task_id="preflight", staging_shared=True)
    result = operator.execute({"params": {"staging_path": str(tmp_path)}})
    assert result["status"] == "Active"


def test_object_storage_staging_passes_with_celery(
    entra_env: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    result = EntraJobHealthOperator(task_id="preflight").execute(
        {"params": {"staging_path": "memory://preflight/entra"}}
    )
    assert result["status"] == "Active"


def test_local_executor_keeps_local_staging(
    entra_env: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    result = EntraJobHealthOperator(task_id="preflight").execute({"params": {"staging_path": str(tmp_path)}})
    assert result["status"] == "Active"
