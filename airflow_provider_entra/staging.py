"""A run's staging in Airflow: its staging root, its checked inputs, its folder and its HR source.

Airflow tasks of this provider never pass data through XCom; they pass *paths* under a staging root: a local
path or any URL :class:`~airflow.sdk.ObjectStoragePath` understands (``file://``, ``s3://``, ``abfs://``...),
so the same DAG runs on one machine or across Celery workers that share an object store. The files are read
and written by :mod:`airflow_provider_entra._fsio` (atomic, owner-only on a local disk); this module adds
what needs Airflow:

* :func:`to_path` turns a path or URL into an ``ObjectStoragePath`` (plain paths become absolute ``file://``).
* :func:`resolve_staging_root`: the ``staging_path`` Param, else the Variable ``entra_staging_path``, else
  ``$AIRFLOW_HOME/entra-staging``, resolved when a run starts, the same way for every task and DAG.
* :func:`start_run`: a run's first task checks its Params (:func:`check_run_inputs`), finds its folder and
  its job's ledger, and adopts a first-release snapshot.
* :func:`extract_hr`: stage the HR rows from the CSV at ``hr_path`` or a query on a SQL connection;
  :func:`map_hr_export`: start a run and map its HR export to SCIM records in one call.
* :func:`cleanup` (:func:`purge_old_runs`): the ``cleanup`` task: personal data of old run folders deleted.
* :func:`hr_snapshot_asset` / :func:`hr_snapshot_schedule`: the Asset the HR DAG publishes and the admin DAG
  follows.

For the operators, sensor and trigger, the file helpers are here under their usual names, returning
``ObjectStoragePath`` objects (:func:`write_frame`, :func:`write_bytes`, :func:`append_jsonl`...).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from airflow.providers.common.compat.sdk import AirflowFailException, BaseHook, ObjectStoragePath

from airflow_provider_entra import _fsio
from airflow_provider_entra._compat import asset_ref, get_variable, make_asset
from airflow_provider_entra._fsio import FRAME_SUFFIXES, local_path, read_frame, read_jsonl
from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.provisioning import paths
from airflow_provider_entra.provisioning.feed import extract_csv, extract_sql, map_export
from airflow_provider_entra.provisioning.inputs import InputError, check_inputs, parse_roots
from airflow_provider_entra.provisioning.ledger import adopt_legacy_snapshot
from airflow_provider_entra.provisioning.retention import purge_personal_data
from airflow_provider_entra.upload.quota import QUOTA_FOLDER

__all__ = [
    "FRAME_SUFFIXES",
    "append_jsonl",
    "check_run_inputs",
    "cleanup",
    "committed_hr_feed",
    "extract_hr",
    "hr_current_path",
    "hr_snapshot_asset",
    "hr_snapshot_schedule",
    "local_path",
    "map_hr_export",
    "purge_old_runs",
    "read_frame",
    "quota_root",
    "read_jsonl",
    "resolve_staging_root",
    "source_roots",
    "start_run",
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
#: The Airflow Variable naming the folder of the tenants' daily bulkUpload records, when DAGs calling one
#: tenant do not share a staging root (default: ``<staging root>/quota``).
QUOTA_PATH_VARIABLE = "entra_quota_path"
#: The Airflow Variable listing the folders (local or object storage) HR exports may be read from.
SOURCE_ROOTS_VARIABLE = "entra_hr_source_roots"
#: Under ``AIRFLOW_HOME``: a default folder for HR exports.
DEFAULT_SOURCE_FOLDER = "hr-exports"
#: The run Param holding the retention of personal data in run folders, in days.
RETENTION_PARAM = "retention_days"
#: Its default in the example DAGs.
DEFAULT_RETENTION_DAYS = 30


def _airflow_home() -> str:
    return os.environ.get("AIRFLOW_HOME", "~/airflow")


def to_path(path: str | os.PathLike[str] | ObjectStoragePath) -> ObjectStoragePath:
    """An ``ObjectStoragePath`` for ``path``; plain local paths become absolute ``file://`` paths.

    :param path: a local path, a URL (``s3://bucket/key``, ``file:///tmp/x``) or an ``ObjectStoragePath``.
    """
    if isinstance(path, ObjectStoragePath):
        if path.protocol in _fsio.LOCAL_PROTOCOLS and not str(path).startswith("file://"):
            return ObjectStoragePath(f"file://{Path(path.path).resolve()}")
        return path
    text = os.fspath(path)
    if not text:
        raise ValueError("empty path")
    if "://" in text:
        return ObjectStoragePath(text)
    return ObjectStoragePath(f"file://{Path(text).expanduser().resolve()}")


def write_bytes(path: str | os.PathLike[str] | ObjectStoragePath, data: bytes) -> ObjectStoragePath:
    """:func:`airflow_provider_entra._fsio.write_bytes`, returning the ``ObjectStoragePath`` written."""
    return _fsio.write_bytes(to_path(path), data)  # type: ignore[no-any-return]


def write_frame(
    frame: pd.DataFrame, path: str | os.PathLike[str] | ObjectStoragePath, *, index: bool = False
) -> ObjectStoragePath:
    """:func:`airflow_provider_entra._fsio.write_frame`, returning the ``ObjectStoragePath`` written."""
    return _fsio.write_frame(frame, to_path(path), index=index)  # type: ignore[no-any-return]


def write_jsonl(
    path: str | os.PathLike[str] | ObjectStoragePath, records: Iterable[Mapping[str, Any]]
) -> ObjectStoragePath:
    """:func:`airflow_provider_entra._fsio.write_jsonl`, returning the ``ObjectStoragePath`` written."""
    return _fsio.write_jsonl(to_path(path), records)  # type: ignore[no-any-return]


def append_jsonl(
    path: str | os.PathLike[str] | ObjectStoragePath, records: Iterable[Mapping[str, Any]]
) -> ObjectStoragePath:
    """:func:`airflow_provider_entra._fsio.append_jsonl`, returning the ``ObjectStoragePath`` appended to."""
    return _fsio.append_jsonl(to_path(path), records)  # type: ignore[no-any-return]


def resolve_staging_root(params: Mapping[str, Any] | None = None) -> str:
    """The staging root of a run: the ``staging_path`` Param, else the Variable ``entra_staging_path``, else
    ``file://$AIRFLOW_HOME/entra-staging`` (:func:`~airflow_provider_entra.provisioning.paths.staging_root`).

    :param params: the run's Params (``context["params"]``, or a task's ``params`` argument).
    :return: a URL (``file://``, ``s3://``...) or a local path, without a trailing slash.
    """
    variable = get_variable(STAGING_PATH_VARIABLE)
    return paths.staging_root((params or {}).get(STAGING_PATH_PARAM), variable, _airflow_home())


def quota_root(params: Mapping[str, Any] | None = None) -> ObjectStoragePath:
    """The folder of the tenants' daily bulkUpload records (``<folder>/<tenant id>/``,
    :mod:`airflow_provider_entra.upload.quota`): the Variable ``entra_quota_path``, else
    ``<staging root>/quota``.

    :param params: the run's Params (for the staging root).
    """
    variable = get_variable(QUOTA_PATH_VARIABLE)
    if variable is not None and str(variable).strip():
        return to_path(str(variable).strip().rstrip("/"))
    return to_path(resolve_staging_root(params)) / QUOTA_FOLDER


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
    home = Path(_airflow_home()).expanduser()
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


def start_run(
    params: Mapping[str, Any],
    dag_id: str,
    run_id: str,
    *,
    conn_id: str,
    dag_data_folder: str | os.PathLike[str],
    source_params: tuple[str, ...] | None = None,
) -> dict[str, str]:
    """A run's first task: check its Params, find its folder and its job's ledger (adopting the first
    release's snapshot of the DAG into a still-empty ledger,
    :data:`~airflow_provider_entra.provisioning.paths.FIRST_RELEASE_SNAPSHOTS`).

    :param params: the run's Params.
    :param dag_id: the DAG (its runs' folders are ``<staging root>/<dag_id>/<run id>``).
    :param run_id: the run.
    :param conn_id: the ``entra`` connection: its job names the ledger.
    :param dag_data_folder: the DAG's bundled ``data`` folder (an allowed source root).
    :param source_params: Params naming an HR source file, checked against the source roots; default:
        ``hr_path``, unless the run reads a SQL connection (``hr_source: sql``).
    :return: ``{"run_dir", "ledger"}`` (the run folder as an ``ObjectStoragePath`` URL).
    """
    if source_params is None:
        source_params = () if params.get("hr_source") == "sql" else ("hr_path",)
    check_run_inputs(params, dag_data_folder, source_params=source_params)
    root = resolve_staging_root(params)
    ledger = paths.ledger_path(root, EntraHook(conn_id).job_id)
    legacy = paths.first_release_snapshot(root, dag_id)
    if legacy is not None:
        adopted = adopt_legacy_snapshot(ledger, to_path(str(legacy)))
        if adopted:
            log.info("Adopted the first release's snapshot (%d accounts) into the ledger %s", adopted, ledger)
    return {"run_dir": str(to_path(str(paths.run_dir(root, dag_id, run_id)))), "ledger": ledger}


def hr_current_path(params: Mapping[str, Any], dag_id: str = paths.HR_DAG_ID) -> str:
    """``<staging root>/<dag_id>/snapshot/hr_current.parquet``: the HR feed the DAG's last commit kept."""
    return str(to_path(str(paths.snapshot_dir(resolve_staging_root(params), dag_id))) / paths.HR_CURRENT_NAME)


def committed_hr_feed(params: Mapping[str, Any], triggering_asset_events: Any = None) -> str:
    """The committed HR feed an admin-accounts run derives from: the Param ``hr_current_path``, else the
    triggering ``entra_hr_snapshot`` event's, else the HR DAG's snapshot folder.

    :raises AirflowFailException: when there is no such file (the HR DAG never committed).
    """
    source = params.get("hr_current_path")
    for events in (triggering_asset_events or {}).values():
        for event in events:
            source = source or (event.extra or {}).get("hr_current_path")
    source = source or hr_current_path(params)
    if not _fsio.exists(to_path(source)):
        raise AirflowFailException(
            f"No committed HR feed at {source}: run {paths.HR_DAG_ID} first (this DAG runs after each of its "
            "commits), or pass hr_current_path."
        )
    return str(source)


def map_hr_export(
    params: Mapping[str, Any],
    dag_id: str,
    run_id: str,
    *,
    dag_data_folder: str | os.PathLike[str],
    conn_id: str = EntraHook.default_conn_name,
) -> dict[str, Any]:
    """:func:`start_run`, then the HR export at the Param ``hr_path`` mapped to SCIM records with the
    mapping at ``mapping_path`` (UPNs in ``upn_domain``) in the run folder
    (:func:`~airflow_provider_entra.provisioning.feed.map_export`).

    :return: the transform step's summary (``mapped_path``...) with ``run_dir`` and ``ledger``.
    """
    run = start_run(params, dag_id, run_id, conn_id=conn_id, dag_data_folder=dag_data_folder)
    mapped = map_export(
        params["hr_path"],
        params["mapping_path"],
        run["run_dir"],
        upn_domain=params["upn_domain"],
        ledger=run["ledger"],
    )
    return {**mapped, **run}


def extract_hr(params: Mapping[str, Any], run_dir: str) -> dict[str, Any]:
    """Stage the run's HR rows as ``hr_raw.parquet``: the CSV at the Param ``hr_path``, or with ``hr_source:
    sql`` the Param ``sql_query`` on the Airflow SQL connection ``sql_conn_id``.

    :return: the extract step's summary (``source``, ``rows``, ``columns``, ``path``...).
    """
    out = to_path(run_dir) / paths.RAW_NAME
    if params.get("hr_source") == "sql":
        conn_id = params.get("sql_conn_id")
        if not conn_id:
            raise AirflowFailException("Param sql_conn_id: hr_source is sql but sql_conn_id is empty")
        hook = BaseHook.get_connection(conn_id).get_hook()
        summary = extract_sql(hook, params["sql_query"], out, source=f"SQL connection {conn_id}")
    else:
        summary = extract_csv(to_path(params["hr_path"]), out)
    log.info("Read %d HR rows from %s", summary["rows"], summary["source"])
    return summary


def purge_old_runs(params: Mapping[str, Any] | None, dag_id: str) -> dict[str, Any]:
    """Delete the personal data of ``dag_id``'s run folders older than the Param ``retention_days``; keep run
    summaries (counts) and the ledger (see :mod:`~airflow_provider_entra.provisioning.retention`).

    :param params: the run's Params (``retention_days``, ``staging_path``).
    :param dag_id: the DAG whose run folders to purge.
    :return: what :func:`~airflow_provider_entra.provisioning.retention.purge_personal_data` returns.
    """
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


def cleanup(dag_id: str) -> Any:
    """The ``cleanup`` task of a DAG (call it inside the DAG): delete the personal data of its run folders
    older than the Param ``retention_days`` (:func:`purge_old_runs`). It depends on no other task, so it
    never holds up provisioning, and a failure shows in the run."""
    from airflow.providers.common.compat.sdk import task

    @task(task_id="cleanup")
    def purge(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Delete the personal data of this DAG's run folders older than ``retention_days``."""
        return purge_old_runs(params, dag_id)

    return purge()


def hr_snapshot_asset() -> Any:
    """The Asset ``entra_hr_snapshot`` the HR DAG's ``commit`` task publishes (its URI:
    :data:`~airflow_provider_entra.provisioning.paths.HR_SNAPSHOT_ASSET_URI`, the same wherever the staging
    root is; each event's ``extra`` names the files that run wrote)."""
    return make_asset(name=paths.HR_SNAPSHOT_ASSET_NAME, uri=paths.HR_SNAPSHOT_ASSET_URI)


def hr_snapshot_schedule() -> list[Any]:
    """A schedule on :func:`hr_snapshot_asset`: run after each HR commit (by name on Airflow 3, by URI on
    2.11)."""
    return [asset_ref(name=paths.HR_SNAPSHOT_ASSET_NAME, uri=paths.HR_SNAPSHOT_ASSET_URI)]
