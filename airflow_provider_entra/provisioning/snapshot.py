"""The state table: what Entra is proven to hold, one row per externalId (the columns of the job's ledger).

The job's ledger (:mod:`~airflow_provider_entra.provisioning.ledger`) stores and folds these rows; this
module defines the columns, checks a frame against them (:func:`conform_snapshot`) and reads the single-file
snapshot of the first release (:func:`read_snapshot`), which a ledger adopts on its first commit.

Columns (:data:`SNAPSHOT_DTYPES`):

=====================  ==========================  ===================================================
column                 dtype                       meaning
=====================  ==========================  ===================================================
``externalId``         text                        the HR WorkerID (or ``A<WorkerID>`` for an admin)
``record_hash``        text                        hash of the mapped SCIM record last verified
``UserPrincipalName``  text                        the UPN Entra holds; kept so UPNs stay stable
``active``             bool                        whether the account is enabled
``last_sent_at``       timestamp (UTC)             when the verified record was sent
``last_verified_at``   timestamp (UTC)             when its provisioning-log outcome was read
``linked_external_id`` text                        admin accounts only: the person's externalId
``as_of``              timestamp (UTC)             time of the log entry that proved the row (orders
                                                   commits of overlapping runs, see the ledger module)
``unresolved_manager`` text                        the manager externalId Entra could not set yet
``attr_names``         text (categorical)          the attributes of ``attr_digest``, ``|``-joined: the
                                                   same text on most rows (one per mapping), so held
                                                   once (a million rows of it would be some 850 MB)
``attr_digest``        text                        4 hex digits per attribute value (what changed)
``proof``              text                        success, warning, redundant (a skip), legacy
``run_id``             text                        the run that committed the row
=====================  ==========================  ===================================================

Only records whose state the provisioning logs prove are in it (see the ledger module): a record that failed,
or whose outcome never showed up, keeps its old row and is therefore planned and sent again next run.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_entra._fsio import exists, read_frame
from airflow_provider_entra.provisioning._hr import TEXT_DTYPE

__all__ = [
    "OK_STATUSES",
    "conform_snapshot",
    "SNAPSHOT_DTYPES",
    "active_count",
    "empty_snapshot",
    "latest_rows",
    "read_snapshot",
]

#: Column -> dtype of the snapshot frame.
SNAPSHOT_DTYPES: dict[str, Any] = {
    "externalId": TEXT_DTYPE,
    "record_hash": TEXT_DTYPE,
    "UserPrincipalName": TEXT_DTYPE,
    "active": "bool",
    "last_sent_at": "datetime64[us, UTC]",
    "last_verified_at": "datetime64[us, UTC]",
    "linked_external_id": TEXT_DTYPE,
    "as_of": "datetime64[us, UTC]",
    "unresolved_manager": TEXT_DTYPE,
    "attr_names": "category",
    "attr_digest": TEXT_DTYPE,
    "proof": TEXT_DTYPE,
    "run_id": TEXT_DTYPE,
}

#: Outcome columns accepted as the record id (``reconcile`` names it ``external_id``).
OUTCOME_ID_COLUMNS = ("externalId", "external_id")

#: Reconciled outcomes that count as "Entra now holds what we sent" (provisioning log ``status`` values).
OK_STATUSES = ("success", "warning")


def empty_snapshot() -> pd.DataFrame:
    """A snapshot with no rows and the right columns and dtypes (what a first run starts from)."""
    return pd.DataFrame({col: pd.Series([], dtype=dtype) for col, dtype in SNAPSHOT_DTYPES.items()})


def conform_snapshot(df: pd.DataFrame, *, unique: bool = True) -> pd.DataFrame:
    """Select the snapshot columns in order, adding optional ones, with the documented dtypes.

    :param df: snapshot or ledger rows.
    :param unique: check that every externalId appears once (a folded ledger); ``False`` for raw ledger files.
    :raises ValueError: on a missing required column, a missing ``active`` flag or externalId, or (with
        ``unique``) a repeated externalId.
    """
    missing = [c for c in ("externalId", "record_hash", "UserPrincipalName", "active") if c not in df.columns]
    if missing:
        raise ValueError(f"snapshot is missing column(s): {', '.join(missing)}")
    out = {}
    for col, dtype in SNAPSHOT_DTYPES.items():
        is_time = str(dtype).startswith("datetime64")
        if col not in df.columns:
            out[col] = pd.Series(pd.NaT if is_time else np.nan, index=df.index, dtype=dtype)
        elif is_time:
            out[col] = pd.to_datetime(df[col], utc=True).astype(dtype)
        elif col == "active":
            if df[col].isna().any():
                raise ValueError("snapshot column 'active' has missing values")
            out[col] = df[col].astype(bool)
        else:
            out[col] = df[col].astype(dtype)
    frame = pd.DataFrame(out).reset_index(drop=True)
    if frame["externalId"].isna().any():
        raise ValueError("snapshot has rows without an externalId")
    dup = frame["externalId"][frame["externalId"].duplicated()] if unique else frame["externalId"][:0]
    if len(dup):
        raise ValueError(f"snapshot has repeated externalId(s): {', '.join(map(str, dup.unique()[:5]))}")
    return frame


def latest_rows(stacked: pd.DataFrame) -> np.ndarray:
    """Positions of each externalId's latest row in ``stacked`` (ledger rows of several files), in
    externalId order: the row whose ``as_of`` (else ``last_verified_at``), then ``last_verified_at``, is
    the latest, the later row on a tie. Only the ids on several rows are sorted by time (a day's commit
    repeats a few ids of a million); one sort of the ids remaining gives the order.

    :param stacked: conformed rows (:func:`conform_snapshot` with ``unique=False``).
    """
    ids = stacked["externalId"]
    keep = np.ones(len(stacked), dtype=bool)
    repeated = ids.duplicated(keep=False).to_numpy()
    if repeated.any():
        rows = stacked[repeated]
        never = pd.Timestamp(0, tz="UTC")
        order = pd.DataFrame(
            {
                "id": rows["externalId"],
                "as_of": rows["as_of"].fillna(rows["last_verified_at"]).fillna(never),
                "verified": rows["last_verified_at"].fillna(never),
                "position": np.flatnonzero(repeated),
            }
        )
        latest = order.sort_values(["id", "as_of", "verified"], kind="stable").drop_duplicates(
            "id", keep="last"
        )
        keep[repeated] = False
        keep[latest["position"].to_numpy()] = True
    winners = np.flatnonzero(keep)
    kept_ids = pa.array(ids, from_pandas=True).take(pa.array(winners))
    return winners[pc.sort_indices(kept_ids).to_numpy()]


def read_snapshot(path: str | os.PathLike[str] | Any) -> pd.DataFrame:
    """Read a single-file snapshot (the first release's); a missing file is an empty snapshot.

    :param path: local path, fsspec URL, or ``ObjectStoragePath``/``UPath``.
    :return: a frame with :data:`SNAPSHOT_DTYPES`.
    """
    if not exists(path):
        return empty_snapshot()
    return conform_snapshot(read_frame(path))


def active_count(snapshot: pd.DataFrame) -> int:
    """Number of enabled accounts in the snapshot (the deletion guard's denominator)."""
    return int(snapshot["active"].sum()) if len(snapshot) else 0
