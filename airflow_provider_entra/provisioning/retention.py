"""Personal data kept only as long as needed: purge the staged files of runs older than the retention.

Each run stages names, addresses and phone numbers in ``<staging_root>/<dag_id>/<run id>/``
(``hr_raw.parquet``, ``provisioning-log-entries.jsonl``, ``report.html``...). :func:`purge_personal_data`
deletes those files once the run is older than the retention and keeps, in the same folder, what holds no
personal data:

* ``run-summary.json``: the run's counts (rows read, sent, verified, failed...), status and timestamps;
* ``dry-run-summary.json``: the dry run's counts;
* ``retained.json``: written by the purge, noting when it ran, the retention applied and each file deleted
  (name and size).

Every other file of a run folder is deleted, including files this module does not know by name, so a file
added by a later version is never kept by mistake. Outside the run folders nothing is touched: the committed
snapshots (``<staging_root>/<dag_id>/snapshot/``, needed to plan the next run) and the job ledger
(``<staging_root>/ledger/``) stay. A folder counts as a run folder only when it holds at least one file the
pipeline writes (:data:`RUN_FILE_NAMES`), so pointing the purge at the wrong folder deletes nothing.

A run's age is taken from ``finished_at`` in its ``run-summary.json`` when present, else from the newest
modification time of its files. Works on local paths, fsspec URLs (``s3://``, ``memory://``...) and
``ObjectStoragePath``.

Pure fsspec: no Airflow import. Example::

    >>> from datetime import timedelta
    >>> purge_personal_data("/tmp/no-such-staging-root", None, older_than=timedelta(days=30))["runs_purged"]
    0
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_entra._fsio import fs_and_path, is_local, join, write_bytes_on
from airflow_provider_entra._time import utc
from airflow_provider_entra.provisioning import paths, report
from airflow_provider_entra.provisioning.ledger import LEDGER_DIR_NAME
from airflow_provider_entra.upload import manifest as upload_manifest
from airflow_provider_entra.upload import order as upload_order
from airflow_provider_entra.upload import run as upload_run

__all__ = [
    "KEPT_NAMES",
    "LEDGER_DIR_NAME",
    "PERSONAL_DATA_NAMES",
    "RETAINED_NAME",
    "RUN_FILE_NAMES",
    "purge_personal_data",
]

log = logging.getLogger(__name__)

#: The note :func:`purge_personal_data` leaves in a purged run folder.
RETAINED_NAME = "retained.json"
#: Folders never treated as a DAG's or a run's folder.
PROTECTED_DIR_NAMES = frozenset({paths.SNAPSHOT_DIR_NAME, LEDGER_DIR_NAME})
#: Files of a run folder that hold no personal data and are kept: counts, status, timestamps, paths.
KEPT_NAMES = frozenset({paths.RUN_SUMMARY_NAME, upload_run.DRY_RUN_SUMMARY_NAME, RETAINED_NAME})
#: Files of a run folder known to hold personal data (names, UPNs, addresses, phone numbers, employee ids).
#: The names the sensor and trigger write are spelled out here because those modules import Airflow; a test
#: checks they still match. Every file not in :data:`KEPT_NAMES` is deleted, listed or not.
PERSONAL_DATA_NAMES = frozenset(
    {
        # provisioning steps (provisioning.paths)
        paths.RAW_NAME,
        paths.NORMALISED_NAME,
        paths.MAPPED_NAME,
        paths.QUARANTINE_NAME,
        paths.WARNINGS_NAME,
        paths.HELD_NAME,
        paths.DELTA_NAME,
        paths.KNOWN_IDS_NAME,
        upload_order.STAGE_ORDER_NAME,
        paths.ADMINS_NAME,
        paths.SELECTED_NAME,
        # upload: externalIds per request, SCIM payloads of a dry run, refused records
        upload_manifest.MANIFEST_NAME,
        upload_manifest.EXTERNAL_IDS_NAME,
        upload_manifest.REJECTED_NAME,
        upload_run.DRY_RUN_REQUESTS_NAME,
        upload_manifest.REFUSED_NAME,
        # sensors/triggers.provisioning_logs: the log entries (names, UPNs, attribute values) and outcomes
        paths.ENTRIES_NAME,
        paths.ENTRIES_STATE_NAME,
        paths.OUTCOMES_NAME,
        # provisioning.report
        report.CSV_NAME,
        report.HTML_NAME,
    }
)
#: Files that mark a folder as a run folder of this provider.
RUN_FILE_NAMES = PERSONAL_DATA_NAMES | KEPT_NAMES


def _modified(fs: Any, path: str, info: Mapping[str, Any]) -> datetime | None:
    """A file's modification time (UTC) from its listing, else from the filesystem (``None``: unknown)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, tz=timezone.utc)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return utc(value)
    try:
        return utc(fs.modified(path))
    except (NotImplementedError, OSError, AttributeError):
        return None


def _finished_at(fs: Any, summary_path: str) -> datetime | None:
    """``finished_at`` of a run summary, ``None`` when the file, the key or a readable value is missing."""
    try:
        with fs.open(summary_path, "rb") as handle:
            summary = json.loads(handle.read())
        value = summary.get("finished_at") if isinstance(summary, dict) else None
        return utc(str(value)) if value else None
    except (OSError, ValueError):
        return None


def _subfolders(fs: Any, folder: str) -> list[str]:
    """Names of the folders directly in ``folder`` (hidden and protected ones left out), sorted."""
    names = []
    for entry in fs.ls(folder, detail=True):
        name = posixpath.basename(str(entry["name"]).rstrip("/"))
        if entry.get("type") == "directory" and not name.startswith(".") and name not in PROTECTED_DIR_NAMES:
            names.append(name)
    return sorted(names)


def _run_files(fs: Any, run: str) -> dict[str, Mapping[str, Any]]:
    """Every file under the run folder, keyed by its path relative to the folder (``/``-separated).

    fsspec does not follow symbolic links: a link is listed (and deleted) as itself, never what it points to.
    """
    prefix = run.rstrip("/") + "/"
    return {
        path[len(prefix) :]: info
        for path, info in fs.find(run, detail=True).items()
        if info.get("type") != "directory" and path.startswith(prefix)
    }


def _remove_empty_folders(run: str) -> None:
    """Remove the subfolders of a local run folder left empty by the purge (deepest first)."""
    for folder, _, _ in sorted(os.walk(run), key=lambda item: item[0].count(os.sep), reverse=True):
        if folder != run:
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def _retained_note(
    fs: Any, run: str, deleted: Mapping[str, int], *, now: datetime, older_than: timedelta, run_time: datetime
) -> bytes:
    """``retained.json``: earlier purges of the folder kept, this one appended."""
    purges: list[Any] = []
    path = posixpath.join(run, RETAINED_NAME)
    with contextlib.suppress(OSError, ValueError):
        with fs.open(path, "rb") as handle:
            earlier = json.loads(handle.read()).get("purges")
        if isinstance(earlier, list):
            purges = earlier
    purges.append(
        {
            "purged_at": now.isoformat(timespec="seconds"),
            "retention_days": older_than.total_seconds() / 86400,
            "run_time": run_time.isoformat(timespec="seconds"),
            "files_deleted": [{"name": name, "bytes": size} for name, size in sorted(deleted.items())],
            "bytes_freed": sum(deleted.values()),
        }
    )
    note = {
        "note": "Personal data of this run was deleted after the retention period; the run summary is kept.",
        "purges": purges,
    }
    return json.dumps(note, indent=2).encode("utf-8")


def purge_personal_data(
    staging_root: Any,
    dag_id: str | None,
    *,
    older_than: timedelta,
    now: datetime | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Delete the personal data of the runs under ``staging_root`` older than ``older_than``.

    For each run folder ``<staging_root>/<dag_id>/<run id>/`` whose run is older than the retention (its
    ``run-summary.json``'s ``finished_at``, else its newest file), every file except :data:`KEPT_NAMES` is
    deleted (subfolders included) and ``retained.json`` records what was deleted and when. Snapshot folders,
    the ledger folder and folders that hold no file of the pipeline are never touched; runs whose age cannot
    be told are kept.

    :param staging_root: the staging root (local path, fsspec URL or ``ObjectStoragePath``).
    :param dag_id: the DAG whose runs to purge; ``None`` for every DAG folder under the root.
    :param older_than: the retention: runs older than this lose their personal data.
    :param now: the current time (default: now, UTC); a naive value is taken as UTC.
    :param dry_run: only report what would be deleted.
    :return: ``{"runs_examined", "runs_purged", "files_deleted", "bytes_freed", "purged", "dry_run",
        "cutoff"}``: ``purged`` lists the run folders purged (or, in a dry run, that would be), in the form
        of ``staging_root``.
    :raises ValueError: when ``older_than`` is negative or ``dag_id`` is not a single folder name.
    """
    if older_than < timedelta(0):
        raise ValueError(f"older_than must not be negative, got {older_than}")
    if dag_id is not None and (
        not dag_id or "/" in dag_id or dag_id in (".", "..") or dag_id in PROTECTED_DIR_NAMES
    ):
        raise ValueError(f"dag_id {dag_id!r} is not a DAG folder name")
    current = utc(now or datetime.now(timezone.utc))
    cutoff = current - older_than
    result: dict[str, Any] = {
        "runs_examined": 0,
        "runs_purged": 0,
        "files_deleted": 0,
        "bytes_freed": 0,
        "purged": [],
        "dry_run": bool(dry_run),
        "cutoff": cutoff.isoformat(timespec="seconds"),
    }
    fs, root = fs_and_path(staging_root)
    root = root.rstrip("/") or "/"
    if not fs.isdir(root):
        return result
    dags = [dag_id] if dag_id is not None else _subfolders(fs, root)
    for dag in dags:
        dag_folder = posixpath.join(root, dag)
        if not fs.isdir(dag_folder):
            continue
        for run_name in _subfolders(fs, dag_folder):
            run = posixpath.join(dag_folder, run_name)
            files = _run_files(fs, run)
            if not any(name in RUN_FILE_NAMES for name in files):
                continue  # not a run folder of this provider
            result["runs_examined"] += 1
            run_time = _finished_at(fs, posixpath.join(run, paths.RUN_SUMMARY_NAME))
            if run_time is None:
                times = [
                    _modified(fs, posixpath.join(run, name), info)
                    for name, info in files.items()
                    if name != RETAINED_NAME
                ]
                known = [t for t in times if t is not None]
                if not known or len(known) < len(times):
                    log.warning("%s: cannot tell the age of this run; kept", run)
                    continue
                run_time = max(known)
            if run_time >= cutoff:
                continue
            doomed = {
                name: int(info.get("size") or 0) for name, info in files.items() if name not in KEPT_NAMES
            }
            if not doomed:
                continue
            if not dry_run:
                for name in doomed:
                    fs.rm_file(posixpath.join(run, name))
                if is_local(fs):
                    _remove_empty_folders(run)
                note = _retained_note(fs, run, doomed, now=current, older_than=older_than, run_time=run_time)
                write_bytes_on(fs, posixpath.join(run, RETAINED_NAME), note)
            log.info(
                "%s %d file(s), %d bytes of personal data in %s (run of %s)",
                "Would delete" if dry_run else "Deleted",
                len(doomed),
                sum(doomed.values()),
                run,
                run_time.isoformat(timespec="seconds"),
            )
            result["runs_purged"] += 1
            result["files_deleted"] += len(doomed)
            result["bytes_freed"] += sum(doomed.values())
            result["purged"].append(str(join(staging_root, dag, run_name)))
    return result
