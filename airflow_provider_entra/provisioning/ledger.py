"""The job's ledger: what Entra is proven to hold, one per provisioning job, shared by every DAG that writes
to it.

Every DAG that uploads to one provisioning job (the scheduled HR run, on-demand runs, a user's own DAG) plans
against the same ledger and commits to it. A record enters the ledger only when the provisioning logs prove
its state: a ``success`` (or a ``warning``: the user was written but a manager reference is not set yet),
or a ``skipped`` entry whose reason says Entra already holds what was sent (:data:`PROVING_SKIP_REASONS`).
Other skips (out of scope, a disable held by Entra's accidental-deletion threshold) do not change the ledger;
they are kept as *skip rows*, and a record skipped the same way in :data:`STUCK_AFTER_RUNS` runs is
reported as stuck instead of being sent again run after run.

Storage (``<staging root>/ledger/<job key>/``, any local path or fsspec/``ObjectStoragePath`` URL)::

    state-<UTC stamp>-<random>.parquet    proven rows of one commit (columns: snapshot.SNAPSHOT_DTYPES)
    skips-<UTC stamp>-<random>.parquet    skip rows of one commit (:data:`SKIP_DTYPES`)

A commit only ever writes new files under unique names; it never rewrites a file another run may be reading.
Reading folds every file: per externalId the row with the latest ``as_of`` wins, ``as_of`` being the time of
the log entry that proved it (Microsoft's clock), so two runs that overlap (a manual run during the scheduled
one) neither lose each other's commits nor depend on who committed last, and committing the same outcome twice
changes nothing. :func:`compact` folds many files into one and deletes only files it has folded, after the
folded file is written: a crash or a concurrent compaction never loses a row.

A tenant moving over from the first release's per-DAG snapshot
(``<root>/<dag_id>/snapshot/hr_snapshot.parquet``) passes it as ``legacy_snapshot``: while the ledger is empty
it is read as the ledger, and the first commit copies it in.

Pure pandas and fsspec: no Airflow import.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from airflow_provider_entra._fsio import exists, fs_and_path, read_frame, write_bytes
from airflow_provider_entra.provisioning._hr import TEXT_DTYPE, isin_text
from airflow_provider_entra.provisioning.snapshot import (
    OK_STATUSES,
    conform_snapshot,
    empty_snapshot,
    latest_rows,
    read_snapshot,
)

__all__ = [
    "LEDGER_DIR_NAME",
    "NON_ATTRIBUTE_COLUMNS",
    "PROVING_SKIP_REASONS",
    "SKIP_DTYPES",
    "STUCK_AFTER_RUNS",
    "Ledger",
    "adopt_legacy_snapshot",
    "apply_outcomes",
    "attribute_columns",
    "attribute_digests",
    "changed_attributes",
    "commit",
    "compact",
    "fold_outcomes",
    "job_key",
    "ledger_dir",
    "read_ledger",
]

LEDGER_DIR_NAME = "ledger"
_STATE = "state-"
_SKIPS = "skips-"
_SUFFIX = ".parquet"

#: ``SkipReason`` values of a ``skipped`` log entry that prove Entra already holds the record as sent
#: (the update would change nothing). Our reading of Microsoft's logs; see docs/emulator.md.
PROVING_SKIP_REASONS = frozenset({"RedundantExport"})
#: A record skipped (or left with an unresolved manager) the same way, with the same content, in this many
#: runs is *stuck*: it is not sent again until its content changes (or a full sync), and every run reports it.
STUCK_AFTER_RUNS = 2
#: Failures kept like skips: the UPN sent belongs to another account in Entra (a duplicate UPN fails the
#: create). The UPN is remembered as taken, so a derived one moves on to the next free suffix.
UPN_TAKEN = "AzureActiveDirectoryInvalidUserPrincipalName"
#: What a person can do about a record Entra keeps skipping, by ``SkipReason`` (our reading of Microsoft's
#: provisioning-log reasons; see docs/emulator.md).
SKIP_ACTIONS: dict[str, str] = {
    "NotEffectivelyEntitled": (
        "Entra leaves the record out: it is inactive and no matching account exists, or the app's scoping "
        "filters exclude it. If that is intended, leave inactive workers out of the run (Param "
        "inactive_scope_days); otherwise widen the provisioning app's scoping."
    ),
    "TooManyDeletes": (
        "Entra's accidental-deletion threshold holds these disables. Review them in the provisioning logs, "
        "then restart the job with resetScope ForceDeletes (or raise its threshold)."
    ),
    UPN_TAKEN: (
        "The user principal name sent belongs to another account in Entra (Entra's description names it). "
        "With source.upn.collisions: suffix (the default) the next run gives this person the next free UPN; "
        "or choose one in the mapping's source.upn.overrides; or free the UPN in Entra."
    ),
    "UnableToResolveReferenceAttributeValue": (
        "The manager is not a user this job provisioned: provision the manager through this job, or correct "
        "the record's manager in HR."
    ),
}
_DEFAULT_ACTION = (
    "Read Entra's description, fix the record or the provisioning app, then send it again (full sync)."
)
#: Columns of the skip rows.
SKIP_DTYPES: dict[str, Any] = {
    "externalId": TEXT_DTYPE,
    "record_hash": TEXT_DTYPE,
    "reason": TEXT_DTYPE,
    "detail": TEXT_DTYPE,
    "run_id": TEXT_DTYPE,
    "at": "datetime64[us, UTC]",
    "upn": TEXT_DTYPE,
}
#: Columns of a sent record that are bookkeeping, not SCIM attributes (left out of the attribute digests).
NON_ATTRIBUTE_COLUMNS = frozenset(
    {
        "externalId",
        "record_hash",
        "active",
        "change",
        "changed_attributes",
        "linked_external_id",
        "LinkedWorkerID",
        "row",
    }
)
#: Listings tried by a reader that concurrent compactions keep overtaking.
_READ_ATTEMPTS = 20
#: Files folded by :func:`commit` before it compacts.
COMPACT_AFTER_FILES = 24
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: The SCIM manager reference column of a mapped record.
_MANAGER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"


def job_key(job_id: str) -> str:
    """The job id as one folder name (``API2AAD.abc.def`` stays as it is; anything unsafe becomes ``_``)."""
    text = _UNSAFE.sub("_", str(job_id or "")).strip("._")
    if not text:
        raise ValueError(f"job id {job_id!r} cannot name a ledger")
    return text


def ledger_dir(root: Any, job_id: str) -> str:
    """``<root>/ledger/<job key>``: the ledger folder of one provisioning job (text path or URL)."""
    base = str(root).rstrip("/")
    return f"{base}/{LEDGER_DIR_NAME}/{job_key(job_id)}"


def _empty_skips() -> pd.DataFrame:
    return pd.DataFrame({col: pd.Series([], dtype=dtype) for col, dtype in SKIP_DTYPES.items()})


def _conform_skips(frame: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for col, dtype in SKIP_DTYPES.items():
        if col not in frame.columns:
            out[col] = pd.Series(pd.NaT if col == "at" else np.nan, index=frame.index, dtype=dtype)
        elif col == "at":
            out[col] = pd.to_datetime(frame[col], utc=True).astype(dtype)
        else:
            out[col] = frame[col].astype(dtype)
    return pd.DataFrame(out).reset_index(drop=True)


@dataclass(frozen=True)
class Ledger:
    """A folded ledger.

    :param state: one row per externalId Entra is proven to hold (columns of
        :data:`~airflow_provider_entra.provisioning.snapshot.SNAPSHOT_DTYPES`).
    :param skips: non-proving outcomes recorded after each record's proven state (:data:`SKIP_DTYPES`).
    :param files: how many files were folded.
    :param legacy: whether the state came from a first-release snapshot (the ledger folder was empty).
    """

    state: pd.DataFrame
    skips: pd.DataFrame
    files: int = 0
    legacy: bool = False

    def taken_upns(self) -> list[str]:
        """UPNs Entra refused because another account holds them (lower case)."""
        if self.skips.empty:
            return []
        taken = self.skips.loc[self.skips["reason"].eq(UPN_TAKEN), "upn"].dropna()
        return sorted({str(u).lower() for u in taken})

    def stuck(self) -> pd.DataFrame:
        """Records skipped the same way, with the same content, in :data:`STUCK_AFTER_RUNS` runs or more.

        :return: ``externalId``, ``record_hash``, ``reason``, ``detail``, ``runs``, ``action`` (what a
            person can do, :data:`SKIP_ACTIONS`), one row per record (the most repeated reason).
        """
        if self.skips.empty:
            return pd.DataFrame(
                {
                    "externalId": pd.Series([], dtype=TEXT_DTYPE),
                    "record_hash": pd.Series([], dtype=TEXT_DTYPE),
                    "reason": pd.Series([], dtype=TEXT_DTYPE),
                    "detail": pd.Series([], dtype=TEXT_DTYPE),
                    "runs": pd.Series([], dtype="int64"),
                    "action": pd.Series([], dtype=TEXT_DTYPE),
                }
            )
        keys = ["externalId", "record_hash", "reason"]
        grouped = self.skips.groupby(keys, sort=False, dropna=False)
        runs = grouped["run_id"].nunique().rename("runs")
        detail = grouped["detail"].last()
        table = pd.concat([runs, detail], axis=1).reset_index()
        table = table[table["runs"] >= STUCK_AFTER_RUNS]
        table = table.sort_values(["externalId", "runs"], kind="stable").drop_duplicates(
            "externalId", keep="last"
        )
        table["action"] = table["reason"].map(lambda r: SKIP_ACTIONS.get(str(r), _DEFAULT_ACTION))
        columns = ["externalId", "record_hash", "reason", "detail", "runs", "action"]
        return table.loc[:, columns].reset_index(drop=True)


def _list(path: Any) -> tuple[Any, str, list[str]]:
    fs, inner = fs_and_path(path)
    if not fs.exists(inner):
        return fs, inner, []
    names = [str(p).rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(inner, detail=False)]
    return fs, inner, sorted(n for n in names if n.endswith(_SUFFIX) and n.startswith((_STATE, _SKIPS)))


def _read_parquet(path: str) -> pd.DataFrame:
    # attr_names repeats one text on most rows: read as categories, it is never spelt out once per row.
    return read_frame(path, read_dictionary=["attr_names"])


def _fold_state(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_snapshot()
    if len(frames) == 1:  # one folded file: unique ids, written in externalId order (no sort, no copy)
        ids = frames[0]["externalId"]
        if ids.is_monotonic_increasing and ids.is_unique:  # the cheap test first
            return conform_snapshot(frames[0])
    stacked = conform_snapshot(
        pd.concat([conform_snapshot(f, unique=False) for f in frames], ignore_index=True), unique=False
    )
    return conform_snapshot(stacked.take(latest_rows(stacked)))


def _fold_skips(frames: list[pd.DataFrame], state: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return _empty_skips()
    skips = _conform_skips(pd.concat(frames, ignore_index=True)).drop_duplicates(
        ["externalId", "run_id", "reason", "record_hash"], keep="last"
    )
    if len(state):
        proven = state.set_index("externalId")["as_of"].fillna(
            state.set_index("externalId")["last_verified_at"]
        )
        since = skips["externalId"].map(proven)
        # A skip older than the record's proven state is history: the record changed since.
        skips = skips[since.isna().to_numpy() | (skips["at"] > since).fillna(True).to_numpy()]
    return skips.reset_index(drop=True)


def _read_all(path: Any) -> dict[str, pd.DataFrame]:
    """Every ledger file by name. A file that a concurrent compaction deleted between the listing and the
    read is in the folded file written before the deletion: list again."""
    for _ in range(_READ_ATTEMPTS):
        _, _, names = _list(path)
        try:
            return {n: _read_parquet(_join(path, n)) for n in names}
        except FileNotFoundError:
            continue
    raise RuntimeError(f"the ledger at {path} kept changing while it was read ({_READ_ATTEMPTS} attempts)")


def read_ledger(path: Any, *, legacy_snapshot: Any | None = None) -> Ledger:
    """Fold the ledger at ``path`` (a missing folder is an empty ledger).

    :param path: the ledger folder (:func:`ledger_dir`).
    :param legacy_snapshot: a first-release snapshot file read as the ledger while the folder holds none.
    :return: :class:`Ledger`.
    """
    frames = _read_all(path)
    skip_frames = [f for n, f in frames.items() if n.startswith(_SKIPS)]
    has_state = any(n.startswith(_STATE) for n in frames)
    if not has_state and legacy_snapshot is not None and exists(legacy_snapshot):
        state = read_snapshot(legacy_snapshot)
        return Ledger(state=state, skips=_fold_skips(skip_frames, state), files=len(frames), legacy=True)
    state = _fold_state([f for n, f in frames.items() if n.startswith(_STATE)])
    return Ledger(state=state, skips=_fold_skips(skip_frames, state), files=len(frames))


def _join(path: Any, name: str) -> Any:
    if isinstance(path, str):
        return f"{path.rstrip('/')}/{name}"
    return path / name


def _new_name(prefix: str, now: datetime) -> str:
    return f"{prefix}{now.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:12]}{_SUFFIX}"


def _write_parquet(frame: pd.DataFrame, path: Any) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    write_bytes(path, buffer.getvalue())


# --- attribute digests ------------------------------------------------------------------------------------


def attribute_columns(frame: pd.DataFrame) -> list[str]:
    """The SCIM attribute columns of a mapped frame (everything but bookkeeping columns)."""
    return [c for c in frame.columns if c not in NON_ATTRIBUTE_COLUMNS and not str(c).startswith("_")]


def attribute_digests(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> tuple[str, pd.Series]:
    """A short digest of each attribute's value per record, to tell later which attributes of a mover changed.

    Each attribute contributes 4 hex digits (16 bits of its value's hash), so the ledger holds no personal
    data and stays small (about 100 bytes per record for 25 attributes). A changed value shows as unchanged
    with a probability of 1 in 65,536: the digests only explain a change in the report; the plan itself
    compares the full ``record_hash``.

    :param frame: mapped records.
    :param columns: the attribute columns (default: :func:`attribute_columns`).
    :return: ``(names, digests)``: the attribute names joined with ``|`` and one hex text per row.
    """
    cols = list(columns) if columns is not None else attribute_columns(frame)
    if not cols or not len(frame):
        return "|".join(cols), pd.Series("", index=frame.index, dtype=TEXT_DTYPE)
    parts = np.empty((len(frame), len(cols)), dtype=">u2")
    for j, col in enumerate(cols):
        values = frame[col].astype(TEXT_DTYPE).fillna("\x00")
        hashed = pd.util.hash_pandas_object(values, index=False).to_numpy()
        parts[:, j] = (hashed & 0xFFFF).astype(np.uint16)
    raw = np.ascontiguousarray(parts).view(f"S{2 * len(cols)}").ravel()
    text = pd.Series([bytes(v).hex() for v in raw], index=frame.index, dtype=TEXT_DTYPE)
    return "|".join(cols), text


def changed_attributes(
    names_before: pd.Series, digest_before: pd.Series, names_now: str, digest_now: pd.Series
) -> pd.Series:
    """Attributes whose digest differs, joined with ``, `` (empty text when nothing is known).

    :param names_before: the ledger's ``attr_names`` per record.
    :param digest_before: the ledger's ``attr_digest`` per record.
    :param names_now: the current attribute names (``|``-joined, :func:`attribute_digests`).
    :param digest_now: the current digests, aligned with the ``*_before`` Series.
    """
    now_names = names_now.split("|") if names_now else []
    out = []
    for before_names, before, now in zip(
        names_before.tolist(), digest_before.tolist(), digest_now.tolist(), strict=True
    ):
        if not isinstance(before_names, str) or not isinstance(before, str) or not isinstance(now, str):
            out.append("")
            continue
        old = dict(
            zip(before_names.split("|"), (before[i : i + 4] for i in range(0, len(before), 4)), strict=False)
        )
        new = dict(zip(now_names, (now[i : i + 4] for i in range(0, len(now), 4)), strict=False))
        changed = [_short(name) for name in now_names if old.get(name) != new.get(name)]
        changed += [_short(name) for name in old if name not in new]
        out.append(", ".join(changed))
    return pd.Series(out, index=digest_now.index, dtype=TEXT_DTYPE)


def _short(attribute: str) -> str:
    """``urn:...:enterprise:2.0:User:department`` -> ``department``; other attribute paths as they are."""
    if attribute.startswith("urn:") and ":User:" in attribute:
        return attribute.rsplit(":User:", 1)[1]
    return attribute


# --- folding a run's outcomes -------------------------------------------------------------------------------


def _text_col(frame: pd.DataFrame, names: Iterable[str]) -> pd.Series:
    for name in names:
        if name in frame.columns:
            return frame[name].astype(TEXT_DTYPE)
    return pd.Series(np.nan, index=frame.index, dtype=TEXT_DTYPE)


#: Outcome columns :func:`fold_outcomes` reads, and their value when a caller's frame lacks them.
_OUTCOME_DEFAULTS: dict[str, Any] = {
    "error_code": np.nan,
    "reason": np.nan,
    "upn": np.nan,
    "activity_time": pd.NaT,
    "unresolved_reference": False,
}


def fold_outcomes(
    sent: pd.DataFrame,
    outcomes: pd.DataFrame,
    previous: pd.DataFrame,
    *,
    run_id: str,
    verified_at: datetime | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Turn one run's reconciled outcomes into ledger rows.

    * ``success`` and ``warning``: the record as sent is proven (a warning whose manager reference is still
      unresolved keeps the manager's externalId in ``unresolved_manager``, and also counts as a skip, so the
      retry that follows is not repeated forever);
    * ``skipped`` with a reason in :data:`PROVING_SKIP_REASONS`: Entra already holds it, proven too;
    * any other ``skipped``: a skip row (reason and Entra's description), the ledger keeps its old state;
    * ``failure`` and ``missing``: nothing; the record is sent again next run and reported.

    :param sent: the records that were sent (the plan's delta or an on-demand selection): ``externalId``,
        ``record_hash``, ``active``, ``userName``, the mapped attributes, optionally ``change`` and
        ``linked_external_id``.
    :param outcomes: :func:`~airflow_provider_entra.provisioning.reconcile.reconcile`'s frame.
    :param previous: the ledger state the run started from (UPNs, links and digests fill in from it).
    :param run_id: the run committing (kept on every row; skips count distinct runs).
    :param verified_at: when the outcomes were read (default: now).
    :return: ``(state_rows, skip_rows, counts)``; counts: ``proven``, ``proven_by_skip``, ``skipped``,
        ``unresolved``, ``failed``, ``missing``.
    """
    verified_at = verified_at or datetime.now(timezone.utc)
    counts = {"proven": 0, "proven_by_skip": 0, "skipped": 0, "unresolved": 0, "failed": 0, "missing": 0}
    if sent.empty or outcomes.empty:
        return empty_snapshot(), _empty_skips(), counts
    outcomes = outcomes.rename(columns={"externalId": "external_id"})
    for column, default in _OUTCOME_DEFAULTS.items():
        if column not in outcomes.columns:
            outcomes = outcomes.assign(**{column: default})
    out = outcomes.drop_duplicates("external_id", keep="last").set_index("external_id")
    ids = sent["externalId"].astype(TEXT_DTYPE)
    sent = sent[isin_text(ids, out.index)].drop_duplicates("externalId", keep="last")
    ids = sent["externalId"].astype(TEXT_DTYPE)
    result = out.reindex(pd.Index(ids))
    status = result["status"].astype(TEXT_DTYPE).str.lower().fillna("missing").to_numpy()
    code = result["error_code"].astype(TEXT_DTYPE).to_numpy()
    unresolved = result["unresolved_reference"].fillna(False).astype(bool).to_numpy()
    by_skip = (status == "skipped") & pd.Series(code).isin(PROVING_SKIP_REASONS).to_numpy()
    proven = np.isin(status, list(OK_STATUSES)) | by_skip
    other_skip = (status == "skipped") & ~by_skip
    counts.update(
        proven=int(proven.sum()),
        proven_by_skip=int(by_skip.sum()),
        skipped=int(other_skip.sum()),
        unresolved=int((proven & unresolved).sum()),
        failed=int((status == "failure").sum()),
        missing=int((status == "missing").sum()),
    )
    as_of = pd.to_datetime(result["activity_time"], utc=True)

    state_rows = empty_snapshot()
    if proven.any():
        rows = sent[proven]
        rid = ids[proven]
        old = previous.set_index("externalId") if len(previous) else None
        upn = _text_col(rows, ("userName", "UserPrincipalName"))
        logged = result["upn"].astype(TEXT_DTYPE)[proven]
        upn = upn.fillna(pd.Series(logged.to_numpy(), index=rows.index, dtype=TEXT_DTYPE))
        link = _text_col(rows, ("linked_external_id", "LinkedWorkerID"))
        names, digests = attribute_digests(rows)
        manager = _text_col(rows, (_MANAGER,))
        change = _text_col(rows, ("change",))
        if old is not None:
            upn = upn.fillna(rid.map(old["UserPrincipalName"]))
            link = link.fillna(rid.map(old["linked_external_id"]))
            # A disable of a worker missing from the export carries no attributes: keep what Entra held.
            minimal = change.eq("missing_disable").fillna(False).to_numpy()
            if minimal.any():
                digests = digests.where(~minimal, rid.map(old["attr_digest"]).to_numpy())
                keep_names = rid.map(old["attr_names"]).to_numpy()
                names_col = pd.Series(names, index=rows.index, dtype=TEXT_DTYPE).where(~minimal, keep_names)
            else:
                names_col = pd.Series(names, index=rows.index, dtype=TEXT_DTYPE)
        else:
            names_col = pd.Series(names, index=rows.index, dtype=TEXT_DTYPE)
        proof = np.where(by_skip[proven], "redundant", status[proven])
        state_rows = conform_snapshot(
            pd.DataFrame(
                {
                    "externalId": rid.to_numpy(),
                    "record_hash": rows["record_hash"].astype(TEXT_DTYPE).to_numpy(),
                    "UserPrincipalName": upn.to_numpy(),
                    "active": rows["active"].astype(bool).to_numpy(),
                    "last_sent_at": as_of[proven].to_numpy(),
                    "last_verified_at": pd.Timestamp(verified_at),
                    "linked_external_id": link.to_numpy(),
                    "as_of": as_of[proven].to_numpy(),
                    "unresolved_manager": manager.where(unresolved[proven], np.nan).to_numpy(),
                    "attr_names": names_col.to_numpy(),
                    "attr_digest": digests.to_numpy(),
                    "proof": proof,
                    "run_id": run_id,
                }
            )
        )

    upn_taken = (status == "failure") & pd.Series(code).eq(UPN_TAKEN).to_numpy()
    skip_mask = other_skip | (proven & unresolved) | upn_taken
    skip_rows = _empty_skips()
    if skip_mask.any():
        reason = result["error_code"].astype(TEXT_DTYPE).fillna(result["reason"].astype(TEXT_DTYPE))
        skip_rows = _conform_skips(
            pd.DataFrame(
                {
                    "externalId": ids[skip_mask].to_numpy(),
                    "record_hash": sent["record_hash"].astype(TEXT_DTYPE)[skip_mask].to_numpy(),
                    "reason": reason.fillna("(no reason given)")[skip_mask].to_numpy(),
                    "detail": result["reason"].astype(TEXT_DTYPE)[skip_mask].to_numpy(),
                    "run_id": run_id,
                    # after the proven row of the same entry, so an unresolved warning keeps its skip row
                    "at": (as_of[skip_mask] + pd.Timedelta(microseconds=1)).to_numpy(),
                    "upn": _text_col(sent, ("userName", "UserPrincipalName"))[skip_mask].to_numpy(),
                }
            )
        )
    return state_rows, skip_rows, counts


def adopt_legacy_snapshot(path: Any, legacy_snapshot: Any) -> int:
    """Copy a first-release snapshot into an empty ledger (a no-op once the ledger holds state).

    :param path: the ledger folder.
    :param legacy_snapshot: ``<root>/<dag_id>/snapshot/hr_snapshot.parquet`` of the first release.
    :return: the number of rows adopted (0 when there was nothing to adopt).
    """
    ledger = read_ledger(path, legacy_snapshot=legacy_snapshot)
    if not ledger.legacy or ledger.state.empty:
        return 0
    state = ledger.state.assign(proof=pd.Series("legacy", index=ledger.state.index, dtype=TEXT_DTYPE))
    _write_parquet(state, _join(path, f"{_STATE}00000000T000000000000Z-legacy{_SUFFIX}"))
    return len(state)


def apply_outcomes(
    state: pd.DataFrame,
    sent: pd.DataFrame,
    outcomes: pd.DataFrame,
    *,
    run_id: str = "",
    verified_at: datetime | None = None,
) -> pd.DataFrame:
    """The ledger state after a run's outcomes, without writing anything (what :func:`commit` would fold).

    :param state: the state before (:attr:`Ledger.state`).
    :param sent: the records sent.
    :param outcomes: their reconciled outcomes (``external_id``/``externalId`` and ``status`` at least).
    :param run_id: the run.
    :param verified_at: when the outcomes were read (default: now).
    :return: the new state, one row per externalId.
    """
    rows, _, _ = fold_outcomes(sent, outcomes, state, run_id=run_id, verified_at=verified_at)
    return _fold_state([state, rows])


def commit(
    path: Any,
    sent: pd.DataFrame,
    outcomes: pd.DataFrame,
    *,
    run_id: str,
    legacy_snapshot: Any | None = None,
    verified_at: datetime | None = None,
) -> dict[str, Any]:
    """Fold a run's outcomes into the ledger at ``path`` (new files only; safe beside concurrent runs).

    :param path: the ledger folder.
    :param sent: the records the run sent.
    :param outcomes: their reconciled outcomes.
    :param run_id: the committing run.
    :param legacy_snapshot: the first-release snapshot copied in when the ledger holds no state yet
        (:func:`adopt_legacy_snapshot`).
    :param verified_at: when the outcomes were read (default: now).
    :return: the counts of :func:`fold_outcomes` plus ``files_written``, ``state_rows``, ``active``.
    """
    now = datetime.now(timezone.utc)
    written = 1 if legacy_snapshot is not None and adopt_legacy_snapshot(path, legacy_snapshot) else 0
    before = read_ledger(path)
    state_rows, skip_rows, counts = fold_outcomes(
        sent, outcomes, before.state, run_id=run_id, verified_at=verified_at or now
    )
    if len(state_rows):
        _write_parquet(state_rows, _join(path, _new_name(_STATE, now)))
        written += 1
    if len(skip_rows):
        _write_parquet(skip_rows, _join(path, _new_name(_SKIPS, now)))
        written += 1
    if before.files + written > COMPACT_AFTER_FILES:
        compact(path)
    after = read_ledger(path)
    return {
        **counts,
        "files_written": written,
        "state_rows": len(after.state),
        "active": int(after.state["active"].sum()) if len(after.state) else 0,
    }


def compact(path: Any) -> int:
    """Fold every ledger file into one state file and one skips file; delete the files folded.

    The new files are written before anything is deleted, and only the files read are deleted, so a commit
    landing meanwhile is kept, and two compactions at once leave two complete folds (read as one).

    :param path: the ledger folder.
    :return: the number of files deleted.
    """
    fs, inner, _ = _list(path)
    frames = _read_all(path)
    if len(frames) < 2:
        return 0
    state = _fold_state([f for n, f in frames.items() if n.startswith(_STATE)])
    skips = _fold_skips([f for n, f in frames.items() if n.startswith(_SKIPS)], state)
    now = datetime.now(timezone.utc)
    _write_parquet(state, _join(path, _new_name(_STATE, now)))
    if len(skips):
        _write_parquet(skips, _join(path, _new_name(_SKIPS, now)))
    for name in frames:
        try:
            fs.rm(f"{inner}/{name}")
        except FileNotFoundError:  # a concurrent compaction folded and removed it first
            continue
    return len(frames)
