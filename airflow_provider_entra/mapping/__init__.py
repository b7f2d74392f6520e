"""Mapping files: the one definition of the format, loading with located errors, the JSON Schema, a checker.

A mapping file declares everything about an HR export: its ``source`` block (which columns carry the id,
status, manager, names, dates and how UPNs are made) and its ``attributes`` block (which column feeds each
SCIM attribute). The format is described in ``docs/mapping.md``; :mod:`.models` defines it, and the JSON
Schema shipped beside this module (``mapping.schema.json``) is generated from those models.

Check a mapping without Airflow::

    python -m airflow_provider_entra.mapping check dags/data/hr_mapping.yaml \\
        --sample dags/data/hr_employees.csv

From Python::

    >>> from airflow_provider_entra.mapping import load_mapping_file
    >>> mapping = load_mapping_file("dags/data/hr_mapping.yaml")  # doctest: +SKIP
    >>> schema = mapping.source.to_hr_schema()  # doctest: +SKIP
"""

from __future__ import annotations

from airflow_provider_entra.mapping._file import (
    MappingFile,
    MappingFileError,
    MappingProblem,
    load_mapping_file,
)
from airflow_provider_entra.mapping._schema import SCHEMA_ID, SCHEMA_PATH, json_schema
from airflow_provider_entra.mapping.models import (
    DatesSpec,
    MappingFileModel,
    SourceSpec,
    StatusSpec,
    UpnSpec,
)

__all__ = [
    "SCHEMA_ID",
    "SCHEMA_PATH",
    "DatesSpec",
    "MappingFile",
    "MappingFileError",
    "MappingFileModel",
    "MappingProblem",
    "SourceSpec",
    "StatusSpec",
    "UpnSpec",
    "json_schema",
    "load_mapping_file",
]
