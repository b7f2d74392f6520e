"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

Airflow calls :func:`get_provider_info` in every process that lists providers, so this module stays cheap:
it imports neither Airflow nor the hook. Since Airflow 3.2 the connection form is read from ``conn-fields``
and ``ui-field-behaviour`` below without importing the hook; Airflow 3.0 and 3.1 build the same form from
:meth:`EntraHook.get_connection_form_widgets`, which is generated from :data:`CONN_FIELDS`, so both agree.
"""

from __future__ import annotations

import pkgutil
from pathlib import Path
from typing import Any

PACKAGE_NAME = "airflow-provider-entra"
INTEGRATION_NAME = "Microsoft Entra Inbound Provisioning"
CONN_TYPE = "entra"
HOOK_CLASS_NAME = "airflow_provider_entra.hooks.entra.EntraHook"
EXTRA_LINKS = ("airflow_provider_entra.links.EntraProvisioningLogsLink",)

# Extra fields of the ``entra`` connection, in form order; stored in ``Connection.extra`` under these names.
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "tenant_id": {
        "label": "Tenant ID",
        "description": "Directory (tenant) ID of your Entra tenant (a GUID).",
        "schema": {"type": ["string", "null"]},
    },
    "service_principal_id": {
        "label": "Service principal ID",
        "description": "Object ID of the provisioning app's service principal (Enterprise applications).",
        "schema": {"type": ["string", "null"]},
    },
    "job_id": {
        "label": "Provisioning job ID",
        "description": "The job, e.g. API2AAD.<tenant>.<guid>; shown on the app's Provisioning page.",
        "schema": {"type": ["string", "null"]},
    },
    "api_version": {
        "label": "Graph API version",
        "description": "v1.0 (default) or beta (the URL the Entra portal shows).",
        "schema": {"type": ["string", "null"], "enum": ["v1.0", "beta"], "default": "v1.0"},
    },
    "cloud": {
        "label": "Cloud",
        "description": "global (default), usgov, usgov-dod or china: sign-in host, Graph and token scope.",
        "schema": {
            "type": ["string", "null"],
            "enum": ["global", "usgov", "usgov-dod", "china"],
            "default": "global",
        },
    },
    "authority_host": {
        "label": "Authority host",
        "description": "Explicit sign-in host (https://...); set Graph endpoint too.",
        "schema": {"type": ["string", "null"]},
    },
    "graph_endpoint": {
        "label": "Graph endpoint",
        "description": "Explicit Graph host (https://...); set Authority host too.",
        "schema": {"type": ["string", "null"]},
    },
    "certificate_path": {
        "label": "Certificate path",
        "description": "PEM file with the certificate (and the private key, unless Private key path is set).",
        "schema": {"type": ["string", "null"]},
    },
    "private_key_path": {
        "label": "Private key path",
        "description": "PEM file with the certificate's private key, if not in the certificate file.",
        "schema": {"type": ["string", "null"]},
    },
    "certificate": {
        "label": "Certificate (inline PEM)",
        "description": "The certificate as PEM text, instead of a file.",
        "schema": {"type": ["string", "null"]},
    },
    "private_key": {
        "label": "Private key (inline PEM)",
        "description": "The certificate's private key as PEM text, instead of a file.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "private_key_passphrase": {
        "label": "Private key passphrase",
        "description": "Only if the private key is encrypted.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "certificate_thumbprint": {
        "label": "Certificate thumbprint",
        "description": "SHA-1 thumbprint (hex). Optional: computed from the certificate.",
        "schema": {"type": ["string", "null"]},
    },
    "send_x5c": {
        "label": "Send certificate chain (x5c)",
        "description": "Send the public certificate with each assertion (subject name/issuer auth).",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "managed_identity": {
        "label": "Use managed identity",
        "description": "Use the Azure managed identity of the worker instead of a secret or certificate.",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "managed_identity_client_id": {
        "label": "Managed identity client ID",
        "description": "Client ID of a user-assigned managed identity; empty for the system-assigned one.",
        "schema": {"type": ["string", "null"]},
    },
    "federated_token_file": {
        "label": "Federated token file",
        "description": "Workload identity federation: the token file, e.g. $AZURE_FEDERATED_TOKEN_FILE.",
        "schema": {"type": ["string", "null"]},
    },
    "ca_bundle": {
        "label": "CA bundle",
        "description": "PEM file of CAs to trust for the sign-in host and Graph (default: the system's).",
        "schema": {"type": ["string", "null"]},
    },
    "proxies": {
        "label": "Proxies (JSON)",
        "description": 'requests-style proxies, e.g. {"https": "http://proxy:3128"}.',
        "schema": {"type": ["string", "null"]},
    },
    "calls_per_window": {
        "label": "Calls per window",
        "description": "Client-side burst limit for Graph calls (Microsoft: 40 per 5 seconds).",
        "schema": {"type": ["integer", "null"], "default": 40},
    },
    "window_seconds": {
        "label": "Window seconds",
        "description": "Length of the burst window in seconds (Microsoft: 5).",
        "schema": {"type": ["integer", "null"], "default": 5},
    },
    "daily_call_budget": {
        "label": "Daily call budget",
        "description": "bulkUpload calls allowed per tenant in any 24 h (Governance: 6000, P1/P2: 2000); "
        "uploads count them under the staging root, shared by every worker, and stop when spent.",
        "schema": {"type": ["integer", "null"], "default": 6000},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Per-request connect/read timeout.",
        "schema": {"type": ["integer", "null"], "default": 60},
    },
    "max_retries": {
        "label": "Max retries",
        "description": "Retries on 429/500/502/503/504 and connection errors, honouring Retry-After.",
        "schema": {"type": ["integer", "null"], "default": 6},
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["host", "schema", "port"],
    "relabeling": {"login": "Client ID", "password": "Client secret"},
    "placeholders": {
        "login": "application (client) ID; empty for a system-assigned managed identity",
        "password": "client secret (trials only; prefer a certificate, managed or workload identity)",
        "tenant_id": "00000000-0000-0000-0000-000000000000",
        "job_id": "API2AAD.<tenant id without dashes>.<guid>",
        "federated_token_file": "/var/run/secrets/azure/tokens/azure-identity-token",
        "proxies": '{"https": "http://proxy.example:3128"}',
    },
}


def _modules(subpackage: str) -> list[str]:
    """Module paths under one role folder (operators, sensors, triggers), found without importing them."""
    folder = Path(__file__).resolve().parent / subpackage
    if not folder.is_dir():
        return []
    return sorted(
        f"airflow_provider_entra.{subpackage}.{m.name}"
        for m in pkgutil.iter_modules([str(folder)])
        if not m.name.startswith("_")
    )


def get_provider_info() -> dict[str, Any]:
    """Return the provider metadata validated against Airflow's ``provider_info.schema.json``."""
    info: dict[str, Any] = {
        "package-name": PACKAGE_NAME,
        "name": INTEGRATION_NAME,
        "description": "Provision HR records into Microsoft Entra ID through API-driven inbound provisioning "
        "(bulkUpload) and verify the outcomes from the provisioning logs.",
        "integrations": [
            {
                "integration-name": INTEGRATION_NAME,
                "external-doc-url": "https://learn.microsoft.com/en-us/entra/identity/app-provisioning/"
                "inbound-provisioning-api-concepts",
                "tags": ["azure"],
            }
        ],
        "hooks": [
            {"integration-name": INTEGRATION_NAME, "python-modules": ["airflow_provider_entra.hooks.entra"]}
        ],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": HOOK_CLASS_NAME,
                "hook-name": INTEGRATION_NAME,
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
    for role in ("operators", "sensors", "triggers"):
        if modules := _modules(role):
            info[role] = [{"integration-name": INTEGRATION_NAME, "python-modules": modules}]
    info["extra-links"] = list(EXTRA_LINKS)
    return info
