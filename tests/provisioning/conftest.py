"""Helpers for the tests of the steps over staged files: run the sample export through them, and fake what
the verification writes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from airflow_provider_entra.provisioning import pipeline

DATA = Path(__file__).resolve().parents[2] / "dags" / "data"


def _run(export: Path, run: Path, ledger: Path, mapping: Path = DATA / "hr_mapping.yaml", **plan_options):
    """extract, transform and plan ``export`` into ``run`` against ``ledger``."""
    pipeline.extract_csv(export, run / pipeline.RAW_NAME)
    transformed = pipeline.transform(
        run / pipeline.RAW_NAME, mapping, run, upn_domain="contoso.com", ledger=ledger
    )
    planned = pipeline.plan(
        transformed["mapped_path"],
        ledger,
        run,
        held_path=transformed["held_path"],
        normalised_path=transformed["normalised_path"],
        **plan_options,
    )
    return transformed, planned


def _all_succeed(delta_path: str, run: Path, *, fail: tuple[str, ...] = ()) -> Path:
    """Outcomes as the verification writes them: every sent record succeeded, except ``fail``."""
    ids = pd.read_parquet(delta_path)["externalId"].astype(str)
    outcomes = pd.DataFrame(
        {"external_id": ids, "status": ["failure" if i in fail else "success" for i in ids]}
    )
    path = run / "outcomes.parquet"
    outcomes.to_parquet(path, index=False)
    return path


@pytest.fixture
def steps() -> SimpleNamespace:
    """``steps.run(export, run, ledger, mapping=..., **plan_options)`` -> ``(transformed, planned)``;
    ``steps.all_succeed(delta_path, run, fail=())`` -> the outcomes file; ``steps.data``: dags/data."""
    return SimpleNamespace(run=_run, all_succeed=_all_succeed, data=DATA)
