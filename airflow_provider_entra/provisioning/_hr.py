"""Column-at-a-time helpers shared by the HR stages (private).

Every helper works on a whole :class:`pandas.Series` through pyarrow compute kernels or pandas' vectorised
methods, never one Python call per row, so a million-row export stays in the seconds range.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: Columns every quarantine frame has, whichever stage produced it.
QUARANTINE_COLUMNS = ("row", "externalId", "stage", "reason")

#: The pandas dtype used for text: pandas' default ``str`` dtype (pyarrow storage, missing values are NaN).
TEXT_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)

#: C0 controls, DEL and C1 controls. Leading/trailing whitespace (``\t``, ``\r``, ``\n``) is trimmed before
#: this check, so only controls inside a value (or a NUL anywhere) are caught.
CONTROL_CHARS_RE2 = r"[\x00-\x1f\x7f-\x9f]"

#: The ASCII bytes pyarrow's ``utf8_trim_whitespace`` removes: TAB..CR, FS..US and space.
_TRIMMED_ASCII = np.zeros(256, dtype=bool)
_TRIMMED_ASCII[[*range(0x09, 0x0E), *range(0x1C, 0x21)]] = True
#: First bytes of the UTF-8 encodings of non-ASCII Unicode whitespace.
_SPACE_LEAD_BYTES = np.zeros(256, dtype=bool)
_SPACE_LEAD_BYTES[[0xC2, 0xE1, 0xE2, 0xE3]] = True
_OFFSET_RE = re.compile(r"^[+-](?:[01]\d|2[0-3]):[0-5]\d$")
_AWARE_SUFFIX_RE2 = r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"
_DATE_ONLY_RE2 = r"^\d{4}-\d{2}-\d{2}$"


def to_arrow(s: pd.Series) -> pa.Array:
    """Return ``s`` as a pyarrow string array (zero-copy for pyarrow-backed text)."""
    if not isinstance(s.dtype, pd.StringDtype):
        s = as_text(s)
    arr = pa.array(s, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr


def from_arrow(arr: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    """Wrap a pyarrow string array as a text Series with ``index``."""
    return pd.Series(pd.array(arr, dtype=TEXT_DTYPE), index=index)


def as_text(s: pd.Series) -> pd.Series:
    """Turn any column into text; whole floats (a numeric id column with gaps) lose their ``.0``."""
    if isinstance(s.dtype, pd.StringDtype):
        return s
    if pd.api.types.is_float_dtype(s.dtype):
        values = s.to_numpy(dtype="float64", na_value=np.nan)
        finite = values[~np.isnan(values)]
        if finite.size == 0 or np.all(np.mod(finite, 1) == 0):
            return s.astype("Int64").astype(TEXT_DTYPE)
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s.map(lambda v: v.isoformat(), na_action="ignore").astype(TEXT_DTYPE)
    return s.astype(TEXT_DTYPE)


def clean_text(s: pd.Series) -> pd.Series:
    """Trim Unicode whitespace, normalise to NFC and turn empty strings into missing values."""
    arr = to_arrow(s)
    ascii_only = _all_ascii(arr)
    if _is_clean(arr, ascii_only):  # nothing to do: keep the column as it is (no copy)
        return (
            s
            if isinstance(s.dtype, pd.StringDtype) and s.dtype.na_value is np.nan
            else from_arrow(arr, s.index)
        )
    arr = pc.utf8_trim_whitespace(arr)
    if not ascii_only:  # ASCII text is already NFC
        arr = pc.utf8_normalize(arr, "NFC")
    arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)
    return from_arrow(arr, s.index)


def clean_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Apply :func:`clean_text` to every column of ``df`` (a new frame; the index is kept)."""
    return pd.DataFrame({c: clean_text(df[c]) for c in df.columns}, index=df.index, copy=False)


def _all_ascii(arr: pa.Array) -> bool:
    return bool(pc.all(pc.string_is_ascii(arr)).as_py() in (True, None))


def _is_clean(arr: pa.Array, ascii_only: bool) -> bool:
    """True when no value is empty, none has whitespace at an edge, and all are NFC (cheap checks first)."""
    offsets, raw = _offsets_and_bytes(arr)
    lengths = np.diff(offsets)
    present = lengths > 0
    if arr.null_count:
        valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        if (valid & ~present).any():
            return False
    elif not present.all():
        return False
    starts = (offsets[:-1] - offsets[0])[present]
    ends = (offsets[1:] - offsets[0])[present] - 1
    if _TRIMMED_ASCII[raw[starts]].any() or _TRIMMED_ASCII[raw[ends]].any():
        return False
    if ascii_only:
        return True
    # Non-ASCII whitespace (U+0085, U+00A0, U+1680, U+180E, U+2000-U+205F, U+3000) is C2 85/A0 or a 3-byte
    # sequence E1/E2/E3 80|81|9A|A0 xx: a value that may start or end with one takes the slow path.
    if _SPACE_LEAD_BYTES[raw[starts]].any():
        return False
    lens = lengths[present]
    two = (lens >= 2) & (raw[np.maximum(ends - 1, 0)] == 0xC2) & np.isin(raw[ends], (0x85, 0xA0))
    three = (
        (lens >= 3)
        & _SPACE_LEAD_BYTES[raw[np.maximum(ends - 2, 0)]]
        & np.isin(raw[np.maximum(ends - 1, 0)], (0x80, 0x81, 0x9A, 0xA0))
    )
    if two.any() or three.any():
        return False
    wide = pc.invert(pc.string_is_ascii(arr))
    sample = arr.filter(pc.fill_null(wide, False))
    return bool(pc.all(pc.equal(sample, pc.utf8_normalize(sample, "NFC"))).as_py() in (True, None))


def _offsets_and_bytes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The offsets and the UTF-8 bytes of a (large_)string array's values (views, no copies)."""
    offsets_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    _, offsets_buf, data_buf = arr.buffers()
    if offsets_buf is None or len(arr) == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(offsets_buf, dtype=offsets_type)[arr.offset : arr.offset + len(arr) + 1]
    if data_buf is None:
        return offsets, np.zeros(0, dtype=np.uint8)
    return offsets, np.frombuffer(data_buf, dtype=np.uint8)[offsets[0] : offsets[-1]]


def _value_bytes(arr: pa.Array) -> np.ndarray:
    """The UTF-8 bytes of all values of a (large_)string array, back to back."""
    return _offsets_and_bytes(arr)[1]


def has_control_chars(s: pd.Series) -> pd.Series:
    """True where the value contains a control character (NUL included)."""
    arr = to_arrow(s)
    raw = _value_bytes(arr)
    # Column-level screen on the raw UTF-8 bytes: C0/DEL are single bytes, C1 is 0xC2 followed by 0x80-0x9F.
    c0 = (raw < 0x20) | (raw == 0x7F)
    c1 = (raw[:-1] == 0xC2) & (raw[1:] >= 0x80) & (raw[1:] <= 0x9F)
    if not (c0.any() or c1.any()):
        return pd.Series(False, index=s.index)
    hit = pc.fill_null(pc.match_substring_regex(arr, CONTROL_CHARS_RE2), False)
    return pd.Series(hit.to_numpy(zero_copy_only=False), index=s.index, dtype=bool)


def matches(s: pd.Series, pattern: str) -> pd.Series:
    """True where ``pattern`` (RE2 syntax) is found in the value; missing values are False."""
    hit = pc.fill_null(pc.match_substring_regex(to_arrow(s), pattern), False)
    return pd.Series(hit.to_numpy(zero_copy_only=False), index=s.index, dtype=bool)


def text_length(s: pd.Series) -> pd.Series:
    """Length in characters (code points); 0 for missing values."""
    arr = pc.fill_null(pc.utf8_length(to_arrow(s)), 0)
    return pd.Series(arr.to_numpy(zero_copy_only=False), index=s.index)


def lookup(s: pd.Series, table: dict[str, Any]) -> pd.Series:
    """Map lower-cased values of ``s`` through ``table`` (hash join, not a Python loop); misses are NaN."""
    keys = pd.Index(list(table))
    pos = keys.get_indexer(s.str.lower())
    values = np.asarray(list(table.values()), dtype=object)
    out = np.where(pos >= 0, values[np.clip(pos, 0, None)] if len(values) else None, None)
    return pd.Series(out, index=s.index, dtype=object)


def status_table(active_values: Iterable[str], inactive_values: Iterable[str]) -> dict[str, str]:
    """Lower-cased status spelling -> canonical ``Active``/``Inactive``."""
    table = {v.strip().lower(): "Inactive" for v in inactive_values}
    table.update({v.strip().lower(): "Active" for v in active_values})
    return table


def canonical_status(s: pd.Series, table: dict[str, str]) -> tuple[pd.Series, pd.Series]:
    """Return the canonical status and a mask of present-but-unknown values."""
    out = lookup(s, table)
    unknown = s.notna() & out.isna()
    return out.astype(TEXT_DTYPE), unknown


BOOLEAN_TABLE = {
    "true": True,
    "t": True,
    "yes": True,
    "y": True,
    "1": True,
    "false": False,
    "f": False,
    "no": False,
    "n": False,
    "0": False,
}


def parse_boolean(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Return the column as nullable ``boolean`` and a mask of present-but-unreadable values."""
    out = lookup(s, BOOLEAN_TABLE)
    bad = s.notna() & out.isna()
    return out.astype("boolean"), bad


def check_offset(timezone: str) -> str:
    """Validate a fixed UTC offset like ``+00:00`` or ``-05:00`` (``Z`` means ``+00:00``)."""
    if timezone in ("Z", "z"):
        return "+00:00"
    if not _OFFSET_RE.match(timezone):
        raise ValueError(f"timezone must be a fixed UTC offset like '+00:00' or '-05:00', got {timezone!r}")
    return timezone


def parse_dates(
    s: pd.Series, timezone: str, date_format: str | None = None, *, output: bool = True
) -> tuple[pd.Series, pd.Series]:
    """Parse a date column; return ISO 8601 strings with offset and a mask of unparseable values.

    Values without an offset are read as wall-clock time at ``timezone`` (a date alone is midnight there).
    Values with an offset (or ``Z``) are converted to ``timezone``, so every output carries the same offset,
    e.g. ``2010-07-10T00:00:00+00:00``. With ``output=False`` only the mask is computed (the text is empty).
    """
    timezone = check_offset(timezone)
    present = s.notna().to_numpy()
    out = pd.Series(np.nan, index=s.index, dtype=TEXT_DTYPE)
    bad_all = pd.Series(False, index=s.index)
    if not present.any():
        return out, bad_all
    values = s if present.all() else s[present]
    arr = to_arrow(values)
    fmt = date_format or "ISO8601"
    aware = pc.fill_null(pc.match_substring_regex(arr, _AWARE_SUFFIX_RE2), False).to_numpy(
        zero_copy_only=False
    )
    if not aware.any():
        wall = _parse_naive(values, fmt, timezone)
    elif aware.all():
        wall = _to_wall_clock(pd.to_datetime(values, format=fmt, errors="coerce", utc=True), timezone)
    else:
        wall = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
        wall[~aware] = _parse_naive(values[~aware], fmt, timezone)
        wall[aware] = _to_wall_clock(
            pd.to_datetime(values[aware], format=fmt, errors="coerce", utc=True), timezone
        )
    bad = wall.isna().to_numpy()
    bad_all[present] = bad
    if not output:
        return out, bad_all

    ok = ~bad
    fast = np.zeros(len(values), dtype=bool)
    if date_format is None:
        fast = ok & pc.fill_null(pc.match_substring_regex(arr, _DATE_ONLY_RE2), False).to_numpy(
            zero_copy_only=False
        )
    if fast.all():  # the usual HR export: every value a plain date
        tail = pa.scalar("T00:00:00" + timezone, arr.type)
        text = from_arrow(pc.binary_join_element_wise(arr, tail, pa.scalar("", arr.type)), values.index)
    else:
        text = pd.Series(np.nan, index=values.index, dtype=TEXT_DTYPE)
        if fast.any():
            text[fast] = values[fast] + "T00:00:00" + timezone
        slow = ok & ~fast
        if slow.any():
            stamps = wall[slow].to_numpy().astype("datetime64[s]")
            text[slow] = pd.Series(np.datetime_as_string(stamps, unit="s"), index=wall.index[slow]) + timezone
    if present.all():
        return text, bad_all
    out[present] = text
    return out, bad_all


def _parse_naive(values: pd.Series, fmt: str, timezone: str) -> pd.Series:
    parsed = pd.to_datetime(values, format=fmt, errors="coerce")
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):  # a user format with %z
        return _to_wall_clock(parsed, timezone)
    return parsed.astype("datetime64[us]")


def _to_wall_clock(aware: pd.Series, timezone: str) -> pd.Series:
    sign = -1 if timezone[0] == "-" else 1
    hours, minutes = int(timezone[1:3]), int(timezone[4:6])
    offset = pd.Timedelta(hours=hours, minutes=minutes) * sign
    return (aware.dt.tz_convert("UTC").dt.tz_localize(None) + offset).astype("datetime64[us]")


def worker_sort_key(ids: pd.Series) -> pd.DataFrame:
    """Sort key ``(length, text)``: numeric ids in numeric order, any other id deterministically."""
    return pd.DataFrame({"_len": text_length(ids), "_id": ids}, index=ids.index)


def quarantine_frame(
    rows: Iterable[Any] | pd.Index | None = None,
    external_ids: Iterable[Any] | pd.Series | None = None,
    stage: str | Iterable[str] = "",
    reasons: Iterable[str] | pd.Series | None = None,
) -> pd.DataFrame:
    """Build a quarantine frame with the shared columns ``row``, ``externalId``, ``stage``, ``reason``.

    :param rows: the input row labels (the HR frame's index: 0-based data row for a freshly read CSV).
    :param external_ids: the record's externalId (WorkerID), missing when it was blank.
    :param stage: the stage that quarantined the rows (one value for all, or one per row).
    :param reasons: one human-readable reason per row, naming the field.
    :return: a frame with exactly :data:`QUARANTINE_COLUMNS`, empty when called with no rows.
    """
    row_values = list(rows) if rows is not None else []
    n = len(row_values)
    ids = list(external_ids) if external_ids is not None else [np.nan] * n
    why = list(reasons) if reasons is not None else [""] * n
    stages = [stage] * n if isinstance(stage, str) else list(stage)
    if not (len(ids) == len(why) == len(stages) == n):
        raise ValueError("quarantine_frame: rows, external_ids, stage and reasons must have the same length")
    return pd.DataFrame(
        {
            "row": pd.Series(row_values, dtype=None if n else "int64"),
            "externalId": pd.Series(ids, dtype=TEXT_DTYPE),
            "stage": pd.Series(stages, dtype=TEXT_DTYPE),
            "reason": pd.Series(why, dtype=TEXT_DTYPE),
        }
    )


def concat_quarantine(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Stack quarantine frames from several stages (keeps the shared columns and their order)."""
    parts = [f.loc[:, list(QUARANTINE_COLUMNS)] for f in frames if len(f)]
    if not parts:
        return quarantine_frame()
    return pd.concat(parts, ignore_index=True)


#: What a column name of an HR export looks like; a header with anything else is not echoed in messages (the
#: file may not be an export at all: a credentials file named as ``hr_path`` must not show its first line).
_COLUMN_NAME = re.compile(r"^[\w][\w .()#/&'+-]{0,63}$")


def describe_columns(columns: Iterable[object]) -> str:
    """``columns present: A, B, C`` when every name looks like a column name; otherwise a description that
    shows none of the file's content."""
    names = [str(c) for c in columns]
    if names and all(_COLUMN_NAME.match(n) for n in names):
        return f"columns present: {', '.join(names)}"
    return (
        f"the first line has {len(names)} field(s) that do not look like column names, so it is not shown: "
        "is this file an HR export (a CSV with a header row)?"
    )


class HrSchemaError(ValueError):
    """The HR export as a whole is unusable (for example required columns are missing).

    A whole-file problem fails the task with this message; single bad rows are quarantined instead.
    """

    def __init__(self, message: str, *, missing: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


class Reasons:
    """Collects per-row reasons from several checks and joins them with ``"; "`` (one line per row)."""

    def __init__(self, index: pd.Index) -> None:
        self._index = index
        self._parts: list[pd.Series] = []

    def add(self, mask: pd.Series, message: str | pd.Series) -> None:
        """Record ``message`` (one text, or a per-row Series) for the rows where ``mask`` is true."""
        mask = mask.fillna(False).astype(bool) if mask.dtype != bool else mask
        if not mask.any():
            return
        if isinstance(message, pd.Series):
            part = message[mask].astype(object)
        else:
            part = pd.Series(message, index=mask.index[mask.to_numpy()], dtype=object)
        self._parts.append(part)

    def add_values(self, mask: pd.Series, prefix: str, values: pd.Series, suffix: str = "") -> None:
        """Record ``prefix + value + suffix`` where ``mask`` is true (built for those rows only)."""
        mask = mask.fillna(False).astype(bool) if mask.dtype != bool else mask
        if not mask.any():
            return
        chosen = values[mask].astype(TEXT_DTYPE).fillna("")
        self._parts.append((prefix + chosen + suffix).astype(object))

    def result(self) -> pd.Series:
        """One joined reason per failing row, in the order of the original index."""
        if not self._parts:
            return pd.Series([], index=self._index[:0], dtype=object)
        stacked = pd.concat(self._parts)
        order = pd.Series(np.arange(len(self._index)), index=self._index)
        joined = stacked.groupby(level=0, sort=False).agg("; ".join)
        return joined.iloc[np.argsort(order.loc[joined.index].to_numpy(), kind="stable")]


def isin_text(s: pd.Series | pd.Index, values: pd.Series | pd.Index | Iterable[Any]) -> np.ndarray:
    """``s.isin(values)`` for text through one pyarrow hash join (pandas' ``isin`` loops over ``values``)."""
    if not isinstance(values, (pd.Series, pd.Index)):
        values = pd.Series(list(values), dtype=object)
    left = to_arrow(pd.Series(s, copy=False) if isinstance(s, pd.Index) else s)
    right_values = values if isinstance(values, pd.Series) else pd.Series(values, copy=False)
    if not isinstance(right_values.dtype, pd.StringDtype):
        right_values = pd.Series(right_values.to_numpy(), dtype=object).astype(TEXT_DTYPE)
    right = to_arrow(right_values)
    if len(right) == 0 or len(left) == 0:
        return np.zeros(len(left), dtype=bool)
    right = right.cast(left.type)
    if len(right) > 4 * len(left):
        # Hash the small side: keep the values that occur in ``s``, then look ``s`` up among those.
        right = right.filter(pc.fill_null(pc.is_in(right, value_set=left, skip_nulls=True), False))
        if len(right) == 0:
            return np.zeros(len(left), dtype=bool)
    hit = pc.is_in(left, value_set=right, skip_nulls=True)
    return np.asarray(pc.fill_null(hit, False).to_numpy(zero_copy_only=False), dtype=bool)


def index_in(s: pd.Series | pd.Index, values: pd.Series | pd.Index) -> np.ndarray:
    """Position of each value of ``s`` in ``values`` (first occurrence), -1 where absent; one pyarrow join."""
    left = to_arrow(pd.Series(s, copy=False) if isinstance(s, pd.Index) else s)
    right_values = pd.Series(values, copy=False) if isinstance(values, pd.Index) else values
    right = to_arrow(right_values)
    if len(right) == 0 or len(left) == 0:
        return np.full(len(left), -1, dtype=np.int64)
    pos = pc.index_in(left, value_set=right.cast(left.type), skip_nulls=True)
    return np.asarray(pc.fill_null(pos, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def take_text(values: pd.Series, positions: np.ndarray, index: pd.Index) -> pd.Series:
    """``values`` at ``positions`` as text (missing where a position is -1), with ``index``."""
    if len(values) == 0:
        return pd.Series(np.nan, index=index, dtype=TEXT_DTYPE)
    mask = pa.array(positions < 0)
    taken = to_arrow(values).take(pa.array(np.where(positions >= 0, positions, 0)))
    return from_arrow(pc.if_else(mask, pa.scalar(None, taken.type), taken), index)


def without_rows(frame: pd.DataFrame, labels: pd.Index | Iterable[Any]) -> pd.DataFrame:
    """``frame`` minus the rows with these index labels (a boolean mask: much faster than ``drop``)."""
    labels = pd.Index(labels)
    if len(labels) == 0:
        return frame
    keep = np.ones(len(frame), dtype=bool)
    keep[frame.index.get_indexer(labels)] = False
    return frame[keep]
