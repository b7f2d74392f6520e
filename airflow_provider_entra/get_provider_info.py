"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-entra",
        "name": "Microsoft Entra Inbound Provisioning",
        "description": "Provision HR records into Microsoft Entra ID through API-driven inbound provisioning.",
    }
