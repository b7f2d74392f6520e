"""Helpers for the hook tests, as fixtures (test modules are imported in importlib mode)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from airflow_provider_entra._constants import BULK_REQUEST_SCHEMA, CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA
from airflow_provider_entra.hooks import EntraHook


def user(external_id: str) -> dict:
    return {
        "schemas": [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
        "externalId": external_id,
        "userName": f"user{external_id}@contoso.com",
        "active": True,
        "displayName": f"User {external_id}",
        "name": {"familyName": "User", "givenName": external_id},
    }


def make_bulk(*external_ids: str) -> dict:
    return {
        "schemas": [BULK_REQUEST_SCHEMA],
        "Operations": [
            {"method": "POST", "bulkId": f"b{i}", "path": "/Users", "data": user(e)}
            for i, e in enumerate(external_ids)
        ],
        "failOnErrors": None,
    }


def _use_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, base: dict, **changes) -> EntraHook:
    """Register ``conn_id`` as an env connection: ``base`` with top-level or extra fields changed."""
    conn = json.loads(json.dumps(base))
    for key, value in changes.items():
        if key in ("login", "password"):
            conn[key] = value
        elif value is None:
            conn["extra"].pop(key, None)
        else:
            conn["extra"][key] = value
    if conn.get("password") is None:
        conn.pop("password", None)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return EntraHook(conn_id)


@pytest.fixture
def bulk() -> Callable[..., dict]:
    """``bulk("1", "2")``: a SCIM BulkRequest creating users with these externalIds."""
    return make_bulk


@pytest.fixture
def use_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., EntraHook]:
    """``use_connection("conn_id", base_conn, **changes)``: register an env connection, return its hook."""

    def register(conn_id: str, base: dict, **changes) -> EntraHook:
        return _use_connection(monkeypatch, conn_id, base, **changes)

    return register
