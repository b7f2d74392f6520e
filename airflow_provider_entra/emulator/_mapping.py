"""Entra's default attribute mapping for API-driven inbound provisioning (SCIM user -> Entra user).

Follows Microsoft's default mapping for the "API-driven provisioning to Microsoft Entra ID" app: externalId
is the matching key and lands in employeeId; userName becomes the userPrincipalName; active drives
accountEnabled; core and enterprise attributes map to their Entra counterparts. Custom-namespace attributes
flow only when the job's schema declares them (``Job.custom_attributes``: source attribute path -> Entra
attribute name).
Null values are not provisioned.
"""

from __future__ import annotations

import re
from typing import Any

from airflow_provider_entra.emulator._protocol import CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA

# Order in which Entra lists modified properties (as in Microsoft's sample log).
TARGET_ORDER = [
    "streetAddress",
    "city",
    "state",
    "postalCode",
    "country",
    "department",
    "division",
    "costCenter",
    "companyName",
    "employeeId",
    "employeeType",
    "employeeHireDate",
    "employeeLeaveDateTime",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mailNickname",
    "mobile",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "telephoneNumber",
    "usageLocation",
    "userPrincipalName",
    "accountEnabled",
    "manager",
]
_ORDER_INDEX = {name: i for i, name in enumerate(TARGET_ORDER)}
DATETIME_TARGETS = {"employeeHireDate", "employeeLeaveDateTime"}
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")
_UPN = re.compile(r"^[A-Za-z0-9'_\-!#^~+&]+(\.[A-Za-z0-9'_\-!#^~+&]+)*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
UPN_MAX_LENGTH = 113  # Entra: the whole UPN
UPN_PREFIX_MAX_LENGTH = 64  # Entra: the part before "@"

_CORE_SIMPLE = {
    "displayName": "displayName",
    "title": "jobTitle",
    "preferredLanguage": "preferredLanguage",
    "userType": "employeeType",
}
_ENTERPRISE_SIMPLE = {
    "department": "department",
    "division": "division",
    "costCenter": "costCenter",
    "organization": "companyName",
}
_ADDRESS = {
    "streetAddress": "streetAddress",
    "locality": "city",
    "region": "state",
    "postalCode": "postalCode",
    "country": "country",
}


def default_mappings() -> list[tuple[str, str]]:
    """The default mappings as (source attribute path, Entra attribute), as the schema API lists them."""
    out = [
        ("externalId", "employeeId"),
        ("userName", "userPrincipalName"),
        ("userName", "mailNickname"),
        ("active", "accountEnabled"),
        ("name.givenName", "givenName"),
        ("name.familyName", "surname"),
        ('emails[type eq "work"].value', "mail"),
        ('phoneNumbers[type eq "work"].value', "telephoneNumber"),
        ('phoneNumbers[type eq "mobile"].value', "mobile"),
    ]
    out += list(_CORE_SIMPLE.items())
    out += [(f'addresses[type eq "work"].{src}', dst) for src, dst in _ADDRESS.items()]
    out += [(f"{ENTERPRISE_USER_SCHEMA}:{src}", dst) for src, dst in _ENTERPRISE_SIMPLE.items()]
    out.append((f"{ENTERPRISE_USER_SCHEMA}:manager", "manager"))
    return out


def order_key(name: str) -> tuple[int, str]:
    return (_ORDER_INDEX.get(name, len(_ORDER_INDEX)), name)


def _typed(items: Any, wanted: str) -> dict | None:
    """Pick the multi-valued item of a type (``emails[type eq "work"]``), else the primary one."""
    if not isinstance(items, list):
        return None
    dicts = [i for i in items if isinstance(i, dict)]
    for item in dicts:
        if str(item.get("type", "")).lower() == wanted:
            return item
    for item in dicts:
        if item.get("primary"):
            return item
    return None


def valid_upn(upn: str) -> bool:
    """Whether Entra would accept ``upn`` as a userPrincipalName (characters and lengths)."""
    prefix = upn.split("@")[0]
    return len(upn) <= UPN_MAX_LENGTH and len(prefix) <= UPN_PREFIX_MAX_LENGTH and bool(_UPN.match(upn))


def map_record(
    data: dict[str, Any], custom_attributes: dict[str, str], *, domain: str, missing_active_disables: bool
) -> tuple[dict[str, Any], str | None]:
    """Map one SCIM user to Entra attributes.

    :param data: the ``data`` object of a bulk operation (already validated).
    :param custom_attributes: declared custom attributes, ``"<namespace URN>:<attribute>" -> Entra
        attribute``.
    :param domain: the tenant's default domain, appended to a userName without ``@``.
    :param missing_active_disables: treat an omitted ``active`` as false (reported behaviour).
    :returns: the Entra attributes (nulls left out) and the manager's externalId, if any.
    """
    out: dict[str, Any] = {"employeeId": data["externalId"]}
    user_name = data.get("userName")
    if isinstance(user_name, str) and user_name:
        upn = user_name if "@" in user_name else f"{user_name}@{domain}"
        out["userPrincipalName"] = upn
        out["mailNickname"] = upn.split("@")[0]
    for src, dst in _CORE_SIMPLE.items():
        if data.get(src) is not None:
            out[dst] = data[src]
    name = data.get("name")
    if isinstance(name, dict):
        if name.get("givenName") is not None:
            out["givenName"] = name["givenName"]
        if name.get("familyName") is not None:
            out["surname"] = name["familyName"]
    email = _typed(data.get("emails"), "work")
    if email and email.get("value") is not None:
        out["mail"] = email["value"]
    phone = _typed(data.get("phoneNumbers"), "work")
    if phone and phone.get("value") is not None:
        out["telephoneNumber"] = phone["value"]
    mobile = _typed(data.get("phoneNumbers"), "mobile")
    if mobile and mobile is not phone and mobile.get("value") is not None:
        out["mobile"] = mobile["value"]
    address = _typed(data.get("addresses"), "work")
    if address:
        for src, dst in _ADDRESS.items():
            if address.get(src) is not None:
                out[dst] = address[src]
    active = data.get("active")
    if active is None:
        if missing_active_disables:
            out["accountEnabled"] = False
    else:
        out["accountEnabled"] = bool(active)
    manager_ext: str | None = None
    enterprise = data.get(ENTERPRISE_USER_SCHEMA)
    if isinstance(enterprise, dict):
        for src, dst in _ENTERPRISE_SIMPLE.items():
            if enterprise.get(src) is not None:
                out[dst] = enterprise[src]
        manager = enterprise.get("manager")
        if isinstance(manager, dict) and manager.get("value"):
            manager_ext = str(manager["value"])
    for key, value in data.items():
        if not key.lower().startswith("urn:") or key in (CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA):
            continue
        if not isinstance(value, dict):
            continue
        for attr, attr_value in value.items():
            target = custom_attributes.get(f"{key}:{attr}")
            if target is None or attr_value is None:
                continue  # an undeclared custom attribute is silently ignored, as in Entra
            if target in DATETIME_TARGETS and not (
                isinstance(attr_value, str) and _ISO_DATETIME.match(attr_value)
            ):
                continue  # date-only values were reported not to flow
            out[target] = attr_value
    return out, manager_ext


def _flat_key(*parts: str) -> str:
    return "".join(p.replace(":", "").replace(".", "") for p in parts)


def import_details(data: dict[str, Any]) -> dict[str, str]:
    """Flatten a SCIM record the way the EntryImportAdd step shows it (``namegivenName``, ...)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        if key == "schemas" or value is None:
            continue
        if isinstance(value, dict):
            prefix = _flat_key(key) if key.lower().startswith("urn:") else key
            for sub, sub_value in value.items():
                if isinstance(sub_value, dict):
                    sub_value = sub_value.get("value")
                if sub_value is not None and not isinstance(sub_value, (dict, list)):
                    out[prefix + sub] = str(sub_value)
        elif isinstance(value, list):
            for item in value:
                if not isinstance(item, dict):
                    continue
                kind = item.get("type", "")
                for sub, sub_value in item.items():
                    if sub in ("type", "primary") or sub_value is None:
                        continue
                    out[f'{key}[type eq "{kind}"]{sub}'] = str(sub_value)
        else:
            out[key] = str(value)
    return out


def show(value: Any) -> Any:
    """A value as Entra shows it in logs (booleans as ``True``/``False``)."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return None
    return str(value) if not isinstance(value, str) else value
