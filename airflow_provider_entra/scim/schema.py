"""The SCIM User schemas a mapping is checked against.

RFC 7643 section 4.1 (core User) and section 4.3 (enterprise User), reduced to what a mapping needs:
each attribute's type, whether it is multi-valued or complex, its sub-attributes, and whether a client may
send it. Attributes the service assigns (``id``, ``meta``, ``groups``) or that an HR feed must never carry
(``password``) are listed with the reason they cannot be mapped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow_provider_entra.scim._constants import CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA

#: Value types a mapped attribute can have, as they appear in the JSON sent.
STRING = "string"
BOOLEAN = "boolean"
INTEGER = "integer"
DATETIME = "datetime"
COMPLEX = "complex"
VALUE_TYPES = (STRING, BOOLEAN, INTEGER, DATETIME)


@dataclass(frozen=True)
class AttributeDef:
    """One attribute of a SCIM schema.

    :param name: the attribute name as the RFC spells it (SCIM names are case-insensitive).
    :param type: ``string``, ``boolean``, ``integer``, ``datetime`` or ``complex``.
    :param multi_valued: whether the attribute is a list (``emails``, ``addresses``...).
    :param sub_attributes: the sub-attributes of a complex attribute.
    :param not_mappable: why a client cannot send this attribute, or ``None`` when it can.
    """

    name: str
    type: str = STRING
    multi_valued: bool = False
    sub_attributes: tuple[AttributeDef, ...] = field(default=())
    not_mappable: str | None = None

    def sub(self, name: str) -> AttributeDef | None:
        """The sub-attribute called ``name`` (case-insensitive), or ``None``."""
        lowered = name.lower()
        return next((s for s in self.sub_attributes if s.name.lower() == lowered), None)


def _plural(name: str, *subs: AttributeDef, not_mappable: str | None = None) -> AttributeDef:
    """A multi-valued complex attribute with the RFC's usual ``type`` and ``primary`` sub-attributes."""
    common = (AttributeDef("type"), AttributeDef("primary", BOOLEAN))
    return AttributeDef(name, COMPLEX, True, (*subs, *common), not_mappable)


_READ_ONLY = "is assigned by the service (read-only) and cannot be sent"

CORE_ATTRIBUTES: tuple[AttributeDef, ...] = (
    AttributeDef("id", not_mappable=_READ_ONLY),
    AttributeDef("externalId"),
    AttributeDef("meta", COMPLEX, not_mappable=_READ_ONLY),
    AttributeDef("userName"),
    AttributeDef(
        "name",
        COMPLEX,
        sub_attributes=tuple(
            AttributeDef(n)
            for n in (
                "formatted",
                "familyName",
                "givenName",
                "middleName",
                "honorificPrefix",
                "honorificSuffix",
            )
        ),
    ),
    AttributeDef("displayName"),
    AttributeDef("nickName"),
    AttributeDef("profileUrl"),
    AttributeDef("title"),
    AttributeDef("userType"),
    AttributeDef("preferredLanguage"),
    AttributeDef("locale"),
    AttributeDef("timezone"),
    AttributeDef("active", BOOLEAN),
    AttributeDef("password", not_mappable="must never travel in an HR feed; Entra sets the initial password"),
    _plural("emails", AttributeDef("value"), AttributeDef("display")),
    _plural("phoneNumbers", AttributeDef("value"), AttributeDef("display")),
    _plural("ims", AttributeDef("value"), AttributeDef("display")),
    _plural("photos", AttributeDef("value"), AttributeDef("display")),
    _plural(
        "addresses",
        *(
            AttributeDef(n)
            for n in ("formatted", "streetAddress", "locality", "region", "postalCode", "country")
        ),
    ),
    _plural("groups", AttributeDef("value"), AttributeDef("display"), not_mappable=_READ_ONLY),
    _plural("entitlements", AttributeDef("value"), AttributeDef("display")),
    _plural("roles", AttributeDef("value"), AttributeDef("display")),
    _plural(
        "x509Certificates",
        AttributeDef("value"),
        AttributeDef("display"),
        not_mappable="holds binary certificates, which an HR feed does not provision",
    ),
)

ENTERPRISE_ATTRIBUTES: tuple[AttributeDef, ...] = (
    AttributeDef("employeeNumber"),
    AttributeDef("costCenter"),
    AttributeDef("organization"),
    AttributeDef("division"),
    AttributeDef("department"),
    AttributeDef(
        "manager",
        COMPLEX,
        sub_attributes=(
            AttributeDef("value"),
            AttributeDef(
                "$ref", not_mappable="is not used by Entra: send the manager's externalId as manager.value"
            ),
            AttributeDef("displayName", not_mappable=_READ_ONLY),
        ),
    ),
)

#: The attributes of each built-in schema, by schema URN.
SCHEMAS: dict[str, tuple[AttributeDef, ...]] = {
    CORE_USER_SCHEMA: CORE_ATTRIBUTES,
    ENTERPRISE_USER_SCHEMA: ENTERPRISE_ATTRIBUTES,
}


def find_attribute(schema: str, name: str) -> AttributeDef | None:
    """The attribute ``name`` (case-insensitive) of the built-in ``schema``, or ``None``.

    :param schema: :data:`CORE_USER_SCHEMA` or :data:`ENTERPRISE_USER_SCHEMA`.
    :param name: the attribute name.
    """
    lowered = name.lower()
    return next((a for a in SCHEMAS[schema] if a.name.lower() == lowered), None)
