"""From an HR export to checked SCIM records: the ``extract`` and ``transform`` steps over staged files.

Each step reads the files the previous step staged, writes its own into the run folder, and returns a small
JSON-safe summary (counts and paths), so an Airflow task is a one-line wrapper and the whole run can be
called, and tested, without Airflow::

    extract_csv, extract_sql -> hr_raw.parquet
    transform                -> normalised.parquet, mapped.parquet, quarantine.csv, warnings.csv, held.parquet

What follows (plan, stages, commit against the job's ledger) is :mod:`~airflow_provider_entra.provisioning.
sync`. File names and folders: :mod:`~airflow_provider_entra.provisioning.paths`. Paths may be local paths,
URLs or ``ObjectStoragePath`` objects (:mod:`airflow_provider_entra._fsio`). Pure pandas and fsspec: no
Airflow import.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from airflow_provider_entra._fsio import join, read_frame, write_frame
from airflow_provider_entra.provisioning import ledger as _ledger
from airflow_provider_entra.provisioning._hr import concat_quarantine, isin_text, quarantine_frame
from airflow_provider_entra.provisioning.hr_source import as_text_frame, read_hr_csv
from airflow_provider_entra.provisioning.ids import IdRepair, repair_ids
from airflow_provider_entra.provisioning.normalise import HrSchema, normalise_hr
from airflow_provider_entra.provisioning.paths import (
    HELD_NAME,
    MAPPED_NAME,
    NORMALISED_NAME,
    QUARANTINE_NAME,
    RAW_NAME,
    WARNINGS_NAME,
)
from airflow_provider_entra.provisioning.report import neutralise_formulas
from airflow_provider_entra.provisioning.validate import validate_hr
from airflow_provider_entra.scim import AttributeMapping, map_records
from airflow_provider_entra.scim.mapping import ColumnSource

__all__ = [
    "extract_csv",
    "extract_frame",
    "extract_sql",
    "hr_schema",
    "load_mapping",
    "map_export",
    "top_reasons",
    "transform",
    "write_people_csv",
]

log = logging.getLogger(__name__)


def write_people_csv(frame: pd.DataFrame, path: Any) -> str:
    """A CSV for people (quarantine, warnings): formula-looking cells neutralised, since it opens in
    spreadsheet programs. Returns the path written, as text."""
    return str(write_frame(neutralise_formulas(frame), path))


def _write_parquet(frame: pd.DataFrame, path: Any) -> str:
    return str(write_frame(frame, path))


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


# --- extract ----------------------------------------------------------------------------------------------


def extract_csv(hr_path: Any, out_path: Any) -> dict[str, Any]:
    """Stage an HR CSV export as Parquet, every column as text.

    The file is read with :func:`~airflow_provider_entra.provisioning.hr_source.read_hr_csv`: the encoding
    (UTF-8 with or without BOM, UTF-16 with BOM, else cp1252/latin-1 with a warning) and the delimiter (``,``
    ``;`` tab ``|``) are detected, and a file that is not a usable table (missing, empty, header only, a
    workbook, ragged rows) fails with a message saying why.

    :param hr_path: the CSV (local path, URL or ``ObjectStoragePath``).
    :param out_path: the staged Parquet file (``hr_raw.parquet`` in the run folder).
    :return: ``{"source", "rows", "columns", "path", "encoding", "delimiter", "warnings"}``.
    :raises HrSourceError: when the file cannot be read as a CSV table.
    """
    frame = read_hr_csv(hr_path)
    summary = extract_frame(frame, out_path, source=str(hr_path))
    summary.update(
        encoding=frame.attrs.get("encoding"),
        delimiter=frame.attrs.get("delimiter"),
        warnings=list(frame.attrs.get("warnings") or []),
    )
    return summary


def extract_frame(frame: pd.DataFrame, out_path: Any, *, source: str) -> dict[str, Any]:
    """Stage any HR frame (a SQL query's result, an API's records) as text columns in Parquet
    (:func:`~airflow_provider_entra.provisioning.hr_source.as_text_frame`), so the rest of the pipeline sees
    the same as for a CSV.

    :param frame: the HR rows.
    :param out_path: the staged Parquet file.
    :param source: where the rows came from (shown in the summary).
    :return: ``{"source", "rows", "columns", "path"}``.
    """
    text = as_text_frame(frame)
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


def _one_chunk_per_column(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each Arrow-backed text column in one piece, a column at a time, while little else is in
    memory. (A Parquet file reads as several pieces; the checks and the mapping need each column whole, and
    would otherwise copy them later, when the frames of every step are in memory too.)"""
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
            arrow = pa.array(values, from_pandas=True)
            if isinstance(arrow, pa.ChunkedArray) and arrow.num_chunks > 1:
                frame[column] = pd.Series(
                    pd.array(arrow.combine_chunks(), dtype=values.dtype), index=frame.index
                )
    return frame


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
    mapping_file = load_mapping(mapping_path)
    mapping = mapping_file.attributes
    schema = schema or hr_schema(mapping_file)
    # Of the ledger, only the ids, their UPNs and the UPNs Entra refused are read on: the rest is let go
    # before the rows are worked on (a million-row ledger is some 250 MB).
    book = _ledger.read_ledger(ledger)
    known_ids = book.state["externalId"]
    existing_upns = book.state.set_index("externalId")["UserPrincipalName"] if len(book.state) else None
    taken_upns = book.taken_upns() if schema.upn_collisions == "suffix" else ()
    del book
    pa.default_memory_pool().release_unused()  # hand the ledger's memory back before the rows are read
    raw = _one_chunk_per_column(read_frame(hr_path))
    repaired = _repair_ids(raw, schema, known_ids, id_shape or schema.id_shape)
    checked = validate_hr(repaired.frame, schema=schema, known_ids=known_ids)
    # After the whole-file checks of validate_hr: every column the mapping reads, the nearest names offered.
    check = getattr(mapping_file, "check_columns", mapping.check_columns)
    check([*raw.columns, schema.upn, schema.mail_nickname])
    normalised = normalise_hr(
        checked.valid,
        schema=schema,
        upn_domain=schema.upn_domain or upn_domain,
        existing_upns=existing_upns,
        timezone=timezone_offset,
        taken_upns=taken_upns,
    )
    frame = normalised.frame
    pa.default_memory_pool().release_unused()  # what validation and normalisation let go
    mapped, mapping_rejected, collapsed_in_mapping = _map_normalised(frame, mapping)
    quarantine = concat_quarantine(
        [repaired.rejected, checked.rejected, normalised.rejected, mapping_rejected]
    )
    quarantine = quarantine.sort_values("row", kind="stable", ignore_index=True)
    held = pd.Index(quarantine["externalId"].dropna().astype(str)).union(
        pd.Index(repaired.held_ids, dtype=object).astype(str)
    )
    held = held[~isin_text(pd.Series(held, dtype=object), mapped["externalId"])]

    summary = {
        "input_rows": len(raw),
        "valid": len(frame),
        "mapped": len(mapped),
        "quarantined": len(quarantine),
        "quarantined_by_stage": {
            str(k): int(v) for k, v in quarantine["stage"].value_counts(sort=False).items()
        },
        "top_reasons": top_reasons(quarantine),
        "ids_restored": {str(k): int(v) for k, v in repaired.restored.items() if v},
        "collapsed_duplicates": checked.duplicates_collapsed + collapsed_in_mapping,
        "warnings": len(checked.warnings),
        "normalised_path": _write_parquet(frame.reset_index(names="row"), join(out_dir, NORMALISED_NAME)),
        "mapped_path": _write_parquet(mapped, join(out_dir, MAPPED_NAME)),
        "quarantine_path": write_people_csv(quarantine, join(out_dir, QUARANTINE_NAME)),
        "warnings_path": write_people_csv(checked.warnings, join(out_dir, WARNINGS_NAME)),
        "held_path": _write_parquet(
            pd.DataFrame({"externalId": pd.Series(list(held), dtype=str)}), join(out_dir, HELD_NAME)
        ),
    }
    log.info(
        "%d rows: %d ready, %d quarantined %s, %d duplicates collapsed, %d warnings, ids restored %s. "
        "Quarantine: %s",
        summary["input_rows"],
        summary["mapped"],
        summary["quarantined"],
        summary["quarantined_by_stage"],
        summary["collapsed_duplicates"],
        summary["warnings"],
        summary["ids_restored"] or "none",
        summary["quarantine_path"],
    )
    return summary


def map_export(
    hr_path: Any, mapping_path: Any, out_dir: Any, *, upn_domain: str, ledger: Any
) -> dict[str, Any]:
    """:func:`extract_csv` then :func:`transform`: an HR CSV export to ``mapped.parquet`` in ``out_dir``.

    :return: what :func:`transform` returns, plus the extract's ``source``.
    """
    extracted = extract_csv(hr_path, join(out_dir, RAW_NAME))
    summary = transform(extracted["path"], mapping_path, out_dir, upn_domain=upn_domain, ledger=ledger)
    return {**summary, "source": extracted["source"]}
