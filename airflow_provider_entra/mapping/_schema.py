"""The JSON Schema of mapping files, generated from :mod:`airflow_provider_entra.mapping.models`.

The package ships it as ``mapping.schema.json``; regenerate it after changing the models::

    python -m airflow_provider_entra.mapping schema > airflow_provider_entra/mapping/mapping.schema.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_provider_entra.mapping.models import MappingFileModel

__all__ = ["SCHEMA_ID", "SCHEMA_PATH", "json_schema", "json_schema_text"]

#: Where the shipped schema lives in the package.
SCHEMA_PATH = Path(__file__).with_name("mapping.schema.json")
#: The schema's ``$id``: a name, not an address (the project publishes no URL); editors find the schema by
#: the path in a ``# yaml-language-server: $schema=...`` comment or their settings.
SCHEMA_ID = "urn:airflow-provider-entra:mapping-file:1"
#: JSON Schema draft 2020-12, the dialect pydantic generates.
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a mapping file (draft 2020-12), with ``$id``, title and descriptions."""
    body = MappingFileModel.model_json_schema()
    return {"$schema": _DIALECT, "$id": SCHEMA_ID, **body}


def json_schema_text() -> str:
    """:func:`json_schema` as the shipped file's text (indented, sorted as generated, final newline)."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
