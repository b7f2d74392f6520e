"""``build_bulk_requests``: mapped records -> SCIM BulkRequests of at most 50 operations each."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any, overload

import numpy as np
import pandas as pd
import pyarrow as pa

from airflow_provider_entra.scim._constants import MAX_OPERATIONS_PER_REQUEST
from airflow_provider_entra.scim._engine import (
    OperationStore,
    Serializer,
    iter_chunks,
    source_array,
)
from airflow_provider_entra.scim.mapping import AttributeMapping
from airflow_provider_entra.scim.records import MappedRecords, process, sources_from_frame
from airflow_provider_entra.scim.schema import BOOLEAN, INTEGER


class BulkRequests(Sequence[dict[str, Any]]):
    """The requests of a build, as a read-only sequence of dicts decoded on access.

    The JSON is kept as bytes in pyarrow buffers (a million records as dicts would not fit in memory);
    ``requests[i]`` decodes request ``i``. Compare with a list of dicts with ``==``.
    """

    def __init__(self, store: OperationStore, max_operations: int) -> None:
        self._store = store
        self._max = max_operations

    def __len__(self) -> int:
        return -(-self._store.count // self._max)

    def raw(self, index: int) -> bytes:
        """Request ``index`` as the UTF-8 JSON bytes to POST."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"request {index} out of range ({len(self)} requests)")
        start = index * self._max
        return self._store.request_bytes(start, min(start + self._max, self._store.count))

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return json.loads(self.raw(index))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<BulkRequests: {len(self)} requests, {self._store.count} operations>"


class BulkBuildResult:
    """What :func:`build_bulk_requests` produced.

    Every input row is accounted for: ``operation_count + len(rejected) + duplicates_collapsed ==
    input_rows``.

    :ivar requests: the BulkRequest payloads (dicts, decoded on access; see :class:`BulkRequests`).
    :ivar rejected: rows not sent: ``row`` (0-based position in the HR DataFrame), ``externalId``, ``reason``.
    :ivar collapsed: exact duplicate rows, sent once: ``row``, ``externalId``, ``duplicate_of``.
    :ivar operation_count: records sent, one operation each.
    :ivar input_rows: rows given.
    """

    def __init__(
        self,
        store: OperationStore,
        external_ids: list[pa.Array],
        rejected: pd.DataFrame,
        collapsed: pd.DataFrame,
        max_operations: int,
        input_rows: int,
    ) -> None:
        self.requests = BulkRequests(store, max_operations)
        self.rejected = rejected
        self.collapsed = collapsed
        self.operation_count = store.count
        self.input_rows = input_rows
        self.max_operations = max_operations
        self._ids = external_ids

    @property
    def duplicates_collapsed(self) -> int:
        """Exact duplicate rows dropped (their record is sent once)."""
        return len(self.collapsed)

    @cached_property
    def external_ids(self) -> list[list[str]]:
        """The externalIds of each request, in operation order."""
        flat: list[str] = [i for chunk in self._ids for i in chunk.to_pylist()]
        step = self.max_operations
        return [flat[i : i + step] for i in range(0, len(flat), step)]

    def iter_request_bytes(self) -> Iterator[bytes]:
        """Each request as the UTF-8 JSON bytes to POST, without decoding to dicts (the fast path)."""
        for i in range(len(self.requests)):
            yield self.requests.raw(i)

    def __repr__(self) -> str:
        return (
            f"<BulkBuildResult: {len(self.requests)} requests, {self.operation_count} operations, "
            f"{len(self.rejected)} rejected, {self.duplicates_collapsed} collapsed, "
            f"of {self.input_rows} rows>"
        )


def _typed(series: pd.Series, value_type: str, path: str) -> pa.Array:
    if value_type == BOOLEAN:
        try:
            return pa.array(series.astype("boolean"), type=pa.bool_())
        except (TypeError, ValueError, pa.ArrowInvalid) as exc:
            raise ValueError(f"column {path!r} must hold true/false values: {exc}") from exc
    if value_type == INTEGER:
        try:
            return pa.array(series.astype("Int64"), type=pa.int64())
        except (TypeError, ValueError, pa.ArrowInvalid) as exc:
            raise ValueError(f"column {path!r} must hold whole numbers: {exc}") from exc
    values = source_array(series)
    if pa.types.is_timestamp(values.type):
        raise ValueError(
            f"column {path!r} holds timestamps; dates are sent as ISO 8601 texts from map_records"
        )
    return values


def _build_from_records(
    mapped: MappedRecords, mapping: AttributeMapping, max_operations: int, bulk_id_prefix: str
) -> BulkBuildResult:
    frame = mapped.frame
    missing = [p for p in mapping.paths if p not in frame.columns]
    if missing:
        raise ValueError(f"the mapped frame has no column for {', '.join(map(repr, missing))}")
    ids = frame["externalId"]
    if ids.isna().any():
        raise ValueError("the mapped frame has records without externalId")
    if ids.duplicated().any():
        dupes = ids[ids.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"the mapped frame has the externalId(s) {dupes} more than once; bulkIds must be unique"
        )
    columns = {
        spec_path: _typed(frame[spec_path], spec.value_type, spec_path)
        for spec_path, spec in ((str(s.path), s) for s in mapping.attributes)
    }
    serializer = Serializer(mapping)
    store = OperationStore()
    id_chunks: list[pa.Array] = []
    for start, stop in iter_chunks(len(frame)):
        chunk = {p: v.slice(start, stop - start) for p, v in columns.items()}
        external_ids = chunk["externalId"]
        store.append(serializer.operations(chunk, stop - start, external_ids, bulk_id_prefix))
        id_chunks.append(external_ids)
    return BulkBuildResult(
        store, id_chunks, mapped.rejected, mapped.collapsed, max_operations, mapped.input_rows
    )


def build_bulk_requests(
    data: pd.DataFrame | MappedRecords,
    mapping: AttributeMapping | None = None,
    max_operations: int = MAX_OPERATIONS_PER_REQUEST,
    *,
    bulk_id_prefix: str = "",
) -> BulkBuildResult:
    """Build the ``bulkUpload`` payloads for HR rows or already mapped records.

    Each record becomes one ``POST /Users`` operation whose ``data`` lists the core and enterprise schema URNs
    plus each custom namespace it carries, always has ``active``, and leaves out empty attributes. Requests
    hold at most ``max_operations`` operations, in input order.

    :param data: the HR DataFrame (mapped here, with :func:`map_records`'s checks), or a
        :class:`MappedRecords` (for example ``mapped.select(changed_ids)`` after planning a delta).
    :param mapping: the attribute mapping; optional with :class:`MappedRecords` (its own is used).
    :param max_operations: operations per request, 1 to 50 (Entra's maximum).
    :param bulk_id_prefix: prepended to the externalId to make each operation's ``bulkId``
        (``bulkId = bulk_id_prefix + externalId``): deterministic, and unique within a request because
        externalIds are.
    :raises MappingError: when the HR data lacks a column the mapping reads.
    :raises ValueError: for ``max_operations`` out of range, or a mapping other than the records'.
    """
    if (
        isinstance(max_operations, bool)
        or not isinstance(max_operations, int)
        or not (1 <= max_operations <= MAX_OPERATIONS_PER_REQUEST)
    ):
        raise ValueError(
            f"max_operations must be 1 to {MAX_OPERATIONS_PER_REQUEST} (Entra's limit), "
            f"got {max_operations!r}"
        )
    if not isinstance(bulk_id_prefix, str):
        raise ValueError(f"bulk_id_prefix must be a text, got {bulk_id_prefix!r}")
    if isinstance(data, MappedRecords):
        if mapping is not None and mapping != data.mapping:
            raise ValueError("these records were mapped with another mapping; pass theirs or none")
        return _build_from_records(data, data.mapping, max_operations, bulk_id_prefix)
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame or MappedRecords, got {type(data).__name__}")
    if mapping is None:
        raise ValueError("a mapping is needed to build requests from HR rows")
    mapping.check_columns(data.columns)
    sources = sources_from_frame(data, mapping.source_columns)
    store = OperationStore()
    outcome = process(
        sources,
        len(data),
        np.arange(len(data), dtype=np.int64),
        mapping,
        keep_values=False,
        hash_records=False,
        operations=store,
        bulk_id_prefix=bulk_id_prefix,
    )
    return BulkBuildResult(
        store, outcome.external_ids, outcome.rejected, outcome.collapsed, max_operations, len(data)
    )


__all__ = ["BulkBuildResult", "BulkRequests", "build_bulk_requests"]
