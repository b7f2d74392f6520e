"""The shipped JSON Schema is the one the models generate, and every mapping file in the repository
passes it and loads."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from airflow_provider_entra.mapping import SCHEMA_ID, SCHEMA_PATH, json_schema, load_mapping_file

REPO = Path(__file__).resolve().parents[2]
REGENERATE = (
    "python -m airflow_provider_entra.mapping schema > airflow_provider_entra/mapping/mapping.schema.json"
)


def _repository_mappings() -> list[Path]:
    found = {
        *REPO.glob("dags/**/*.yaml"),
        *REPO.glob("dags/**/*.yml"),
        *REPO.glob("dags/**/*.json"),
        *REPO.glob("tests/**/*mapping*.yaml"),
        *REPO.glob("tests/**/*mapping*.json"),
    }
    return sorted(p for p in found if "__pycache__" not in p.parts)


MAPPINGS = _repository_mappings()


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_shipped_schema_is_the_generated_one() -> None:
    shipped = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert shipped == json_schema(), f"the models changed: regenerate the schema with `{REGENERATE}`"


def test_the_schema_names_itself_and_describes_the_keys() -> None:
    schema = json_schema()
    assert schema["$id"] == SCHEMA_ID
    assert schema["title"]
    source = schema["$defs"]["SourceSpec"]
    assert source["required"] == ["id"]
    assert source["additionalProperties"] is False
    assert all(field.get("description") for field in source["properties"].values())
    assert schema["$defs"]["UpnSpec"]["properties"]["from"]["enum"] == ["derive", "column"]


def test_the_repository_has_mapping_files_to_check() -> None:
    names = {p.name for p in MAPPINGS}
    assert {"hr_mapping.yaml", "microsoft_sample_mapping.yaml", "admin_mapping.yaml"} <= names


@pytest.mark.parametrize("path", MAPPINGS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_mapping_file_passes_the_schema_and_loads(path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if "attributes" not in data:  # the bare form (an attributes block alone) predates the schema
        data = {"attributes": data}
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(data)]
    assert errors == []
    load_mapping_file(path)


@pytest.mark.parametrize(
    "data",
    [
        {"source": {"id": "X", "frist_name": "Y"}, "attributes": {"externalId": "X"}},
        {"source": {"first_name": "Y"}, "attributes": {"externalId": "X"}},
        {"source": {"id": "X", "upn": {"from": "email"}}, "attributes": {"externalId": "X"}},
        {"attributes": {"externalId": {"column": "X", "tyep": "string"}}},
        {"attributes": {"externalId": {"type": "string"}}},
        {"attributes": {"externalId": 1.5}},
        {"attributes": {}},
    ],
)
def test_editors_flag_what_the_loader_refuses(data: dict) -> None:
    assert list(_validator().iter_errors(data))
