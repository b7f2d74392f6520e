"""The one definition of the mapping file format, as pydantic v2 models.

Validation of mapping files and the shipped JSON Schema (``mapping.schema.json``) are both generated from
these models; the field docstrings become the schema's descriptions, which editors show on hover.

The models check the structure and the types. What only the SCIM schemas know (whether ``name.givenName`` is
a SCIM path, whether a ``datetime`` attribute may take ``max_length``) stays in
:class:`~airflow_provider_entra.scim.AttributeMapping`, which
:func:`~airflow_provider_entra.mapping.load_mapping_file` builds from the ``attributes`` block once the
models accept it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    field_validator,
    model_validator,
)
from typing_extensions import TypeAliasType

from airflow_provider_entra.provisioning.normalise import HrSchema
from airflow_provider_entra.scim.mapping import OPTION_KEYS, SOURCE_KEYS

__all__ = [
    "AttributeValue",
    "ConstantText",
    "DatesSpec",
    "EntrySpec",
    "MappingFileModel",
    "SourceSpec",
    "StatusSpec",
    "UpnSpec",
    "ValueSpec",
    "known_keys",
    "unknown_key_message",
]

#: A strftime/strptime format holds at least one directive.
_DIRECTIVE = re.compile(r"%[a-zA-Z]")
#: A fixed UTC offset (``+00:00``, ``-0500``) or ``Z``, as the normalisation step accepts.
_OFFSET = re.compile(r"^(?:[Zz]|[+-](?:[01]\d|2[0-3]):?[0-5]\d)$")
_ID_SHAPE = r"^(?:digits(?::[1-9][0-9]*)?|text)$"

Column = Annotated[StrictStr, Field(min_length=1, pattern=r"\S")]


def known_keys(model: type[BaseModel]) -> list[str]:
    """The keys a block of ``model`` accepts, as written in files (aliases: ``from``)."""
    return [field.alias or name for name, field in model.model_fields.items()]


def unknown_key_message(model: type[BaseModel], key: str) -> str:
    """``unknown key 'frist_name' (did you mean 'first_name'?); valid keys: ...``."""
    known = known_keys(model)
    near = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown key {key!r}{hint}; valid keys: {', '.join(known)}"


class _Model(BaseModel):
    """Frozen, unknown keys refused (:func:`unknown_key_message` words the error in files), field docstrings
    as schema descriptions."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        use_attribute_docstrings=True,
    )


# -- the source block ----------------------------------------------------------------------------


class StatusSpec(_Model):
    """The employment status column and which of its values mean active or inactive."""

    column: Column
    """The status column of the export."""
    active: tuple[StrictStr, ...] | None = Field(default=None, min_length=1)
    """Spellings meaning active, case-insensitive (default: ``active``, ``a``)."""
    inactive: tuple[StrictStr, ...] | None = Field(default=None, min_length=1)
    """Spellings meaning inactive, case-insensitive (default: ``inactive``, ``i``, ``terminated``,
    ``leaver``)."""

    @model_validator(mode="after")
    def _disjoint(self) -> StatusSpec:
        both = {v.strip().lower() for v in self.active or ()} & {
            v.strip().lower() for v in self.inactive or ()
        }
        if both:
            raise ValueError(f"{', '.join(map(repr, sorted(both)))} is listed as both active and inactive")
        return self


def _status_shorthand(value: Any) -> Any:
    """``status: Worker_Status`` is ``status: {column: Worker_Status}``."""
    return {"column": value} if isinstance(value, str) else value


class DatesSpec(_Model):
    """How every date column of the export is written, declared once."""

    format: StrictStr | None = None
    """A ``strptime`` format of the dates (``%m/%d/%Y``); absent: ISO 8601."""
    timezone: StrictStr | None = None
    """The fixed UTC offset of dates written without one (default ``+00:00``)."""
    columns: tuple[Column, ...] = ()
    """Date columns besides ``hire_date`` and ``termination_date``."""

    @field_validator("format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        if value is not None and not _DIRECTIVE.search(value):
            raise ValueError(f"format is a strptime format such as '%m/%d/%Y', got {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None and not _OFFSET.match(value):
            raise ValueError(f"timezone is a fixed UTC offset such as '+00:00' or '-05:00', got {value!r}")
        return value


def _override_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(
                    f"write the id {key!r} in quotes ('{key}'): YAML reads unquoted numbers as numbers "
                    "(and drops leading zeros)"
                )
    return value


class UpnSpec(_Model):
    """How each person's userPrincipalName is made."""

    from_: Literal["derive", "column"] = Field(default="derive", alias="from")
    """``derive``: ``first.last@domain``, unique and stable; ``column``: taken from ``column``."""
    column: Column | None = None
    """The export column holding the UPN (with ``from: column``)."""
    domain: StrictStr | None = Field(default=None, pattern=r"^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
    """The domain of derived UPNs; absent: the DAG's ``upn_domain`` Param."""
    overrides: Annotated[
        dict[StrictStr, Annotated[StrictStr, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]],
        BeforeValidator(_override_keys),
    ] = {}
    """Person id -> UPN; wins over everything (the way out of a collision with an existing account)."""
    collisions: Literal["suffix", "fail"] = "suffix"
    """When a derived UPN belongs to another account Entra already holds: add a number (``suffix``) or
    quarantine the person (``fail``)."""

    @model_validator(mode="after")
    def _column_with_from(self) -> UpnSpec:
        if self.from_ == "column" and self.column is None:
            raise ValueError("from: column needs column: the export column holding the UPN")
        if self.from_ == "derive" and self.column is not None:
            raise ValueError("column goes with from: column; remove it or set from: column")
        return self


class SourceSpec(_Model):
    """Everything about the HR export: which columns carry what, how dates and UPNs are made.

    Column names are the export's own (any name, any order; extra columns are ignored). Only ``id`` is
    required; a column left out keeps the name of Microsoft's CSV2SCIM layout (``FirstName``, ...).

    >>> spec = SourceSpec.model_validate({"id": "Employee_ID", "status": "Worker_Status"})
    >>> spec.to_hr_schema().worker_id
    'Employee_ID'
    """

    layout: StrictStr | None = None
    """Where the export comes from (free text, shown in docs and reports)."""
    id: Column
    """The person's id column; it becomes the SCIM ``externalId``."""
    status: (
        Annotated[StatusSpec, BeforeValidator(_status_shorthand, json_schema_input_type=str | StatusSpec)]
        | None
    ) = None
    """The status column (default ``WorkerStatus``), or ``{column, active, inactive}``."""
    manager: Column | None = None
    """The manager's id column (default ``ManagerID``)."""
    first_name: Column | None = None
    """Default ``FirstName``."""
    last_name: Column | None = None
    """Default ``LastName``."""
    full_name: Column | None = None
    """Default ``FullName``."""
    email: Column | None = None
    """Default ``Email``."""
    user_id: Column | None = None
    """The login name column (default ``UserID``)."""
    department: Column | None = None
    """Default ``Department``; read by the admin-accounts privilege rule."""
    job_title: Column | None = None
    """Default ``JobTitle``; read by the admin-accounts privilege rule."""
    office_phone: Column | None = None
    """Default ``OfficePhone``."""
    hire_date: Column | None = None
    """Default ``HireDate``."""
    termination_date: Column | None = None
    """Default ``TerminationDate``."""
    on_leave: Column | None = None
    """A true/false column (default ``OnLeave``)."""
    dates: DatesSpec | None = None
    """How the date columns are written."""
    flags: tuple[Column, ...] = ()
    """More true/false columns."""
    id_shape: StrictStr | None = Field(default=None, pattern=_ID_SHAPE)
    """``digits``, ``digits:N`` (N digits, leading zeros kept) or ``text``; absent: learnt from the
    ledger."""
    upn: UpnSpec | None = None
    """How userPrincipalNames are made (default: derived, collisions suffixed)."""

    _COLUMN_FIELDS = (
        ("id", "worker_id"),
        ("manager", "manager_id"),
        ("first_name", "first_name"),
        ("last_name", "last_name"),
        ("full_name", "full_name"),
        ("email", "email"),
        ("user_id", "user_id"),
        ("department", "department"),
        ("job_title", "job_title"),
        ("office_phone", "office_phone"),
        ("hire_date", "hire_date"),
        ("termination_date", "termination_date"),
        ("on_leave", "on_leave"),
    )

    @classmethod
    def csv2scim(cls) -> SourceSpec:
        """The source of a mapping file without a ``source`` block: Microsoft's CSV2SCIM layout."""
        return cls(id=HrSchema().worker_id)

    def to_hr_schema(self) -> HrSchema:
        """The :class:`~airflow_provider_entra.provisioning.normalise.HrSchema` the pipeline runs with.

        Only what the block declares is passed (by keyword); everything else keeps HrSchema's defaults.
        """
        kwargs: dict[str, Any] = {}
        for name, target in self._COLUMN_FIELDS:
            value = getattr(self, name)
            if value is not None:
                kwargs[target] = value
        if self.status is not None:
            kwargs["status"] = self.status.column
            if self.status.active is not None:
                kwargs["active_values"] = tuple(v.strip().lower() for v in self.status.active)
            if self.status.inactive is not None:
                kwargs["inactive_values"] = tuple(v.strip().lower() for v in self.status.inactive)
        if self.dates is not None:
            if self.dates.format is not None:
                kwargs["date_format"] = self.dates.format
            if self.dates.timezone is not None:
                kwargs["timezone"] = self.dates.timezone
            if self.dates.columns:
                kwargs["extra_date_columns"] = tuple(self.dates.columns)
        if self.flags:
            kwargs["extra_boolean_columns"] = tuple(self.flags)
        if self.id_shape is not None:
            kwargs["id_shape"] = self.id_shape
        if self.upn is not None:
            fields = self.upn.model_fields_set
            if "from_" in fields:
                kwargs["upn_from"] = self.upn.from_
            if self.upn.column is not None:
                kwargs["upn_column"] = self.upn.column
            if self.upn.domain is not None:
                kwargs["upn_domain"] = self.upn.domain
            if self.upn.overrides:
                kwargs["upn_overrides"] = tuple(self.upn.overrides.items())
            if "collisions" in fields:
                kwargs["upn_collisions"] = self.upn.collisions
        return HrSchema(**kwargs)

    def column_fields(self) -> dict[str, str]:
        """Key path in the block (``first_name``, ``dates.columns.0``) -> the export column it names.

        Includes the columns every export needs even when the block leaves them out (``status``,
        ``first_name``, ``last_name`` keep their CSV2SCIM names), so a check finds them missing.
        """
        schema = HrSchema()
        out: dict[str, str] = {"id": self.id}
        out["status"] = self.status.column if self.status is not None else schema.status
        for name, target in self._COLUMN_FIELDS[1:]:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
            elif name in ("first_name", "last_name"):
                out[name] = getattr(schema, target)
        for i, column in enumerate(self.dates.columns if self.dates is not None else ()):
            out[f"dates.columns.{i}"] = column
        for i, column in enumerate(self.flags):
            out[f"flags.{i}"] = column
        if self.upn is not None and self.upn.column is not None:
            out["upn.column"] = self.upn.column
        return out

    def columns(self) -> tuple[str, ...]:
        """The export columns this block reads, in declaration order, each once.

        >>> SourceSpec(id="EmpNo", first_name="GivenName", last_name="Surname").columns()
        ('EmpNo', 'WorkerStatus', 'GivenName', 'Surname')
        """
        return tuple(dict.fromkeys(self.column_fields().values()))


# -- the attributes block ------------------------------------------------------------------------


def _map_keys(value: Any) -> Any:
    """YAML reads ``{1: Yes, true: X}`` keys as numbers and booleans; the mapping compares texts."""
    if isinstance(value, Mapping):
        return {
            ("true" if k else "false") if isinstance(k, bool) else str(k) if isinstance(k, int) else k: v
            for k, v in value.items()
        }
    return value


Scalar = StrictStr | StrictBool | StrictInt

_EXACTLY_ONE_SOURCE: dict[str, Any] = {"oneOf": [{"required": [key]} for key in SOURCE_KEYS]}


class ValueSpec(_Model):
    """Where one SCIM attribute's value comes from: exactly one of ``column``, ``constant``, ``expr``,
    ``join``, ``template``, with options."""

    model_config = ConfigDict(json_schema_extra=_EXACTLY_ONE_SOURCE)

    column: Column | None = None
    """An export column."""
    constant: Scalar | None = None
    """The same value for every row."""
    expr: StrictStr | None = None
    """A true/false expression (``WorkerStatus == "Active"``), for boolean attributes."""
    join: list[Column] | None = Field(default=None, min_length=1)
    """Columns whose non-empty values are joined with ``sep``."""
    template: StrictStr | None = None
    """A text with ``{Column}`` placeholders."""
    type: Literal["string", "boolean", "integer", "datetime"] | None = None
    """For custom attributes: the type sent (default ``string``)."""
    sep: StrictStr | None = None
    """The separator of ``join`` (default one space)."""
    map: Annotated[dict[StrictStr, Scalar], BeforeValidator(_map_keys)] | None = None
    """Export value -> SCIM value replacements."""
    default: Scalar | None = None
    """The value when the source is empty."""
    timezone: StrictStr | None = None
    """For ``datetime``: an offset (``+00:00``) or an IANA zone (``Europe/Oslo``)."""
    date_format: StrictStr | None = None
    """For ``datetime``: a strftime format; dates declared in ``source`` are already ISO 8601."""
    max_length: Annotated[StrictInt, Field(ge=1)] | None = None
    """The longest accepted text; ``null`` removes the default limit."""
    required: StrictBool | None = None
    """Quarantine a row whose value is empty."""

    @model_validator(mode="after")
    def _one_source(self) -> ValueSpec:
        given = [key for key in SOURCE_KEYS if key in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of {', '.join(SOURCE_KEYS)}; got {', '.join(given) or 'none'}"
            )
        return self


_SPEC_KEYS = frozenset(SOURCE_KEYS + OPTION_KEYS)


def _value_kind(value: Any) -> str | None:
    """Which form an attribute value takes; the same decision as ``AttributeMapping`` makes."""
    if isinstance(value, str):
        return "<column name>"
    if isinstance(value, bool):
        return "<boolean constant>"
    if isinstance(value, int):
        return "<integer constant>"
    if isinstance(value, list):
        return "<entries>"
    if isinstance(value, Mapping):
        return "<value spec>" if any(k in _SPEC_KEYS for k in value) else "<block>"
    return None


if TYPE_CHECKING:
    AttributeValue = Any
else:
    AttributeValue = TypeAliasType(
        "AttributeValue",
        Annotated[
            Annotated[Column, Tag("<column name>")]
            | Annotated[StrictBool, Tag("<boolean constant>")]
            | Annotated[StrictInt, Tag("<integer constant>")]
            | Annotated[ValueSpec, Tag("<value spec>")]
            | Annotated[
                dict[
                    Annotated[StrictStr, Field(json_schema_extra={"not": {"enum": sorted(_SPEC_KEYS)}})],
                    "AttributeValue",
                ],
                Tag("<block>"),
            ]
            | Annotated[list["EntrySpec"], Field(min_length=1), Tag("<entries>")],
            Discriminator(
                _value_kind,
                custom_error_type="attribute_value",
                custom_error_message=(
                    "expected a column name, true/false, a whole number, a block such as {column: X}, "
                    "nested attributes, or a list of entries"
                ),
            ),
        ],
    )
"""An attribute's value in any of the forms ``docs/mapping.md`` lists."""


class ConstantText(_Model):
    """``{constant: work}``: the psd1 way of writing a fixed text."""

    constant: StrictStr


class EntrySpec(BaseModel):
    """One entry of a multi-valued attribute: ``{type: work, value: Email}``; the other keys are its
    sub-attributes."""

    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)

    __pydantic_extra__: dict[str, AttributeValue]

    type: StrictStr | ConstantText | None = None
    """The entry's type, a fixed text (``work``)."""


class MappingFileModel(_Model):
    """A mapping file: the HR export it reads (``source``) and the SCIM attributes it sends."""

    model_config = ConfigDict(title="airflow-provider-entra mapping file")

    description: StrictStr | None = None
    """Free text."""
    schemas: list[StrictStr] | None = None
    """The custom extension namespaces the attributes use
    (``urn:ietf:params:scim:schemas:extension:contoso:1.0:User``)."""
    source: SourceSpec | None = None
    """The HR export's layout; absent: Microsoft's CSV2SCIM layout (``WorkerID``, ``WorkerStatus``, ...)."""
    attributes: dict[StrictStr, AttributeValue] = Field(min_length=1)
    """SCIM attribute path -> value (an export column, a constant, or a block with options)."""
