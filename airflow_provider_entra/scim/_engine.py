"""The column-wise machinery behind :func:`map_records` and :func:`build_bulk_requests`.

Everything here works on whole pyarrow columns, a chunk of rows at a time (``CHUNK_ROWS``): HR columns are
converted once, every attribute is computed and checked for all rows of a chunk with pyarrow compute, and
the JSON of each record is assembled by concatenating per-attribute JSON fragments column-wise. No Python
object is made per row and attribute; the only per-row Python work is the record hash (one call per row)
and the text of rejection reasons (only for rejected rows).

Note: pyarrow's ``binary_join_element_wise(..., null_handling="skip")`` drops rows whose inputs are all
null (seen with pyarrow 26), so this module only uses the ``emit_null`` and ``replace`` modes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_entra.scim._constants import (
    BULK_OPERATION_METHOD,
    BULK_OPERATION_PATH,
    BULK_REQUEST_SCHEMA,
    CORE_USER_SCHEMA,
    ENTERPRISE_USER_SCHEMA,
)
from airflow_provider_entra.scim.mapping import (
    AttributeMapping,
    AttributeSpec,
    ColumnSource,
    ConstantSource,
    ExprSource,
    JoinSource,
    TemplateSource,
)
from airflow_provider_entra.scim.schema import BOOLEAN, DATETIME, INTEGER, STRING

LS = pa.large_string()
#: Rows handled at once; small enough for pyarrow's buffers to stay in cache, large enough to amortise calls.
CHUNK_ROWS = 32_768
_EMPTY = pa.scalar("", LS)
_NULL = pa.scalar(None, LS)
_TRUE_TEXTS = pa.array(["true", "1", "yes", "y", "t"], LS)
_FALSE_TEXTS = pa.array(["false", "0", "no", "n", "f"], LS)
_INTEGER = r"^\s*[+-]?\d{1,18}\s*$"
# An address a SCIM/Graph validator accepts: a dot-atom local part (RFC 5322, UTF-8 letters allowed), host
# labels without leading/trailing hyphens, and an alphabetic or IDNA top-level domain. Anything looser lets
# one row through whose value makes Graph refuse its whole 50-operation request with a 400.
_EMAIL_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x{80}-\x{10FFFF}-]+"
_EMAIL_CHAR = r"[A-Za-z0-9\x{80}-\x{10FFFF}]"
_EMAIL_LABEL = rf"{_EMAIL_CHAR}(?:[A-Za-z0-9\x{{80}}-\x{{10FFFF}}-]{{0,61}}{_EMAIL_CHAR})?"
_EMAIL = (
    rf"^{_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*@{_EMAIL_LABEL}(?:\.{_EMAIL_LABEL})*"
    r"\.(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}|[\x{80}-\x{10FFFF}]{2,63})$"
)
_HAS_OFFSET = re.compile(r"\d[T ]\d{2}.*(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)
_REASON_VALUE_CHARS = 60

_CONTROL_ESCAPES = {i: json.dumps(chr(i))[1:-1] for i in range(0x20)}


def text(value: str) -> pa.Scalar:
    """A large_string scalar."""
    return pa.scalar(value, LS)


def join(*parts: pa.Array | pa.Scalar | str) -> pa.Array:
    """Concatenate texts row by row; null if any part is null."""
    args = [text(p) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*args, _EMPTY)


def concat_skipping_nulls(parts: Sequence[pa.Array | pa.Scalar]) -> pa.Array:
    """Concatenate texts row by row, a null part counting as empty."""
    return pc.binary_join_element_wise(*parts, _EMPTY, null_handling="replace", null_replacement="")


def is_empty(values: pa.Array) -> pa.Array:
    return pc.equal(pc.binary_length(values), 0)


def empty_to_null(values: pa.Array) -> pa.Array:
    """Empty or all-whitespace texts become nulls (an empty cell is a missing value)."""
    blank = pc.or_(is_empty(values), pc.utf8_is_space(values))
    if not pc.any(blank).as_py():
        return values
    return pc.if_else(blank, _NULL, values)


def as_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def _data_bytes(values: pa.Array) -> np.ndarray:
    """The bytes of a large_string array's values, as a numpy view."""
    buffers = values.buffers()
    if buffers[2] is None or len(values) == 0:
        return np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(buffers[1], dtype=np.int64, count=len(values) + 1, offset=values.offset * 8)
    return np.frombuffer(buffers[2], dtype=np.uint8)[offsets[0] : offsets[-1]]


def json_escape(values: pa.Array) -> pa.Array:
    """Escape texts for a JSON string (without the quotes); a byte scan skips the common clean case."""
    data = _data_bytes(values)
    if not ((data < 0x20).any() or (data == 0x22).any() or (data == 0x5C).any()):
        return values
    values = pc.replace_substring(values, "\\", "\\\\")
    values = pc.replace_substring(values, '"', '\\"')
    control = pc.fill_null(pc.match_substring_regex(values, r"[\x00-\x1f]"), False)
    if pc.any(control).as_py():
        fixed = [v.translate(_CONTROL_ESCAPES) for v in pc.filter(values, control).to_pylist()]
        values = pc.replace_with_mask(values, control, pa.array(fixed, LS))
    return values


# -- HR columns ----------------------------------------------------------------------------------


def source_array(series: pd.Series) -> pa.Array:
    """One HR column as pyarrow: texts (large_string) with empty cells as nulls, or timestamps as they are.

    Numbers become their shortest text (``1684.0`` read from a column with gaps becomes ``1684``); booleans
    become ``True``/``False`` as pandas writes them.
    """
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        return as_array(pa.array(series, from_pandas=True))
    if pd.api.types.is_bool_dtype(dtype):
        flags = as_array(pa.array(series, from_pandas=True, type=pa.bool_()))
        return pc.if_else(flags, text("True"), text("False"))
    try:
        values = as_array(pa.array(series, from_pandas=True))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        values = None
    if values is None or not (
        pa.types.is_string(values.type)
        or pa.types.is_large_string(values.type)
        or pa.types.is_integer(values.type)
        or pa.types.is_floating(values.type)
        or pa.types.is_dictionary(values.type)
        or pa.types.is_null(values.type)
    ):
        # mixed Python objects: fall back to str() per cell
        cells = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in series]
        values = pa.array(cells, LS)
    if pa.types.is_timestamp(values.type):
        return values
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_null(values.type):
        return pa.nulls(len(values), LS)
    values = values.cast(LS)
    return empty_to_null(values)


class Rows:
    """The HR columns of the rows being evaluated (a slice or a selection of the whole data)."""

    def __init__(self, sources: dict[str, pa.Array], positions: np.ndarray | slice, n: int) -> None:
        self._sources = sources
        self._positions = positions
        self.n = n
        self._cache: dict[str, pa.Array] = {}

    def raw(self, column: str) -> pa.Array:
        """The column as converted: texts, or timestamps for datetime columns."""
        if column not in self._cache:
            values = self._sources[column]
            if isinstance(self._positions, slice):
                start = self._positions.start or 0
                values = values.slice(start, self.n)
            else:
                values = values.take(pa.array(self._positions))
            self._cache[column] = values
        return self._cache[column]

    def text(self, column: str) -> pa.Array:
        """The column as texts (a datetime column in ISO 8601)."""
        values = self.raw(column)
        if pa.types.is_timestamp(values.type):
            fmt = "%Y-%m-%dT%H:%M:%S%z" if values.type.tz else "%Y-%m-%dT%H:%M:%S"
            seconds = values.cast(pa.timestamp("s", tz=values.type.tz), safe=False)
            values = _colon_offset(pc.strftime(seconds, fmt)).cast(LS)
        return values


# -- one attribute -------------------------------------------------------------------------------


@dataclass
class Problems:
    """Rejection reasons found for the rows of a chunk, attribute by attribute."""

    n: int
    reasons: list[pa.Array] = field(default_factory=list)

    def add(self, mask: pa.Array, reason: pa.Array | str) -> None:
        """Record ``reason`` (one text, or one per row) for the rows where ``mask`` is true."""
        mask = pc.fill_null(mask, False)
        if pc.any(mask).as_py():
            self.reasons.append(pc.if_else(mask, join(reason, "; "), _NULL))

    def combined(self) -> pa.Array | None:
        """One reason text per row (null for rows without problems), or ``None`` when all rows are fine."""
        if not self.reasons:
            return None
        merged = concat_skipping_nulls(self.reasons)
        merged = pc.if_else(is_empty(merged), _NULL, merged)
        return pc.utf8_slice_codeunits(merged, 0, -2)  # drop the last "; "


def _columns_note(spec: AttributeSpec) -> str:
    columns = spec.columns
    if not columns:
        return ""
    return f" (column {columns[0]})" if len(columns) == 1 else f" (columns {', '.join(columns)})"


def _quoted_value(values: pa.Array) -> pa.Array:
    short = pc.utf8_slice_codeunits(values, 0, _REASON_VALUE_CHARS)
    longer = pc.greater(pc.utf8_length(values), _REASON_VALUE_CHARS)
    return join("'", pc.if_else(longer, join(short, "..."), short), "'")


def _source_values(spec: AttributeSpec, rows: Rows) -> pa.Array:
    source = spec.source
    if isinstance(source, ColumnSource):
        if spec.value_type == DATETIME:
            return rows.raw(source.column)
        return rows.text(source.column)
    if isinstance(source, ConstantSource):
        value = source.value
        if spec.value_type == BOOLEAN:
            return pa.repeat(pa.scalar(bool(value)), rows.n)
        return pa.repeat(text(str(value)), rows.n)
    if isinstance(source, ExprSource):
        return source.expression.evaluate(rows.text, rows.n)
    if isinstance(source, JoinSource):
        sep = source.sep
        fragments = [join(sep, rows.text(c)) for c in source.parts]
        joined = concat_skipping_nulls(fragments)
        if sep:
            joined = pc.utf8_slice_codeunits(joined, len(sep))
        return empty_to_null(joined)
    assert isinstance(source, TemplateSource)
    parts: list[pa.Array | pa.Scalar] = []
    for literal, column in source.pieces:
        if literal:
            parts.append(text(literal))
        if column is not None:
            parts.append(rows.text(column))
    filled = concat_skipping_nulls(parts)
    present = [pc.is_valid(rows.text(c)) for c in source.columns]
    any_present = present[0]
    for more in present[1:]:
        any_present = pc.or_(any_present, more)
    return empty_to_null(pc.if_else(any_present, filled, _NULL))  # all columns empty: no value


def _apply_map(values: pa.Array, value_map: dict[str, str]) -> pa.Array:
    keys = pa.array(list(value_map), LS)
    replacements = pa.array(list(value_map.values()), LS)
    index = pc.index_in(values, value_set=keys)
    mapped = pc.take(replacements, index)
    return empty_to_null(pc.if_else(pc.is_null(index), values, mapped))


class DateCache:
    """Distinct date texts already parsed, with their ISO 8601 form (null where they do not parse).

    HR dates repeat a lot (a million employees share a few thousand hire dates), so each distinct text
    is parsed once per run rather than once per chunk.
    """

    def __init__(self) -> None:
        self.known = pa.array([], LS)
        self.formatted = pa.array([], LS)


def evaluate(
    spec: AttributeSpec, rows: Rows, problems: Problems, caches: dict[str, DateCache] | None = None
) -> pa.Array:
    """Compute one attribute for ``rows``: its typed values (nulls where empty) and the problems found.

    :param caches: per-attribute caches kept across the chunks of one run.
    :returns: large_string for string and datetime attributes, bool or int64 otherwise.
    """
    path = str(spec.path)
    note = _columns_note(spec)
    values = _source_values(spec, rows)
    is_text = pa.types.is_large_string(values.type)
    if spec.value_map and is_text:
        values = _apply_map(values, dict(spec.value_map))
    if spec.default is not None and values.null_count:
        default = spec.default
        if pa.types.is_timestamp(values.type):
            values = rows.text(spec.source.columns[0]) if spec.source.columns else values
            is_text = True
        values = pc.fill_null(values, text(default if isinstance(default, str) else str(default)))

    # "empty" is judged before the type check, so a value that fails it is reported once, for that
    missing = pc.is_null(values) if spec.required else None
    if spec.value_type == STRING:
        values = _check_string(spec, values, problems, path, note)
    elif spec.value_type == BOOLEAN:
        values = _to_boolean(values, problems, path, note) if is_text else values
    elif spec.value_type == INTEGER:
        values = _to_integer(values, problems, path, note)
    else:
        cache = None if caches is None else caches.setdefault(path, DateCache())
        values = _to_datetime(spec, values, problems, path, note, cache)

    if missing is not None:
        problems.add(missing, f"{path} is empty{note}")
    return values


def _check_string(
    spec: AttributeSpec, values: pa.Array, problems: Problems, path: str, note: str
) -> pa.Array:
    if spec.max_length is not None:
        lengths = pc.utf8_length(values)
        over = pc.greater(lengths, spec.max_length)
        if pc.any(over).as_py():
            reason = join(
                f"{path} is ",
                lengths.cast(LS),
                f" characters long, over the limit of {spec.max_length}{note}",
            )
            problems.add(over, reason)
    if spec.path.attribute == "emails" and spec.path.sub_attribute == "value":
        bad = pc.invert(pc.fill_null(pc.match_substring_regex(values, _EMAIL), True))
        if pc.any(bad).as_py():
            problems.add(bad, join(f"{path}: ", _quoted_value(values), f" is not an email address{note}"))
    return values


def _to_boolean(values: pa.Array, problems: Problems, path: str, note: str) -> pa.Array:
    folded = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    true = pc.is_in(folded, value_set=_TRUE_TEXTS)
    false = pc.is_in(folded, value_set=_FALSE_TEXTS)
    bad = pc.and_(pc.is_valid(values), pc.invert(pc.or_(true, false)))
    problems.add(bad, join(f"{path}: ", _quoted_value(values), f" is not true or false{note}"))
    result = pc.if_else(true, True, pc.if_else(false, False, pa.scalar(None, pa.bool_())))
    return result


def _to_integer(values: pa.Array, problems: Problems, path: str, note: str) -> pa.Array:
    good = pc.fill_null(pc.match_substring_regex(values, _INTEGER), False)
    bad = pc.and_(pc.is_valid(values), pc.invert(good))
    problems.add(bad, join(f"{path}: ", _quoted_value(values), f" is not a whole number{note}"))
    cleaned = pc.if_else(good, pc.replace_substring_regex(pc.utf8_trim_whitespace(values), r"^\+", ""), _NULL)
    return cleaned.cast(pa.int64())


def _tz(name: str) -> tzinfo:
    if name.upper() in ("Z", "UTC"):
        return timezone.utc
    match = re.match(r"^([+-])(\d{2}):?(\d{2})$", name)
    if match:
        sign = -1 if match[1] == "-" else 1
        return timezone(sign * timedelta(hours=int(match[2]), minutes=int(match[3])))
    return ZoneInfo(name)


def _colon_offset(values: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(values, r"([+-]\d\d)(\d\d)$", r"\1:\2")


def _format_timestamps(stamps: pd.Series) -> pa.Array:
    """Aware timestamps -> ``YYYY-MM-DDTHH:MM:SS+HH:MM`` texts (nulls stay null)."""
    array = as_array(pa.array(stamps, from_pandas=True))
    seconds = array.cast(pa.timestamp("s", tz=array.type.tz), safe=False)
    return _colon_offset(pc.strftime(seconds, "%Y-%m-%dT%H:%M:%S%z")).cast(LS)


def _localise(stamps: pd.Series, tz: tzinfo) -> pd.Series:
    if stamps.dt.tz is None:
        return stamps.dt.tz_localize(
            tz, ambiguous=np.zeros(len(stamps), dtype=bool), nonexistent="shift_forward"
        )
    return stamps.dt.tz_convert(tz)


def _parse_datetime_texts(texts: pd.Series, spec: AttributeSpec, tz: tzinfo) -> pd.Series:
    """Parse distinct HR date texts into aware timestamps in ``tz`` (NaT where they do not parse).

    With a declared ``date_format``, values in that format are read with it; values already in ISO 8601 with
    an offset (what the pipeline's normalisation writes for the date columns it parsed with the same
    declaration) are read as such, so a date is never parsed twice by two declarations.
    """
    if spec.date_format:
        parsed = _localise(pd.to_datetime(texts, format=spec.date_format, errors="coerce"), tz)
        iso = parsed.isna() & texts.str.contains(_HAS_OFFSET, regex=True)
        if iso.any():
            aware = pd.to_datetime(texts[iso], format="ISO8601", errors="coerce", utc=True).dt.tz_convert(tz)
            parsed = parsed.astype(aware.dtype).where(~iso, aware.reindex(texts.index))
        return parsed
    with_offset = texts.str.contains(_HAS_OFFSET, regex=True)
    pieces = []
    if (~with_offset).any():
        naive = pd.to_datetime(texts[~with_offset], format="ISO8601", errors="coerce")
        pieces.append(_localise(naive, tz))
    if with_offset.any():
        aware = pd.to_datetime(texts[with_offset], format="ISO8601", errors="coerce", utc=True)
        pieces.append(aware.dt.tz_convert(tz))
    return pd.concat(pieces).reindex(texts.index)


def _to_datetime(
    spec: AttributeSpec, values: pa.Array, problems: Problems, path: str, note: str, cache: DateCache | None
) -> pa.Array:
    tz = _tz(spec.timezone or "+00:00")
    if pa.types.is_timestamp(values.type):
        return _format_timestamps(_localise(pd.Series(values.to_pandas()), tz))
    if values.null_count == len(values):
        return pa.nulls(len(values), LS)
    cache = cache or DateCache()
    index = pc.index_in(values, value_set=cache.known)
    new = pc.and_(pc.is_valid(values), pc.is_null(index))
    if pc.any(new).as_py():
        distinct = pc.unique(pc.filter(values, new))
        parsed = _parse_datetime_texts(pd.Series(distinct.to_pylist(), dtype=object), spec, tz)
        cache.known = pa.concat_arrays([cache.known, distinct])
        cache.formatted = pa.concat_arrays([cache.formatted, _format_timestamps(parsed)])
        index = pc.index_in(values, value_set=cache.known)
    result = pc.take(cache.formatted, index)
    bad = pc.and_(pc.is_valid(values), pc.is_null(result))
    expected = f" in the format {spec.date_format}" if spec.date_format else ""
    problems.add(bad, join(f"{path}: ", _quoted_value(values), f" is not a date{expected}{note}"))
    return result


# -- JSON ----------------------------------------------------------------------------------------


def _key(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


@dataclass
class _Member:
    """One ``"key": value`` of a JSON object, or a nested object, or a list of entries."""

    key: str
    path: str | None = None  # a scalar
    value_type: str = STRING
    children: list[_Member] = field(default_factory=list)  # an object
    entries: dict[str | None, list[_Member]] | None = None  # a multi-valued attribute, by entry type

    def child(self, key: str) -> _Member:
        for member in self.children:
            if member.key == key and member.path is None:
                return member
        member = _Member(key)
        self.children.append(member)
        return member


class Serializer:
    """Assembles each record's JSON from its typed attribute columns, column-wise."""

    def __init__(self, mapping: AttributeMapping) -> None:
        self.mapping = mapping
        root = _Member("")
        ordered = sorted(
            mapping.attributes,
            key=lambda s: (
                {"externalId": 0, "userName": 1, "active": 2}.get(str(s.path), 3)
                + (0 if s.path.is_core else 10 if s.path.is_enterprise else 20)
            ),
        )
        for spec in ordered:
            path = spec.path
            parent = root if path.is_core else root.child(path.schema)
            if path.multi_valued:
                container = parent.child(path.attribute)
                if container.entries is None:
                    container.entries = {}
                fields = container.entries.setdefault(path.type_filter, [])
                fields.append(_Member(path.sub_attribute or "", str(path), spec.value_type))
            elif path.sub_attribute is not None:
                parent.child(path.attribute).children.append(
                    _Member(path.sub_attribute, str(path), spec.value_type)
                )
            else:
                parent.children.append(_Member(path.attribute, str(path), spec.value_type))
        self._root = root
        self._custom = [
            m
            for m in root.children
            if m.path is None and m.key.startswith("urn:") and m.key != ENTERPRISE_USER_SCHEMA
        ]
        self._schemas_head = f"{_key(CORE_USER_SCHEMA)},{_key(ENTERPRISE_USER_SCHEMA)}"

    def _scalar(self, member: _Member, values: pa.Array) -> pa.Array:
        key = _key(member.key)
        if member.value_type == BOOLEAN:
            return pc.if_else(values, text(f",{key}:true"), text(f",{key}:false"))
        if member.value_type == INTEGER:
            return join(f",{key}:", values.cast(LS))
        return join(f',{key}:"', json_escape(values), '"')

    def _fields(self, members: list[_Member], columns: dict[str, pa.Array]) -> list[pa.Array]:
        return [self._fragment(m, columns) for m in members]

    def _fragment(self, member: _Member, columns: dict[str, pa.Array]) -> pa.Array:
        if member.path is not None:
            return self._scalar(member, columns[member.path])
        key = _key(member.key)
        if member.entries is not None:
            entries = []
            for entry_type, fields in member.entries.items():
                content = [f for f in fields if f.key != "primary"]
                inner = concat_skipping_nulls(self._fields(fields, columns))
                if len(content) == len(fields):
                    has_content = pc.invert(is_empty(inner))
                else:  # an entry holding only "primary" is no entry
                    has_content = pc.invert(is_empty(concat_skipping_nulls(self._fields(content, columns))))
                head = "{" + (f'"type":{_key(entry_type)}' if entry_type is not None else "")
                if entry_type is None:
                    inner = pc.utf8_slice_codeunits(inner, 1)
                entries.append(pc.if_else(has_content, join(f",{head}", inner, "}"), _NULL))
            listed = concat_skipping_nulls(entries)
            return pc.if_else(
                is_empty(listed), _NULL, join(f",{key}:[", pc.utf8_slice_codeunits(listed, 1), "]")
            )
        inner = concat_skipping_nulls(self._fields(member.children, columns))
        return pc.if_else(is_empty(inner), _NULL, join(f",{key}:{{", pc.utf8_slice_codeunits(inner, 1), "}"))

    def _dense(self, member: _Member, columns: dict[str, pa.Array]) -> bool:
        """Whether every value under ``member`` is present on every row, so its JSON has a fixed shape."""
        if member.path is not None:
            return columns[member.path].null_count == 0
        if member.entries is not None:
            return all(self._dense(f, columns) for fields in member.entries.values() for f in fields)
        return all(self._dense(c, columns) for c in member.children)

    def _parts(self, member: _Member, columns: dict[str, pa.Array], lead: str) -> list[pa.Array | pa.Scalar]:
        """The JSON of a dense member as pieces to concatenate (no per-member concatenation needed)."""
        key = _key(member.key)
        if member.path is not None:
            values = columns[member.path]
            if member.value_type == BOOLEAN:
                return [pc.if_else(values, text(f"{lead}{key}:true"), text(f"{lead}{key}:false"))]
            if member.value_type == INTEGER:
                return [text(f"{lead}{key}:"), values.cast(LS)]
            return [text(f'{lead}{key}:"'), json_escape(values), text('"')]
        parts: list[pa.Array | pa.Scalar] = []
        if member.entries is not None:
            parts.append(text(f"{lead}{key}:["))
            for i, (entry_type, fields) in enumerate(member.entries.items()):
                sep = "," if i else ""
                if entry_type is not None:
                    parts.append(text(f'{sep}{{"type":{_key(entry_type)}'))
                    for field_member in fields:
                        parts += self._parts(field_member, columns, ",")
                else:
                    parts.append(text(sep + "{"))
                    for j, field_member in enumerate(fields):
                        parts += self._parts(field_member, columns, "," if j else "")
                parts.append(text("}"))
            parts.append(text("]"))
            return parts
        parts.append(text(f"{lead}{key}:{{"))
        for j, child in enumerate(member.children):
            parts += self._parts(child, columns, "," if j else "")
        parts.append(text("}"))
        return parts

    def records(
        self,
        columns: dict[str, pa.Array],
        n: int,
        head: Sequence[pa.Array | pa.Scalar] = (),
        tail: Sequence[pa.Array | pa.Scalar] = (),
    ) -> pa.Array:
        """The JSON object of each record (the ``data`` of its bulk operation), between ``head`` and ``tail``.

        Members whose values are all present in this chunk are laid out as fixed pieces; the others become one
        fragment each (null where the member is empty). One concatenation then makes every record.
        """
        if n == 0:
            return pa.array([], LS)
        schemas: list[pa.Array | pa.Scalar] = [text('{"schemas":[' + self._schemas_head)]
        body: list[pa.Array | pa.Scalar] = []
        for member in self._root.children:
            if self._dense(member, columns):
                body += self._parts(member, columns, ",")
                fragment = None
            else:
                fragment = self._fragment(member, columns)
                body.append(fragment)
            if member in self._custom:
                listed = text("," + _key(member.key))
                schemas.append(
                    listed if fragment is None else pc.if_else(pc.is_null(fragment), _EMPTY, listed)
                )
        parts = [*head, *schemas, text("]"), *body, text("}"), *tail]
        return concat_skipping_nulls(_merge_texts(parts))

    def operations(
        self, columns: dict[str, pa.Array], n: int, external_ids: pa.Array, bulk_id_prefix: str
    ) -> pa.Array:
        """Each record wrapped in its bulk operation, followed by a comma."""
        head = [
            text(f'{{"method":{_key(BULK_OPERATION_METHOD)},"bulkId":"' + _key(bulk_id_prefix)[1:-1]),
            json_escape(external_ids),
            text(f'","path":{_key(BULK_OPERATION_PATH)},"data":'),
        ]
        return self.records(columns, n, head=head, tail=[text("},")])


def _merge_texts(parts: list[pa.Array | pa.Scalar]) -> list[pa.Array | pa.Scalar]:
    """Fold neighbouring constant texts into one, so the concatenation has fewer inputs."""
    merged: list[pa.Array | pa.Scalar] = []
    for part in parts:
        if isinstance(part, pa.Scalar) and merged and isinstance(merged[-1], pa.Scalar):
            merged[-1] = text(merged[-1].as_py() + part.as_py())
        else:
            merged.append(part)
    return merged


def record_hashes(records: pa.Array) -> pa.Array:
    """A stable hash of each record's JSON: the first 16 bytes of BLAKE2b, in hex."""
    offsets = np.frombuffer(
        records.buffers()[1], dtype=np.int64, count=len(records) + 1, offset=records.offset * 8
    )
    data = memoryview(records.buffers()[2]) if records.buffers()[2] is not None else memoryview(b"")
    bounds = offsets.tolist()
    digests = [
        hashlib.blake2b(data[a:b], digest_size=16).hexdigest()
        for a, b in zip(bounds[:-1], bounds[1:], strict=False)
    ]
    return pa.array(digests, LS)


# -- request assembly ----------------------------------------------------------------------------

REQUEST_HEAD = ('{"schemas":[' + _key(BULK_REQUEST_SCHEMA) + '],"Operations":[').encode()
REQUEST_TAIL = b'],"failOnErrors":null}'


class OperationStore:
    """Operation JSON texts kept in pyarrow buffers, cut into requests on demand (no copy until asked)."""

    def __init__(self) -> None:
        self._arrays: list[pa.Array] = []
        self._ends: list[int] = []  # cumulative operation counts
        self.count = 0

    def append(self, operations: pa.Array) -> None:
        if len(operations):
            self._arrays.append(operations)
            self.count += len(operations)
            self._ends.append(self.count)

    def _segments(self, start: int, stop: int) -> Iterator[memoryview]:
        chunk = int(np.searchsorted(self._ends, start, side="right"))
        while start < stop:
            array = self._arrays[chunk]
            first = self._ends[chunk] - len(array)
            lo, hi = start - first, min(stop, self._ends[chunk]) - first
            offsets = np.frombuffer(
                array.buffers()[1], dtype=np.int64, count=len(array) + 1, offset=array.offset * 8
            )
            yield memoryview(array.buffers()[2])[offsets[lo] : offsets[hi]]
            start = first + hi
            chunk += 1

    def request_bytes(self, start: int, stop: int) -> bytes:
        """The bulk request holding operations ``start`` to ``stop - 1``."""
        segments = list(self._segments(start, stop))
        if segments:
            segments[-1] = segments[-1][:-1]  # the last operation's trailing comma goes
        return b"".join([REQUEST_HEAD, *segments, REQUEST_TAIL])


def iter_chunks(n: int, size: int | None = None) -> Iterator[tuple[int, int]]:
    """(start, stop) of each chunk of ``n`` rows."""
    size = size or CHUNK_ROWS
    for start in range(0, n, size):
        yield start, min(n, start + size)
