"""Records or payloads -> the requests of a run: at most 50 operations each, stage by stage, as bytes.

* :func:`map_input` turns a staged frame (HR layout or already mapped) into
  :class:`~airflow_provider_entra.scim.MappedRecords`;
* :func:`plan_records` builds their requests with :func:`~airflow_provider_entra.scim.build_bulk_requests`,
  one build per managers-first stage, and keeps the bytes it made: nothing is decoded and encoded again;
* :func:`plan_payloads` does the same for a short list of SCIM BulkRequests (sent as they are) or SCIM
  User records (packed into requests).

The stage order is either given (a stage order frame, see :mod:`~airflow_provider_entra.upload.order`,
staged by the DAG's ``stages`` step) or computed here once.

Pure: no Airflow; files are read through :mod:`airflow_provider_entra._fsio` only to load a mapping.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from airflow_provider_entra._constants import (
    BULK_REQUEST_SCHEMA,
    CORE_USER_SCHEMA,
    ENTERPRISE_USER_SCHEMA,
    MAX_OPERATIONS_PER_REQUEST,
)
from airflow_provider_entra._fsio import fs_and_path, is_local
from airflow_provider_entra.provisioning.stages import REJECTED_COLUMNS
from airflow_provider_entra.scim import (
    MANAGER_PATH,
    AttributeMapping,
    MappingError,
    build_bulk_requests,
    map_records,
    parse_path,
)
from airflow_provider_entra.scim._constants import EXTENSION_SCHEMA_PREFIX
from airflow_provider_entra.scim.records import RECORD_HASH, MappedRecords
from airflow_provider_entra.upload.errors import PlanningError
from airflow_provider_entra.upload.fingerprint import encode, fingerprint
from airflow_provider_entra.upload.order import empty_rejected, stage_groups, stage_order

__all__ = [
    "InputKind",
    "PlanOptions",
    "check_options",
    "PlannedRequest",
    "UploadPlan",
    "load_mapping",
    "map_input",
    "payload_list",
    "plan_payloads",
    "plan_records",
    "run_prefix",
    "stack_rejected",
]

InputKind = Literal["auto", "hr", "mapped"]
#: Request bodies are held LZ4-compressed (about 7x smaller: a million records' requests take some 150 MB,
#: not 1 GB) and given back byte for byte by :attr:`PlannedRequest.body`.
_CODEC = pa.Codec("lz4")
#: Records built at a time, in requests (a stage is built in blocks of this many requests: the same
#: requests as one build of the stage, with the builder's working memory bounded).
BLOCK_REQUESTS = 400
#: ``stage`` of the records set aside by the mapping, and of payload records without an externalId.
MAPPING_STAGE = "mapping"
PAYLOADS_STAGE = "payloads"


@dataclass(frozen=True)
class PlannedRequest:
    """One request of the plan (or part of one, after Graph refused it whole).

    :param seq: position in the upload order (0-based); the parts of a request keep its ``seq``.
    :param stage: managers-first stage (0: people whose manager is not in the batch).
    :param packed: the body, compressed (:meth:`of` makes it; read :attr:`body`).
    :param size: the body's length in bytes.
    :param external_ids: its records' externalIds, in operation order.
    :param fingerprint: SHA-256 of the body.
    """

    seq: int
    stage: int
    packed: bytes = field(repr=False)
    size: int
    external_ids: list[str]
    fingerprint: str

    @classmethod
    def of(cls, seq: int, stage: int, body: bytes, external_ids: Sequence[str]) -> PlannedRequest:
        """A request with its fingerprint computed from ``body``."""
        packed = _CODEC.compress(body, asbytes=True)
        return cls(seq, stage, packed, len(body), list(external_ids), fingerprint(body))

    @property
    def body(self) -> bytes:
        """The UTF-8 JSON bytes to POST: the bytes :meth:`of` was given."""
        return _CODEC.decompress(self.packed, decompressed_size=self.size, asbytes=True)

    @property
    def operations(self) -> int:
        """Operations (records) in the request."""
        return len(self.external_ids)

    @property
    def payload(self) -> dict[str, Any]:
        """The request decoded, for reading (what is sent is :attr:`body`)."""
        return json.loads(self.body)


@dataclass
class UploadPlan:
    """Requests in upload order, and what was set aside.

    :param requests: the requests, stage by stage.
    :param rejected: records not sent (:data:`REJECTED_COLUMNS`: ``row``, ``externalId``, ``stage``: the
        step that set it aside, ``reason``).
    :param input_rows: rows (or payload records) in the input.
    :param row_ids: the input row of each mapped record (indexed by externalId).
    :param warnings: records placed late because their manager chain reaches a record set aside
        (``row``, ``externalId``, ``warning``).
    """

    requests: list[PlannedRequest] = field(default_factory=list)
    rejected: pd.DataFrame = field(default_factory=empty_rejected)
    input_rows: int = 0
    row_ids: pd.Series = field(default_factory=lambda: pd.Series(dtype=object))
    warnings: pd.DataFrame = field(default_factory=pd.DataFrame)

    def add(self, stage: int, body: bytes, external_ids: Sequence[str]) -> None:
        """Append a request of ``stage`` (its ``seq`` is the next one)."""
        self.requests.append(PlannedRequest.of(len(self.requests), stage, body, external_ids))

    @property
    def records(self) -> int:
        """Records that will be sent."""
        return sum(request.operations for request in self.requests)

    @property
    def stage_sizes(self) -> list[int]:
        """Records per stage, in upload order."""
        sizes: dict[int, int] = {}
        for request in self.requests:
            sizes[request.stage] = sizes.get(request.stage, 0) + request.operations
        return [sizes[stage] for stage in sorted(sizes)]

    def row_of(self, external_id: str) -> Any:
        """The input row of a record (``None`` when unknown)."""
        row = self.row_ids.get(external_id)
        return row.item() if isinstance(row, np.generic) else row


def check_options(input_kind: str, max_operations: int, max_rejected_records: int | None) -> None:
    """Refuse an upload's options that cannot work.

    :raises ValueError: naming the option.
    """
    if input_kind not in ("auto", "hr", "mapped"):
        raise ValueError(f"input_kind must be 'auto', 'hr' or 'mapped', got {input_kind!r}")
    if not 1 <= max_operations <= MAX_OPERATIONS_PER_REQUEST:
        raise ValueError(f"max_operations must be 1 to {MAX_OPERATIONS_PER_REQUEST}, got {max_operations}")
    if max_rejected_records is not None and max_rejected_records < 0:
        raise ValueError(f"max_rejected_records must be 0 or more (or None), got {max_rejected_records}")


def run_prefix(run_id: str) -> str:
    """The default ``bulkId`` prefix of a run: 10 hex digits of the run id's SHA-256 and a dash. A retried
    task of the same run gets the same prefix, so the same requests; another run gets others.

    >>> run_prefix("scheduled__2026-03-02T01:00:00+00:00")
    '23ed8f84bf-'
    """
    return hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:10] + "-"


def stack_rejected(*frames: pd.DataFrame) -> pd.DataFrame:
    """The records set aside by several steps as one frame (:data:`REJECTED_COLUMNS`; empty when none)."""
    kept = [frame[list(REJECTED_COLUMNS)] for frame in frames if len(frame)]
    return pd.concat(kept, ignore_index=True) if kept else empty_rejected()


# --- inputs -------------------------------------------------------------------------------------------------


def load_mapping(spec: Any) -> AttributeMapping:
    """An :class:`AttributeMapping` from itself, a dict, or a YAML/JSON file (local path, URL, or a path
    object with ``fs``, such as an ``ObjectStoragePath``).

    :raises PlanningError: for text that looks like a dict (a template rendered to text: pass the dict).
    """
    if isinstance(spec, AttributeMapping):
        return spec
    if isinstance(spec, Mapping):
        return AttributeMapping.from_dict(spec)
    if isinstance(spec, str) and spec.lstrip().startswith("{"):
        raise PlanningError(
            "mapping is text that looks like a dict (a template rendered as text): pass the dict itself, "
            "or render the DAG's templates as native objects"
        )
    fs, inner = fs_and_path(spec)
    if is_local(fs):
        return AttributeMapping.from_file(inner)
    with tempfile.TemporaryDirectory() as folder:  # from_file reads local files: fetch the object first
        copy = Path(folder) / PurePosixPath(inner).name
        with fs.open(inner, "rb") as handle:
            copy.write_bytes(handle.read())
        return AttributeMapping.from_file(copy)


def is_mapped_frame(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` holds mapped records (a ``record_hash`` column, or ``externalId``, ``userName`` and
    ``active``) rather than HR rows."""
    columns = set(map(str, frame.columns))
    return RECORD_HASH in columns or {"externalId", "userName", "active"} <= columns


def identity_mapping(frame: pd.DataFrame) -> AttributeMapping:
    """A mapping that sends each SCIM-path column of an already mapped frame as it is."""
    attributes: dict[str, Any] = {}
    for column in map(str, frame.columns):
        if column == RECORD_HASH:
            continue
        try:
            path = parse_path(column)
        except MappingError:
            continue
        spec: dict[str, Any] = {"column": column}
        if path.value_type is None:  # a custom attribute: its type from the column
            dtype = frame[column].dtype
            if pd.api.types.is_bool_dtype(dtype):
                spec["type"] = "boolean"
            elif pd.api.types.is_integer_dtype(dtype):
                spec["type"] = "integer"
        attributes[column] = spec
    return AttributeMapping(attributes)


def map_input(
    frame: pd.DataFrame, *, kind: InputKind = "auto", mapping: Any = None
) -> tuple[MappedRecords, str]:
    """Map a staged frame: HR rows with ``mapping``, or mapped records (``mapping`` optional).

    Mapped records a pipeline step staged (with their ``record_hash``, in the shape
    :meth:`MappedRecords.from_staged` checks) are taken as they are; any other mapped frame has its values
    checked again (:meth:`MappedRecords.from_frame`).

    :param frame: the staged rows.
    :param kind: ``"hr"``, ``"mapped"`` or ``"auto"`` (:func:`is_mapped_frame` decides).
    :param mapping: an :class:`AttributeMapping`, dict or file (see :func:`load_mapping`).
    :return: the records and the kind used.
    :raises PlanningError: for HR rows without a mapping, or a mapping that does not fit the rows.
    """
    if kind == "auto":
        kind = "mapped" if is_mapped_frame(frame) else "hr"
    try:
        if kind == "mapped":
            spec = load_mapping(mapping) if mapping is not None else identity_mapping(frame)
            staged = MappedRecords.from_staged(frame, spec)
            return (staged if staged is not None else MappedRecords.from_frame(frame, spec)), kind
        if mapping is None:
            raise PlanningError(
                "HR-layout file (no externalId/userName/active columns) without a mapping: pass mapping"
            )
        return map_records(frame, load_mapping(mapping)), kind
    except MappingError as exc:
        raise PlanningError(str(exc)) from exc


# --- planning -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PlanOptions:
    """How the requests of a run are planned.

    :param bulk_id_prefix: prefix of each operation's ``bulkId`` (``bulkId = prefix + externalId``); see
        :func:`run_prefix`.
    :param max_operations: operations per request, 1 to 50.
    :param managers_first: upload in managers-first stages (else one stage, input order).
    :param order: the staged order (:mod:`~airflow_provider_entra.upload.order`); computed when ``None``.
    :param known_ids: ids the job already provisioned (used only when the order is computed here).
    """

    bulk_id_prefix: str = ""
    max_operations: int = MAX_OPERATIONS_PER_REQUEST
    managers_first: bool = True
    order: pd.DataFrame | None = None
    known_ids: Iterable[object] | None = None

    def stages(
        self, frame: pd.DataFrame, manager_column: str
    ) -> tuple[list[np.ndarray], pd.DataFrame, pd.DataFrame]:
        """Positions of each stage in ``frame`` (an ``externalId`` column), the records set aside by staging,
        and the warnings of a computed order."""
        if not self.managers_first or frame.empty:
            return ([np.arange(len(frame))] if len(frame) else []), empty_rejected(), pd.DataFrame()
        order, warnings = self.order, pd.DataFrame()
        if order is None:
            computed = stage_order(frame, manager_column=manager_column, known_ids=self.known_ids)
            order, warnings = computed.order, computed.warnings
        groups, rejected = stage_groups(frame["externalId"], order)
        return groups, rejected, warnings


def plan_records(records: MappedRecords, options: PlanOptions) -> UploadPlan:
    """The requests for mapped records, stage by stage, holding the bytes the builder made.

    A stage is built :data:`BLOCK_REQUESTS` requests at a time (the same requests as one build: blocks hold
    whole requests), so the builder's working memory does not grow with the stage.

    :param records: the mapped records (their ``rejected`` rows are set aside with stage ``"mapping"``).
    :param options: prefix, request size, staging.
    """
    frame = records.frame
    groups, stage_rejected, warnings = options.stages(frame, MANAGER_PATH)
    plan = UploadPlan(input_rows=records.input_rows, warnings=warnings)
    plan.row_ids = pd.Series(frame.index, index=frame["externalId"])
    plan.rejected = stack_rejected(records.rejected.assign(stage=MAPPING_STAGE), stage_rejected)
    built_columns = frame[[column for column in frame.columns if column != RECORD_HASH]]
    block = options.max_operations * BLOCK_REQUESTS  # a whole number of requests: the same cuts
    for stage, group in enumerate(groups):
        for start in range(0, len(group), block):
            positions = group[start : start + block]
            first, last = int(positions[0]), int(positions[-1])
            if last - first == len(positions) - 1:  # in input order already: a slice, no copy
                rows = built_columns.iloc[first : last + 1]
            else:
                rows = built_columns.iloc[positions]
            subset = dataclasses.replace(
                records,
                frame=rows,
                rejected=records.rejected.iloc[:0],
                collapsed=records.collapsed.iloc[:0],
                input_rows=len(positions),
            )
            built = build_bulk_requests(
                subset, max_operations=options.max_operations, bulk_id_prefix=options.bulk_id_prefix
            )
            for index, external_ids in enumerate(built.external_ids):
                plan.add(stage, built.requests.raw(index), external_ids)
    return plan


def payload_list(value: Any) -> list[dict[str, Any]]:
    """``payloads`` as a list of dicts; one dict is a list of one.

    :raises PlanningError: for anything else, text included (a template rendered to text: pass a native
        value such as ``task.output``).
    """
    if isinstance(value, Mapping):
        value = [value]
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Sequence)
        or not all(isinstance(item, Mapping) for item in value)
    ):
        raise PlanningError(
            "payloads must be a list of SCIM BulkRequests or SCIM User records (dicts), e.g. task.output; "
            f"got {type(value).__name__}"
        )
    return [dict(item) for item in value]


def plan_payloads(items: Sequence[Mapping[str, Any]], options: PlanOptions) -> UploadPlan:
    """The requests for a short list of payloads: BulkRequests are sent as they are (each one checked),
    User records are packed managers first (``schemas`` filled in when a record has none; one without an
    ``externalId`` is set aside with the reason).

    :param items: the payloads.
    :param options: prefix, request size, staging (a BulkRequest is sent as it is: whole, unstaged).
    :raises PlanningError: for a list mixing both kinds, or a BulkRequest that cannot be sent.
    """
    if items and all("Operations" in item for item in items):
        plan = UploadPlan(input_rows=0)
        for number, payload in enumerate(items):
            plan.add(0, _encoded(payload, f"payloads[{number}]"), _checked_ids(payload, number))
        plan.input_rows = plan.records
        return plan
    if any("Operations" in item for item in items):
        raise PlanningError("payloads mixes BulkRequests and User records; give one kind")
    users = pd.DataFrame(
        {
            "externalId": [str(item.get("externalId") or "").strip() or None for item in items],
            "manager": [
                ((item.get(ENTERPRISE_USER_SCHEMA) or {}).get("manager") or {}).get("value") for item in items
            ],
        },
        dtype=object,
    )
    missing = users["externalId"].isna()
    present = users[~missing]
    groups, stage_rejected, warnings = options.stages(present, "manager")
    plan = UploadPlan(input_rows=len(items), warnings=warnings)
    plan.row_ids = pd.Series(present.index, index=present["externalId"].to_numpy())
    no_id = pd.DataFrame(
        {
            "row": users.index[missing],
            "externalId": None,
            "stage": PAYLOADS_STAGE,
            "reason": "externalId is empty",
        }
    )
    plan.rejected = stack_rejected(no_id, stage_rejected)
    for stage, positions in enumerate(groups):
        labels = present.index[positions]
        for start in range(0, len(labels), options.max_operations):
            chunk = labels[start : start + options.max_operations]
            ids = present.loc[chunk, "externalId"].tolist()
            operations = [
                {
                    "method": "POST",
                    "bulkId": f"{options.bulk_id_prefix}{ext}",
                    "path": "/Users",
                    "data": _with_schemas(items[label]),
                }
                for ext, label in zip(ids, chunk, strict=True)
            ]
            request = {"schemas": [BULK_REQUEST_SCHEMA], "Operations": operations, "failOnErrors": None}
            plan.add(stage, _encoded(request, f"payload records {ids[0]}..."), ids)
    return plan


def _encoded(payload: Mapping[str, Any], what: str) -> bytes:
    try:
        return encode(payload)
    except (TypeError, ValueError) as exc:
        raise PlanningError(f"{what} cannot be sent as JSON: {exc}") from None


def _checked_ids(payload: Mapping[str, Any], number: int) -> list[str]:
    """The externalIds of a BulkRequest given as it is, after the checks Graph would make."""
    what = f"payloads[{number}]"
    if BULK_REQUEST_SCHEMA not in (payload.get("schemas") or []):
        raise PlanningError(f"{what} is not a SCIM BulkRequest: 'schemas' must list {BULK_REQUEST_SCHEMA}")
    operations = payload.get("Operations")
    if not isinstance(operations, list) or not 1 <= len(operations) <= MAX_OPERATIONS_PER_REQUEST:
        raise PlanningError(
            f"{what}: 'Operations' must be a list of 1 to {MAX_OPERATIONS_PER_REQUEST} operations (Graph's "
            "limit); nothing was sent"
        )
    ids = []
    for position, operation in enumerate(operations):
        data = operation.get("data") if isinstance(operation, Mapping) else None
        external_id = str((data or {}).get("externalId") or "").strip() if isinstance(data, Mapping) else ""
        if not external_id:
            raise PlanningError(
                f"{what}.Operations[{position}] has no data.externalId: every record needs one (the upload "
                "is tracked and verified by it); nothing was sent"
            )
        ids.append(external_id)
    return ids


def _with_schemas(record: Mapping[str, Any]) -> dict[str, Any]:
    """A SCIM User record with ``schemas``: core and enterprise, plus each extension namespace it uses."""
    if record.get("schemas"):
        return dict(record)
    extensions = [
        key for key in record if key.startswith(EXTENSION_SCHEMA_PREFIX) and key != ENTERPRISE_USER_SCHEMA
    ]
    return {"schemas": [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA, *extensions], **record}
