"""``AttributeMapping``: which HR column (or constant, or expression) feeds which SCIM attribute.

The file format (YAML or JSON) and its CSV2SCIM ``AttributeMapping.psd1`` equivalents are described in the
package docstring (:mod:`airflow_provider_entra.scim`) and in ``docs/mapping.md``.
"""

from __future__ import annotations

import json
import re
import string
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from airflow_provider_entra.scim._constants import (
    CORE_USER_SCHEMA,
    ENTRA_STRING_LIMITS,
    EXTENSION_STRING_MAX_LENGTH,
)
from airflow_provider_entra.scim.errors import MappingError
from airflow_provider_entra.scim.expressions import Expression, parse_expression
from airflow_provider_entra.scim.paths import AttributePath, canonical_schema, parse_path
from airflow_provider_entra.scim.schema import BOOLEAN, DATETIME, INTEGER, SCHEMAS, STRING, VALUE_TYPES

SOURCE_KEYS = ("column", "constant", "expr", "join", "template")
OPTION_KEYS = ("type", "sep", "map", "default", "timezone", "date_format", "max_length", "required")
#: Attributes every mapping must set: the matching key, the sign-in name and the account state
#: (Microsoft: omitting ``active`` was reported to disable accounts, so it is always sent).
REQUIRED_ATTRIBUTES = ("externalId", "userName", "active")
DEFAULT_TIMEZONE = "+00:00"
_OFFSET = re.compile(r"^(?:Z|UTC|[+-]\d{2}:?\d{2})$", re.IGNORECASE)
_MISSING = object()


# -- value sources -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSource:
    """The value of one HR column."""

    column: str

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)


@dataclass(frozen=True)
class ConstantSource:
    """The same value for every row."""

    value: str | bool | int

    @property
    def columns(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class ExprSource:
    """A true/false expression over HR columns (see :mod:`airflow_provider_entra.scim.expressions`)."""

    expression: Expression

    @property
    def columns(self) -> tuple[str, ...]:
        return self.expression.columns


@dataclass(frozen=True)
class JoinSource:
    """Non-empty values of several columns joined with ``sep``; empty when all are empty."""

    parts: tuple[str, ...]
    sep: str = " "

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.parts))


@dataclass(frozen=True)
class TemplateSource:
    """A text with ``{Column}`` placeholders; an empty column gives empty text, all empty give no value."""

    template: str
    pieces: tuple[tuple[str, str | None], ...]  # (literal text, column or None)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for _, c in self.pieces if c is not None))


Source = ColumnSource | ConstantSource | ExprSource | JoinSource | TemplateSource


@dataclass(frozen=True)
class AttributeSpec:
    """How one SCIM attribute gets its value.

    :param path: the target attribute.
    :param source: where the value comes from.
    :param value_type: the JSON type sent: ``string``, ``boolean``, ``integer`` or ``datetime`` (an ISO 8601
        text with time and offset).
    :param value_map: HR value -> SCIM value replacements, applied before the type is checked.
    :param default: value used when the source is empty.
    :param timezone: for ``datetime``: offset (``+00:00``) or IANA zone (``Europe/Paris``) given to values
        that carry none, and into which values with an offset are converted.
    :param date_format: for ``datetime``: a ``strftime`` format of the HR values; ISO 8601 when ``None``.
    :param max_length: longest accepted text, in characters; ``None`` for no limit.
    :param required: reject a row where the value is empty.
    """

    path: AttributePath
    source: Source
    value_type: str
    value_map: Mapping[str, str] | None = None
    default: Any = None
    timezone: str | None = None
    date_format: str | None = None
    max_length: int | None = None
    required: bool = False
    options: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def columns(self) -> tuple[str, ...]:
        """HR columns this attribute reads."""
        return self.source.columns

    def to_value(self) -> str | dict[str, Any]:
        """The spec as written in a mapping file (a bare column name when that says it all)."""
        if isinstance(self.source, ColumnSource) and not self.options:
            return self.source.column
        out: dict[str, Any] = {}
        if isinstance(self.source, ColumnSource):
            out["column"] = self.source.column
        elif isinstance(self.source, ConstantSource):
            out["constant"] = self.source.value
        elif isinstance(self.source, ExprSource):
            out["expr"] = self.source.expression.source
        elif isinstance(self.source, JoinSource):
            out["join"] = list(self.source.parts)
        else:
            out["template"] = self.source.template
        out.update(self.options)
        return out


# -- parsing -------------------------------------------------------------------------------------


def _fail(path: str, message: str) -> MappingError:
    return MappingError(f"{path!r}: {message}", path=path)


def _is_spec(value: Any) -> bool:
    """A block with a source or an option is a value spec; any other block nests sub-attributes."""
    return isinstance(value, Mapping) and any(k in value for k in SOURCE_KEYS + OPTION_KEYS)


def _flatten(attributes: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Yield (path, spec) pairs from the flat form and from the nested, psd1-like form."""
    for key, value in attributes.items():
        if not isinstance(key, str):
            raise MappingError(f"attribute names must be texts, got {key!r}")
        schema = canonical_schema(key) if key.strip().lower().startswith("urn:") else None
        if schema is not None:
            if not isinstance(value, Mapping) or _is_spec(value):
                raise _fail(key, "a schema URN takes a block of attributes, e.g. {department: Department}")
            prefix = "" if schema == CORE_USER_SCHEMA else schema
            for sub_key, sub_value in value.items():
                yield from _flatten({f"{prefix}:{sub_key}" if prefix else str(sub_key): sub_value})
        elif isinstance(value, list):
            yield from _flatten_entries(key, value)
        elif isinstance(value, Mapping) and not _is_spec(value):
            for sub_key, sub_value in value.items():
                yield from _flatten({f"{key}.{sub_key}": sub_value})
        else:
            yield key, value


def _flatten_entries(key: str, entries: list[Any]) -> Iterator[tuple[str, Any]]:
    """``addresses: [{type: work, locality: City}]`` -> ``addresses[type eq "work"].locality: City``."""
    seen: set[str | None] = set()
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise _fail(
                key, "each entry of a multi-valued attribute is a block such as {type: work, value: Email}"
            )
        entry = dict(entry)
        entry_type = entry.pop("type", None)
        if isinstance(entry_type, Mapping) and set(entry_type) == {"constant"}:
            entry_type = entry_type["constant"]
        if entry_type is not None and not isinstance(entry_type, str):
            raise _fail(key, f"the type of an entry is a fixed text such as 'work', got {entry_type!r}")
        if entry_type in seen:
            raise _fail(key, f"two entries have the type {entry_type!r}")
        seen.add(entry_type)
        for sub_key, sub_value in entry.items():
            path = (
                f'{key}[type eq "{entry_type}"].{sub_key}' if entry_type is not None else f"{key}.{sub_key}"
            )
            yield path, sub_value


def _check_column(path: str, name: Any, what: str = "column") -> str:
    if not isinstance(name, str) or not name.strip():
        raise _fail(path, f"{what} must be a non-empty column name, got {name!r}")
    return name


def _parse_template(path: str, template: Any) -> TemplateSource:
    if not isinstance(template, str) or not template:
        raise _fail(path, f"template must be a text such as '{{FirstName}} {{LastName}}', got {template!r}")
    pieces: list[tuple[str, str | None]] = []
    try:
        for literal, column, spec, conversion in string.Formatter().parse(template):
            if spec or conversion:
                raise _fail(
                    path,
                    f"template placeholders take a bare column name, got {{{column}!{conversion}:{spec}}}",
                )
            if column is not None and not column.strip():
                raise _fail(path, "template placeholders need a column name: write {FirstName}, not {}")
            pieces.append((literal, column))
    except ValueError as exc:
        raise _fail(
            path, f"template {template!r} is malformed ({exc}); write a literal brace as {{{{ or }}}}"
        ) from exc
    if not any(column for _, column in pieces):
        raise _fail(path, "template uses no column; use {constant: ...} for a fixed value")
    return TemplateSource(template, tuple(pieces))


def _parse_source(path: str, spec: Mapping[str, Any]) -> Source:
    given = [k for k in SOURCE_KEYS if k in spec]
    if len(given) != 1:
        raise _fail(path, f"give exactly one of {', '.join(SOURCE_KEYS)}; got {', '.join(given) or 'none'}")
    key = given[0]
    value = spec[key]
    if key == "column":
        return ColumnSource(_check_column(path, value))
    if key == "constant":
        if value is None or isinstance(value, (list, dict, float)):
            raise _fail(path, f"constant must be a text, true/false or a whole number, got {value!r}")
        return ConstantSource(value)
    if key == "expr":
        try:
            return ExprSource(parse_expression(value))
        except MappingError as exc:
            raise _fail(path, str(exc)) from exc
    if key == "join":
        if not isinstance(value, list) or not value:
            raise _fail(path, f"join takes a list of columns, e.g. [FirstName, LastName], got {value!r}")
        sep = spec.get("sep", " ")
        if not isinstance(sep, str):
            raise _fail(path, f"sep must be a text, got {sep!r}")
        return JoinSource(tuple(_check_column(path, c, "each join item") for c in value), sep)
    return _parse_template(path, value)


def _check_timezone(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(
            path,
            f"timezone must be an offset such as '+00:00' or a zone such as 'Europe/Paris', got {value!r}",
        )
    if _OFFSET.match(value):
        return value
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise _fail(
            path, f"unknown timezone {value!r}; use an offset such as '-05:00' or an IANA zone"
        ) from exc
    return value


def _constant_matches(value: Any, value_type: str) -> bool:
    if value_type == BOOLEAN:
        return isinstance(value, bool)
    if value_type == INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if value_type == DATETIME:
        return isinstance(value, (str, datetime))
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_spec(path: AttributePath, raw: Any) -> AttributeSpec:
    name = str(path)
    if isinstance(raw, str):
        raw = {"column": _check_column(name, raw)}
    elif isinstance(raw, (bool, int)) and not isinstance(raw, float):
        raw = {"constant": raw}
    elif raw is None:
        raise _fail(
            name,
            "has no value; give a column name, {constant: ...}, {expr: ...}, {join: [...]} "
            "or {template: ...}",
        )
    elif not isinstance(raw, Mapping):
        raise _fail(name, f"expected a column name or a block such as {{column: X}}, got {raw!r}")
    unknown = [k for k in raw if k not in SOURCE_KEYS + OPTION_KEYS]
    if unknown:
        raise _fail(
            name,
            f"unknown option(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(SOURCE_KEYS + OPTION_KEYS)}",
        )
    source = _parse_source(name, raw)
    options = {k: raw[k] for k in OPTION_KEYS if k in raw}
    if "sep" in options and not isinstance(source, JoinSource):
        raise _fail(name, "sep only goes with join")

    # the type: from the schema, or chosen for a custom attribute
    declared = options.get("type")
    if declared is not None and declared not in VALUE_TYPES:
        raise _fail(name, f"type must be one of {', '.join(VALUE_TYPES)}, got {declared!r}")
    if path.value_type is None:
        value_type = declared or STRING
    else:
        value_type = path.value_type
        if declared is not None and declared != value_type:
            raise _fail(
                name,
                f"is a {value_type} attribute of the SCIM schema and cannot be sent as {declared}; "
                "map the value to a custom namespace attribute to send it with another type",
            )

    if isinstance(source, ExprSource) and value_type != BOOLEAN:
        raise _fail(name, f"an expr gives true/false, but this is a {value_type} attribute")
    if isinstance(source, ConstantSource) and not _constant_matches(source.value, value_type):
        raise _fail(name, f"constant {source.value!r} is not a {value_type}")

    value_map = options.get("map")
    if value_map is not None:
        if not isinstance(value_map, Mapping) or not value_map:
            raise _fail(name, f"map takes HR value -> SCIM value pairs, got {value_map!r}")
        if not isinstance(source, (ColumnSource, JoinSource, TemplateSource)):
            raise _fail(name, "map only goes with column, join or template")
        value_map = {_text(k): _text(v) for k, v in value_map.items()}

    default = options.get("default")
    if "default" in options:
        if isinstance(source, (ConstantSource, ExprSource)):
            raise _fail(name, "default only goes with column, join or template (those can be empty)")
        if not _constant_matches(default, value_type):
            raise _fail(name, f"default {default!r} is not a {value_type}")

    timezone = options.get("timezone")
    date_format = options.get("date_format")
    if value_type == DATETIME:
        timezone = _check_timezone(name, timezone) if timezone is not None else DEFAULT_TIMEZONE
        if date_format is not None and (not isinstance(date_format, str) or "%" not in date_format):
            raise _fail(name, f"date_format is a strftime format such as '%m/%d/%Y', got {date_format!r}")
    elif timezone is not None or date_format is not None:
        raise _fail(name, f"timezone and date_format only apply to datetime values; this is a {value_type}")

    if "max_length" in options:
        max_length = options["max_length"]
        if max_length is not None and (
            isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1
        ):
            raise _fail(name, f"max_length must be a positive whole number or null, got {max_length!r}")
        if value_type != STRING:
            raise _fail(name, f"max_length only applies to text values; this is a {value_type}")
    elif value_type == STRING:
        max_length = EXTENSION_STRING_MAX_LENGTH if path.is_custom else ENTRA_STRING_LIMITS.get(name)
    else:
        max_length = None

    required = options.get("required", False)
    if not isinstance(required, bool):
        raise _fail(name, f"required must be true or false, got {required!r}")
    if name in REQUIRED_ATTRIBUTES:
        if options.get("required") is False:
            raise _fail(name, "is always required; remove 'required: false'")
        required = True

    return AttributeSpec(
        path=path,
        source=source,
        value_type=value_type,
        value_map=value_map,
        default=default,
        timezone=timezone,
        date_format=date_format,
        max_length=max_length,
        required=required,
        options=options,
    )


class _NoDuplicatesLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys instead of keeping the last one silently."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise MappingError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})", path=str(key))
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


_NoDuplicatesLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _reject_duplicate_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MappingError(f"duplicate key {key!r}", path=key)
        out[key] = value
    return out


# -- the mapping ---------------------------------------------------------------------------------


class AttributeMapping:
    """Which HR column, constant or expression feeds each SCIM attribute.

    :param attributes: SCIM path -> value spec, in the flat form (``"name.givenName": "FirstName"``) or the
        nested form that mirrors CSV2SCIM's ``AttributeMapping.psd1`` (``name: {givenName: FirstName}``).
    :param schemas: custom extension namespaces the mapping may use; when given, every custom attribute
        must belong to one of them (catches typos in long URNs). Derived from the attributes when omitted.
    :raises MappingError: naming the bad path for anything the SCIM schemas or Entra would not accept.

    >>> mapping = AttributeMapping({
    ...     "externalId": "WorkerID",
    ...     "userName": "UserID",
    ...     "active": {"expr": 'WorkerStatus == "Active"'},
    ...     "name": {"givenName": "FirstName", "familyName": "LastName"},
    ... })
    >>> mapping.source_columns
    ['WorkerID', 'UserID', 'WorkerStatus', 'FirstName', 'LastName']
    """

    def __init__(self, attributes: Mapping[str, Any], schemas: Sequence[str] | None = None) -> None:
        if not isinstance(attributes, Mapping) or not attributes:
            raise MappingError("a mapping needs a non-empty block of attributes (SCIM path -> HR column)")
        specs: dict[str, AttributeSpec] = {}
        for raw_path, raw_spec in _flatten(attributes):
            path = parse_path(raw_path)
            key = str(path)
            if key in specs:
                raise MappingError(f"{key!r} is mapped twice (as {raw_path!r} and earlier)", path=key)
            specs[key] = _parse_spec(path, raw_spec)
        missing = [name for name in REQUIRED_ATTRIBUTES if name not in specs]
        if missing:
            hints = {
                "externalId": "externalId: WorkerID (the matching key, Entra's employeeId)",
                "userName": "userName: UserPrincipalName",
                "active": "active: {expr: 'WorkerStatus == \"Active\"'} (or {constant: true})",
            }
            raise MappingError(
                "the mapping must set "
                + ", ".join(missing)
                + "; e.g. "
                + "; ".join(hints[m] for m in missing),
                path=missing[0],
            )
        entries: dict[tuple[str, str, str | None], list[str]] = {}
        for spec in specs.values():
            if spec.path.multi_valued:
                entry = (spec.path.schema, spec.path.attribute, spec.path.type_filter)
                entries.setdefault(entry, []).append(spec.path.sub_attribute or "")
        for (_, attribute, type_filter), subs in entries.items():
            if set(subs) == {"primary"}:
                where = f'{attribute}[type eq "{type_filter}"]' if type_filter is not None else attribute
                raise MappingError(
                    f"{where!r}: an entry needs a value besides 'primary', e.g. '{where}.value'",
                    path=f"{where}.primary",
                )
        if isinstance(specs["externalId"].source, ConstantSource):
            raise MappingError(
                "'externalId': a constant would give every employee the same key", path="externalId"
            )
        self._specs = specs
        self._declared = self._check_schemas(schemas)

    def _check_schemas(self, schemas: Sequence[str] | None) -> tuple[str, ...] | None:
        if schemas is None:
            return None
        if isinstance(schemas, str) or not isinstance(schemas, Sequence):
            raise MappingError(f"schemas is a list of custom namespace URNs, got {schemas!r}")
        declared: list[str] = []
        for urn in schemas:
            canonical = canonical_schema(urn) if isinstance(urn, str) else None
            if canonical is None:
                raise MappingError(
                    f"schemas: {urn!r} is not a namespace URN such as "
                    "'urn:ietf:params:scim:schemas:extension:contoso:1.0:User'",
                    path=str(urn),
                )
            if canonical in SCHEMAS:
                continue  # built-in schemas are always listed; naming them is harmless
            declared.append(canonical)
        for spec in self._specs.values():
            if spec.path.is_custom and spec.path.schema not in declared:
                raise MappingError(
                    f"{str(spec.path)!r} uses the namespace {spec.path.schema!r}, which is not in schemas "
                    f"({', '.join(declared) or 'none declared'})",
                    path=str(spec.path),
                )
        return tuple(dict.fromkeys(declared))

    def _with_specs(self, specs: Sequence[AttributeSpec]) -> AttributeMapping:
        """A mapping with other specs for the same paths (used to re-check already mapped values)."""
        clone = object.__new__(AttributeMapping)
        clone._specs = {str(spec.path): spec for spec in specs}
        clone._declared = self._declared
        return clone

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttributeMapping:
        """Build from ``{"schemas": [...], "attributes": {...}}``, or from a bare attributes block.

        A ``source`` block (the HR export's layout) is accepted and ignored here: it is read by
        :func:`airflow_provider_entra.mapping.load_mapping_file`.

        :param data: the parsed mapping file.
        :raises MappingError: for an unknown top-level key or anything :class:`AttributeMapping` rejects.
        """
        if not isinstance(data, Mapping):
            raise MappingError(f"a mapping is a block of settings, got {type(data).__name__}")
        if "attributes" not in data:
            body = dict(data)
            schemas = body.pop("schemas", None)
            body.pop("description", None)
            return cls(body, schemas=schemas)
        unknown = [k for k in data if k not in ("attributes", "schemas", "description", "source")]
        if unknown:
            raise MappingError(
                f"unknown top-level key(s) {', '.join(map(repr, unknown))}; "
                "use attributes, schemas, description, source"
            )
        return cls(data["attributes"], schemas=data.get("schemas"))

    @classmethod
    def from_file(cls, path: str | Path) -> AttributeMapping:
        """Load a YAML (``.yaml``/``.yml``) or JSON (``.json``) mapping file.

        :param path: the file.
        :raises MappingError: for a file that does not parse, with duplicate keys, or with a bad mapping.
        """
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text, object_pairs_hook=_reject_duplicate_json_keys)
            else:
                data = yaml.load(text, Loader=_NoDuplicatesLoader)  # noqa: S506 - a SafeLoader subclass
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            raise MappingError(
                f"{path.name}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}"
            ) from exc
        except MappingError as exc:
            raise MappingError(f"{path.name}: {exc}", path=exc.path) from exc
        try:
            return cls.from_dict(data)
        except MappingError as exc:
            raise MappingError(f"{path.name}: {exc}", path=exc.path) from exc

    def to_dict(self) -> dict[str, Any]:
        """The mapping in the flat file form; ``AttributeMapping.from_dict(m.to_dict()) == m``."""
        out: dict[str, Any] = {}
        if self._declared is not None:
            out["schemas"] = list(self._declared)
        out["attributes"] = {key: spec.to_value() for key, spec in self._specs.items()}
        return out

    # -- inspection ------------------------------------------------------------------------------

    @property
    def attributes(self) -> tuple[AttributeSpec, ...]:
        """Every mapped attribute, in mapping order."""
        return tuple(self._specs.values())

    @property
    def paths(self) -> list[str]:
        """Canonical SCIM paths, in mapping order."""
        return list(self._specs)

    def __getitem__(self, path: str) -> AttributeSpec:
        """The spec of a path (any accepted spelling)."""
        return self._specs[str(parse_path(path))]

    def __contains__(self, path: object) -> bool:
        try:
            return isinstance(path, str) and str(parse_path(path)) in self._specs
        except MappingError:
            return False

    @property
    def source_columns(self) -> list[str]:
        """HR columns the mapping reads, in order of first use."""
        return list(dict.fromkeys(c for spec in self._specs.values() for c in spec.columns))

    @property
    def custom_schemas(self) -> list[str]:
        """Custom extension namespaces: the declared ones, else those the attributes use."""
        if self._declared is not None:
            return list(self._declared)
        return list(dict.fromkeys(s.path.schema for s in self._specs.values() if s.path.is_custom))

    def check_columns(self, columns: Iterable[str]) -> None:
        """Raise :class:`MappingError` naming every HR column the mapping reads that ``columns`` lacks."""
        available = set(columns)
        missing = [c for c in self.source_columns if c not in available]
        if missing:
            users = {c: [str(s.path) for s in self._specs.values() if c in s.columns] for c in missing}
            detail = "; ".join(f"{c!r} (used by {', '.join(users[c])})" for c in missing)
            raise MappingError(f"the HR data has no column {detail}", path=users[missing[0]][0])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AttributeMapping) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))

    def __repr__(self) -> str:
        return f"AttributeMapping({len(self._specs)} attributes, columns={self.source_columns})"


__all__ = [
    "AttributeMapping",
    "AttributeSpec",
    "ColumnSource",
    "ConstantSource",
    "ExprSource",
    "JoinSource",
    "TemplateSource",
]
