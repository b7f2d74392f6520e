"""Helpers for the SCIM tests, as fixtures (test modules are imported in importlib mode).

Paths: ``tests/data/microsoft-sample`` (Microsoft's files), ``dags/data`` (the bundled sample and mappings),
``tests/scim/golden`` (scenarios and their expected JSON).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, Union

import pandas as pd
import pytest
from pydantic import create_model
from scim2_models import URN, BulkRequest, Context, EnterpriseUser, Extension, User

from airflow_provider_entra.scim import AttributeMapping

REPO = Path(__file__).resolve().parents[2]
MICROSOFT_SAMPLE = REPO / "tests" / "data" / "microsoft-sample"
SAMPLE_DATA = REPO / "dags" / "data"
GOLDEN = Path(__file__).resolve().parent / "golden"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")


def read_hr_csv(path: Path) -> pd.DataFrame:
    """Read an HR export as texts, empty cells as empty strings (what a careful pipeline does)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def hr_sample(name: str = "hr_employees.csv") -> pd.DataFrame:
    """The bundled sample export, with the UserPrincipalName column the pipeline adds."""
    df = read_hr_csv(SAMPLE_DATA / name)
    df["UserPrincipalName"] = df["UserID"] + "@contoso.com"
    return df


def _extension_model(urn: str, mapping: AttributeMapping) -> type[Extension]:
    """A scim2-models extension for one custom namespace, typed from the mapping."""
    python_types = {"string": str, "boolean": bool, "integer": int, "datetime": datetime}
    fields: dict[str, Any] = {}
    for spec in mapping.attributes:
        if spec.path.schema == urn:
            name = re.sub(r"(?<!^)(?=[A-Z])", "_", spec.path.attribute).lower()
            fields[name] = (Optional[python_types[spec.value_type]], None)  # noqa: UP045 - pydantic runtime type
    model = create_model("Custom_" + re.sub(r"\W", "_", urn), __base__=Extension, **fields)
    model.__schema__ = URN(urn)
    return model


def scim2_models_for(mapping: AttributeMapping) -> tuple[Any, Any]:
    """``BulkRequest[User[EnterpriseUser | <custom namespaces>]]`` and its ``User[...]``."""
    extensions = [EnterpriseUser, *(_extension_model(urn, mapping) for urn in mapping.custom_schemas)]
    user = User[Union[tuple(extensions)]]  # noqa: UP007 - a runtime union of classes
    return BulkRequest[user], user


def validate_with_scim2(request: dict[str, Any], mapping: AttributeMapping) -> list[Any]:
    """Validate one built request with scim2-models, an independent SCIM implementation.

    The whole BulkRequest is validated as a message (types, unknown attributes, schema URNs). Each record is
    then validated again as a SCIM creation request (required attributes); scim2-models also requires
    ``manager.$ref`` there, which Entra neither needs nor uses (it takes the manager's externalId in
    ``manager.value``), so ``manager`` is left out of that second check only.

    :returns: the validated users.
    """
    bulk_model, user_model = scim2_models_for(mapping)
    bulk = bulk_model.model_validate(request)
    assert bulk.operations, "a request without operations"
    users = []
    for operation, raw in zip(bulk.operations, request["Operations"], strict=True):
        assert operation.status is None and operation.response is None, operation
        assert operation.method == "POST" and operation.path == "/Users" and operation.bulk_id
        data = dict(raw["data"])
        if ENTERPRISE in data:
            data[ENTERPRISE] = {k: v for k, v in data[ENTERPRISE].items() if k != "manager"}
        user_model.model_validate(data, scim_ctx=Context.RESOURCE_CREATION_REQUEST)
        users.append(operation.data)
    return users


def walk(value: Any) -> Any:
    """Every nested value of a JSON document."""
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


@pytest.fixture(scope="session")
def scim2_validate() -> Any:
    """``scim2_validate(request, mapping)``: validate a built request with scim2-models; returns the users."""
    return validate_with_scim2


@pytest.fixture(scope="session")
def hr_csv() -> Any:
    """``hr_csv(path)``: read an HR export as texts."""
    return read_hr_csv


@pytest.fixture
def sample_hr() -> Any:
    """``sample_hr(name="hr_employees.csv")``: the bundled export plus the pipeline's UserPrincipalName."""
    return hr_sample


@pytest.fixture(scope="session")
def scim_paths() -> dict[str, Path]:
    """Folders the SCIM tests read: ``microsoft``, ``sample`` (dags/data), ``golden``."""
    return {"microsoft": MICROSOFT_SAMPLE, "sample": SAMPLE_DATA, "golden": GOLDEN}
