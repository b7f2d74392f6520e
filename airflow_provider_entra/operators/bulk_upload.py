"""Upload HR records to Entra's API-driven inbound provisioning, managers first, resumable after a crash.

:class:`EntraBulkUploadOperator` reads a staged file (Parquet or CSV, HR layout or already SCIM-mapped) or
a short list of payloads from XCom, orders the records into managers-first stages, builds 50-operation SCIM
BulkRequests and posts them through :class:`~airflow_provider_entra.hooks.entra.EntraHook` (which paces them
under 40 calls / 5 s and the daily budget, and retries 429/5xx).

Resuming without resending
--------------------------
Requests are built deterministically: the same input and the same ``bulk_id_prefix`` (by default derived
from the run id) give the same requests in the same order, so each has a stable *fingerprint* (SHA-256 of
its canonical JSON). Right after each 202 the operator appends a line to ``upload-manifest.jsonl`` in
``output_dir`` (fsync'd on a local disk)::

    {"seq": 7, "stage": 1, "fingerprint": "…", "request_id": "…", "client_request_id": "…",
     "external_ids": ["1513", …], "operations": 50, "submitted_at": "2026-03-02T01:00:07.1+00:00",
     "accepted_at": "2026-03-02T01:00:07+00:00", "status_code": 202}

``submitted_at`` is the local clock when the request was sent; ``accepted_at`` is Microsoft's clock when
Graph accepted it (the 202's ``Date`` header, whole seconds; ``null`` when the answer had none). Entra
processes the records at or after ``accepted_at``, so verification reads each record's log entries from
there (see :mod:`airflow_provider_entra.provisioning.reconcile`).

A retried task reads the manifest and skips every request whose fingerprint is there. Only a request that
was accepted but whose line was not yet written when the process died is sent again: at most one.

Records Graph rejects
---------------------
When Graph answers 400 to a request (:class:`~airflow_provider_entra.exceptions.EntraPayloadRejectedError`,
e.g. one record has ``"active": "yes"``), the whole request was refused. The operator then sends its two
halves, recursively, down to single operations: the accepted parts go into the manifest like any request
(with ``"part_of"``: the fingerprint of the planned request they come from), and a single operation still
rejected is set aside in ``upload-rejected.parquet`` (``stage`` ``"upload"``, reason ``Graph rejected the
record: <code>: <message>``), not retried. One bad record in a 50-operation request costs about
``2 * log2(50)`` = 12 extra calls. Every request (or part) Graph refused is written down in
``upload-refused.jsonl`` (fingerprint, externalIds, Graph's error), and the split is deterministic, so a
retried task neither re-sends the parts already accepted nor re-probes what Graph refused: a refused
request is split again without a call, and a refused single record is set aside again with its recorded
reason. (Refusals are remembered per run: requests of another run have other bulkIds, so other
fingerprints. Delete the file to probe again.) More than ``max_rejected_records`` records rejected this way
fails the task: that
points at something systemic (the mapping, the schema), not at a few bad records. Auth, throttling, quota,
413 and 5xx errors are never split: they fail the task as before.

Files written to ``output_dir`` (default: the input file's folder)
-----------------------------------------------------------------
* ``upload-manifest.jsonl``: the accepted requests (above).
* ``sent-external-ids.parquet``: every externalId of the run's requests (``externalId``, ``seq``, ``stage``,
  ``accepted_at``: the earliest acceptance of the record in this run, UTC, NaT when not accepted or
  unknown), for the verification sensor; rewritten when the upload ends, without the records Graph
  rejected.
* ``upload-refused.jsonl``: the requests and parts Graph refused (400), so a retry does not send them again.
* ``upload-rejected.parquet``: records not sent, with a reason (mapping errors, management cycles,
  self-managers, records Graph rejected); only when there are some.
* With ``dry_run``: ``dry-run-requests.jsonl`` (every request body, one per line) and
  ``dry-run-summary.json``; nothing is sent.

Large data never goes through XCom: the task returns a small summary with the paths.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from airflow.providers.common.compat.sdk import AirflowException, BaseOperator

from airflow_provider_entra._constants import (
    BULK_REQUEST_SCHEMA,
    CORE_USER_SCHEMA,
    ENTERPRISE_USER_SCHEMA,
    MAX_OPERATIONS_PER_REQUEST,
)
from airflow_provider_entra._rendered import parse_rendered
from airflow_provider_entra.exceptions import EntraError, EntraPayloadRejectedError
from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.links import EntraProvisioningLogsLink
from airflow_provider_entra.provisioning.stages import REJECTED_COLUMNS, plan_stages
from airflow_provider_entra.scim import (
    MANAGER_PATH,
    AttributeMapping,
    MappingError,
    build_bulk_requests,
    map_records,
    parse_path,
)
from airflow_provider_entra.scim.records import RECORD_HASH, MappedRecords
from airflow_provider_entra.staging import (
    append_jsonl,
    local_path,
    read_frame,
    read_jsonl,
    to_path,
    write_bytes,
    write_frame,
    write_jsonl,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

__all__ = [
    "EXTERNAL_IDS_NAME",
    "DEFAULT_MAX_REJECTED_RECORDS",
    "GRAPH_REJECTED_STAGE",
    "MANIFEST_NAME",
    "REFUSED_NAME",
    "REJECTED_NAME",
    "EntraBulkUploadOperator",
    "PlannedRequest",
    "UploadPlan",
    "fingerprint",
    "format_progress",
]

MANIFEST_NAME = "upload-manifest.jsonl"
EXTERNAL_IDS_NAME = "sent-external-ids.parquet"
REJECTED_NAME = "upload-rejected.parquet"
#: Requests (and parts) Graph refused with 400, one JSON line each: a retried task does not re-probe them.
REFUSED_NAME = "upload-refused.jsonl"
DRY_RUN_REQUESTS_NAME = "dry-run-requests.jsonl"
DRY_RUN_SUMMARY_NAME = "dry-run-summary.json"
#: Request ids kept in the XCom summary; beyond that the first and last few (the manifest has all).
MAX_REQUEST_IDS_IN_SUMMARY = 200
REQUEST_IDS_KEPT_AT_EACH_END = 10
InputKind = Literal["auto", "hr", "mapped"]
#: Prefix of SCIM extension namespaces (RFC 7643 section 3.3); keys of a User record that start with it
#: are extension attributes blocks.
EXTENSION_SCHEMA_PREFIX = "urn:ietf:params:scim:schemas:extension:"
#: HTTP status of a bulkUpload request Graph refused for its content: the only answer that is split in halves.
BAD_REQUEST = 400
#: Records Graph may reject (400, isolated by splitting requests) per task before the task fails.
DEFAULT_MAX_REJECTED_RECORDS = 50
#: ``stage`` column of the records Graph rejected, in ``upload-rejected.parquet``.
GRAPH_REJECTED_STAGE = "upload"
#: Reasons quoted in the error when too many records were rejected.
REASONS_IN_ERROR = 5


# --- pure helpers -----------------------------------------------------------------------------------------


def fingerprint(payload: Mapping[str, Any]) -> str:
    """SHA-256 of a request's canonical JSON (sorted keys): equal for equal requests across processes.

    :param payload: a SCIM BulkRequest.
    """
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m" if minutes >= 10 or not seconds else f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"


def format_progress(
    done: int,
    total: int,
    calls_per_second: float | None,
    eta_seconds: float | None,
    rejected_by_graph: int = 0,
) -> str:
    """``412/2,000 records (20%), 7.9 calls/s, ETA 4m`` (``, 2 rejected by Graph`` after the count when any).

    :param done: records handled so far (sent, already in the manifest, or rejected by Graph).
    :param total: records to handle.
    :param calls_per_second: bulkUpload calls per second so far, ``None`` before the first.
    :param eta_seconds: estimated seconds left, ``None`` when unknown.
    :param rejected_by_graph: records Graph rejected (400) so far.
    """
    percent = int(done * 100 / total) if total else 100
    text = f"{done:,}/{total:,} records ({percent}%)"
    if rejected_by_graph:
        text += f", {rejected_by_graph:,} rejected by Graph"
    if calls_per_second is not None:
        text += f", {calls_per_second:.1f} calls/s"
    if eta_seconds is not None:
        text += f", ETA {_duration(eta_seconds)}"
    return text


@dataclass(frozen=True)
class PlannedRequest:
    """One BulkRequest of the plan.

    :param seq: position in the upload order (0-based).
    :param stage: managers-first stage (0: people whose manager is not in the batch).
    :param payload: the SCIM BulkRequest.
    :param external_ids: its records' externalIds, in operation order.
    :param fingerprint: :func:`fingerprint` of the payload.
    """

    seq: int
    stage: int
    payload: dict[str, Any]
    external_ids: list[str]
    fingerprint: str


@dataclass
class UploadPlan:
    """Requests in upload order, and what was set aside.

    :param requests: the requests, stage by stage.
    :param rejected: records not sent: ``row``, ``externalId``, ``stage`` (the step that set it aside),
        ``reason``.
    :param stage_sizes: records per stage.
    :param records: records that will be sent.
    :param input_rows: rows (or payload records) in the input.
    :param rows: input row of each externalId to send (for the records Graph may reject).
    """

    requests: list[PlannedRequest] = field(default_factory=list)
    rejected: pd.DataFrame = field(default_factory=lambda: _stack_rejected())
    stage_sizes: list[int] = field(default_factory=list)
    records: int = 0
    input_rows: int = 0
    rows: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Outcome:
    """What sending the plan did: manifest lines accepted now and earlier, records Graph rejected, and the
    requests Graph refused (this try and earlier ones, by fingerprint; kept in ``refused_path``)."""

    refused_path: ObjectStoragePath
    sent: list[dict[str, Any]] = field(default_factory=list)
    resumed: list[dict[str, Any]] = field(default_factory=list)
    graph_rejected: list[dict[str, Any]] = field(default_factory=list)
    refused: dict[str, dict[str, Any]] = field(default_factory=dict)


def _halves(request: PlannedRequest, part_of: str) -> list[tuple[PlannedRequest, str]]:
    """The two halves of a request (first half the larger), each a request of its own with the same seq and
    stage; deterministic, so their fingerprints are the same in a retried task."""
    operations = request.payload["Operations"]
    middle = (len(operations) + 1) // 2
    out = []
    for start, stop in ((0, middle), (middle, len(operations))):
        payload = {**request.payload, "Operations": operations[start:stop]}
        out.append(
            (
                PlannedRequest(
                    request.seq,
                    request.stage,
                    payload,
                    request.external_ids[start:stop],
                    fingerprint(payload),
                ),
                part_of,
            )
        )
    return out


def _graph_message(exc: EntraError) -> str:
    """Graph's ``error.message`` from the hook's error text (``bulkUpload failed: HTTP 400 Code: message
    (request-id …)``), or the whole text when it has another shape."""
    text = exc.message
    marker = f"HTTP {exc.status_code}" + (f" {exc.error_code}" if exc.error_code else "") + ": "
    start = text.find(marker)
    message = text[start + len(marker) :] if start >= 0 else text
    if exc.request_id:
        message = message.removesuffix(f" (request-id {exc.request_id})")
    return message


def _stack_rejected(*frames: pd.DataFrame) -> pd.DataFrame:
    """The records set aside by several steps as one frame (:data:`REJECTED_COLUMNS`; empty when none)."""
    return pd.concat(
        [frame for frame in frames if len(frame)] or [pd.DataFrame(columns=list(REJECTED_COLUMNS))],
        ignore_index=True,
    )


def _bulk_request(operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": [BULK_REQUEST_SCHEMA], "Operations": operations, "failOnErrors": None}


def _with_schemas(record: Mapping[str, Any]) -> dict[str, Any]:
    """A SCIM User record with ``schemas``: core and enterprise, plus each extension namespace it uses."""
    if record.get("schemas"):
        return dict(record)
    extensions = [
        key for key in record if key.startswith(EXTENSION_SCHEMA_PREFIX) and key != ENTERPRISE_USER_SCHEMA
    ]
    return {"schemas": [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA, *extensions], **record}


def _identity_mapping(frame: pd.DataFrame) -> AttributeMapping:
    """A mapping that sends each SCIM-path column of an already mapped frame as it is."""
    attributes: dict[str, Any] = {}
    for column in frame.columns:
        if column == RECORD_HASH:
            continue
        try:
            path = parse_path(str(column))
        except MappingError:
            continue
        spec: dict[str, Any] = {"column": str(column)}
        if path.value_type is None:  # a custom attribute: its type from the column
            dtype = frame[column].dtype
            if pd.api.types.is_bool_dtype(dtype):
                spec["type"] = "boolean"
            elif pd.api.types.is_integer_dtype(dtype):
                spec["type"] = "integer"
        attributes[str(column)] = spec
    return AttributeMapping(attributes)


def _given(value: Any) -> Any:
    """``None`` for an absent templated value: ``None``, blank text, or ``"None"`` (how Jinja renders a
    ``None`` param when the DAG does not render native objects)."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    return value


def _load_mapping(mapping: str | os.PathLike[str] | Mapping[str, Any] | AttributeMapping) -> AttributeMapping:
    if isinstance(mapping, AttributeMapping):
        return mapping
    spec: Any = mapping
    if isinstance(spec, str) and spec.lstrip().startswith("{"):  # a dict rendered as text
        spec = parse_rendered(spec)
    if isinstance(spec, Mapping):
        return AttributeMapping.from_dict(spec)
    source = to_path(spec)
    local = local_path(source)
    if local is not None:
        return AttributeMapping.from_file(local)
    with tempfile.TemporaryDirectory() as folder:  # from_file reads local files; fetch the object first
        copy = Path(folder) / source.name
        copy.write_bytes(source.read_bytes())
        return AttributeMapping.from_file(copy)


def _is_mapped_frame(frame: pd.DataFrame) -> bool:
    columns = set(map(str, frame.columns))
    return RECORD_HASH in columns or {"externalId", "userName", "active"} <= columns


def _parse_payloads(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        try:
            value = parse_rendered(value)
        except ValueError:
            raise AirflowException("payloads is text that is neither JSON nor a Python list") from None
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(item, Mapping) for item in value):
        raise AirflowException("payloads must be a list of SCIM BulkRequests or SCIM User records (dicts)")
    return [dict(item) for item in value]


# --- the operator -------------------------------------------------------------------------------------------


class EntraBulkUploadOperator(BaseOperator):
    """Upload records to Entra (``bulkUpload``), managers first, resumable, with progress and a manifest.

    Input is either a staged file (``input_path``) or a short list of payloads (``payloads``):

    * an HR-layout file (Parquet/CSV) plus ``mapping``: mapped with
      :func:`~airflow_provider_entra.scim.map_records`; rows that cannot be sent are set aside with a
      reason and the rest proceed;
    * an already mapped file (the ``.frame`` of ``map_records``, saved to Parquet): detected by its
      ``record_hash`` column or its ``externalId``/``userName``/``active`` columns (or
      ``input_kind="mapped"``); ``mapping`` is then optional;
    * ``payloads``: SCIM BulkRequests (sent as they are) or SCIM User records (packed into requests;
      ``schemas`` is filled in when a record has none).

    With ``managers_first`` the records are uploaded in stages by management depth (CEO first), so each
    manager reference resolves in this run; management cycles and self-managers are set aside with a reason.

    :param input_path: ``.parquet`` or ``.csv`` file, local path or ObjectStoragePath/URL. (templated)
    :param payloads: list of BulkRequest or SCIM User dicts, e.g. from XCom; small lists only. (templated)
    :param mapping: mapping file path (YAML/JSON), dict or
        :class:`~airflow_provider_entra.scim.AttributeMapping`; required for HR-layout input. (templated)
    :param input_kind: ``"auto"`` (detect), ``"hr"`` or ``"mapped"``.
    :param entra_conn_id: connection of type ``entra``. (templated)
    :param dry_run: build and write the requests and a summary, send nothing; accepts ``"true"``/``"false"``
        text from a template. (templated)
    :param managers_first: upload in managers-first stages.
    :param known_manager_ids_path: file (Parquet/CSV, ``externalId`` column) of ids this job already
        provisioned; managers among them count as resolved whatever the order. (templated)
    :param output_dir: folder for the manifest and staged outputs; default: the input file's folder
        (required with ``payloads``). (templated)
    :param max_operations: operations per request, 1 to 50.
    :param bulk_id_prefix: prefix of each ``bulkId``; default: derived from the run id, so a retried task
        builds the same requests and resumes. (templated)
    :param progress_every: log progress every this many requests...
    :param progress_seconds: ...or at least this often (seconds).
    :param max_rejected_records: records Graph may reject (400) in this task, isolated by sending the
        refused request in halves down to single records and set aside; one more fails the task (something
        systemic is wrong). ``None``: no limit.
    :return: ``{"records", "requests", "sent_requests", "resumed_requests", "rejected", "rejected_by_graph",
        "sent_records", "request_ids", "request_ids_total", "first_submit", "last_submit", "first_accepted",
        "last_accepted", "manifest_path", "external_ids_path", "rejected_path", "dry_run", "stages",
        "job_id"}``. ``rejected`` counts every record not sent (``rejected_by_graph`` included);
        ``sent_records``: records in accepted requests (this try and earlier ones); ``sent_requests`` counts
        the halves of split requests too. ``first_submit``/``last_submit`` are local clock times,
        ``first_accepted``/``last_accepted`` Graph's (the 202s' ``Date`` headers; ``None`` when none had
        one), all ISO 8601.
    """

    template_fields: Sequence[str] = (
        "input_path",
        "payloads",
        "mapping",
        "entra_conn_id",
        "dry_run",
        "known_manager_ids_path",
        "output_dir",
        "bulk_id_prefix",
    )
    ui_color = "#fde9c9"
    operator_extra_links = (EntraProvisioningLogsLink(),)

    def __init__(
        self,
        *,
        input_path: str | ObjectStoragePath | None = None,
        payloads: list[dict[str, Any]] | str | None = None,
        mapping: str | Mapping[str, Any] | AttributeMapping | None = None,
        input_kind: InputKind = "auto",
        entra_conn_id: str = EntraHook.default_conn_name,
        dry_run: bool | str = False,
        build_only: bool = False,
        build_only_param: str | None = None,
        managers_first: bool = True,
        known_manager_ids_path: str | ObjectStoragePath | None = None,
        output_dir: str | ObjectStoragePath | None = None,
        max_operations: int = MAX_OPERATIONS_PER_REQUEST,
        bulk_id_prefix: str | None = None,
        progress_every: int = 10,
        progress_seconds: float = 10.0,
        max_rejected_records: int | None = DEFAULT_MAX_REJECTED_RECORDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if input_kind not in ("auto", "hr", "mapped"):
            raise ValueError(f"input_kind must be 'auto', 'hr' or 'mapped', got {input_kind!r}")
        if not 1 <= max_operations <= MAX_OPERATIONS_PER_REQUEST:
            raise ValueError(
                f"max_operations must be 1 to {MAX_OPERATIONS_PER_REQUEST}, got {max_operations}"
            )
        if max_rejected_records is not None and max_rejected_records < 0:
            raise ValueError(f"max_rejected_records must be 0 or more (or None), got {max_rejected_records}")
        self.input_path = input_path
        self.payloads = payloads
        self.mapping = mapping
        self.input_kind = input_kind
        self.entra_conn_id = entra_conn_id
        # Shadows BaseOperator.dry_run(), an Airflow 2 helper that nothing in Airflow 3 calls; the parameter
        # name is the provider's public API and template fields need the attribute to match it.
        self.dry_run = dry_run  # type: ignore[method-assign,assignment]
        self.build_only = build_only
        self.build_only_param = build_only_param
        self.managers_first = managers_first
        self.known_manager_ids_path = known_manager_ids_path
        self.output_dir = output_dir
        self.max_operations = max_operations
        self.bulk_id_prefix = bulk_id_prefix
        self.progress_every = progress_every
        self.progress_seconds = progress_seconds
        self.max_rejected_records = max_rejected_records

    # --- inputs -------------------------------------------------------------------------------------------

    def _dry_run(self, context: Context | Mapping[str, Any]) -> bool:
        if self.build_only_param is not None:
            return bool((context.get("params") or {}).get(self.build_only_param))
        if self.build_only:
            return True
        value = self.dry_run
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off", "", "none"):
                return False
            raise AirflowException(f"dry_run must be true or false, got {value!r}")
        return bool(value)

    def _output_dir(self) -> ObjectStoragePath:
        if _given(self.output_dir) is not None:
            return to_path(self.output_dir)  # type: ignore[arg-type]
        if _given(self.input_path) is not None:
            return to_path(self.input_path).parent  # type: ignore[arg-type]
        raise AirflowException("output_dir is required when the input is a list of payloads")

    def _prefix(self, context: Context | Mapping[str, Any]) -> str:
        if self.bulk_id_prefix is not None and self.bulk_id_prefix != "None":  # "" is a valid prefix
            return str(self.bulk_id_prefix)
        run_id = str(context.get("run_id") or "")
        if not run_id:
            raise AirflowException("no run_id in the context: pass bulk_id_prefix")
        return hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:10] + "-"

    def _known_ids(self) -> list[str] | None:
        if _given(self.known_manager_ids_path) is None:
            return None
        frame = read_frame(self.known_manager_ids_path)  # type: ignore[arg-type]
        column = "externalId" if "externalId" in frame.columns else frame.columns[0]
        return frame[column].dropna().astype(str).tolist()

    # --- planning -----------------------------------------------------------------------------------------

    def plan(self, context: Context | Mapping[str, Any]) -> UploadPlan:
        """Build every request of this run, in upload order (deterministic).

        :param context: the task context (its ``run_id`` derives the default ``bulk_id_prefix``).
        """
        input_path, payloads, mapping_spec = (
            _given(self.input_path),
            _given(self.payloads),
            _given(self.mapping),
        )
        if (input_path is None) == (payloads is None):
            raise AirflowException("give exactly one of input_path and payloads")
        prefix = self._prefix(context)
        if payloads is not None:
            return self._plan_payloads(_parse_payloads(payloads), prefix)
        frame = read_frame(input_path)
        kind = self.input_kind
        if kind == "auto":
            kind = "mapped" if _is_mapped_frame(frame) else "hr"
        if kind == "mapped":
            mapping = _load_mapping(mapping_spec) if mapping_spec is not None else _identity_mapping(frame)
            records = MappedRecords.from_frame(frame, mapping)
        else:
            if mapping_spec is None:
                raise AirflowException(
                    f"{self.input_path} is an HR-layout file (no externalId/userName/active columns): "
                    "pass mapping"
                )
            records = map_records(frame, _load_mapping(mapping_spec))
        self.log.info(
            "Read %d rows from %s (%s layout): %d records to send, %d rejected, %d duplicates collapsed",
            len(frame),
            self.input_path,
            kind,
            len(records.frame),
            len(records.rejected),
            records.duplicates_collapsed,
        )
        return self._plan_records(records, prefix)

    def _stages(self, frame: pd.DataFrame, manager_column: str) -> tuple[list[pd.Index], pd.DataFrame]:
        """Row labels per stage, and the rows set aside by staging."""
        if not self.managers_first or frame.empty:
            return ([frame.index] if len(frame) else []), _stack_rejected()
        stage_plan = plan_stages(
            frame, id_column="externalId", manager_column=manager_column, known_ids=self._known_ids()
        )
        for warning in stage_plan.warnings.itertuples(index=False):
            self.log.warning("Record %s: %s", warning.externalId, warning.warning)
        return stage_plan.stage_index, stage_plan.rejected

    def _plan_records(self, records: MappedRecords, prefix: str) -> UploadPlan:
        plan = UploadPlan(input_rows=records.input_rows)
        rejected = records.rejected.assign(stage="mapping")[list(REJECTED_COLUMNS)]
        stages, stage_rejected = self._stages(records.frame, MANAGER_PATH)
        plan.rejected = _stack_rejected(rejected, stage_rejected)
        seq = 0
        for stage_number, labels in enumerate(stages):
            ids = records.frame.loc[labels, "externalId"].astype(str).tolist()
            subset = records.select(ids)
            built = build_bulk_requests(subset, max_operations=self.max_operations, bulk_id_prefix=prefix)
            for index in range(len(built.requests)):
                payload = built.requests[index]
                plan.requests.append(
                    PlannedRequest(
                        seq, stage_number, payload, built.external_ids[index], fingerprint(payload)
                    )
                )
                seq += 1
            plan.stage_sizes.append(built.operation_count)
            plan.records += built.operation_count
        plan.rows = dict(
            zip(records.frame["externalId"].astype(str), records.frame.index.tolist(), strict=True)
        )
        return plan

    def _plan_payloads(self, items: list[dict[str, Any]], prefix: str) -> UploadPlan:
        plan = UploadPlan()
        if all("Operations" in item for item in items):
            for seq, payload in enumerate(items):
                operations = payload.get("Operations") or []
                ids = [str((op.get("data") or {}).get("externalId")) for op in operations]
                plan.requests.append(PlannedRequest(seq, 0, payload, ids, fingerprint(payload)))
                plan.records += len(ids)
            plan.input_rows = plan.records
            plan.stage_sizes = [plan.records] if plan.records else []
            return plan
        if any("Operations" in item for item in items):
            raise AirflowException("payloads mixes BulkRequests and User records; give one kind")
        plan.input_rows = len(items)
        users = pd.DataFrame(
            {
                "externalId": [str(item.get("externalId") or "").strip() or None for item in items],
                "manager": [
                    ((item.get(ENTERPRISE_USER_SCHEMA) or {}).get("manager") or {}).get("value")
                    for item in items
                ],
            }
        )
        missing = users["externalId"].isna()
        rejected = pd.DataFrame(
            {
                "row": users.index[missing],
                "externalId": None,
                "stage": "payloads",
                "reason": "externalId is empty",
            }
        )
        stages, stage_rejected = self._stages(users[~missing], "manager")
        plan.rejected = _stack_rejected(rejected, stage_rejected)
        seq = 0
        for stage_number, labels in enumerate(stages):
            stage_items = [items[label] for label in labels]
            for start in range(0, len(stage_items), self.max_operations):
                chunk = stage_items[start : start + self.max_operations]
                ids = [str(item["externalId"]).strip() for item in chunk]
                operations = [
                    {
                        "method": "POST",
                        "bulkId": f"{prefix}{ext}",
                        "path": "/Users",
                        "data": _with_schemas(item),
                    }
                    for ext, item in zip(ids, chunk, strict=True)
                ]
                payload = _bulk_request(operations)
                plan.requests.append(PlannedRequest(seq, stage_number, payload, ids, fingerprint(payload)))
                plan.rows.update(zip(ids, labels[start : start + self.max_operations].tolist(), strict=True))
                seq += 1
            plan.stage_sizes.append(len(stage_items))
            plan.records += len(stage_items)
        return plan

    # --- run ----------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        dry_run = self._dry_run(context)
        out = self._output_dir()
        plan = self.plan(context)
        manifest_path = out / MANIFEST_NAME
        ids_path = write_frame(_external_ids_frame(plan), out / EXTERNAL_IDS_NAME)
        rejected_path = None
        if len(plan.rejected):
            rejected_path = write_frame(plan.rejected.astype({"row": "string"}), out / REJECTED_NAME)
            for row in plan.rejected.head(10).itertuples(index=False):
                self.log.warning("Not sent: record %s (row %s): %s", row.externalId, row.row, row.reason)
            if len(plan.rejected) > 10:
                self.log.warning(
                    "... and %d more records not sent (see %s)", len(plan.rejected) - 10, rejected_path
                )
        self.log.info(
            "%d records in %d requests over %d stage(s) %s; %d set aside",
            plan.records,
            len(plan.requests),
            len(plan.stage_sizes),
            plan.stage_sizes,
            len(plan.rejected),
        )
        base = {
            "records": plan.records,
            "requests": len(plan.requests),
            "rejected": len(plan.rejected),
            "manifest_path": str(manifest_path),
            "external_ids_path": str(ids_path),
            "rejected_path": str(rejected_path) if rejected_path is not None else None,
            "dry_run": dry_run,
            "stages": list(plan.stage_sizes),
        }
        if dry_run:
            return self._dry_run_output(out, plan, base)

        hook = EntraHook(self.entra_conn_id)
        EntraProvisioningLogsLink.persist(context, hook.portal_logs_url())
        done = {line.get("fingerprint"): line for line in read_jsonl(manifest_path, missing_ok=True)}
        wanted = {req.fingerprint for req in plan.requests}
        resumed = [done[req.fingerprint] for req in plan.requests if req.fingerprint in done]
        parts = sum(1 for line in done.values() if line.get("part_of") in wanted)
        if resumed or parts:
            self.log.info(
                "Resuming: %d of %d requests (and %d part(s) of requests Graph refused whole) are already "
                "in %s and will not be sent again",
                len(resumed),
                len(plan.requests),
                parts,
                manifest_path,
            )
        stale = sum(
            1 for key, line in done.items() if key not in wanted and line.get("part_of") not in wanted
        )
        if stale:
            self.log.info("Ignoring %d manifest line(s) of other runs or inputs", stale)
        outcome = _Outcome(refused_path=out / REFUSED_NAME)
        outcome.refused = {
            line["fingerprint"]: line
            for line in read_jsonl(outcome.refused_path, missing_ok=True)
            if line.get("fingerprint")
        }
        if outcome.refused:
            self.log.info(
                "%d request(s) or part(s) Graph refused in an earlier try (%s) are not sent again",
                len(outcome.refused),
                outcome.refused_path,
            )
        try:
            self._send(hook, plan, done, manifest_path, outcome)
        finally:  # also when the task fails: the records Graph rejected so far are written down
            if outcome.graph_rejected:
                rejected_path = self._write_graph_rejected(out, plan, outcome)
            gone = {item["externalId"] for item in outcome.graph_rejected}
            acceptance = _acceptance(outcome.resumed + outcome.sent)
            ids_path = write_frame(_external_ids_frame(plan, gone, acceptance), out / EXTERNAL_IDS_NAME)
        sent = outcome.sent
        accepted = sorted(outcome.resumed + sent, key=lambda line: line["seq"])
        request_ids = [line.get("request_id") for line in accepted]
        if len(request_ids) > MAX_REQUEST_IDS_IN_SUMMARY:
            keep = REQUEST_IDS_KEPT_AT_EACH_END
            request_ids = request_ids[:keep] + request_ids[-keep:]
        times = [line["submitted_at"] for line in accepted]
        accepted_times = [line["accepted_at"] for line in accepted if line.get("accepted_at")]
        rejected_by_graph = len(outcome.graph_rejected)
        return {
            **base,
            "rejected": len(plan.rejected) + rejected_by_graph,
            "rejected_by_graph": rejected_by_graph,
            "sent_records": sum(len(line.get("external_ids") or ()) for line in accepted),
            "external_ids_path": str(ids_path),
            "rejected_path": str(rejected_path) if rejected_path is not None else None,
            "sent_requests": len(sent),
            "resumed_requests": len(outcome.resumed),
            "request_ids": request_ids,
            "request_ids_total": len(accepted),
            "first_submit": min(times) if times else None,
            "last_submit": max(times) if times else None,
            "first_accepted": min(accepted_times, key=_utc_time) if accepted_times else None,
            "last_accepted": max(accepted_times, key=_utc_time) if accepted_times else None,
            "job_id": hook.job_id,
        }

    def _dry_run_output(
        self, out: ObjectStoragePath, plan: UploadPlan, base: dict[str, Any]
    ) -> dict[str, Any]:
        requests_path = write_jsonl(out / DRY_RUN_REQUESTS_NAME, (req.payload for req in plan.requests))
        summary = {
            **base,
            "rejected_by_graph": 0,
            "sent_records": 0,
            "sent_requests": 0,
            "resumed_requests": 0,
            "request_ids": [],
            "request_ids_total": 0,
            "first_submit": None,
            "last_submit": None,
            "first_accepted": None,
            "last_accepted": None,
            "job_id": None,
            "dry_run_requests_path": str(requests_path),
        }
        write_bytes(out / DRY_RUN_SUMMARY_NAME, json.dumps(summary, indent=2).encode("utf-8"))
        self.log.info(
            "Dry run: %d requests written to %s; nothing was sent", len(plan.requests), requests_path
        )
        return summary

    def _write_graph_rejected(
        self, out: ObjectStoragePath, plan: UploadPlan, outcome: _Outcome
    ) -> ObjectStoragePath:
        """Add the records Graph rejected to ``upload-rejected.parquet`` (the caller takes them out of
        ``sent-external-ids.parquet``: the sensor must not wait for them)."""
        graph_rejected = pd.DataFrame(outcome.graph_rejected, columns=list(REJECTED_COLUMNS))
        rejected = _stack_rejected(plan.rejected, graph_rejected)
        rejected_path = write_frame(rejected.astype({"row": "string"}), out / REJECTED_NAME)
        self.log.warning(
            "%d record(s) rejected by Graph were set aside in %s", len(graph_rejected), rejected_path
        )
        return rejected_path

    def _send(
        self,
        hook: EntraHook,
        plan: UploadPlan,
        done: Mapping[str, Any],
        manifest_path: ObjectStoragePath,
        outcome: _Outcome,
    ) -> None:
        progress = _Progress(self, plan, self.progress_every, self.progress_seconds)
        for request in plan.requests:
            pending: list[tuple[PlannedRequest, str | None]] = [(request, None)]
            while pending:  # depth first, first half first: a deterministic order
                part, part_of = pending.pop(0)
                halves = self._send_one(hook, plan, part, part_of, done, manifest_path, outcome, progress)
                pending[:0] = halves
        progress.finish()

    def _send_one(
        self,
        hook: EntraHook,
        plan: UploadPlan,
        request: PlannedRequest,
        part_of: str | None,
        done: Mapping[str, Any],
        manifest_path: ObjectStoragePath,
        outcome: _Outcome,
        progress: _Progress,
    ) -> list[tuple[PlannedRequest, str]]:
        """Send one request (or part of one); return its halves when Graph refused it whole (400)."""
        if request.fingerprint in done:
            outcome.resumed.append(done[request.fingerprint])
            progress.skipped(request)
            return []
        known = outcome.refused.get(request.fingerprint)
        if known is not None:  # refused in an earlier try: Graph would refuse it again, do not re-probe
            if len(request.external_ids) > 1:
                return _halves(request, part_of or request.fingerprint)
            self._quarantine(plan, request, str(known.get("reason") or ""), outcome)
            progress.rejected(request)
            return []
        try:
            receipt = hook.bulk_upload(request.payload)
        except EntraPayloadRejectedError as exc:
            if exc.status_code != BAD_REQUEST:
                raise self._failed(request, plan, outcome, manifest_path, exc) from exc
            progress.refused()
            reason = (
                f"Graph rejected the record: {exc.error_code or f'HTTP {exc.status_code}'}: "
                f"{_graph_message(exc)}"
            )
            refusal = {
                "fingerprint": request.fingerprint,
                "seq": request.seq,
                "external_ids": request.external_ids,
                "status_code": exc.status_code,
                "request_id": exc.request_id,
                "reason": reason,
            }
            append_jsonl(outcome.refused_path, [refusal])
            outcome.refused[request.fingerprint] = refusal
            if len(request.external_ids) > 1:
                halves = _halves(request, part_of or request.fingerprint)
                self.log.warning(
                    "Graph refused request %d/%d (%d records, externalIds %s): %s; sending it in halves to "
                    "find the bad record(s)",
                    request.seq + 1,
                    len(plan.requests),
                    len(request.external_ids),
                    _ids_text(request.external_ids),
                    _graph_message(exc),
                )
                return halves
            self._quarantine(plan, request, reason, outcome)
            progress.rejected(request)
            return []
        except EntraError as exc:
            raise self._failed(request, plan, outcome, manifest_path, exc) from exc
        line = {
            "seq": request.seq,
            "stage": request.stage,
            "fingerprint": request.fingerprint,
            "request_id": receipt.request_id,
            "client_request_id": receipt.client_request_id,
            "external_ids": request.external_ids,
            "operations": receipt.operation_count,
            "submitted_at": receipt.submitted_at.isoformat(),
            "accepted_at": receipt.accepted_at.isoformat() if receipt.accepted_at else None,
            "status_code": receipt.status_code,
        }
        if part_of is not None:
            line["part_of"] = part_of
        append_jsonl(manifest_path, [line])
        outcome.sent.append(line)
        progress.sent(request)
        return []

    def _quarantine(self, plan: UploadPlan, request: PlannedRequest, reason: str, outcome: _Outcome) -> None:
        """Set aside a single record Graph rejected; fail when more than ``max_rejected_records`` are."""
        external_id = request.external_ids[0]
        outcome.graph_rejected.append(
            {
                "row": plan.rows.get(external_id),
                "externalId": external_id,
                "stage": GRAPH_REJECTED_STAGE,
                "reason": reason,
            }
        )
        self.log.warning("Not sent: record %s: %s", external_id, reason)
        limit = self.max_rejected_records
        if limit is not None and len(outcome.graph_rejected) > limit:
            first = "; ".join(
                f"{item['externalId']}: {item['reason']}"
                for item in outcome.graph_rejected[:REASONS_IN_ERROR]
            )
            raise AirflowException(
                f"Graph rejected {len(outcome.graph_rejected)} records, more than max_rejected_records="
                f"{limit}: something systemic is wrong (the mapping or the input's types?), so the upload "
                f"stops. First reasons: {first}. The rejected records are in {REJECTED_NAME}; the "
                f"{len(outcome.sent)} request(s) accepted in this try are in the manifest and a retry "
                "resumes after them."
            )

    def _failed(
        self,
        request: PlannedRequest,
        plan: UploadPlan,
        outcome: _Outcome,
        manifest_path: ObjectStoragePath,
        exc: EntraError,
    ) -> AirflowException:
        return AirflowException(
            f"bulkUpload of request {request.seq + 1}/{len(plan.requests)} (stage {request.stage}, "
            f"externalIds {_ids_text(request.external_ids)}) failed: {exc}. "
            f"{len(outcome.sent)} request(s) were accepted in this try and are in {manifest_path}; "
            "a retry of this task resumes after them."
        )


def _external_ids_frame(
    plan: UploadPlan,
    leave_out: set[str] | frozenset[str] = frozenset(),
    accepted_at: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """``externalId``, ``seq``, ``stage``, ``accepted_at`` (UTC, NaT when unknown) of every record of the
    plan's requests but ``leave_out``."""
    kept = [(ext, req) for req in plan.requests for ext in req.external_ids if ext not in leave_out]
    accepted = accepted_at or {}
    return pd.DataFrame(
        {
            "externalId": [ext for ext, _ in kept],
            "seq": [req.seq for _, req in kept],
            "stage": [req.stage for _, req in kept],
            "accepted_at": pd.to_datetime([accepted.get(ext) for ext, _ in kept], utc=True, format="ISO8601"),
        }
    )


def _utc_time(text: str) -> datetime:
    stamp = datetime.fromisoformat(text)
    return stamp.replace(tzinfo=timezone.utc) if stamp.tzinfo is None else stamp.astimezone(timezone.utc)


def _acceptance(lines: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """externalId -> the earliest ``accepted_at`` among the manifest lines carrying it (ISO 8601 text)."""
    earliest: dict[str, str] = {}
    for line in lines:
        accepted = line.get("accepted_at")
        if not accepted:
            continue
        for ext in line.get("external_ids") or ():
            key = str(ext)
            if key not in earliest or _utc_time(accepted) < _utc_time(earliest[key]):
                earliest[key] = accepted
    return earliest


def _ids_text(external_ids: Sequence[str]) -> str:
    return ", ".join(external_ids[:5]) + (" ..." if len(external_ids) > 5 else "")


class _Progress:
    """Progress every N requests or every few seconds: ``412/2,000 records (20%), 7.9 calls/s, ETA 4m``."""

    def __init__(self, operator: BaseOperator, plan: UploadPlan, every: int, seconds: float) -> None:
        self.log = operator.log
        self.total = plan.records
        self.every = max(1, every)
        self.seconds = seconds
        self.done = 0
        self.calls = 0
        self.records_sent = 0
        self.rejected_by_graph = 0
        self.started = time.monotonic()
        self.last_logged = self.started
        self.since_log = 0

    def skipped(self, request: PlannedRequest) -> None:
        self.done += len(request.external_ids)

    def sent(self, request: PlannedRequest) -> None:
        now = time.monotonic()
        self.calls += 1
        self.done += len(request.external_ids)
        self.records_sent += len(request.external_ids)
        self.since_log += 1
        if self.since_log >= self.every or now - self.last_logged >= self.seconds:
            self._log(now)

    def refused(self) -> None:
        """A call Graph answered 400 (the request is split or its record set aside)."""
        self.calls += 1

    def rejected(self, request: PlannedRequest) -> None:
        self.done += len(request.external_ids)
        self.rejected_by_graph += len(request.external_ids)

    def _log(self, now: float) -> None:
        elapsed = now - self.started
        rate = self.calls / elapsed if elapsed > 0 else None
        eta = None
        if rate and self.records_sent:
            records_per_call = self.records_sent / self.calls
            eta = (self.total - self.done) / records_per_call / rate
        self.log.info("%s", format_progress(self.done, self.total, rate, eta, self.rejected_by_graph))
        self.last_logged = now
        self.since_log = 0

    def finish(self) -> None:
        if self.since_log:
            self._log(time.monotonic())
