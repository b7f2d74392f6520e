"""``map_records``: HR rows -> one checked row of SCIM values per employee, with the rejected rows and why."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_entra.scim._engine import (
    LS,
    DateCache,
    OperationStore,
    Problems,
    Rows,
    Serializer,
    evaluate,
    iter_chunks,
    record_hashes,
    source_array,
)
from airflow_provider_entra.scim.errors import MappingError
from airflow_provider_entra.scim.mapping import AttributeMapping, AttributeSpec, ColumnSource
from airflow_provider_entra.scim.schema import BOOLEAN, INTEGER

#: Columns of ``rejected``: input row, its externalId (if any) and why it was not sent.
REJECTED_COLUMNS = ("row", "externalId", "reason")
#: Columns of ``collapsed``: a row dropped as an exact copy of ``duplicate_of``.
COLLAPSED_COLUMNS = ("row", "externalId", "duplicate_of")
RECORD_HASH = "record_hash"
_REASON_ROWS_SHOWN = 10


def empty_rejected() -> pd.DataFrame:
    return _rejected_frame([], [], [])


def _rejected_frame(rows: list[int], external_ids: list[str | None], reasons: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "row": pd.Series(rows, dtype="int64"),
            "externalId": pd.Series(external_ids, dtype="str"),
            "reason": pd.Series(reasons, dtype="str"),
        }
    )
    return frame.sort_values("row", kind="stable").reset_index(drop=True)


def _collapsed_frame(rows: list[int], external_ids: list[str], kept: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": pd.Series(rows, dtype="int64"),
            "externalId": pd.Series(external_ids, dtype="str"),
            "duplicate_of": pd.Series(kept, dtype="int64"),
        }
    ).sort_values("row", kind="stable", ignore_index=True)


@dataclass
class _Outcome:
    """What one pass over the rows produced."""

    values: dict[str, list[pa.Array]]
    rows: list[np.ndarray]
    hashes: list[pa.Array]
    external_ids: list[pa.Array]
    rejected: pd.DataFrame
    collapsed: pd.DataFrame


def _deduplicate(
    external_ids: pa.Array, sources: dict[str, pa.Array], columns: list[str], row_ids: np.ndarray
) -> tuple[np.ndarray, list[tuple[int, str, str]], list[tuple[int, str, int]]]:
    """Find rows sharing an externalId: exact copies collapse to the first, conflicting ones are all rejected.

    Rows are compared on the HR columns the mapping reads. Rows without an externalId are left alone (they
    are rejected later, with the reason).

    :returns: positions to keep (a boolean mask), rejected (position, externalId, reason) and collapsed
        (position, externalId, position kept).
    """
    n = len(external_ids)
    keep = np.ones(n, dtype=bool)
    encoded = pc.dictionary_encode(external_ids)
    index = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    present = index >= 0
    counts = np.bincount(index[present], minlength=len(encoded.dictionary))
    duplicated = present & (counts[np.maximum(index, 0)] > 1)
    if not duplicated.any():
        return keep, [], []

    positions = np.flatnonzero(duplicated)
    take = pa.array(positions)
    frame = pd.DataFrame({f"c{i}": sources[c].take(take).to_pandas() for i, c in enumerate(columns)})
    frame["__id"] = external_ids.take(take).to_pandas()
    frame.index = positions
    copies = frame.duplicated(keep="first")
    distinct = frame[~copies].groupby("__id", sort=False).size()
    conflicting = set(distinct[distinct > 1].index)

    rejected: list[tuple[int, str, str]] = []
    collapsed: list[tuple[int, str, int]] = []
    for external_id, group in frame.groupby("__id", sort=False):
        members = sorted(group.index.tolist())
        if external_id in conflicting:
            shown = ", ".join(str(row_ids[p]) for p in members[:_REASON_ROWS_SHOWN])
            if len(members) > _REASON_ROWS_SHOWN:
                shown += f" and {len(members) - _REASON_ROWS_SHOWN} more"
            reason = (
                f"externalId {external_id!r} is on rows {shown} with different values "
                "(conflicting duplicates: none of them is sent)"
            )
            for position in members:
                keep[position] = False
                rejected.append((position, str(external_id), reason))
        else:
            for position in members[1:]:
                keep[position] = False
                collapsed.append((position, str(external_id), members[0]))
    return keep, rejected, collapsed


def process(
    sources: dict[str, pa.Array],
    n: int,
    row_ids: np.ndarray,
    mapping: AttributeMapping,
    *,
    keep_values: bool,
    hash_records: bool,
    operations: OperationStore | None = None,
    bulk_id_prefix: str = "",
) -> _Outcome:
    """Map, check and (optionally) serialise all rows, a chunk at a time."""
    id_spec = mapping["externalId"]
    all_rows = Rows(sources, slice(0, n), n)
    all_ids = evaluate(id_spec, all_rows, Problems(n))
    keep, dup_rejected, dup_collapsed = _deduplicate(all_ids, sources, mapping.source_columns, row_ids)
    positions = np.flatnonzero(keep)

    serializer = Serializer(mapping) if (hash_records or operations is not None) else None
    paths = mapping.paths
    values: dict[str, list[pa.Array]] = {p: [] for p in paths}
    kept_rows: list[np.ndarray] = []
    hashes: list[pa.Array] = []
    external_ids: list[pa.Array] = []
    rejected_rows: list[np.ndarray] = []
    rejected_ids: list[pa.Array] = []
    rejected_reasons: list[pa.Array] = []
    caches: dict[str, DateCache] = {}

    for start, stop in iter_chunks(len(positions)):
        chunk = positions[start:stop]
        size = len(chunk)
        if chunk[-1] - chunk[0] == size - 1:  # contiguous: zero-copy slices
            rows = Rows(sources, slice(int(chunk[0]), int(chunk[0]) + size), size)
        else:
            rows = Rows(sources, chunk, size)
        problems = Problems(size)
        chunk_values = {str(spec.path): evaluate(spec, rows, problems, caches) for spec in mapping.attributes}
        reasons = problems.combined()
        if reasons is not None:
            bad = pc.is_valid(reasons)
            bad_np = bad.to_numpy(zero_copy_only=False)
            rejected_rows.append(row_ids[chunk[bad_np]])
            rejected_ids.append(chunk_values["externalId"].filter(bad))
            rejected_reasons.append(reasons.filter(bad))
            good = pc.invert(bad)
            chunk_values = {p: v.filter(good) for p, v in chunk_values.items()}
            chunk = chunk[~bad_np]
            size = len(chunk)
        if size == 0:
            continue
        ids = chunk_values["externalId"]
        external_ids.append(ids)
        kept_rows.append(row_ids[chunk])
        if keep_values:
            for p in paths:
                values[p].append(chunk_values[p])
        if serializer is not None:
            if hash_records:
                hashes.append(record_hashes(serializer.records(chunk_values, size)))
            if operations is not None:
                operations.append(serializer.operations(chunk_values, size, ids, bulk_id_prefix))

    rows_out = [int(row_ids[p]) for p, _, _ in dup_rejected]
    ids_out: list[str | None] = [i for _, i, _ in dup_rejected]
    reasons_out = [r for _, _, r in dup_rejected]
    for rows_np, ids_arr, reasons_arr in zip(rejected_rows, rejected_ids, rejected_reasons, strict=True):
        rows_out.extend(rows_np.tolist())
        ids_out.extend(ids_arr.to_pylist())
        reasons_out.extend(reasons_arr.to_pylist())
    collapsed = _collapsed_frame(
        [int(row_ids[p]) for p, _, _ in dup_collapsed],
        [i for _, i, _ in dup_collapsed],
        [int(row_ids[k]) for _, _, k in dup_collapsed],
    )
    return _Outcome(
        values=values,
        rows=kept_rows,
        hashes=hashes,
        external_ids=external_ids,
        rejected=_rejected_frame(rows_out, ids_out, reasons_out),
        collapsed=collapsed,
    )


def sources_from_frame(df: pd.DataFrame, columns: Iterable[str]) -> dict[str, pa.Array]:
    """Convert the HR columns a mapping reads, once, to pyarrow."""
    return {c: source_array(df[c]) for c in columns}


_TYPES_MAPPER = {pa.bool_(): pd.BooleanDtype(), pa.int64(): pd.Int64Dtype()}.get


def _column(chunks: list[pa.Array], value_type: str) -> pd.Series:
    if not chunks:
        dtype = {BOOLEAN: pa.bool_(), INTEGER: pa.int64()}.get(value_type, LS)
        chunks = [pa.array([], dtype)]
    array = pa.chunked_array(chunks)  # pieces, often slices of the HR columns themselves: no copy
    if pa.types.is_large_string(array.type):
        return array.to_pandas()  # zero-copy; a types_mapper would send texts through Python objects
    return array.to_pandas(types_mapper=_TYPES_MAPPER)


@dataclass(frozen=True, eq=False)
class MappedRecords:
    """HR rows mapped to SCIM values: one row per employee that can be sent, and the rows that cannot.

    :param frame: one row per record kept. Index ``row``: the 0-based position of the HR row in the input
        DataFrame (not its index label). Columns: ``externalId``, then every mapped SCIM path in mapping
        order (texts, ``boolean`` or ``Int64``; dates as ISO 8601 texts with offset; empty = missing), then
        ``record_hash``: a hash of the record's JSON, equal for equal records across runs and processes.
    :param rejected: rows that cannot be sent: ``row``, ``externalId`` (missing when empty) and ``reason``.
    :param collapsed: exact duplicate rows dropped silently but counted: ``row``, ``externalId`` and
        ``duplicate_of`` (the row kept in their place).
    :param mapping: the mapping used.
    :param input_rows: rows in the input; ``len(frame) + len(rejected) + len(collapsed) == input_rows``.
    """

    frame: pd.DataFrame
    rejected: pd.DataFrame
    collapsed: pd.DataFrame
    mapping: AttributeMapping
    input_rows: int

    @property
    def duplicates_collapsed(self) -> int:
        """Exact duplicate rows dropped (sent once, through the row they duplicate)."""
        return len(self.collapsed)

    def select(self, external_ids: Iterable[str]) -> MappedRecords:
        """The records with these externalIds (in frame order), e.g. the changed ones of a delta.

        The result has no rejected or collapsed rows: those belong to the full mapping.

        :param external_ids: externalIds to keep; unknown ones are ignored.
        """
        wanted = pd.Index(list(external_ids))
        subset = self.frame[self.frame["externalId"].isin(wanted)]
        return MappedRecords(
            subset, empty_rejected(), _collapsed_frame([], [], []), self.mapping, len(subset)
        )

    @classmethod
    def from_staged(cls, frame: pd.DataFrame, mapping: AttributeMapping) -> MappedRecords | None:
        """Records a pipeline step mapped and staged (``mapped.parquet``, ``delta.parquet``), taken as they
        are: their values were checked when they were mapped, so only the frame's shape is checked here, in
        a few column-wise passes. ``None`` when the frame does not have that shape (then
        :meth:`from_frame` checks every value again, setting aside what fails).

        The shape: a ``record_hash`` on every row (what a mapping step writes), a column for every path of
        ``mapping`` of the type its attribute has (true/false, whole numbers, else text), the required
        attributes present on every row, and each externalId once.

        :param frame: the staged frame; its index labels (integers) are the row ids. Other columns (the
            plan's ``change``...) are left out of the records.
        :param mapping: the mapping whose paths the columns follow.
        """
        if RECORD_HASH not in frame.columns or frame[RECORD_HASH].isna().any():
            return None
        for spec in mapping.attributes:
            path = str(spec.path)
            if path not in frame.columns or not _staged_type(frame[path].dtype, spec.value_type):
                return None
            if spec.required and _empty(frame[path]).any():
                return None
        if "externalId" not in mapping.paths or frame["externalId"].duplicated().any():
            return None
        order = ["externalId", *[p for p in mapping.paths if p != "externalId"], RECORD_HASH]
        return cls(frame[order], empty_rejected(), _collapsed_frame([], [], []), mapping, len(frame))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, mapping: AttributeMapping) -> MappedRecords:
        """Rebuild records from a frame with one column per SCIM path (e.g. rows of a stored snapshot, or
        a ``.frame`` whose values were changed); values are checked again and ``record_hash`` recomputed.

        :param frame: columns named by the mapping's paths; its index labels (integers) are the row ids.
        :param mapping: the mapping whose paths the columns follow.
        :raises MappingError: naming the missing path columns.
        """
        missing = [p for p in mapping.paths if p not in frame.columns]
        if missing:
            raise MappingError(
                f"the frame has no column for {', '.join(map(repr, missing))}", path=missing[0]
            )
        identity = mapping._with_specs(  # noqa: SLF001 - same package
            [
                AttributeSpec(
                    path=spec.path,
                    source=ColumnSource(str(spec.path)),
                    value_type=spec.value_type,
                    timezone=spec.timezone,
                    max_length=spec.max_length,
                    required=spec.required,
                )
                for spec in mapping.attributes
            ]
        )
        try:
            row_ids = np.asarray(frame.index, dtype=np.int64)
        except (TypeError, ValueError):
            row_ids = np.arange(len(frame), dtype=np.int64)
        return _map(frame, identity, row_ids, result_mapping=mapping)


def _staged_type(dtype: object, value_type: str) -> bool:
    """Whether a staged column's dtype is what :func:`map_records` writes for ``value_type``."""
    if value_type == BOOLEAN:
        return pd.api.types.is_bool_dtype(dtype)
    if value_type == INTEGER:
        return pd.api.types.is_integer_dtype(dtype)
    return isinstance(dtype, pd.StringDtype)


def _empty(values: pd.Series) -> pd.Series:
    """Missing or empty text (what the mapping treats as no value)."""
    missing = values.isna()
    if isinstance(values.dtype, pd.StringDtype):
        missing |= values.str.strip() == ""
    return missing


def _map(
    df: pd.DataFrame,
    mapping: AttributeMapping,
    row_ids: np.ndarray,
    *,
    result_mapping: AttributeMapping | None = None,
) -> MappedRecords:
    mapping.check_columns(df.columns)
    sources = sources_from_frame(df, mapping.source_columns)
    outcome = process(sources, len(df), row_ids, mapping, keep_values=True, hash_records=True)
    data: dict[str, pd.Series] = {}
    for spec in mapping.attributes:  # each column's pieces let go as it is joined
        data[str(spec.path)] = _column(outcome.values.pop(str(spec.path)), spec.value_type)
    order = ["externalId", *[p for p in mapping.paths if p != "externalId"]]
    frame = pd.DataFrame({p: data[p] for p in order})
    frame[RECORD_HASH] = _column(outcome.hashes, "string")
    rows = np.concatenate(outcome.rows) if outcome.rows else np.zeros(0, dtype=np.int64)
    frame.index = pd.Index(rows, name="row", dtype="int64")
    return MappedRecords(frame, outcome.rejected, outcome.collapsed, result_mapping or mapping, len(df))


def map_records(df: pd.DataFrame, mapping: AttributeMapping) -> MappedRecords:
    """Map HR rows to SCIM values, column by column, and set aside the rows that cannot be sent.

    A row is rejected, with a reason naming the attribute, the HR column and the value, when its externalId,
    userName or active is empty, a value does not fit its type (a date that does not parse, a boolean that is
    not true/false, an email without @...), or a text is longer than Entra accepts. Rows sharing an
    externalId are compared on the columns the mapping reads: exact copies collapse into the first (counted
    in ``collapsed``); rows that differ are all rejected, since nobody can tell which one is right.

    :param df: the HR rows, one column per HR field (read CSVs with ``dtype=str`` to keep IDs as written).
    :param mapping: the attribute mapping.
    :raises MappingError: when ``df`` lacks a column the mapping reads.

    >>> import pandas as pd
    >>> from airflow_provider_entra.scim import AttributeMapping
    >>> mapping = AttributeMapping({"externalId": "id", "userName": "upn", "active": {"constant": True}})
    >>> hr = pd.DataFrame({"id": ["1", "2", None], "upn": ["a@x.com", "b@x.com", "c@x.com"]})
    >>> mapped = map_records(hr, mapping)
    >>> mapped.frame["userName"].tolist(), mapped.rejected["reason"].tolist()
    (['a@x.com', 'b@x.com'], ['externalId is empty (column id)'])
    """
    return _map(df, mapping, np.arange(len(df), dtype=np.int64))
