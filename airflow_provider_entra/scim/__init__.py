"""The pure SCIM layer: HR rows (a pandas DataFrame) -> checked SCIM records -> ``bulkUpload`` requests.

No Airflow, no network, no files (except :meth:`AttributeMapping.from_file`). Everything works on whole
columns, so a million employees take seconds (``bench/bench_payloads.py``).

Usage::

    from airflow_provider_entra.scim import AttributeMapping, build_bulk_requests, map_records

    mapping = AttributeMapping.from_file("dags/data/hr_mapping.yaml")
    result = build_bulk_requests(hr_df, mapping)            # or: map once, plan a delta, build the changes:
    for payload in result.requests: ...                     # mapped = map_records(hr_df, mapping)
    result.rejected                                         # build_bulk_requests(mapped.select(changed_ids))

Mapping file format (YAML or JSON; full reference with CSV2SCIM ``AttributeMapping.psd1`` equivalents side by
side in ``docs/mapping.md``)::

    description: optional text
    schemas:                       # optional: custom namespaces the attributes may use (catches URN typos)
      - urn:ietf:params:scim:schemas:extension:contoso:1.0:User
    attributes:                    # SCIM path -> value; externalId, userName and active are required
      externalId: WorkerID                                  # a bare text is an HR column name
      userName: UserPrincipalName
      active: {expr: 'WorkerStatus == "Active"'}            # a safe true/false expression
      displayName: {join: [FirstName, LastName], sep: " "}  # non-empty columns joined
      nickName: {template: "{FirstName}.{LastName}"}        # a text with {Column} placeholders
      userType: {constant: Employee}                        # the same value for every row
      title: {column: JobTitle, max_length: 64}             # options: type, map, default, timezone,
      'emails[type eq "work"].value': Email                 #   date_format, max_length, required, sep
      urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value: ManagerID
      urn:ietf:params:scim:schemas:extension:contoso:1.0:User:HireDate:
        {column: HireDate, type: datetime, timezone: "+00:00"}

Paths are written as Microsoft lists them in the provisioning app's attribute list: core
(``name.givenName``, ``addresses[type eq "work"].locality``), enterprise
(``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department``) and custom namespaces
(``urn:ietf:params:scim:schemas:extension:<name>:1.0:User:<Attribute>``). The nested form that mirrors the
psd1 is accepted too: ``name: {givenName: FirstName}``, ``addresses: [{type: work, locality: City}]``,
``urn:...:enterprise:2.0:User: {department: Department, manager: {value: ManagerID}}``.

Values: texts; ``boolean``, ``integer`` and ``datetime`` where the schema (or ``type:`` on a custom attribute)
says so. Dates are sent as ISO 8601 with time and offset (``2013-01-01`` -> ``2013-01-01T00:00:00+00:00``).
Empty cells (and cells of spaces) are missing values and are left out of the JSON; ``active`` is always sent.

Rows that cannot be sent are returned in ``rejected`` (``row`` = 0-based position in the DataFrame,
``externalId``, ``reason`` naming the attribute, the column and the value). Rows repeating an externalId with
identical values in every column the mapping reads collapse into the first (``collapsed``, counted); rows
repeating it with different values are all rejected. ``sent + rejected + collapsed`` equals the input rows.
"""

from airflow_provider_entra.scim._constants import MANAGER_PATH, MAX_OPERATIONS_PER_REQUEST
from airflow_provider_entra.scim.bulk import BulkBuildResult, BulkRequests, build_bulk_requests
from airflow_provider_entra.scim.errors import MappingError
from airflow_provider_entra.scim.mapping import AttributeMapping, AttributeSpec
from airflow_provider_entra.scim.paths import AttributePath, parse_path
from airflow_provider_entra.scim.records import RECORD_HASH, MappedRecords, map_records

__all__ = [
    "MANAGER_PATH",
    "MAX_OPERATIONS_PER_REQUEST",
    "RECORD_HASH",
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
