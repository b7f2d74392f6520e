"""Read and write the files tasks hand to each other: local paths or :class:`~airflow.sdk.ObjectStoragePath`.

Airflow tasks of this provider never pass data through XCom; they pass *paths*. A path is either a plain
local path (``/data/entra/run-1/hr.parquet``) or any URL :class:`~airflow.sdk.ObjectStoragePath` understands
(``file://``, ``s3://``, ``abfs://``, ``gs://``...), so the same DAG runs on one machine or across Celery
workers that share an object store.

* :func:`to_path` turns either form into an ``ObjectStoragePath`` (plain paths become absolute ``file://``).
* :func:`resolve_staging_root` is the run's staging root: the ``staging_path`` Param, else the Variable
  ``entra_staging_path``, else ``$AIRFLOW_HOME/entra-staging`` (what the example DAGs use).
* :func:`read_frame` / :func:`write_frame` read and write Parquet or CSV, chosen by the suffix. On a local
  disk a write goes to a temporary file beside the target, is fsync'd, and renamed over it, so a reader never
  sees half a file; on an object store the object is uploaded whole (stores publish an object only once its
  upload completes).
* :func:`append_jsonl` / :func:`read_jsonl` keep JSON Lines files such as the upload manifest. A local append
  is flushed and fsync'd before it returns. Object stores cannot append: the object is rewritten whole, which
  is fine for manifests of a few thousand lines. :func:`read_jsonl` skips a torn last line (a process killed
  mid-write) instead of failing.
* Staged files hold personal data: on a local disk every file written here is ``0600`` and every folder
  created on the way ``0700``, whatever the umask (:mod:`airflow_provider_entra._atomic`). Object stores
  have no such modes: restrict the bucket or container instead (``docs/deployment.md``).
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_entra._atomic import atomic_write_bytes, open_private_append
from airflow_provider_entra._compat import get_variable
from airflow_provider_entra.provisioning.inputs import InputError, check_inputs, parse_roots
from airflow_provider_entra.provisioning.pipeline import staging_root

__all__ = [
    "FRAME_SUFFIXES",
    "append_jsonl",
    "check_run_inputs",
    "is_local",
    "local_path",
    "read_frame",
    "read_jsonl",
    "purge_old_runs",
    "resolve_staging_root",
    "source_roots",
    "to_path",
    "write_bytes",
    "write_frame",
    "write_jsonl",
]

log = logging.getLogger(__name__)

#: The Airflow Variable naming the deployment's staging root (e.g. ``s3://bucket/entra``).
STAGING_PATH_VARIABLE = "entra_staging_path"
#: The run Param that overrides the Variable for one run.
STAGING_PATH_PARAM = "staging_path"
#: The Airflow Variable listing the folders (local or object storage) HR exports may be read from.
SOURCE_ROOTS_VARIABLE = "entra_hr_source_roots"
#: Under ``AIRFLOW_HOME``: a default folder for HR exports.
DEFAULT_SOURCE_FOLDER = "hr-exports"

#: File suffixes :func:`read_frame` and :func:`write_frame` understand.
FRAME_SUFFIXES = (".parquet", ".csv")
_LOCAL_PROTOCOLS = ("file", "local", "")


def to_path(path: str | os.PathLike[str] | ObjectStoragePath) -> ObjectStoragePath:
    """An ``ObjectStoragePath`` for ``path``; plain local paths become absolute ``file://`` paths.

    :param path: a local path, a URL (``s3://bucket/key``, ``file:///tmp/x``) or an ``ObjectStoragePath``.
    """
    if isinstance(path, ObjectStoragePath):
        if path.protocol in _LOCAL_PROTOCOLS and not str(path).startswith("file://"):
            return ObjectStoragePath(f"file://{Path(path.path).resolve()}")
        return path
    text = os.fspath(path)
    if not text:
        raise ValueError("empty path")
    if "://" in text:
        return ObjectStoragePath(text)
    return ObjectStoragePath(f"file://{Path(text).expanduser().resolve()}")


def resolve_staging_root(params: Mapping[str, Any] | None = None) -> str:
    """The staging root of a run: the ``staging_path`` Param, else the Variable ``entra_staging_path``, else
    ``file://$AIRFLOW_HOME/entra-staging``
    (:func:`~airflow_provider_entra.provisioning.pipeline.staging_root` chooses).

    :param params: the run's Params (``context["params"]``, or a task's ``params`` argument).
    :return: a URL (``file://``, ``s3://``...) or a local path, without a trailing slash.
    """
    variable = get_variable(STAGING_PATH_VARIABLE)
    param = (params or {}).get(STAGING_PATH_PARAM)
    return staging_root(param, variable, os.environ.get("AIRFLOW_HOME", "~/airflow"))


def source_roots(
    params: Mapping[str, Any] | None, dag_data_folder: str | os.PathLike[str]
) -> tuple[list[str], bool]:
    """The folders a run may read HR exports from, and whether export-named files are allowed elsewhere.

    The Variable ``entra_hr_source_roots`` (a list, or text separated by commas) when set: only there.
    Otherwise the DAG's ``data`` folder, ``$AIRFLOW_HOME/hr-exports`` and the staging root, plus ``.csv`` and
    ``.tsv`` files outside hidden folders anywhere (see :mod:`~airflow_provider_entra.provisioning.inputs`).

    :param params: the run's Params (for the staging root).
    :param dag_data_folder: the example DAG's bundled data folder.
    """
    configured = parse_roots(get_variable(SOURCE_ROOTS_VARIABLE))
    if configured:
        return configured, False
    home = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()
    return [str(dag_data_folder), str(home / DEFAULT_SOURCE_FOLDER), resolve_staging_root(params)], True


def check_run_inputs(
    params: Mapping[str, Any],
    dag_data_folder: str | os.PathLike[str],
    *,
    source_params: tuple[str, ...] = ("hr_path",),
    file_params: Mapping[str, str] | None = None,
    domain_params: tuple[str, ...] = ("upn_domain",),
) -> None:
    """:func:`~airflow_provider_entra.provisioning.inputs.check_inputs` for a run, with the deployment's
    source roots; an unusable Param fails the task at once (no retry can fix it), naming the Param."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    roots, exports_elsewhere = source_roots(params, dag_data_folder)
    try:
        check_inputs(
            params,
            roots=roots,
            exports_elsewhere=exports_elsewhere,
            source_params=source_params,
            file_params=file_params if file_params is not None else {"mapping_path": "attribute mapping"},
            domain_params=domain_params,
        )
    except InputError as exc:
        raise AirflowFailException(str(exc)) from None


#: The run Param holding the retention of personal data in run folders, in days.
RETENTION_PARAM = "retention_days"
#: Its default in the example DAGs.
DEFAULT_RETENTION_DAYS = 30


def purge_old_runs(params: Mapping[str, Any] | None, dag_id: str) -> dict[str, Any]:
    """Delete the personal data of ``dag_id``'s run folders older than the Param ``retention_days``; keep run
    summaries (counts) and the ledger (see :mod:`~airflow_provider_entra.provisioning.retention`).

    :param params: the run's Params (``retention_days``, ``staging_path``).
    :param dag_id: the DAG whose run folders to purge.
    :return: what :func:`~airflow_provider_entra.provisioning.retention.purge_personal_data` returns.
    """
    from datetime import timedelta

    from airflow_provider_entra.provisioning.retention import purge_personal_data

    days = float((params or {}).get(RETENTION_PARAM, DEFAULT_RETENTION_DAYS))
    summary = purge_personal_data(
        to_path(resolve_staging_root(params)), dag_id, older_than=timedelta(days=days)
    )
    log.info(
        "Retention %g day(s): personal data of %d of %d run folder(s) deleted (%d file(s), %d bytes)",
        days,
        summary["runs_purged"],
        summary["runs_examined"],
        summary["files_deleted"],
        summary["bytes_freed"],
    )
    return summary


def local_path(path: str | os.PathLike[str] | ObjectStoragePath) -> Path | None:
    """The local filesystem path behind ``path``, or ``None`` when it lives in an object store."""
    target = to_path(path)
    if target.protocol in _LOCAL_PROTOCOLS:
        return Path(target.path)
    return None


def is_local(path: str | os.PathLike[str] | ObjectStoragePath) -> bool:
    """Whether ``path`` is on the local filesystem."""
    return local_path(path) is not None


def _suffix(path: ObjectStoragePath) -> str:
    suffix = path.suffix.lower()
    if suffix not in FRAME_SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {suffix or '(none)'}; use one of {FRAME_SUFFIXES}")
    return suffix


def write_bytes(path: str | os.PathLike[str] | ObjectStoragePath, data: bytes) -> ObjectStoragePath:
    """Write ``data`` to ``path`` whole (atomic rename, mode ``0600``, on a local disk); returns the path
    written.

    :param path: target file.
    :param data: the content.
    """
    target = to_path(path)
    local = local_path(target)
    if local is not None:
        atomic_write_bytes(local, data)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return target


def read_frame(path: str | os.PathLike[str] | ObjectStoragePath, **kwargs: Any) -> pd.DataFrame:
    """Read a Parquet or CSV file into a DataFrame.

    CSV is read as text (``dtype=str``, empty cells stay empty strings, a UTF-8 BOM is dropped), so ids such
    as ``00123`` keep their leading zeros.

    :param path: ``.parquet`` or ``.csv`` file, local or in an object store.
    :param kwargs: passed to :func:`pandas.read_parquet` or :func:`pandas.read_csv`.
    """
    source = to_path(path)
    suffix = _suffix(source)
    data = source.read_bytes()
    if suffix == ".parquet":
        return pd.read_parquet(io.BytesIO(data), **kwargs)
    options: dict[str, Any] = {"dtype": str, "keep_default_na": False, "encoding": "utf-8-sig"}
    options.update(kwargs)
    return pd.read_csv(io.BytesIO(data), **options)


def write_frame(
    frame: pd.DataFrame, path: str | os.PathLike[str] | ObjectStoragePath, *, index: bool = False
) -> ObjectStoragePath:
    """Write ``frame`` as Parquet or CSV (by suffix), atomically on a local disk; returns the path written.

    :param frame: the data.
    :param path: ``.parquet`` or ``.csv`` target.
    :param index: also write the index.
    """
    target = to_path(path)
    buffer = io.BytesIO()
    if _suffix(target) == ".parquet":
        frame.to_parquet(buffer, index=index)
    else:
        frame.to_csv(buffer, index=index)
    return write_bytes(target, buffer.getvalue())


def _dump(record: Mapping[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)


def append_jsonl(
    path: str | os.PathLike[str] | ObjectStoragePath, records: Iterable[Mapping[str, Any]]
) -> ObjectStoragePath:
    """Append JSON records, one per line; on a local disk the lines are flushed and fsync'd before return,
    and a new file is created ``0600``.

    :param path: the JSON Lines file (created if missing).
    :param records: JSON-serialisable mappings.
    """
    target = to_path(path)
    text = "".join(_dump(record) + "\n" for record in records)
    local = local_path(target)
    if local is not None:
        with open_private_append(local) as handle:
            if handle.tell() > 0 and not _ends_with_newline(local):
                # A torn line from a killed writer: finish it so the next record starts on its own line.
                handle.write(b"\n")
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        return target
    existing = target.read_bytes() if target.exists() else b""
    if existing and not existing.endswith(b"\n"):
        existing += b"\n"
    return write_bytes(target, existing + text.encode("utf-8"))


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def write_jsonl(
    path: str | os.PathLike[str] | ObjectStoragePath, records: Iterable[Mapping[str, Any]]
) -> ObjectStoragePath:
    """Write JSON records, one per line, replacing the file (atomic rename on a local disk).

    :param path: the JSON Lines file.
    :param records: JSON-serialisable mappings.
    """
    text = "".join(_dump(record) + "\n" for record in records)
    return write_bytes(path, text.encode("utf-8"))


def read_jsonl(path: str | os.PathLike[str] | ObjectStoragePath, *, missing_ok: bool = False) -> list[Any]:
    """Read a JSON Lines file; blank lines and unparseable lines (a torn write) are skipped with a warning.

    :param path: the file.
    :param missing_ok: return ``[]`` when the file does not exist instead of raising ``FileNotFoundError``.
    """
    source = to_path(path)
    if missing_ok and not source.exists():
        return []
    records = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            log.warning("%s: skipping line %d, not valid JSON (a torn write?)", source, number)
    return records
