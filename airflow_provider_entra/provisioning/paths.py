"""Where a run's files go: the staging layout, the names of the staged files, the HR snapshot Asset.

Staging layout (``staging_root`` is a local path or any fsspec/``ObjectStoragePath`` URL)::

    <staging_root>/ledger/<job key>/...                  the job's ledger: what Entra is proven to hold,
                                                         shared by every DAG that writes to the job
    <staging_root>/<dag_id>/<run id, sanitised>/...      one folder per run (the files named below)
    <staging_root>/<dag_id>/snapshot/hr_current.parquet  the normalised HR feed of the last committed run

The staging root is chosen once, the same way for every run and every DAG (:func:`staging_root`): the run's
``staging_path`` Param, else the Variable ``entra_staging_path``, else ``$AIRFLOW_HOME/entra-staging``.

Pure: no Airflow import, no I/O.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from airflow_provider_entra._fsio import join
from airflow_provider_entra.provisioning.ledger import ledger_dir

__all__ = [
    "ADMINS_NAME",
    "ADMIN_SNAPSHOT_NAME",
    "DEFAULT_STAGING_FOLDER",
    "DELTA_NAME",
    "ENTRIES_NAME",
    "ENTRIES_STATE_NAME",
    "FIRST_RELEASE_SNAPSHOTS",
    "HELD_NAME",
    "HR_CURRENT_NAME",
    "HR_DAG_ID",
    "HR_SNAPSHOT_ASSET_NAME",
    "HR_SNAPSHOT_ASSET_URI",
    "KNOWN_IDS_NAME",
    "MAPPED_NAME",
    "NORMALISED_NAME",
    "OUTCOMES_NAME",
    "QUARANTINE_NAME",
    "RAW_NAME",
    "RUN_SUMMARY_NAME",
    "SELECTED_NAME",
    "SNAPSHOT_DIR_NAME",
    "SNAPSHOT_NAME",
    "STARTED_NAME",
    "WARNINGS_NAME",
    "join",
    "first_release_snapshot",
    "ledger_path",
    "run_dir",
    "sanitise_run_id",
    "snapshot_dir",
    "staging_root",
]

# --- the files of a run folder ------------------------------------------------------------------------------
RAW_NAME = "hr_raw.parquet"
NORMALISED_NAME = "normalised.parquet"
MAPPED_NAME = "mapped.parquet"
QUARANTINE_NAME = "quarantine.csv"
WARNINGS_NAME = "warnings.csv"
HELD_NAME = "held.parquet"
DELTA_NAME = "delta.parquet"
KNOWN_IDS_NAME = "known-ids.parquet"
ADMINS_NAME = "admins.parquet"
SELECTED_NAME = "selected.parquet"
RUN_SUMMARY_NAME = "run-summary.json"
#: The verification's collected log entries (names, UPNs, attribute values) and the trigger's state beside it.
ENTRIES_NAME = "provisioning-log-entries.jsonl"
ENTRIES_STATE_NAME = f"{ENTRIES_NAME}.state.json"
#: Per-record outcomes (Parquet), for the next tasks (ledger commit, resend).
OUTCOMES_NAME = "outcomes.parquet"
#: When the verification started (ISO 8601).
STARTED_NAME = "verify-started-at.txt"

# --- a DAG's snapshot folder --------------------------------------------------------------------------------
SNAPSHOT_DIR_NAME = "snapshot"
#: The committed run's normalised HR feed (CSV2SCIM column names): what the admin accounts derive from.
HR_CURRENT_NAME = "hr_current.parquet"
#: The first release's per-DAG snapshots, adopted into the job's ledger on the first run after an upgrade.
SNAPSHOT_NAME = "hr_snapshot.parquet"
ADMIN_SNAPSHOT_NAME = "admin_snapshot.parquet"

#: The DAG whose commits publish the HR feed (``entra_admin_accounts`` reads its snapshot folder).
HR_DAG_ID = "entra_hr_provisioning"
#: The first release kept one snapshot per DAG; the first run after an upgrade adopts it into the job's
#: still-empty ledger. By DAG: ``(the DAG folder holding the snapshot, its file name)``.
FIRST_RELEASE_SNAPSHOTS: dict[str, tuple[str, str]] = {
    HR_DAG_ID: (HR_DAG_ID, SNAPSHOT_NAME),
    "entra_on_demand": (HR_DAG_ID, SNAPSHOT_NAME),
    "entra_admin_accounts": ("entra_admin_accounts", ADMIN_SNAPSHOT_NAME),
}
#: The Asset the HR DAG's commit publishes and ``entra_admin_accounts`` is scheduled on. Its URI names the
#: snapshot file *relative to the staging root*, so it is the same wherever the root is and however it is
#: set (Param, Variable or default, known only when a run starts); each event's ``extra`` carries the paths
#: that run actually wrote (``ledger``, ``hr_current_path``), which is what the admin DAG reads.
HR_SNAPSHOT_ASSET_NAME = "entra_hr_snapshot"
HR_SNAPSHOT_ASSET_URI = f"entra-staging://{HR_DAG_ID}/{SNAPSHOT_DIR_NAME}/{HR_CURRENT_NAME}"

#: The folder under ``$AIRFLOW_HOME`` used when neither a Param nor the Variable names a staging root.
DEFAULT_STAGING_FOLDER = "entra-staging"
_UNSAFE_RUN_ID = re.compile(r"[^A-Za-z0-9._-]+")


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
    return ledger_dir(root, job_id)


def first_release_snapshot(root: Any, dag_id: str) -> Any | None:
    """The first release's snapshot a run of ``dag_id`` adopts into its job's ledger (``None``: none)."""
    if dag_id not in FIRST_RELEASE_SNAPSHOTS:
        return None
    folder, name = FIRST_RELEASE_SNAPSHOTS[dag_id]
    return join(snapshot_dir(root, folder), name)
