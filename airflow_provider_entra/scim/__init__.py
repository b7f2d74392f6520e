"""Pure SCIM layer (placeholder docstring, replaced below)."""

from airflow_provider_entra.scim._constants import MANAGER_PATH, MAX_OPERATIONS_PER_REQUEST
from airflow_provider_entra.scim.bulk import BulkBuildResult, BulkRequests, build_bulk_requests
from airflow_provider_entra.scim.errors import MappingError
from airflow_provider_entra.scim.mapping import AttributeMapping, AttributeSpec
from airflow_provider_entra.scim.paths import AttributePath, parse_path
from airflow_provider_entra.scim.records import MappedRecords, map_records

__all__ = [
    "MANAGER_PATH",
    "MAX_OPERATIONS_PER_REQUEST",
    "AttributeMapping",
    "AttributePath",
    "AttributeSpec",
    "BulkBuildResult",
    "BulkRequests",
    "MappedRecords",
    "MappingError",
    "build_bulk_requests",
    "map_records",
    "parse_path",
]
