"""Protocol facts of Microsoft Entra API-driven inbound provisioning, as named constants.

Each value is stated on the Microsoft page linked beside it (summarised in docs/entra-facts.md).
This module imports nothing, so the pure layers (``scim/``, ``provisioning/``) can use it without Airflow.
"""

from __future__ import annotations

from typing import NamedTuple

# --- bulkUpload --------------------------------------------------------------------------------------------
# https://learn.microsoft.com/en-us/graph/api/synchronization-synchronizationjob-post-bulkupload
MAX_OPERATIONS_PER_REQUEST = 50
SCIM_CONTENT_TYPE = "application/scim+json"
BULK_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
CORE_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
BULK_UPLOAD_PATH = "servicePrincipals/{service_principal_id}/synchronization/jobs/{job_id}/bulkUpload"
#: Graph API versions that serve bulkUpload; the Entra portal hands out the beta URL.
API_VERSIONS = ("v1.0", "beta")
DEFAULT_API_VERSION = "v1.0"

# --- limits ------------------------------------------------------------------------------------------------
# https://learn.microsoft.com/en-us/entra/identity/app-provisioning/inbound-provisioning-api-concepts
DEFAULT_CALLS_PER_WINDOW = 40
DEFAULT_WINDOW_SECONDS = 5
#: Entra ID Governance allows 6,000 bulkUpload calls per tenant per 24 hours; Entra ID P1/P2 allows 2,000.
DEFAULT_DAILY_CALL_BUDGET = 6000
DAILY_BUDGET_WINDOW_SECONDS = 24 * 60 * 60

# --- provisioning logs -------------------------------------------------------------------------------------
# https://learn.microsoft.com/en-us/graph/api/provisioningobjectsummary-list
# https://learn.microsoft.com/en-us/entra/identity/app-provisioning/inbound-provisioning-api-logs
LOG_API_CALLS = 5
LOG_API_WINDOW_SECONDS = 10
PROVISIONING_LOGS_PATH = "auditLogs/provisioning"

# --- provisioning job --------------------------------------------------------------------------------------
# https://learn.microsoft.com/en-us/graph/api/synchronization-synchronizationjob-restart
JOB_PATH = "servicePrincipals/{service_principal_id}/synchronization/jobs/{job_id}"
DEFAULT_RESET_SCOPE = "Watermark, Escrows, QuarantineState"

# --- Graph errors ------------------------------------------------------------------------------------------
# https://learn.microsoft.com/en-us/graph/errors
INVALID_AUTHENTICATION_TOKEN = "InvalidAuthenticationToken"  # noqa: S105 - an error code
RETRYABLE_STATUS_CODES = frozenset({429, 500, 502, 503, 504})

# --- least-privileged application permissions (docs/entra-facts.md, permissions) ------------------------
PERMISSION_UPLOAD = "SynchronizationData-User.Upload.OwnedBy"
PERMISSION_LOGS = "AuditLog.Read.All"
PERMISSION_JOB_READ = "Synchronization.Read.All"
PERMISSION_JOB_CONTROL = "Synchronization.ReadWrite.All"


# --- national clouds ---------------------------------------------------------------------------------------
# https://learn.microsoft.com/en-us/graph/deployments
# https://learn.microsoft.com/en-us/entra/identity-platform/authentication-national-cloud
class Cloud(NamedTuple):
    """Where one Microsoft cloud keeps its sign-in service, Graph and portal."""

    authority_host: str
    graph_endpoint: str
    portal: str


CLOUDS: dict[str, Cloud] = {
    "global": Cloud(
        "https://login.microsoftonline.com", "https://graph.microsoft.com", "https://portal.azure.com"
    ),
    "usgov": Cloud(
        "https://login.microsoftonline.us", "https://graph.microsoft.us", "https://portal.azure.us"
    ),
    "usgov-dod": Cloud(
        "https://login.microsoftonline.us", "https://dod-graph.microsoft.us", "https://portal.azure.us"
    ),
    "china": Cloud(
        "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn", "https://portal.azure.cn"
    ),
}
DEFAULT_CLOUD = "global"
#: Sign-in hosts msal knows; any other host (an emulator, a private endpoint) skips msal's instance discovery.
MICROSOFT_AUTHORITY_HOSTS = frozenset(c.authority_host for c in CLOUDS.values())
#: Client-credentials scope for Graph: ``{graph endpoint}/.default``.
GRAPH_SCOPE_SUFFIX = "/.default"
