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
    arr = pc.utf8_normalize(pc.utf8_trim_whitespace(arr), "NFC")
    arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)
    return from_arrow(arr, s.index)


def clean_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Apply :func:`clean_text` to every column of ``df`` (a new frame; the index is kept)."""
    return pd.DataFrame({c: clean_text(df[c]) for c in df.columns}, index=df.index)


def has_control_chars(s: pd.Series) -> pd.Series:
    """True where the value contains a control character (NUL included)."""
    arr = to_arrow(s)
    hit = pc.fill_null(pc.match_substring_regex(arr, CONTROL_CHARS_RE2), False)
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


def parse_dates(s: pd.Series, timezone: str, date_format: str | None = None) -> tuple[pd.Series, pd.Series]:
    """Parse a date column; return ISO 8601 strings with offset and a mask of unparseable values.

    Values without an offset are read as wall-clock time at ``timezone`` (a date alone is midnight there).
    Values with an offset (or ``Z``) are converted to ``timezone``, so every output carries the same offset,
    e.g. ``2010-07-10T00:00:00+00:00``.
    """
    timezone = check_offset(timezone)
    present = s.notna()
    out = pd.Series(np.nan, index=s.index, dtype=TEXT_DTYPE)
    if not present.any():
        return out, pd.Series(False, index=s.index)
    values = s[present]
    arr = to_arrow(values)
    fmt = date_format or "ISO8601"
    aware = pd.Series(
        pc.match_substring_regex(arr, _AWARE_SUFFIX_RE2).to_numpy(zero_copy_only=False), index=values.index
    )
    wall = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
    if (~aware).any():
        naive = pd.to_datetime(values[~aware], format=fmt, errors="coerce")
        if isinstance(naive.dtype, pd.DatetimeTZDtype):  # a user format with %z
            naive = _to_wall_clock(naive, timezone)
        wall[~aware] = naive.astype("datetime64[us]")
    if aware.any():
        parsed = pd.to_datetime(values[aware], format=fmt, errors="coerce", utc=True)
        wall[aware] = _to_wall_clock(parsed, timezone)
    bad = wall.isna()
    ok = ~bad
    date_only = pd.Series(
        pc.match_substring_regex(arr, _DATE_ONLY_RE2).to_numpy(zero_copy_only=False), index=values.index
    )
    fast = ok & date_only & (date_format is None)
    text = pd.Series(np.nan, index=values.index, dtype=TEXT_DTYPE)
    if fast.any():
        text[fast] = values[fast] + "T00:00:00" + timezone
    slow = ok & ~fast
    if slow.any():
        stamps = wall[slow].to_numpy().astype("datetime64[s]")
        text[slow] = pd.Series(np.datetime_as_string(stamps, unit="s"), index=wall[slow].index) + timezone
    out[present] = text
    bad_all = pd.Series(False, index=s.index)
    bad_all[present] = bad
    return out, bad_all


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

    def result(self) -> pd.Series:
        """One joined reason per failing row, in the order of the original index."""
        if not self._parts:
            return pd.Series([], index=self._index[:0], dtype=object)
        stacked = pd.concat(self._parts)
        order = pd.Series(np.arange(len(self._index)), index=self._index)
        joined = stacked.groupby(level=0, sort=False).agg("; ".join)
        return joined.iloc[np.argsort(order.loc[joined.index].to_numpy(), kind="stable")]
