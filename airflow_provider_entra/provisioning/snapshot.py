"""The committed snapshot: what Entra is known to hold, one row per externalId, as a Parquet file.

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
=====================  ==========================  ===================================================

Only records whose provisioning-log outcome was read as success or warning change the snapshot
(:func:`commit_verified`): a record that failed, or whose outcome never showed up, keeps its old row and is
therefore planned and sent again next run.

Writes are atomic: the file is written under a temporary name beside the target and then moved over it, so a
reader never sees half a snapshot and a crash leaves the previous one in place. Paths may be local paths,
``fsspec`` URLs (``s3://bucket/key``, ``memory://...``) or objects with an ``fs``/``path`` pair such as
Airflow's ``ObjectStoragePath`` and ``upath.UPath``. (On object stores the final move is a server-side copy;
the object appears whole or not at all.)
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airflow_provider_entra._atomic import atomic_write_bytes
from airflow_provider_entra._fsio import fs_and_path, is_local
from airflow_provider_entra.provisioning._hr import TEXT_DTYPE, isin_text

__all__ = [
    "OK_STATUSES",
    "SNAPSHOT_DTYPES",
    "active_count",
    "commit_verified",
    "empty_snapshot",
    "read_snapshot",
    "write_snapshot",
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
}

#: Outcome columns accepted as the record id (``reconcile`` names it ``external_id``).
OUTCOME_ID_COLUMNS = ("externalId", "external_id")

#: Reconciled outcomes that count as "Entra now holds what we sent" (provisioning log ``status`` values).
OK_STATUSES = ("success", "warning")


def empty_snapshot() -> pd.DataFrame:
    """A snapshot with no rows and the right columns and dtypes (what a first run starts from)."""
    return pd.DataFrame({col: pd.Series([], dtype=dtype) for col, dtype in SNAPSHOT_DTYPES.items()})


def _conform(df: pd.DataFrame) -> pd.DataFrame:
    """Select the snapshot columns in order, adding optional ones, with the documented dtypes."""
    missing = [c for c in ("externalId", "record_hash", "UserPrincipalName", "active") if c not in df.columns]
    if missing:
        raise ValueError(f"snapshot is missing column(s): {', '.join(missing)}")
    out = {}
    for col, dtype in SNAPSHOT_DTYPES.items():
        if col not in df.columns:
            out[col] = pd.Series(pd.NaT if col.endswith("_at") else np.nan, index=df.index, dtype=dtype)
        elif col.endswith("_at"):
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
    dup = frame["externalId"][frame["externalId"].duplicated()]
    if len(dup):
        raise ValueError(f"snapshot has repeated externalId(s): {', '.join(map(str, dup.unique()[:5]))}")
    return frame


def read_snapshot(path: str | os.PathLike[str] | Any) -> pd.DataFrame:
    """Read the committed snapshot; a missing file is an empty snapshot (first run).

    :param path: local path, fsspec URL, or ``ObjectStoragePath``/``UPath``.
    :return: a frame with :data:`SNAPSHOT_DTYPES`.
    """
    fs, inner = fs_and_path(path)
    if not fs.exists(inner):
        return empty_snapshot()
    if is_local(fs):
        return _conform(pd.read_parquet(inner))
    with fs.open(inner, "rb") as fh:
        return _conform(pd.read_parquet(fh))


def write_snapshot(df: pd.DataFrame, path: str | os.PathLike[str] | Any) -> None:
    """Write the snapshot atomically (temporary name beside the target, then a move over it).

    :param df: the snapshot frame (checked: required columns, one row per externalId, ``active`` set).
    :param path: local path, fsspec URL, or ``ObjectStoragePath``/``UPath``.
    """
    frame = _conform(df).sort_values("externalId", kind="stable", ignore_index=True)
    fs, inner = fs_and_path(path)
    if not is_local(fs):
        parent, _, name = inner.rpartition("/")
        tmp = f"{parent}/.{name}.{uuid.uuid4().hex}.tmp" if parent else f".{name}.{uuid.uuid4().hex}.tmp"
        if parent:
            fs.makedirs(parent, exist_ok=True)
        try:
            with fs.open(tmp, "wb") as fh:
                frame.to_parquet(fh, index=False)
            fs.mv(tmp, inner)
        finally:
            if fs.exists(tmp):
                fs.rm(tmp)
        return
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    atomic_write_bytes(Path(inner), buffer.getvalue())


def active_count(snapshot: pd.DataFrame) -> int:
    """Number of enabled accounts in the snapshot (the deletion guard's denominator)."""
    return int(snapshot["active"].sum()) if len(snapshot) else 0


def commit_verified(
    snapshot: pd.DataFrame,
    sent_plan: Any,
    outcomes: pd.DataFrame,
    *,
    status_column: str = "status",
    ok_statuses: Iterable[str] = OK_STATUSES,
    upn_columns: Iterable[str] = ("userName", "UserPrincipalName"),
    link_columns: Iterable[str] = ("linked_external_id", "LinkedWorkerID"),
    sent_at: datetime | None = None,
    verified_at: datetime | None = None,
) -> pd.DataFrame:
    """Fold a run's verified outcomes into the snapshot.

    For every record of ``sent_plan`` whose outcome status is in ``ok_statuses`` the snapshot row becomes the
    sent record: its ``record_hash``, ``active`` flag and UPN, stamped with ``sent_at``/``verified_at``. Every
    other snapshot row is kept as it was, so failed, skipped or unverified records differ from the feed next
    run and are sent again. Records that were not sent are untouched.

    :param snapshot: the current snapshot (:func:`read_snapshot`).
    :param sent_plan: the :class:`~airflow_provider_entra.provisioning.plan.DeltaPlan` that was sent, or its
        ``frame`` (needs ``externalId``, ``record_hash``, ``active``, and a UPN column).
    :param outcomes: reconciled outcomes (:func:`~airflow_provider_entra.provisioning.reconcile.reconcile`),
        one row per record, with ``external_id`` (or ``externalId``) and ``status_column``; an ``upn`` column
        (the UPN Entra logged) fills in when the plan carries none.
    :param status_column: the outcome column holding success/warning/failure/skipped/...
    :param ok_statuses: statuses that count as verified (case-insensitive).
    :param upn_columns: the first of these present in the plan frame gives the UPN (SCIM ``userName``);
        else the logged ``upn``; else the old snapshot's.
    :param link_columns: the first of these present gives ``linked_external_id`` (admin accounts).
    :param sent_at: when the records were sent (default: now, UTC).
    :param verified_at: when the outcomes were read (default: now, UTC).
    :return: the new snapshot frame (write it with :func:`write_snapshot`).
    """
    frame: pd.DataFrame = getattr(sent_plan, "frame", sent_plan)
    for col in ("externalId", "record_hash", "active"):
        if col not in frame.columns:
            raise ValueError(f"sent plan has no {col!r} column")
    id_col = next((c for c in OUTCOME_ID_COLUMNS if c in outcomes.columns), None)
    if id_col is None or status_column not in outcomes.columns:
        raise ValueError(f"outcomes need an externalId/external_id column and a {status_column!r} column")
    now = datetime.now(timezone.utc)
    sent_at = sent_at or now
    verified_at = verified_at or now
    snapshot = _conform(snapshot)

    ok = {s.lower() for s in ok_statuses}
    status = outcomes[status_column].astype(TEXT_DTYPE).str.lower()
    verified = outcomes[status.isin(ok).to_numpy()]
    verified_ids = pd.Index(verified[id_col].astype(TEXT_DTYPE).unique())
    sent = frame[isin_text(frame["externalId"], verified_ids)].drop_duplicates("externalId", keep="last")
    if sent.empty:
        return snapshot

    old = snapshot.set_index("externalId")
    ids = sent["externalId"].astype(TEXT_DTYPE)
    upn = pd.Series(np.nan, index=sent.index, dtype=TEXT_DTYPE)
    upn_col = next((c for c in upn_columns if c in sent.columns), None)
    if upn_col:
        upn = sent[upn_col].astype(TEXT_DTYPE)
    if "upn" in verified.columns:
        logged = verified.drop_duplicates(id_col, keep="last").set_index(id_col)["upn"].astype(TEXT_DTYPE)
        upn = upn.fillna(ids.map(logged))
    if len(old):
        upn = upn.fillna(ids.map(old["UserPrincipalName"]))
    link_col = next((c for c in link_columns if c in sent.columns), None)
    link = (
        sent[link_col].astype(TEXT_DTYPE)
        if link_col
        else pd.Series(np.nan, index=sent.index, dtype=TEXT_DTYPE)
    )
    if len(old):
        link = link.fillna(ids.map(old["linked_external_id"]))
    updated = pd.DataFrame(
        {
            "externalId": ids.to_numpy(),
            "record_hash": sent["record_hash"].astype(TEXT_DTYPE).to_numpy(),
            "UserPrincipalName": upn.astype(TEXT_DTYPE).to_numpy(),
            "active": sent["active"].astype(bool).to_numpy(),
            "last_sent_at": pd.Timestamp(sent_at),
            "last_verified_at": pd.Timestamp(verified_at),
            "linked_external_id": link.astype(TEXT_DTYPE).to_numpy(),
        }
    )
    kept = snapshot[~isin_text(snapshot["externalId"], updated["externalId"])]
    return _conform(pd.concat([kept, _conform(updated)], ignore_index=True))
