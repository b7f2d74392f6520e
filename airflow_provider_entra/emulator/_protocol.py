"""Protocol facts the emulator enforces, as named constants, from Microsoft's pages.

``docs/entra-facts.md`` states each fact with the Microsoft page it comes from. The pages:
- the API and its asynchronous processing:
  https://learn.microsoft.com/en-us/entra/identity/app-provisioning/inbound-provisioning-api-concepts
- bulkUpload: https://learn.microsoft.com/en-us/graph/api/synchronization-synchronizationjob-post-bulkupload
- limits: https://learn.microsoft.com/en-us/entra/identity/app-provisioning/inbound-provisioning-api-faqs
- provisioning logs: https://learn.microsoft.com/en-us/graph/api/provisioningobjectsummary-list and the entry
  (actions, statuses): https://learn.microsoft.com/en-us/graph/api/resources/provisioningobjectsummary
- skip reasons in the logs:
  https://learn.microsoft.com/en-us/entra/identity/monitoring-health/howto-analyze-provisioning-logs
- job: https://learn.microsoft.com/en-us/graph/api/resources/synchronization-synchronizationjob
- the ``Date`` header (every response of a server with a clock): https://www.rfc-editor.org/rfc/rfc9110#section-6.6.1

docs/emulator.md says which behaviours are Microsoft's and which are our reading.
"""

from __future__ import annotations

import datetime as dt
import math

SCIM_CONTENT_TYPE = "application/scim+json"
BULK_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
CORE_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MAX_OPERATIONS_PER_REQUEST = 50
BULK_METHOD = "POST"
BULK_PATH = "/Users"

DEFAULT_RATE_LIMIT = "40/5"
DEFAULT_DAILY_QUOTA = 6000
DAILY_WINDOW_SECONDS = 24 * 3600
LOG_RATE_LIMIT = "5/10"
MAX_LOG_PAGE_SIZE = 1000

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
FEDERATED_AUDIENCE = "api://AzureADTokenExchange"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MANAGED_IDENTITY_API_VERSION = "2019-08-01"

ROLE_UPLOAD = "SynchronizationData-User.Upload"
ROLE_UPLOAD_OWNED = "SynchronizationData-User.Upload.OwnedBy"
ROLE_AUDIT_LOG = "AuditLog.Read.All"
ROLE_PROVISIONING_LOG = "ProvisioningLog.Read.All"
ROLE_SYNC_READ = "Synchronization.Read.All"
ROLE_SYNC_RW = "Synchronization.ReadWrite.All"
ROLE_APP_RW_OWNED = "Application.ReadWrite.OwnedBy"
ALL_ROLES = [ROLE_UPLOAD, ROLE_AUDIT_LOG, ROLE_SYNC_READ, ROLE_SYNC_RW]

UPLOAD_ROLES = {ROLE_UPLOAD, ROLE_UPLOAD_OWNED}
LOG_ROLES = {ROLE_AUDIT_LOG, ROLE_PROVISIONING_LOG}
JOB_READ_ROLES = {ROLE_SYNC_READ, ROLE_SYNC_RW, ROLE_APP_RW_OWNED}
JOB_CONTROL_ROLES = {ROLE_SYNC_RW, ROLE_APP_RW_OWNED}

JOB_STATUS_ACTIVE = "Active"
JOB_STATUS_PAUSED = "Paused"
JOB_STATUS_QUARANTINE = "Quarantine"
QUARANTINE_TOO_MANY_DELETES = "TooManyDeletes"
DEFAULT_DELETE_THRESHOLD = 500
RESET_SCOPES = {"Watermark", "Escrows", "QuarantineState", "Full", "ForceDeletes", "ConnectorDataStore"}

ERROR_INVALID_UPN = "AzureActiveDirectoryInvalidUserPrincipalName"
ERROR_REQUIRED_MISSING = "AzureActiveDirectoryRequiredPropertyMissing"
SKIP_UNRESOLVED_REFERENCE = "UnableToResolveReferenceAttributeValue"
SKIP_REDUNDANT = "RedundantExport"
#: A record out of the job's scope (here: inactive, with no matching user, and ``create_inactive`` off).
SKIP_NOT_EFFECTIVELY_ENTITLED = "NotEffectivelyEntitled"

DEFAULT_DOMAIN = "contoso.onmicrosoft.com"


def iso(ts: float) -> str:
    """UTC timestamp in whole seconds with ``Z``, as provisioning logs show ``activityDateTime``."""
    return dt.datetime.fromtimestamp(math.floor(ts), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(ts: float) -> str:
    """UTC timestamp in milliseconds with ``Z``, as a job's ``lastExecution`` shows its times."""
    return (
        dt.datetime.fromtimestamp(ts, dt.timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
