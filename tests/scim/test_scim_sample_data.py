"""The bundled sample HR exports: reproducible from their generator, and shaped as the demo needs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

from airflow_provider_entra.scim import AttributeMapping, map_records

PRIVILEGED = {"Systems Administrator", "Security Engineer"}


@pytest.fixture(scope="module")
def generator(scim_paths: dict[str, Path]) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_hr_sample", scim_paths["sample"] / "generate_hr_sample.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.fixture(scope="module")
def day1(scim_paths: dict[str, Path]) -> pd.DataFrame:
    return pd.read_csv(scim_paths["sample"] / "hr_employees.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def day2(scim_paths: dict[str, Path]) -> pd.DataFrame:
    return pd.read_csv(scim_paths["sample"] / "hr_employees_next_day.csv", dtype=str, keep_default_na=False)


def test_files_are_what_the_committed_generator_writes(tmp_path: Path, scim_paths: dict[str, Path]) -> None:
    script = scim_paths["sample"] / "generate_hr_sample.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], check=True, capture_output=True)
    for name in ("hr_employees.csv", "hr_employees_next_day.csv"):
        assert (tmp_path / name).read_bytes() == (scim_paths["sample"] / name).read_bytes(), name


def test_columns_are_microsofts_layout_plus_email(day1: pd.DataFrame, scim_paths: dict[str, Path]) -> None:
    microsoft = pd.read_csv(scim_paths["microsoft"] / "csv-with-2-records.csv", nrows=0).columns.tolist()
    assert len(microsoft) == 24
    assert day1.columns.tolist() == [*microsoft, "Email"]


def test_a_company_with_a_real_hierarchy(day1: pd.DataFrame) -> None:
    assert 280 <= len(day1) <= 320
    assert day1["WorkerID"].is_unique and day1["UserID"].is_unique and day1["Email"].is_unique
    managers = dict(zip(day1["WorkerID"], day1["ManagerID"], strict=True))
    ceo = day1[day1["ManagerID"] == ""]
    assert len(ceo) == 1 and ceo["JobTitle"].item() == "Chief Executive Officer"
    assert set(day1["ManagerID"]) - {""} <= set(day1["WorkerID"])

    def depth(worker: str) -> int:
        seen = [worker]
        while managers[seen[-1]]:
            seen.append(managers[seen[-1]])
            assert len(seen) <= len(managers), "a cycle"
        return len(seen)

    depths = [depth(w) for w in day1["WorkerID"]]
    assert max(depths) == 5
    # the file is not sorted managers-first: reports often come before their managers
    position = {w: i for i, w in enumerate(day1["WorkerID"])}
    before = sum(position[w] < position[m] for w, m in managers.items() if m)
    assert before > len(day1) // 4


def test_leavers_contractors_names_and_privileged_staff(day1: pd.DataFrame) -> None:
    leavers = (day1["WorkerStatus"] == "Inactive").mean()
    contractors = (day1["WorkerType"] == "Contractor").mean()
    assert 0.03 <= leavers <= 0.08 and 0.07 <= contractors <= 0.13
    assert set(day1["WorkerStatus"]) == {"Active", "Inactive"}
    names = set(day1["FullName"])
    assert {"José Núñez", "Zoë Ødegård"} <= names
    assert day1.loc[day1["FullName"] == "José Núñez", "UserID"].item() == "jnunez"
    twins = day1[day1["FullName"] == "Ana Silva"]
    assert len(twins) == 2 and twins["UserID"].nunique() == 2 and twins["WorkerID"].nunique() == 2
    assert day1["UserID"].str.fullmatch(r"[a-z0-9]+").all()
    it = day1[day1["Department"] == "IT"]
    assert set(it["JobTitle"]) >= PRIVILEGED
    assert (
        (it["JobTitle"].isin(PRIVILEGED)) & (it["WorkerStatus"] == "Inactive")
    ).any()  # a privileged leaver
    assert pd.to_datetime(day1["HireDate"], format="%Y-%m-%d").notna().all()


def test_next_day_changes(day1: pd.DataFrame, day2: pd.DataFrame, generator: ModuleType) -> None:
    changes: dict[str, list[str]] = generator.build_samples().changes
    before, after = day1.set_index("WorkerID"), day2.set_index("WorkerID")
    assert set(after.index) - set(before.index) == set(changes["joiners"]) and len(changes["joiners"]) == 3
    assert set(before.index) - set(after.index) == set(changes["missing"]) == {changes["missing"][0]}
    common = sorted(set(before.index) & set(after.index))
    differs = {w for w in common if not before.loc[w].equals(after.loc[w])}
    assert differs == set(changes["movers"]) | set(changes["leavers"]) | set(changes["rehires"])
    for worker in changes["leavers"]:
        assert (before.loc[worker, "WorkerStatus"], after.loc[worker, "WorkerStatus"]) == (
            "Active",
            "Inactive",
        )
    for worker in changes["rehires"]:
        assert (before.loc[worker, "WorkerStatus"], after.loc[worker, "WorkerStatus"]) == (
            "Inactive",
            "Active",
        )
    moved = [{c for c in after.columns if before.loc[w, c] != after.loc[w, c]} for w in changes["movers"]]
    assert {"JobTitle"} in moved and {"ManagerID"} in moved
    assert any({"Department", "ManagerID"} <= m for m in moved)
    left_it = [w for w in changes["movers"] if before.loc[w, "JobTitle"] in PRIVILEGED]
    assert left_it and after.loc[left_it[0], "Department"] != "IT"
    assert set(after["ManagerID"]) - {""} <= set(after.index)
    joiners = after.loc[changes["joiners"]]
    assert (joiners["WorkerType"] == "Contractor").any() and (
        joiners["JobTitle"] == "Security Engineer"
    ).any()


def test_default_mapping_reads_the_sample(sample_hr: Any, scim_paths: dict[str, Path]) -> None:
    mapping = AttributeMapping.from_file(scim_paths["sample"] / "hr_mapping.yaml")
    assert "UserPrincipalName" in mapping.source_columns  # added by the pipeline, not in the export
    for name in ("hr_employees.csv", "hr_employees_next_day.csv"):
        df = sample_hr(name)
        mapped = map_records(df, mapping)
        assert mapped.rejected.empty and len(mapped.frame) == len(df)
        assert mapped.frame["active"].tolist() == (df["WorkerStatus"] == "Active").tolist()


def test_ascii_fold(generator: ModuleType) -> None:
    assert generator.ascii_fold("Zoë Ødegård Łukasz Þóra Dvořák") == "Zoe Odegard Lukasz Thora Dvorak"
