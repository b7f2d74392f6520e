"""The HR provisioning run as plain functions over staged files: one function per arrow of the pipeline.

Each step reads the files the previous step staged, writes its own, and returns a small JSON-safe summary
(counts and paths), so an Airflow task is a three-line wrapper and the whole run can be called, and tested,
without Airflow::

    extract_csv(hr.csv)  -> hr_raw.parquet
    transform            -> normalised.parquet, mapped.parquet, quarantine.csv, warnings.csv, held.parquet
    plan                 -> delta.parquet (the mapped records to send, with their ``change`` kind)
    guard                -> a decision (no file): stop before sending when too many would be disabled or too
                            many rows were quarantined
    stages               -> known-ids.parquet (ids this job already holds, for managers-first ordering)
    (upload, verify: EntraBulkUploadOperator and EntraProvisioningLogSensor, in the DAG)
    commit               -> the job's ledger (records the logs prove) + snapshot/hr_current.parquet
    write_run_summary    -> run-summary.json

Staging layout (``staging_root`` is a local path or any fsspec/ObjectStoragePath URL)::

    <staging_root>/ledger/<job key>/...                 the job's ledger: what Entra is proven to hold,
                                                        shared by every DAG that writes to the job
    <staging_root>/<dag_id>/<run id, sanitised>/...     one folder per run (the files above)
    <staging_root>/<dag_id>/snapshot/hr_current.parquet  the normalised HR feed of the last committed run

Paths may be plain local paths, URLs (``file://``, ``s3://``...) or objects with ``fs`` and ``path``
attributes (Airflow's ``ObjectStoragePath``). Local writes are atomic (temporary file, then rename).

Pure pandas and fsspec: no Airflow import.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airflow_provider_entra._fsio import exists as _exists
from airflow_provider_entra._fsio import read_bytes as _read_bytes
from airflow_provider_entra._fsio import write_bytes as _write_bytes
from airflow_provider_entra.provisioning import ledger as _ledger
from airflow_provider_entra.provisioning._hr import (
    QUARANTINE_COLUMNS,
    concat_quarantine,
    isin_text,
    quarantine_frame,
)
from airflow_provider_entra.provisioning.admin import (
    DEFAULT_PRIVILEGE_RULE,
    PrivilegeRule,
    derive_admin_accounts,
)
from airflow_provider_entra.provisioning.guard import (
    DEFAULT_MAX_DISABLE_COUNT,
    DEFAULT_MAX_DISABLE_PERCENT,
    DEFAULT_MAX_QUARANTINE_COUNT,
    DEFAULT_MAX_QUARANTINE_PERCENT,
    check_deletion_guard,
    check_quarantine_gate,
)
from airflow_provider_entra.provisioning.hr_source import HrSourceError, read_hr_csv_bytes
from airflow_provider_entra.provisioning.ids import IdRepair, repair_ids
from airflow_provider_entra.provisioning.normalise import CSV2SCIM_COLUMNS, HrSchema, normalise_hr
from airflow_provider_entra.provisioning.plan import plan_delta
from airflow_provider_entra.provisioning.reconcile import (
    OUTCOME_COLUMNS,
    STATUSES,
    failure_reasons,
    outcome_summary,
)
from airflow_provider_entra.provisioning.report import CSV_NAME, HTML_NAME, neutralise_formulas, render_report
from airflow_provider_entra.provisioning.snapshot import active_count
from airflow_provider_entra.provisioning.stages import SCIM_MANAGER_COLUMN, plan_stages
from airflow_provider_entra.provisioning.validate import validate_hr
from airflow_provider_entra.scim import AttributeMapping, map_records
from airflow_provider_entra.scim.mapping import ColumnSource

__all__ = [
    "DELTA_NAME",
    "HR_CURRENT_NAME",
    "KNOWN_IDS_NAME",
    "MAPPED_NAME",
    "NORMALISED_NAME",
    "QUARANTINE_NAME",
    "RAW_NAME",
    "RUN_SUMMARY_NAME",
    "SNAPSHOT_DIR_NAME",
    "SNAPSHOT_NAME",
    "WARNINGS_NAME",
    "commit",
    "derive_admins",
    "extract_csv",
    "extract_frame",
    "extract_sql",
    "guard",
    "join",
    "plan",
    "read_frame",
    "run_dir",
    "sanitise_run_id",
    "select_on_demand",
    "snapshot_dir",
    "stages",
    "staging_root",
    "summarise_logs",
    "transform",
    "write_run_report",
    "write_run_summary",
    "adopt_legacy_snapshot",
    "ledger_path",
    "public_summary",
    "top_reasons",
    "verdict",
    "DEFAULT_MAX_QUARANTINE_COUNT",
    "DEFAULT_MAX_QUARANTINE_PERCENT",
]

RAW_NAME = "hr_raw.parquet"
NORMALISED_NAME = "normalised.parquet"
MAPPED_NAME = "mapped.parquet"
QUARANTINE_NAME = "quarantine.csv"
WARNINGS_NAME = "warnings.csv"
DELTA_NAME = "delta.parquet"
KNOWN_IDS_NAME = "known-ids.parquet"
ADMINS_NAME = "admins.parquet"
SELECTED_NAME = "selected.parquet"
RUN_SUMMARY_NAME = "run-summary.json"
SNAPSHOT_DIR_NAME = "snapshot"
SNAPSHOT_NAME = "hr_snapshot.parquet"
HR_CURRENT_NAME = "hr_current.parquet"
HELD_NAME = "held.parquet"
#: The folder under ``$AIRFLOW_HOME`` used when neither a Param nor the Variable names a staging root.
DEFAULT_STAGING_FOLDER = "entra-staging"
#: Rows of a quarantine file: the input row (0-based data row of the export), its WorkerID, the step that
#: set it aside (validate, normalise, mapping) and why.
QUARANTINE_FILE_COLUMNS = QUARANTINE_COLUMNS
#: Column of the derived admin rows naming the person an admin account belongs to.
LINK_COLUMN = "LinkedWorkerID"
#: Ids listed in a step's summary (XCom); the staged files hold all of them.
MAX_LISTED_IDS = 50
_UNSAFE_RUN_ID = re.compile(r"[^A-Za-z0-9._-]+")


# --- paths ------------------------------------------------------------------------------------------------


def sanitise_run_id(run_id: str) -> str:
    """A run id usable as one folder name: ``manual__2026-03-02T01:00:00+00:00`` ->
    ``manual__2026-03-02T01_00_00_00_00``.

    :param run_id: the Airflow run id (any text).
    """
    text = _UNSAFE_RUN_ID.sub("_", str(run_id)).strip("._")
    if not text:
        raise ValueError(f"run id {run_id!r} has no character usable in a folder name")
    return text


def staging_root(param: str | None, variable: str | None, airflow_home: str | os.PathLike[str]) -> str:
    """The staging root: the ``staging_path`` Param, else the ``entra_staging_path`` Variable, else
    ``file://$AIRFLOW_HOME/entra-staging``.

    :param param: the run's ``staging_path`` Param (``None`` or blank when not set).
    :param variable: the Variable's value (``None`` or blank when not set).
    :param airflow_home: ``AIRFLOW_HOME``.
    :return: a URL (``file://``, ``s3://``...) or a local path, without a trailing slash.
    """
    for value in (param, variable):
        if value is not None and str(value).strip():
            return str(value).strip().rstrip("/")
    return f"file://{Path(airflow_home).expanduser().resolve() / DEFAULT_STAGING_FOLDER}"


def join(base: Any, *parts: str) -> Any:
    """``base / part / ...`` for a local path, a URL or an ``ObjectStoragePath`` (same type back, URLs as
    text)."""
    if isinstance(base, str):
        if "://" in base:
            return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
        return str(Path(base, *parts))
    if isinstance(base, os.PathLike) and not hasattr(base, "fs"):
        return Path(base, *parts)
    out = base
    for part in parts:
        out = out / part
    return out


def run_dir(root: Any, dag_id: str, run_id: str) -> Any:
    """``<root>/<dag_id>/<sanitised run id>``: the folder of one run's staged files."""
    return join(root, dag_id, sanitise_run_id(run_id))


def snapshot_dir(root: Any, dag_id: str) -> Any:
    """``<root>/<dag_id>/snapshot``: where a DAG keeps its last committed HR feed (and where the first
    release kept its snapshot)."""
    return join(root, dag_id, SNAPSHOT_DIR_NAME)


def ledger_path(root: Any, job_id: str) -> str:
    """``<root>/ledger/<job key>``: the ledger of one provisioning job, shared by every DAG uploading to
    it."""
    return _ledger.ledger_dir(root, job_id)


def adopt_legacy_snapshot(ledger: Any, legacy_snapshot: Any) -> int:
    """Copy the first release's per-DAG snapshot into the job's still-empty ledger (see the ledger module).

    :return: the number of accounts adopted (0 once the ledger holds state).
    """
    return _ledger.adopt_legacy_snapshot(ledger, legacy_snapshot)


def _state(ledger: Any) -> pd.DataFrame:
    """The ledger's state (what Entra is proven to hold); a missing ledger is empty."""
    return _ledger.read_ledger(ledger).state


# --- staged file I/O --------------------------------------------------------------------------------------


def read_frame(path: Any) -> pd.DataFrame:
    """Read a staged ``.parquet`` file, or a ``.csv`` as text (ids keep their leading zeros).

    :param path: local path, URL or ``ObjectStoragePath``.
    """
    data = _read_bytes(path)
    if str(path).lower().endswith(".csv"):
        return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    return pd.read_parquet(io.BytesIO(data))


def _write_parquet(frame: pd.DataFrame, path: Any) -> str:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    _write_bytes(path, buffer.getvalue())
    return str(path)


def _write_csv(frame: pd.DataFrame, path: Any) -> str:
    """CSV for people: formula-looking cells neutralised (they open in spreadsheet programs)."""
    data = neutralise_formulas(frame).to_csv(index=False, lineterminator="\n").encode("utf-8")
    _write_bytes(path, data)
    return str(path)


def load_mapping(path: Any) -> Any:
    """The mapping file at ``path`` (local path, URL or ``ObjectStoragePath``): its ``source`` block (the HR
    export's layout) and its ``attributes`` (:func:`airflow_provider_entra.mapping.load_mapping_file`)."""
    from airflow_provider_entra.mapping import load_mapping_file

    return load_mapping_file(path)


def hr_schema(mapping: Any) -> HrSchema:
    """The HR layout a mapping file declares: its ``source`` block, plus the date formats its ``datetime``
    attributes declare for their columns (declared once, parsed once: normalisation reads the column with
    that format, the attribute then receives ISO 8601)."""
    schema: HrSchema = mapping.source.to_hr_schema()
    if schema.date_format is not None:
        return schema
    formats = dict(schema.date_formats)
    for spec in mapping.attributes.attributes:
        if spec.value_type == "datetime" and spec.date_format and isinstance(spec.source, ColumnSource):
            formats.setdefault(spec.source.column, spec.date_format)
    return dataclasses.replace(schema, date_formats=tuple(formats.items()))


def _load_mapping(path: Any) -> AttributeMapping:
    return load_mapping(path).attributes  # type: ignore[no-any-return]


def _as_text_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Every column as text, missing values as empty text (the shape of a CSV read with ``dtype=str``)."""
    out = {}
    for column in df.columns:
        values = df[column]
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            text = values.map(lambda v: v.isoformat(), na_action="ignore")
        elif pd.api.types.is_float_dtype(values.dtype):
            finite = values.dropna()
            whole = len(finite) > 0 and bool((finite == np.floor(finite)).all())
            text = values.astype("Int64").astype(object) if whole else values.astype(object)
        else:
            text = values.astype(object)
        out[str(column)] = text.where(pd.notna(text), "").astype(str)
    return pd.DataFrame(out)


# --- extract ----------------------------------------------------------------------------------------------


def extract_csv(hr_path: Any, out_path: Any) -> dict[str, Any]:
    """Stage an HR CSV export as Parquet, every column as text.

    The file is read with :func:`~airflow_provider_entra.provisioning.hr_source.read_hr_csv_bytes`: the
    encoding (UTF-8 with or without BOM, UTF-16 with BOM, else cp1252/latin-1 with a warning) and the
    delimiter (``,`` ``;`` tab ``|``) are detected, and a file that is not a usable table (empty, header
    only, a workbook, ragged rows) fails with a message saying why.

    :param hr_path: the CSV (local path, URL or ``ObjectStoragePath``).
    :param out_path: the staged Parquet file (``hr_raw.parquet`` in the run folder).
    :return: ``{"source", "rows", "columns", "path", "encoding", "delimiter", "warnings"}``.
    :raises HrSourceError: when the file cannot be read as a CSV table.
    """
    try:
        data = _read_bytes(hr_path)
    except FileNotFoundError:
        raise HrSourceError(f"{hr_path} does not exist") from None
    frame = read_hr_csv_bytes(data, source=str(hr_path))
    summary = extract_frame(frame, out_path, source=str(hr_path))
    summary.update(
        encoding=frame.attrs.get("encoding"),
        delimiter=frame.attrs.get("delimiter"),
        warnings=list(frame.attrs.get("warnings") or []),
    )
    return summary


def extract_frame(frame: pd.DataFrame, out_path: Any, *, source: str) -> dict[str, Any]:
    """Stage any HR frame (a SQL query's result, an API's records) as text columns in Parquet.

    Numbers become their text (``1513.0`` in a column with gaps becomes ``1513``), missing values empty text,
    so the rest of the pipeline sees the same as for a CSV.

    :param frame: the HR rows.
    :param out_path: the staged Parquet file.
    :param source: where the rows came from (shown in the summary).
    :return: ``{"source", "rows", "columns", "path"}``.
    """
    text = _as_text_frame(frame)
    _write_parquet(text, out_path)
    return {"source": source, "rows": len(text), "columns": list(text.columns), "path": str(out_path)}


def extract_sql(hook: Any, query: str, out_path: Any, *, source: str | None = None) -> dict[str, Any]:
    """Stage the result of ``query`` on a SQL hook (any Airflow ``DbApiHook``) like :func:`extract_frame`.

    :param hook: a hook with ``get_df(sql, df_type="pandas")`` (common.sql >= 1.20) or ``get_pandas_df(sql)``.
    :param query: the query returning one row per employee, with the export's column names.
    :param out_path: the staged Parquet file.
    :param source: shown in the summary (default: the hook's class name).
    :return: ``{"source", "rows", "columns", "path"}``.
    """
    get_df = getattr(hook, "get_df", None)
    frame = get_df(query, df_type="pandas") if get_df is not None else hook.get_pandas_df(query)
    return extract_frame(frame, out_path, source=source or f"SQL via {type(hook).__name__}")


# --- transform --------------------------------------------------------------------------------------------


def _existing_upns(snapshot: pd.DataFrame) -> pd.Series | None:
    if snapshot.empty:
        return None
    return snapshot.set_index("externalId")["UserPrincipalName"]


def _map_normalised(frame: pd.DataFrame, mapping: AttributeMapping) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Map normalised rows; rejected rows keep the input row labels of ``frame``."""
    mapped = map_records(frame, mapping)
    labels = frame.index.to_numpy()
    rejected = quarantine_frame(
        labels[mapped.rejected["row"].to_numpy(dtype=np.int64)] if len(mapped.rejected) else [],
        mapped.rejected["externalId"],
        "mapping",
        mapped.rejected["reason"],
    )
    return mapped.frame.reset_index(drop=True), rejected, mapped.duplicates_collapsed


def _stage_counts(quarantine: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in quarantine["stage"].value_counts(sort=False).items()}


_VALUE_IN_REASON = re.compile(r"'[^']*'")
_NUMBER_IN_REASON = re.compile(r"\b\d+\b")


def top_reasons(quarantine: pd.DataFrame, top: int = 5) -> list[list[Any]]:
    """The most frequent quarantine reasons, values left out (``WorkerID: '…' also appears in row(s) N``).

    :param quarantine: the quarantine frame (``reason`` column).
    :param top: how many to return.
    :return: ``[[reason, count], ...]``, most frequent first.
    """
    if quarantine.empty:
        return []
    first = quarantine["reason"].astype(str).str.split("; ").str[0]
    shape = (
        first.str.replace(_VALUE_IN_REASON, "'…'", regex=True)
        .str.replace(_NUMBER_IN_REASON, "N", regex=True)
        .str.replace(r"N(?:, N)+", "N", regex=True)
        .str.replace(r"\s*\([^)]*\)$", "", regex=True)  # the per-row detail in parentheses
    )
    counts = shape.value_counts()
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [[str(reason), int(n)] for reason, n in ranked]


def _repair_ids(raw: pd.DataFrame, schema: HrSchema, known_ids: pd.Series, id_shape: str | None) -> IdRepair:
    """Id hygiene before validation: Excel-mangled WorkerIDs and ManagerIDs restored or quarantined."""
    if schema.worker_id not in raw.columns:  # validate_hr names every missing required column
        return IdRepair(frame=raw, rejected=quarantine_frame(), held_ids=pd.Index([], dtype=object))
    try:
        return repair_ids(
            raw,
            id_column=schema.worker_id,
            manager_column=schema.manager_id if schema.manager_id in raw.columns else None,
            known_ids=known_ids,
            declared=id_shape or None,
        )
    except ValueError as exc:
        if id_shape and str(exc).startswith("id shape"):
            raise ValueError(f"id_shape {id_shape!r}: {exc}") from None
        raise


def transform(
    hr_path: Any,
    mapping_path: Any,
    out_dir: Any,
    *,
    upn_domain: str,
    ledger: Any,
    schema: HrSchema | None = None,
    timezone_offset: str | None = None,
    id_shape: str | None = None,
) -> dict[str, Any]:
    """Validate, normalise and map the staged HR rows; quarantine the rows that cannot be sent.

    Writes into ``out_dir``: ``normalised.parquet`` (the normalised HR rows, with derived
    ``UserPrincipalName``), ``mapped.parquet`` (one SCIM record per employee with ``record_hash``),
    ``quarantine.csv`` (every rejected row: ``row``, ``externalId``, ``stage``, ``reason``; spreadsheet
    formulas neutralised), ``warnings.csv`` (rows that proceed but deserve a look, e.g. a manager outside
    the export) and ``held.parquet`` (the externalIds of the quarantined rows, and the people a mangled id
    could stand for: the plan holds them at their last proven state instead of calling them missing).

    :param hr_path: the staged HR rows (:func:`extract_csv`).
    :param mapping_path: the attribute mapping (YAML/JSON).
    :param out_dir: the run folder.
    :param upn_domain: the domain of derived user principal names, unless the mapping's ``source.upn.domain``
        declares one.
    :param ledger: the job's ledger folder: known ids (manager check, id shape), UPNs to keep stable, UPNs
        Entra refused as another account's.
    :param schema: HR column names and spellings; default: the mapping file's ``source`` block
        (:func:`hr_schema`).
    :param timezone_offset: fixed UTC offset for dates that carry none (default: the schema's).
    :param id_shape: the declared shape of the ids (``digits``, ``digits:6``, ``text``); default: the
        schema's, else learnt from the ledger (see :mod:`~airflow_provider_entra.provisioning.ids`).
    :return: ``{"input_rows", "valid", "mapped", "quarantined", "quarantined_by_stage", "top_reasons",
        "ids_restored", "collapsed_duplicates", "warnings", "normalised_path", "mapped_path",
        "quarantine_path", "warnings_path", "held_path"}``.
    :raises HrSchemaError: when the export as a whole is unusable (a required column is missing).
    :raises MappingError: when the mapping reads a column the export does not have.
    """
    raw = read_frame(hr_path)
    book = _ledger.read_ledger(ledger)
    state = book.state
    mapping_file = load_mapping(mapping_path)
    mapping = mapping_file.attributes
    schema = schema or hr_schema(mapping_file)
    repaired = _repair_ids(raw, schema, state["externalId"], id_shape or schema.id_shape)
    checked = validate_hr(repaired.frame, schema=schema, known_ids=state["externalId"])
    # After the whole-file checks of validate_hr: every column the mapping reads, the nearest names offered.
    check = getattr(mapping_file, "check_columns", mapping.check_columns)
    check([*raw.columns, schema.upn, schema.mail_nickname])
    normalised = normalise_hr(
        checked.valid,
        schema=schema,
        upn_domain=schema.upn_domain or upn_domain,
        existing_upns=_existing_upns(state),
        timezone=timezone_offset,
        taken_upns=book.taken_upns() if schema.upn_collisions == "suffix" else (),
    )
    frame = normalised.frame
    mapped, mapping_rejected, collapsed_in_mapping = _map_normalised(frame, mapping)
    quarantine = concat_quarantine(
        [repaired.rejected, checked.rejected, normalised.rejected, mapping_rejected]
    )
    quarantine = quarantine.sort_values("row", kind="stable", ignore_index=True)
    held = pd.Index(quarantine["externalId"].dropna().astype(str)).union(
        pd.Index(repaired.held_ids, dtype=object).astype(str)
    )
    held = held[~isin_text(pd.Series(held, dtype=object), mapped["externalId"])]

    paths = {
        "normalised_path": _write_parquet(frame.reset_index(names="row"), join(out_dir, NORMALISED_NAME)),
        "mapped_path": _write_parquet(mapped, join(out_dir, MAPPED_NAME)),
        "quarantine_path": _write_csv(quarantine, join(out_dir, QUARANTINE_NAME)),
        "warnings_path": _write_csv(checked.warnings, join(out_dir, WARNINGS_NAME)),
        "held_path": _write_parquet(
            pd.DataFrame({"externalId": pd.Series(list(held), dtype=str)}), join(out_dir, HELD_NAME)
        ),
    }
    return {
        "input_rows": len(raw),
        "valid": len(frame),
        "mapped": len(mapped),
        "quarantined": len(quarantine),
        "quarantined_by_stage": _stage_counts(quarantine),
        "top_reasons": top_reasons(quarantine),
        "ids_restored": {str(k): int(v) for k, v in repaired.restored.items() if v},
        "collapsed_duplicates": checked.duplicates_collapsed + collapsed_in_mapping,
        "warnings": len(checked.warnings),
        **paths,
    }


# --- plan, guard, stages ----------------------------------------------------------------------------------


def _out_of_scope(
    mapped: pd.DataFrame, normalised_path: Any | None, schema: HrSchema, days: float | None, today: datetime
) -> np.ndarray | None:
    """Inactive workers whose termination date is more than ``days`` days ago (unknown date: in scope);
    ``days == 0``: every inactive worker."""
    if days is None:
        return None
    inactive = ~mapped["active"].astype(bool).to_numpy()
    if float(days) == 0:
        return inactive
    if normalised_path is None or not _exists(normalised_path):
        return None
    normalised = read_frame(normalised_path)
    column = schema.termination_date
    if column not in normalised.columns:
        return np.zeros(len(mapped), dtype=bool)
    ended = pd.to_datetime(normalised[column], utc=True, errors="coerce", format="ISO8601")
    by_id = pd.Series(ended.to_numpy(), index=normalised[schema.worker_id].astype(str))
    by_id = by_id[~by_id.index.duplicated()]
    when = mapped["externalId"].astype(str).map(by_id)
    cutoff = pd.Timestamp(today) - pd.Timedelta(days=float(days))
    return inactive & (when < cutoff).fillna(False).to_numpy(dtype=bool)


#: What to do with a joiner whose hire date is still to come: create the account disabled until that day
#: (as Microsoft's HR connectors do with pre-hires), or enabled at once.
PREHIRE_POLICIES = ("disabled", "enabled")


def _prehires(
    mapped: pd.DataFrame, normalised_path: Any | None, schema: HrSchema, policy: str, now: datetime
) -> np.ndarray | None:
    """Active workers whose hire date is after ``now`` (``None`` when the policy enables them at once)."""
    if policy not in PREHIRE_POLICIES:
        raise ValueError(f"prehire_policy must be one of {', '.join(PREHIRE_POLICIES)}, got {policy!r}")
    if policy == "enabled" or normalised_path is None or not _exists(normalised_path):
        return None
    normalised = read_frame(normalised_path)
    if schema.hire_date not in normalised.columns:
        return None
    hired = pd.to_datetime(normalised[schema.hire_date], utc=True, errors="coerce", format="ISO8601")
    by_id = pd.Series(hired.to_numpy(), index=normalised[schema.worker_id].astype(str))
    by_id = by_id[~by_id.index.duplicated()]
    when = mapped["externalId"].astype(str).map(by_id)
    return (when > pd.Timestamp(now)).fillna(False).to_numpy(dtype=bool) & mapped["active"].astype(
        bool
    ).to_numpy()


def plan(
    mapped_path: Any,
    ledger: Any,
    out_dir: Any,
    *,
    full_sync: bool = False,
    missing_policy: str = "disable",
    held_path: Any | None = None,
    normalised_path: Any | None = None,
    inactive_scope_days: float | None = None,
    prehire_policy: str = "disabled",
    schema: HrSchema | None = None,
    mapping_path: Any | None = None,
    today: datetime | None = None,
) -> dict[str, Any]:
    """Compare the mapped feed with the job's ledger; stage the records to send as ``delta.parquet``.

    :param mapped_path: ``mapped.parquet`` from :func:`transform`.
    :param ledger: the job's ledger folder (empty or missing on a first run).
    :param out_dir: the run folder.
    :param full_sync: also send unchanged (and stuck) records.
    :param missing_policy: ``disable`` or ``ignore`` active accounts missing from the feed.
    :param held_path: ``held.parquet`` from :func:`transform`: people held at their last proven state.
    :param normalised_path: ``normalised.parquet`` (termination dates, for ``inactive_scope_days``).
    :param inactive_scope_days: ``None`` (default): send every inactive worker the ledger does not know, as
        ``active: false``. A number: leave out those whose termination date (the schema's
        ``termination_date`` column) is more than that many days ago; without a known date they are sent.
        ``0``: leave out every inactive worker the ledger does not know.
    :param prehire_policy: ``disabled`` (default): a joiner whose hire date (the schema's ``hire_date``) is
        still to come is created disabled and enabled on that day; ``enabled``: at once.
    :param schema: the HR column names (hire and termination dates); default: the ``source`` block of the
        mapping at ``mapping_path``, else the CSV2SCIM layout.
    :param mapping_path: the mapping file (for its ``source`` block).
    :param today: the reference time of the scope and the pre-hire policy (default: now, UTC).
    :return: ``{"to_send", "changes": {kind: count}, "disables", "active", "ledger_rows", "held",
        "stuck", "full_sync", "missing_policy", "delta_path"}``; ``stuck`` lists ``{"externalId",
        "reason", "detail", "runs", "action"}``.
    """
    mapped = read_frame(mapped_path)
    if schema is None:
        schema = hr_schema(load_mapping(mapping_path)) if mapping_path is not None else HrSchema()
    book = _ledger.read_ledger(ledger)
    state = book.state
    held = read_frame(held_path)["externalId"] if held_path is not None and _exists(held_path) else None
    now = today or datetime.now(timezone.utc)
    scope = _out_of_scope(mapped, normalised_path, schema, inactive_scope_days, now)
    delta = plan_delta(
        mapped,
        state,
        full_sync=full_sync,
        missing_policy=missing_policy,  # type: ignore[arg-type]
        held_ids=held,
        stuck=book.stuck(),
        out_of_scope=scope,
        prehire=_prehires(mapped, normalised_path, schema, prehire_policy, now),
    )
    delta_path = _write_parquet(delta.frame, join(out_dir, DELTA_NAME))
    return {
        "to_send": delta.to_send_count,
        "changes": {kind: int(count) for kind, count in delta.counts.items()},
        "disables": len(delta.disables),
        "active": active_count(state),
        "ledger_rows": len(state),
        "held": len(delta.held),
        "held_ids": [str(i) for i in delta.held[:MAX_LISTED_IDS]],
        "stuck": [
            {
                "externalId": str(r.externalId),
                "reason": str(r.reason),
                "detail": _text_or_none(r.detail),
                "runs": int(r.runs),
                "action": str(r.action),
            }
            for r in delta.stuck.head(MAX_LISTED_IDS).itertuples(index=False)
        ],
        "full_sync": bool(full_sync),
        "missing_policy": missing_policy,
        "prehire_policy": prehire_policy,
        "delta_path": delta_path,
        # Only when set: Airflow 3.0 refuses a None value among a task's multiple outputs.
        **({"inactive_scope_days": inactive_scope_days} if inactive_scope_days is not None else {}),
    }


def _text_or_none(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def guard(
    plan_summary: Mapping[str, Any],
    *,
    max_disable_count: int | None = DEFAULT_MAX_DISABLE_COUNT,
    max_disable_percent: float | None = DEFAULT_MAX_DISABLE_PERCENT,
    approved: bool = False,
    transform_summary: Mapping[str, Any] | None = None,
    max_quarantine_count: int | None = DEFAULT_MAX_QUARANTINE_COUNT,
    max_quarantine_percent: float | None = DEFAULT_MAX_QUARANTINE_PERCENT,
    quarantine_approved: bool = False,
) -> dict[str, Any]:
    """The deletion guard's and the data-quality gate's decision for a plan.

    :param plan_summary: what :func:`plan` returned (``disables`` and ``active`` are read).
    :param max_disable_count: most disables allowed in one run (``None``: no count limit).
    :param max_disable_percent: most disables allowed, as a percentage of the active accounts.
    :param approved: a person approved this run's disables (the ``approve_disables`` Param or the UI).
    :param transform_summary: what :func:`transform` returned (``input_rows``, ``quarantined``); ``None``: no
        data-quality gate.
    :param max_quarantine_count: most quarantined rows allowed before the run stops (``None``: no limit).
    :param max_quarantine_percent: most quarantined rows allowed, as a percentage of the export's rows.
    :param quarantine_approved: a person approved going ahead despite the quarantined rows.
    :return: ``{"tripped", "approved", "proceed", "disables", "active", "percent", "limits", "message",
        "quality": {...}}``; ``proceed`` is false when the guard or the gate tripped and nobody approved.
        ``quality`` has ``tripped``, ``approved``, ``quarantined``, ``rows``, ``percent``, ``limits``,
        ``message``, ``nothing_valid`` (every row was rejected: the run cannot go on, approved or not).
    """
    decision = check_deletion_guard(
        int(plan_summary["disables"]),
        int(plan_summary["active"]),
        max_disable_count=max_disable_count,
        max_disable_percent=max_disable_percent,
    )
    quality = (
        check_quarantine_gate(
            int(transform_summary.get("quarantined") or 0),
            int(transform_summary.get("input_rows") or 0),
            int(transform_summary.get("mapped") or 0),
            max_quarantine_count=max_quarantine_count,
            max_quarantine_percent=max_quarantine_percent,
        )
        if transform_summary is not None
        else None
    )
    guard_ok = (not decision.tripped) or bool(approved)
    quality_ok = quality is None or (
        not quality.nothing_valid and (not quality.tripped or bool(quarantine_approved))
    )
    messages = [decision.message] + ([quality.message] if quality is not None and quality.tripped else [])
    return {
        "tripped": decision.tripped or bool(quality is not None and quality.tripped),
        "approved": (bool(approved) or not decision.tripped)
        and (quality is None or not quality.tripped or bool(quarantine_approved))
        and (decision.tripped or bool(quality is not None and quality.tripped)),
        "proceed": guard_ok and quality_ok,
        "disables": decision.disables,
        "active": decision.active,
        "percent": decision.percent,
        "limits": list(decision.limits) + (list(quality.limits) if quality is not None else []),
        "message": " ".join(messages),
        "guard_tripped": decision.tripped,
        "quality": None
        if quality is None
        else {
            "tripped": quality.tripped,
            "approved": bool(quarantine_approved) and quality.tripped,
            "quarantined": quality.quarantined,
            "rows": quality.rows,
            "percent": quality.percent,
            "limits": list(quality.limits),
            "message": quality.message,
            "nothing_valid": quality.nothing_valid,
        },
    }


def stages(delta_path: Any, ledger: Any, out_dir: Any) -> dict[str, Any]:
    """Order the delta managers-first; stage the ids this job already holds (their references resolve).

    The upload operator builds its requests stage by stage from the same inputs; this step makes the order
    visible (and a cycle in the management chain fails nobody silently).

    :param delta_path: ``delta.parquet`` from :func:`plan`.
    :param ledger: the job's ledger folder.
    :param out_dir: the run folder.
    :return: ``{"stage_sizes", "records", "cycles", "branch_warnings", "known_ids_path"}``.
    """
    delta = read_frame(delta_path)
    state = _state(ledger)
    known = pd.DataFrame({"externalId": state["externalId"].astype(str)})
    known_path = _write_parquet(known, join(out_dir, KNOWN_IDS_NAME))
    staged = plan_stages(
        delta, id_column="externalId", manager_column=SCIM_MANAGER_COLUMN, known_ids=known["externalId"]
    )
    return {
        "stage_sizes": staged.stage_sizes(),
        "records": len(delta),
        "cycles": [
            {"externalId": str(r.externalId), "reason": str(r.reason)}
            for r in staged.rejected.itertuples(index=False)
        ],
        "branch_warnings": len(staged.warnings),
        "known_ids_path": known_path,
    }


# --- commit and summary -----------------------------------------------------------------------------------


def canonical_feed(feed: pd.DataFrame, schema: HrSchema) -> pd.DataFrame:
    """A normalised HR feed in Microsoft's CSV2SCIM layout, whatever the export's: each role's column under
    its CSV2SCIM name, ``FullName`` made from the names when the export has none, and an empty column for
    every other CSV2SCIM column it lacks (so the admin accounts' mapping reads any layout's feed).

    :param feed: the normalised rows (:func:`transform`'s ``normalised.parquet``).
    :param schema: the export's layout.
    """
    renames = schema.canonical_names()
    feed = feed.drop(columns=[c for c in renames.values() if c in feed.columns and c not in renames])
    feed = feed.rename(columns=renames)
    default = HrSchema()
    if default.full_name not in feed.columns and {default.first_name, default.last_name} <= set(feed.columns):
        first = feed[default.first_name].astype(object).where(feed[default.first_name].notna(), "")
        last = feed[default.last_name].astype(object).where(feed[default.last_name].notna(), "")
        feed[default.full_name] = (first.astype(str) + " " + last.astype(str)).str.strip()
    for column in CSV2SCIM_COLUMNS:
        if column not in feed.columns:
            feed[column] = pd.Series(np.nan, index=feed.index, dtype=object)
    return feed


def commit(
    ledger: Any,
    sent_path: Any,
    outcomes_path: Any | None,
    *,
    run_id: str,
    normalised_path: Any | None = None,
    hr_current_path: Any | None = None,
    schema: HrSchema | None = None,
    mapping_path: Any | None = None,
) -> dict[str, Any]:
    """Fold the records the logs prove into the job's ledger; the others are sent again next run.

    Safe beside other runs committing to the same ledger at the same time (see the ledger module).

    :param ledger: the job's ledger folder.
    :param sent_path: what was sent (``delta.parquet``, or an on-demand ``selected.parquet``).
    :param outcomes_path: the verification's ``outcomes.parquet`` (``None`` or missing: nothing verified).
    :param run_id: the committing run.
    :param normalised_path: the run's ``normalised.parquet``; copied to ``hr_current_path`` when given.
    :param hr_current_path: where the committed run's normalised HR feed is kept (for the admin DAG), with the
        columns of each role under their CSV2SCIM names (:meth:`HrSchema.canonical_names`), whatever the
        export's layout.
    :param schema: the export's layout; default: the ``source`` block of the mapping at ``mapping_path``,
        else CSV2SCIM.
    :param mapping_path: the mapping file (for its ``source`` block).
    :return: ``{"sent", "verified", "not_verified", "proven_by_skip", "skipped", "unresolved", "failed",
        "missing", "ledger_rows", "active", "ledger", "hr_current_path"}``.
    """
    sent = read_frame(sent_path)
    if outcomes_path is not None and _exists(outcomes_path):
        outcomes = read_frame(outcomes_path)
    else:
        outcomes = pd.DataFrame()
    counts = _ledger.commit(ledger, sent, outcomes, run_id=run_id)
    current = None
    if normalised_path is not None and hr_current_path is not None:
        if schema is None:
            schema = hr_schema(load_mapping(mapping_path)) if mapping_path is not None else HrSchema()
        _write_parquet(canonical_feed(read_frame(normalised_path), schema), hr_current_path)
        current = str(hr_current_path)
    return {
        "sent": len(sent),
        "verified": counts["proven"],
        "not_verified": len(sent) - counts["proven"],
        "proven_by_skip": counts["proven_by_skip"],
        "skipped": counts["skipped"],
        "unresolved": counts["unresolved"],
        "failed": counts["failed"],
        "missing": counts["missing"],
        "ledger_rows": counts["state_rows"],
        "active": counts["active"],
        "ledger": str(ledger),
        "hr_current_path": current,
    }


def public_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A step's summary without its file paths (what run-summary.json shows of it)."""
    return {k: v for k, v in summary.items() if not k.endswith("_path")}


def verdict(
    verified: Mapping[str, Any],
    *,
    stuck: int = 0,
    max_failures: int | None = None,
    max_failure_percent: float | None = None,
) -> str | None:
    """The run's verdict: a sentence when more records failed, have no log entry or are stuck than allowed.

    One rule for every DAG: failures, records missing from the logs and stuck records (skipped by Entra the
    same way run after run, not sent again) all count, against the records sent plus the stuck ones.

    :param verified: the verification summary (``records``, ``failures``, ``missing``).
    :param stuck: records the plan did not send because they are stuck.
    :param max_failures: most such records allowed (``None``: no count limit).
    :param max_failure_percent: most such records allowed, as a percentage (``None``: no limit).
    :return: ``None`` when within the limits, else the message to fail with.
    """
    records = int(verified.get("records") or 0) + int(stuck)
    failures = int(verified.get("failures") or 0)
    missing = int(verified.get("missing") or 0)
    bad = failures + missing + int(stuck)
    limits = []
    if max_failures is not None and bad > max_failures:
        limits.append(f"max_failures={max_failures}")
    if max_failure_percent is not None and records and 100.0 * bad / records > float(max_failure_percent):
        limits.append(f"max_failure_percent={max_failure_percent:g}")
    if not limits:
        return None
    parts = [f"{failures} failed", f"{missing} have no log entry"] + ([f"{stuck} are stuck"] if stuck else [])
    return (
        f"{bad} of {records} record(s) did not reach Entra ({', '.join(parts)}), "
        f"over {' and '.join(limits)}. "
        "Failed and missing records are not in the ledger and will be sent again next run; stuck records are "
        "not sent again until they change."
    )


def outcome_counts(outcomes: pd.DataFrame) -> dict[str, int]:
    """Records per verification status (every status of the reconcile module, zeros included)."""
    counts = outcomes["status"].astype(str).value_counts() if len(outcomes) else pd.Series(dtype=int)
    return {status: int(counts.get(status, 0)) for status in STATUSES}


def outcome_table(outcomes: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Action x status counts as nested dicts (JSON-safe), with totals."""
    if outcomes.empty:
        return {}
    table = outcome_summary(outcomes)
    return {str(a): {str(s): int(v) for s, v in row.items()} for a, row in table.iterrows()}


def write_run_report(
    out_dir: Any,
    *,
    run_id: str,
    sent_path: Any | None,
    outcomes_path: Any | None,
    transformed: Mapping[str, Any] | None = None,
    planned: Mapping[str, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
    timings: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Write the run's ``outcomes.csv`` and ``report.html`` for people: every record sent with its display
    name, HR change (joiner, mover, leaver, rehire, missing from the export, inactive) and, for movers, the
    attributes that changed; the quarantined rows (count, top reasons, where the file is); the people held at
    their last state; the stuck records with Entra's reason.

    :param out_dir: the run folder (local path or URL).
    :param run_id: the Airflow run id.
    :param sent_path: what was sent (``delta.parquet``/``selected.parquet``); ``None`` when nothing was
        planned.
    :param outcomes_path: the verification's ``outcomes.parquet`` (``None``/missing: nothing verified).
    :param transformed: :func:`transform`'s summary (quarantine counts and file).
    :param planned: :func:`plan`'s summary (held and stuck records).
    :param summary: run details for the report's table.
    :param timings: timings for the report's table.
    :return: ``{"report_html", "report_csv"}``.
    """
    if outcomes_path is not None and _exists(outcomes_path):
        outcomes = read_frame(outcomes_path)
    else:
        outcomes = pd.DataFrame({c: pd.Series([], dtype=object) for c in OUTCOME_COLUMNS})
    if sent_path is not None and _exists(sent_path) and len(outcomes):
        sent = read_frame(sent_path).drop_duplicates("externalId", keep="last").set_index("externalId")
        ids = outcomes["external_id"].astype(str)
        if "displayName" in sent.columns:
            outcomes["display_name"] = ids.map(sent["displayName"]).to_numpy()
        if "change" in sent.columns:
            outcomes["change"] = ids.map(sent["change"]).to_numpy()
        if "changed_attributes" in sent.columns:
            outcomes["changed_attributes"] = ids.map(sent["changed_attributes"]).to_numpy()
    if len(outcomes) and "error_code" in outcomes.columns:
        # Say what to do where Entra's own recommendation does not: a UPN another account holds.
        taken = outcomes["status"].eq("failure") & outcomes["error_code"].eq(_ledger.UPN_TAKEN)
        if taken.any():
            advice = _ledger.SKIP_ACTIONS[_ledger.UPN_TAKEN]
            before = (
                outcomes["recommended_action"]
                .astype(object)
                .where(outcomes["recommended_action"].notna(), "")
            )
            outcomes["recommended_action"] = before.where(~taken, (before + " " + advice).str.strip())
    transformed = transformed or {}
    planned = planned or {}
    quarantine = (
        {
            "count": int(transformed.get("quarantined") or 0),
            "rows": int(transformed.get("input_rows") or 0),
            "top_reasons": transformed.get("top_reasons") or [],
            "path": transformed.get("quarantine_path"),
        }
        if transformed
        else None
    )
    held = {"count": int(planned.get("held") or 0), "ids": list(planned.get("held_ids") or [])}
    csv_data, html_data = render_report(
        outcomes,
        run_id=run_id,
        summary=summary,
        timings=timings,
        quarantine=quarantine,
        held=held,
        stuck=list(planned.get("stuck") or []),
    )
    html_path, csv_path = join(out_dir, HTML_NAME), join(out_dir, CSV_NAME)
    _write_bytes(csv_path, csv_data)
    _write_bytes(html_path, html_data)
    return {"report_html": str(html_path), "report_csv": str(csv_path)}


def write_run_summary(out_dir: Any, summary: Mapping[str, Any]) -> str:
    """Write ``run-summary.json`` (what ``make demo`` and people read after a run).

    :param out_dir: the run folder.
    :param summary: JSON-safe values.
    :return: the path written.
    """
    path = join(out_dir, RUN_SUMMARY_NAME)
    data = json.dumps(dict(summary), indent=2, sort_keys=False, default=str).encode("utf-8")
    _write_bytes(path, data)
    return str(path)


# --- admin accounts ---------------------------------------------------------------------------------------


def derive_admins(
    hr_current_path: Any,
    admin_ledger: Any,
    mapping_path: Any,
    out_dir: Any,
    *,
    upn_domain: str,
    rule: PrivilegeRule = DEFAULT_PRIVILEGE_RULE,
    schema: HrSchema = HrSchema(),
) -> dict[str, Any]:
    """Derive the admin accounts from the committed HR feed and map them with the admin mapping.

    Writes ``admins.parquet`` (HR layout), ``mapped.parquet`` and ``quarantine.csv`` into ``out_dir``.

    :param hr_current_path: the normalised HR feed of the last committed HR run (``hr_current.parquet``).
    :param admin_ledger: the admin job's own ledger (keeps admin UPNs stable; disables admin accounts whose
        person left or lost the role).
    :param mapping_path: the admin mapping.
    :param out_dir: the run folder.
    :param upn_domain: the domain of admin UPNs.
    :param rule: who gets an admin account.
    :param schema: HR column names.
    :return: ``{"people", "admins", "active_admins", "mapped", "quarantined", "admins_path", "mapped_path",
        "quarantine_path"}``.
    """
    hr = read_frame(hr_current_path)
    if "row" in hr.columns:
        hr = hr.drop(columns="row")
    existing = _state(admin_ledger)
    admins = derive_admin_accounts(
        hr, rule, upn_domain=upn_domain, existing_admins=existing, schema=schema, link_column=LINK_COLUMN
    )
    records = map_records(admins, _load_mapping(mapping_path))
    mapped = records.frame
    # The person behind each admin account, kept in the admin ledger (linked_external_id).
    mapped["linked_external_id"] = admins[LINK_COLUMN].to_numpy()[mapped.index.to_numpy(dtype=np.int64)]
    mapped = mapped.reset_index(drop=True)
    rejected = quarantine_frame(
        records.rejected["row"].to_numpy(dtype=np.int64),
        records.rejected["externalId"],
        "mapping",
        records.rejected["reason"],
    )
    return {
        "people": len(hr),
        "admins": len(admins),
        "active_admins": int((admins[schema.status] == "Active").sum()) if len(admins) else 0,
        "mapped": len(mapped),
        "quarantined": len(rejected),
        "admins_path": _write_parquet(admins, join(out_dir, ADMINS_NAME)),
        "mapped_path": _write_parquet(mapped, join(out_dir, MAPPED_NAME)),
        "quarantine_path": _write_csv(rejected, join(out_dir, QUARANTINE_NAME)),
    }


# --- on demand --------------------------------------------------------------------------------------------


def select_on_demand(
    mapped_path: Any,
    ledger: Any,
    out_dir: Any,
    employee_ids: Iterable[Any],
) -> dict[str, Any]:
    """Pick the requested employees' records, plus every manager up their chain that this job never sent.

    A manager reference resolves only against users the job has processed, so a manager who is not in the
    job's ledger is sent too (and, the same way, that manager's own manager), managers first.

    :param mapped_path: ``mapped.parquet`` from :func:`transform` on the current HR export.
    :param ledger: the job's ledger (who Entra is proven to hold).
    :param out_dir: the run folder.
    :param employee_ids: the WorkerIDs asked for.
    :return: ``{"requested", "found", "unknown", "managers_added", "selected", "selected_path"}``: ``unknown``
        lists the ids not in the export (or quarantined there).
    """
    requested = list(dict.fromkeys(str(i).strip() for i in employee_ids if str(i).strip()))
    mapped = read_frame(mapped_path)
    sent_before = set(_state(ledger)["externalId"].astype(str))
    ids = mapped["externalId"].astype(str)
    by_id = dict(zip(ids, range(len(mapped)), strict=True))
    managers = (
        mapped[SCIM_MANAGER_COLUMN].astype(object).where(mapped[SCIM_MANAGER_COLUMN].notna(), None).tolist()
        if SCIM_MANAGER_COLUMN in mapped.columns
        else [None] * len(mapped)
    )
    found = [i for i in requested if i in by_id]
    unknown = [i for i in requested if i not in by_id]
    chosen: dict[str, None] = dict.fromkeys(found)
    added: list[str] = []
    for worker in found:
        manager = managers[by_id[worker]]
        while manager is not None:
            manager = str(manager).strip()
            if not manager or manager in chosen or manager in sent_before or manager not in by_id:
                break
            chosen[manager] = None
            added.append(manager)
            manager = managers[by_id[manager]]
    selected = mapped.iloc[[by_id[i] for i in chosen]].reset_index(drop=True)
    return {
        "requested": requested,
        "found": found,
        "unknown": unknown,
        "managers_added": added,
        "selected": len(selected),
        "selected_path": _write_parquet(selected, join(out_dir, SELECTED_NAME)),
    }


# --- provisioning-log review ------------------------------------------------------------------------------


def summarise_logs(
    entries: Iterable[Mapping[str, Any]], *, since: datetime | None = None, top: int = 5
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Reduce a window of provisioning-log entries to one final outcome per record, and summarise them.

    :param entries: the log entries (any order).
    :param since: the window start (entries before it are ignored).
    :param top: how many failure reasons to list.
    :return: the outcomes frame (one row per externalId, see the reconcile module) and
        ``{"entries", "records", "outcomes": {status: n}, "actions": {action: {status: n}},
        "failure_reasons": [[code, n], ...], "failure_percent"}``.
    """
    from airflow_provider_entra.provisioning.reconcile import reconcile_detailed

    entries = list(entries)
    ids = [
        str((e.get("sourceIdentity") or {}).get("id")).strip()
        for e in entries
        if (e.get("sourceIdentity") or {}).get("id")
    ]
    result = reconcile_detailed(entries, list(dict.fromkeys(ids)), since=since)
    outcomes = result.outcomes
    counts = outcome_counts(outcomes)
    records = len(outcomes)
    failures = counts.get("failure", 0)
    return outcomes, {
        "entries": result.total_entries,
        "records": records,
        "outcomes": counts,
        "actions": outcome_table(outcomes),
        "failure_reasons": [[code, n] for code, n in failure_reasons(outcomes, top=top)],
        "failure_percent": round(100.0 * failures / records, 2) if records else 0.0,
    }


def now_utc() -> str:
    """The current time, ISO 8601 in UTC (for summaries)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
