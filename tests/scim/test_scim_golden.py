"""Golden files: a scenario's HR rows and mapping in, the exact JSON out.

Each scenario lives in ``golden/``: ``<name>.input.csv`` (or one of Microsoft's sample files),
``<name>.mapping.yaml`` (or one of the bundled mappings) and ``<name>.expected.json``: the requests exactly
as built (key order included), the rejected rows and the collapsed duplicates.

After an intended change of output, regenerate with ``SCIM_UPDATE_GOLDEN=1 pytest tests/scim`` and review
the diff of the ``.expected.json`` files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from airflow_provider_entra.scim import AttributeMapping, build_bulk_requests

UPDATE = os.environ.get("SCIM_UPDATE_GOLDEN") == "1"
REPO = Path(__file__).resolve().parents[2]
MICROSOFT_SAMPLE = REPO / "tests" / "data" / "microsoft-sample"
SAMPLE_DATA = REPO / "dags" / "data"
GOLDEN = Path(__file__).resolve().parent / "golden"


def read_hr_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def hr_sample() -> pd.DataFrame:
    df = read_hr_csv(SAMPLE_DATA / "hr_employees.csv")
    df["UserPrincipalName"] = df["UserID"] + "@contoso.com"
    return df


@dataclass
class Scenario:
    name: str
    mapping: Path
    load: Any
    build: dict[str, Any] = field(default_factory=dict)


def _golden(name: str):
    return lambda: read_hr_csv(GOLDEN / f"{name}.input.csv")


SCENARIOS = [
    # Microsoft's smallest CSV2SCIM sample with a mapping equivalent to its AttributeMapping.psd1
    Scenario(
        "microsoft_csv_with_2_records",
        SAMPLE_DATA / "microsoft_sample_mapping.yaml",
        lambda: read_hr_csv(MICROSOFT_SAMPLE / "csv-with-2-records.csv"),
    ),
    # the Logic Apps sample's input (every field quoted), same mapping
    Scenario(
        "microsoft_logicapps_csv_with_5_records",
        SAMPLE_DATA / "microsoft_sample_mapping.yaml",
        lambda: read_hr_csv(MICROSOFT_SAMPLE / "logicapps-csv-with-5-records.csv"),
    ),
    # the bundled sample export through the default mapping (first rows)
    Scenario("hr_sample_first_rows", SAMPLE_DATA / "hr_mapping.yaml", lambda: hr_sample().head(6)),
    Scenario(
        "custom_namespace_and_dates",
        GOLDEN / "custom_namespace_and_dates.mapping.yaml",
        _golden("custom_namespace_and_dates"),
    ),
    Scenario(
        "nulls_and_multivalued",
        GOLDEN / "nulls_and_multivalued.mapping.yaml",
        _golden("nulls_and_multivalued"),
    ),
    Scenario(
        "escaping_and_unicode", GOLDEN / "escaping_and_unicode.mapping.yaml", _golden("escaping_and_unicode")
    ),
    Scenario(
        "rejections",
        GOLDEN / "rejections.mapping.yaml",
        _golden("rejections"),
        {"max_operations": 2, "bulk_id_prefix": "run42-"},
    ),
]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", force_ascii=False))


def _render(result: Any) -> str:
    document = {
        "requests": list(result.requests),
        "rejected": _records(result.rejected),
        "collapsed": _records(result.collapsed),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_golden(scenario: Scenario, scim2_validate: Any) -> None:
    mapping = AttributeMapping.from_file(scenario.mapping)
    result = build_bulk_requests(scenario.load(), mapping, **scenario.build)
    actual = _render(result)
    expected_path = GOLDEN / f"{scenario.name}.expected.json"
    if UPDATE:
        expected_path.write_text(actual, encoding="utf-8")
    assert expected_path.exists(), f"no golden file {expected_path.name}: run with SCIM_UPDATE_GOLDEN=1"
    assert actual == expected_path.read_text(encoding="utf-8")
    # the bytes sent are the same JSON as the golden dicts, and each request is valid SCIM
    for raw, request in zip(result.iter_request_bytes(), result.requests, strict=True):
        assert json.loads(raw) == request
        scim2_validate(request, mapping)
