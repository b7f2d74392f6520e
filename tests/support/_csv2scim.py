"""Microsoft's CSV2SCIM columns mapped as the example DAGs map them (managers by WorkerID): the mapping the
upload, operator and sensor tests share."""

from __future__ import annotations

from typing import Any

#: The core SCIM user attributes.
CORE_MAPPING: dict[str, Any] = {
    "externalId": "WorkerID",
    "userName": "UserID",
    "active": {"expr": 'WorkerStatus == "Active"'},
    "displayName": "FullName",
    "name": {"givenName": "FirstName", "familyName": "LastName"},
}
#: The core attributes plus the enterprise extension's department and manager.
MAPPING: dict[str, Any] = {
    **CORE_MAPPING,
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
        "department": "Department",
        "manager": {"value": "ManagerID"},
    },
}
