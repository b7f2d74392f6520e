"""SCIM attribute paths as Microsoft writes them in the API-driven provisioning attribute list.

Forms accepted (attribute names are case-insensitive, as SCIM says; the canonical spelling is the RFC's):

- core: ``userName``, ``name.givenName``, ``emails[type eq "work"].value``,
  ``addresses[type eq "work"].locality``;
  a multi-valued entry without a type filter (``emails.value``) is an entry with no ``type``;
- enterprise: ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department``,
  ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value``;
- custom namespaces: ``urn:ietf:params:scim:schemas:extension:<name>:<version>:User:<Attribute>``.

>>> str(parse_path('Emails[Type Eq "work"].Value'))
'emails[type eq "work"].value'
>>> parse_path("urn:ietf:params:scim:schemas:extension:contoso:1.0:User:HireDate").schema
'urn:ietf:params:scim:schemas:extension:contoso:1.0:User'
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from airflow_provider_entra.scim._constants import (
    CORE_USER_SCHEMA,
    ENTERPRISE_USER_SCHEMA,
    EXTENSION_SCHEMA_PREFIX,
)
from airflow_provider_entra.scim.errors import MappingError
from airflow_provider_entra.scim.schema import COMPLEX, SCHEMAS, STRING, AttributeDef, find_attribute

_ATTRIBUTE = re.compile(
    r"""^(?P<attr>[A-Za-z][\w-]*)
        (?:\[\s*type\s+eq\s+(?P<q>["'])(?P<type>[^"']*)(?P=q)\s*\])?
        (?:\.(?P<sub>\$?[A-Za-z][\w-]*))?$""",
    re.VERBOSE | re.IGNORECASE,
)
_CUSTOM_SCHEMA = re.compile(
    r"^urn:ietf:params:scim:schemas:extension:[A-Za-z0-9][\w.-]*(?::[\w.-]+)+:User$", re.IGNORECASE
)
_CUSTOM_ATTRIBUTE = re.compile(r"^[A-Za-z][\w-]*$")


@dataclass(frozen=True)
class AttributePath:
    """A parsed, canonical SCIM attribute path.

    :param schema: the schema URN: core, enterprise or a custom extension namespace.
    :param attribute: the attribute name, spelled as the schema spells it.
    :param type_filter: the ``type`` of a multi-valued entry (``work`` in ``emails[type eq "work"].value``).
    :param sub_attribute: the sub-attribute of a complex attribute or multi-valued entry.
    :param value_type: ``string``, ``boolean`` or ``integer`` for built-in attributes; ``None`` for a custom
        attribute, whose type the mapping sets (``string`` unless told otherwise).
    :param multi_valued: whether the attribute is a list of entries.
    """

    schema: str
    attribute: str
    type_filter: str | None = None
    sub_attribute: str | None = None
    value_type: str | None = STRING
    multi_valued: bool = False

    @property
    def is_core(self) -> bool:
        return self.schema == CORE_USER_SCHEMA

    @property
    def is_enterprise(self) -> bool:
        return self.schema == ENTERPRISE_USER_SCHEMA

    @property
    def is_custom(self) -> bool:
        return not (self.is_core or self.is_enterprise)

    @property
    def local(self) -> str:
        """The path inside its schema, without the URN."""
        text = self.attribute
        if self.multi_valued and self.type_filter is not None:
            text += f'[type eq "{self.type_filter}"]'
        if self.sub_attribute is not None:
            text += f".{self.sub_attribute}"
        return text

    def __str__(self) -> str:
        return self.local if self.is_core else f"{self.schema}:{self.local}"


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        close = [lowered[c] for c in close]
    return f" (did you mean {close[0]!r}?)" if close else ""


def canonical_schema(urn: str) -> str | None:
    """The canonical spelling of a schema URN, or ``None`` when ``urn`` is no User schema URN.

    :param urn: a schema URN such as ``urn:ietf:params:scim:schemas:extension:contoso:1.0:User``.
    """
    text = urn.strip()
    for known in SCHEMAS:
        if text.lower() == known.lower():
            return known
    if _CUSTOM_SCHEMA.match(text):
        return text[: -len(":User")] + ":User"
    return None


def split_schema(text: str) -> tuple[str, str]:
    """Split ``text`` into its schema URN and the path inside it; core paths may omit the URN.

    :param text: a full path.
    :raises MappingError: when a ``urn:`` prefix is no User schema.
    """
    text = text.strip()
    if not text.lower().startswith("urn:"):
        return CORE_USER_SCHEMA, text
    head = text.split("[", 1)[0]
    cut = head.rfind(":")
    schema = canonical_schema(text[:cut])
    if schema is None:
        raise MappingError(
            f"{text!r}: the schema URN {text[:cut]!r} is neither the core nor the enterprise User schema "
            f"nor a custom namespace of the form '{EXTENSION_SCHEMA_PREFIX}<name>:1.0:User'",
            path=text,
        )
    return schema, text[cut + 1 :]


def parse_path(text: str) -> AttributePath:
    """Parse and check a SCIM attribute path against the core and enterprise User schemas.

    :param text: the path as written in a mapping.
    :raises MappingError: naming the path, for an unknown attribute or sub-attribute, a complex or
        multi-valued attribute mapped as if it were a single value, a type filter on a single-valued
        attribute, an attribute a client cannot send, or a malformed custom namespace.
    """
    if not isinstance(text, str) or not text.strip():
        raise MappingError(f"attribute path must be a non-empty string, got {text!r}", path=str(text))
    schema, local = split_schema(text)
    match = _ATTRIBUTE.match(local.strip())
    if not match:
        raise MappingError(
            f"{text!r} is not a SCIM attribute path: expected 'attribute', 'attribute.subAttribute' or "
            "'attribute[type eq \"work\"].subAttribute'",
            path=text,
        )
    attr, type_filter, sub = match["attr"], match["type"], match["sub"]
    if type_filter is not None and not type_filter.strip():
        raise MappingError(f'{text!r}: the type filter needs a value, e.g. [type eq "work"]', path=text)

    if schema not in SCHEMAS:
        if type_filter is not None or sub is not None or not _CUSTOM_ATTRIBUTE.match(attr):
            raise MappingError(
                f"{text!r}: custom namespace attributes are simple names such as '{schema}:HireDate' "
                "(no sub-attributes or filters)",
                path=text,
            )
        return AttributePath(schema, attr, value_type=None)

    where = "the core User schema" if schema == CORE_USER_SCHEMA else "the enterprise User extension"
    definition = find_attribute(schema, attr)
    if definition is None:
        names = [a.name for a in SCHEMAS[schema]]
        raise MappingError(
            f"{text!r}: unknown attribute {attr!r} in {where}{_suggest(attr, names)}", path=text
        )
    if definition.not_mappable:
        raise MappingError(f"{text!r}: {definition.name!r} {definition.not_mappable}", path=text)
    return _resolve(text, schema, definition, type_filter, sub)


def _resolve(
    text: str, schema: str, definition: AttributeDef, type_filter: str | None, sub: str | None
) -> AttributePath:
    name = definition.name
    if type_filter is not None and not definition.multi_valued:
        raise MappingError(
            f"{text!r}: {name!r} is not multi-valued, so it takes no [type eq ...] filter", path=text
        )
    if definition.type != COMPLEX:
        if sub is not None:
            raise MappingError(
                f"{text!r}: {name!r} is a single {definition.type} value and has no sub-attribute {sub!r}",
                path=text,
            )
        return AttributePath(schema, name, value_type=definition.type)

    example_sub = definition.sub_attributes[0].name
    if sub is None:
        if definition.multi_valued:
            raise MappingError(
                f"{text!r}: {name!r} is multi-valued, so it cannot take a single value; map a sub-attribute "
                f"of one entry, e.g. '{name}[type eq \"work\"].{example_sub}'",
                path=text,
            )
        raise MappingError(
            f"{text!r}: {name!r} is complex, so it cannot take a single value; map one of its "
            f"sub-attributes, e.g. '{name}.{example_sub}'",
            path=text,
        )
    sub_def = definition.sub(sub)
    if sub_def is None:
        names = [s.name for s in definition.sub_attributes]
        raise MappingError(
            f"{text!r}: {name!r} has no sub-attribute {sub!r}{_suggest(sub, names)}; it has "
            + ", ".join(names),
            path=text,
        )
    if sub_def.not_mappable:
        raise MappingError(f"{text!r}: '{name}.{sub_def.name}' {sub_def.not_mappable}", path=text)
    if definition.multi_valued and sub_def.name == "type":
        raise MappingError(
            f"{text!r}: the type of a {name!r} entry is set by the filter, "
            f"e.g. '{name}[type eq \"work\"].value'",
            path=text,
        )
    return AttributePath(
        schema,
        name,
        type_filter=type_filter,
        sub_attribute=sub_def.name,
        value_type=sub_def.type,
        multi_valued=definition.multi_valued,
    )
