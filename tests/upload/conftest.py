"""The pure upload layer's tests: Microsoft's sample export, real files in ``tmp_path``, no Airflow."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _csv2scim import MAPPING

from airflow_provider_entra.scim import AttributeMapping, MappedRecords, map_records

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "microsoft-sample" / "Sample1-employeeData.csv"


@pytest.fixture(scope="session")
def sample() -> pd.DataFrame:
    """Microsoft's Sample1 export (332 rows, duplicates and managers outside the file included)."""
    return pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)


@pytest.fixture(scope="session")
def mapping() -> AttributeMapping:
    return AttributeMapping(MAPPING)


@pytest.fixture(scope="session")
def records(sample: pd.DataFrame, mapping: AttributeMapping) -> MappedRecords:
    return map_records(sample, mapping)
