"""The job's synchronization schema (``GET``/``PUT .../synchronization/jobs/{id}/schema``), reduced to what
matters for API-driven provisioning: which custom-namespace attributes the API directory declares, and which
of them are mapped to an Entra attribute.

Microsoft's flow (and CSV2SCIM's ``-UpdateSchema`` mode) is: read the schema, add attributes such as
``urn:ietf:params:scim:schemas:extension:contoso:1.0:User:HireDate`` to the ``API`` directory, map them in the
rule's attribute mappings, write the schema back. A declared attribute without a mapping still flows nowhere.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_entra.emulator._mapping import default_mappings
from airflow_provider_entra.emulator._protocol import CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA

SOURCE_DIRECTORY = "API"
TARGET_DIRECTORY = "Azure Active Directory"
SOURCE_OBJECT = ENTERPRISE_USER_SCHEMA
TARGET_OBJECT = "User"


class SchemaError(ValueError):
    """The schema body cannot be understood."""


def is_custom(name: str) -> bool:
    """A custom-namespace attribute path (``urn:...:User:Attr`` outside the core and enterprise schemas)."""
    return (
        name.lower().startswith("urn:")
        and not name.startswith(CORE_USER_SCHEMA + ":")
        and not name.startswith(ENTERPRISE_USER_SCHEMA + ":")
    )


def _attribute(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "String",
        "anchor": name == "externalId",
        "caseExact": False,
        "flowNullValues": False,
        "multivalued": False,
        "mutability": "ReadWrite",
        "required": name == "externalId",
        "apiExpressions": [],
        "metadata": [],
        "referencedObjects": [],
        "defaultValue": None,
    }


def _mapping(source: str, target: str, matching: int = 0) -> dict[str, Any]:
    return {
        "source": {"expression": f"[{source}]", "name": source, "type": "Attribute", "parameters": []},
        "targetAttributeName": target,
        "flowBehavior": "FlowWhenChanged",
        "flowType": "Always",
        "matchingPriority": matching,
        "defaultValue": None,
        "exportMissingReferences": False,
    }


def build_schema(job_id: str, declared: list[str], custom: dict[str, str]) -> dict[str, Any]:
    """The schema as Graph shows it: default mappings plus the declared and mapped custom attributes."""
    defaults = default_mappings()
    source_attributes = sorted({s for s, _ in defaults} | set(declared) | set(custom))
    mappings = [_mapping(s, t, 1 if s == "externalId" else 0) for s, t in defaults]
    mappings += [_mapping(s, t) for s, t in sorted(custom.items())]
    return {
        "id": job_id,
        "version": "Date:2026-01-01T00:00:00Z~emulator",
        "synchronizationRules": [
            {
                "id": "API2AAD",
                "name": "USER_INBOUND_USER",
                "editable": True,
                "priority": 1,
                "sourceDirectoryName": SOURCE_DIRECTORY,
                "targetDirectoryName": TARGET_DIRECTORY,
                "metadata": [],
                "objectMappings": [
                    {
                        "name": f"Provision {SOURCE_DIRECTORY} {SOURCE_OBJECT}",
                        "enabled": True,
                        "flowTypes": "Add, Update",
                        "sourceObjectName": SOURCE_OBJECT,
                        "targetObjectName": TARGET_OBJECT,
                        "scope": None,
                        "metadata": [],
                        "attributeMappings": mappings,
                    }
                ],
            }
        ],
        "directories": [
            {
                "id": "API",
                "name": SOURCE_DIRECTORY,
                "objects": [
                    {"name": SOURCE_OBJECT, "attributes": [_attribute(a) for a in source_attributes]}
                ],
            },
            {
                "id": "AzureActiveDirectory",
                "name": TARGET_DIRECTORY,
                "objects": [
                    {
                        "name": TARGET_OBJECT,
                        "attributes": [_attribute(t) for t in sorted({t for _, t in defaults})],
                    }
                ],
            },
        ],
    }


def read_schema(body: Any) -> tuple[list[str], dict[str, str]]:
    """Extract (declared custom attributes, custom attribute -> Entra attribute) from a schema PUT.

    :raises SchemaError: naming what is missing.
    """
    if not isinstance(body, dict) or not isinstance(body.get("directories"), list):
        raise SchemaError("the schema must be an object with a 'directories' list")
    declared: list[str] = []
    for directory in body["directories"]:
        if (
            not isinstance(directory, dict)
            or str(directory.get("name", "")).lower() != SOURCE_DIRECTORY.lower()
        ):
            continue
        for obj in directory.get("objects") or []:
            for attribute in (obj or {}).get("attributes") or []:
                name = (attribute or {}).get("name")
                if not isinstance(name, str) or not name:
                    raise SchemaError("every attribute of the API directory needs a 'name'")
                if is_custom(name) and name not in declared:
                    declared.append(name)
    mapped: dict[str, str] = {}
    for rule in body.get("synchronizationRules") or []:
        for object_mapping in (rule or {}).get("objectMappings") or []:
            for attribute_mapping in (object_mapping or {}).get("attributeMappings") or []:
                source = (attribute_mapping or {}).get("source") or {}
                name = source.get("name")
                target = attribute_mapping.get("targetAttributeName")
                if source.get("type") != "Attribute" or not isinstance(name, str) or not is_custom(name):
                    continue
                if name not in declared:
                    raise SchemaError(
                        f"attribute mapping uses '{name}', which the API directory does not declare"
                    )
                if not isinstance(target, str) or not target:
                    raise SchemaError(f"the mapping of '{name}' has no targetAttributeName")
                mapped[name] = target
    return declared, mapped
