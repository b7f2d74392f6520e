"""Delta planning: compare the mapped feed with the job's ledger (what Entra is proven to hold) and decide
what to send.

Every feed record, and every ledger record missing from the feed, gets one ``change`` kind:

=========================  ===============================================================  =====  =========
change                     condition                                                         delta  full_sync
=========================  ===============================================================  =====  =========
``joiner``                 not in the ledger (or never proven: no hash), active              sent   sent
``mover``                  active before and now, record hash differs (or the manager that   sent   sent
                           Entra could not set is now in the ledger: a retry)
``leaver``                 active in the ledger, inactive in the feed                        sent   sent
``rehire``                 inactive in the ledger, active in the feed                        sent   sent
``missing_disable``        active in the ledger, absent from the feed, policy ``disable``     sent   sent
``inactive_new``           not in the ledger, inactive, in scope: sent as ``active: false``  sent   sent
``prehire``                not in the ledger (or held disabled), hire date still to come:    sent   sent
                           sent as ``active: false`` (enabled as a ``rehire`` on the day)
``unchanged``              same hash, same active flag                                       --     sent
``inactive_changed``       inactive before and now, hash differs                             --     sent
``out_of_scope``           not in the ledger, inactive, outside the declared scope           --     --
``held``                   in the ledger, its HR row quarantined this run                    --     --
``stuck``                  would be sent, but Entra skipped this very record the same way    --     sent
                           in the last runs (see the ledger module)
``missing_ignored``        active in the ledger, absent from the feed, policy ``ignore``     --     --
=========================  ===============================================================  =====  =========

Why:

* Entra has no delete, so a leaver is a POST with ``active: false``.
* *Unknown is not absent*: a worker the ledger does not know may still have an account (created by another
  tool, by hand, or before the ledger existed), so an inactive worker is sent as ``active: false``, as
  Microsoft's CSV2SCIM and HR connectors do: Entra disables the account if there is one, or creates it
  disabled. A declared scope (``out_of_scope``) leaves out, for example, workers long gone before the
  first sync.
* *Quarantined is not missing*: a worker whose HR row was rejected this run is held at the last proven state,
  neither updated nor disabled.
* A worker missing from the feed is either an HR deletion (disable) or an export that lost rows (the deletion
  guard, see :mod:`~airflow_provider_entra.provisioning.guard`, stops a run that would disable too many).
* A disabled account whose data changed is left alone in a delta (nobody signs in with it); a full sync brings
  it up to date.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from airflow_provider_entra.provisioning._hr import TEXT_DTYPE, index_in, isin_text, take_text, to_arrow
from airflow_provider_entra.provisioning.ledger import attribute_digests, changed_attributes

__all__ = [
    "ALL_CHANGES",
    "DISABLING_CHANGES",
    "HELD",
    "INACTIVE_CHANGED",
    "INACTIVE_NEW",
    "JOINER",
    "LEAVER",
    "MISSING_DISABLE",
    "MISSING_IGNORED",
    "MOVER",
    "OUT_OF_SCOPE",
    "PREHIRE",
    "REHIRE",
    "SENT_CHANGES",
    "STUCK",
    "UNCHANGED",
    "DeltaPlan",
    "plan_delta",
]

JOINER = "joiner"
MOVER = "mover"
LEAVER = "leaver"
REHIRE = "rehire"
MISSING_DISABLE = "missing_disable"
INACTIVE_NEW = "inactive_new"
PREHIRE = "prehire"
UNCHANGED = "unchanged"
INACTIVE_CHANGED = "inactive_changed"
OUT_OF_SCOPE = "out_of_scope"
HELD = "held"
STUCK = "stuck"
MISSING_IGNORED = "missing_ignored"

#: Changes sent in a delta run.
SENT_CHANGES = (JOINER, MOVER, LEAVER, REHIRE, MISSING_DISABLE, INACTIVE_NEW, PREHIRE)
#: Changes additionally sent when ``full_sync`` is on.
FULL_SYNC_EXTRA = (UNCHANGED, INACTIVE_CHANGED, STUCK)
#: Every change kind, in report order.
ALL_CHANGES = (*SENT_CHANGES, UNCHANGED, INACTIVE_CHANGED, OUT_OF_SCOPE, HELD, STUCK, MISSING_IGNORED)
#: Changes that turn an enabled account into a disabled one (what the deletion guard counts).
DISABLING_CHANGES = (LEAVER, MISSING_DISABLE)
#: ``changed_attributes`` of a mover sent again because its manager is now resolvable.
MANAGER_RETRY = "manager (Entra could not set it last time; the manager is now provisioned)"


@dataclass(frozen=True)
class DeltaPlan:
    """What to send this run.

    :param frame: the mapped rows to send plus ``change`` and ``changed_attributes`` columns
        (missing-from-feed disables at the end).
    :param counts: number of records per change kind (every kind of :data:`ALL_CHANGES`, zeros included).
    :param unchanged_count: records with the same hash and active flag (sent only in a full sync).
    :param disables: externalIds whose account this plan disables (leavers and missing-from-feed).
    :param full_sync: whether unchanged records are sent too.
    :param missing_policy: what was done with active records missing from the feed.
    :param classification: the change kind of every feed record (sent or not), indexed by externalId
        (categorical; the missing-from-feed records are only in ``frame`` and ``counts``).
    :param held: externalIds held at their last proven state (their HR row was quarantined).
    :param stuck: records not sent because Entra skipped them the same way run after run: ``externalId``,
        ``reason``, ``detail``, ``runs`` (sent anyway in a full sync).
    """

    frame: pd.DataFrame
    counts: dict[str, int]
    unchanged_count: int
    disables: pd.Index
    full_sync: bool = False
    missing_policy: str = "disable"
    classification: pd.Series = field(default_factory=lambda: pd.Series([], dtype="category"), repr=False)
    held: pd.Index = field(default_factory=lambda: pd.Index([], dtype=TEXT_DTYPE))
    stuck: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def to_send_ids(self) -> pd.Index:
        """externalIds of the records to send, in send order."""
        return pd.Index(self.frame["externalId"])

    @property
    def to_send_count(self) -> int:
        """How many records this plan sends."""
        return len(self.frame)


def _stuck_mask(ids: pd.Series, hashes: pd.Series, stuck: pd.DataFrame | None) -> np.ndarray:
    """Rows whose (externalId, record_hash) is a stuck record of the ledger."""
    if stuck is None or stuck.empty or not len(ids):
        return np.zeros(len(ids), dtype=bool)
    key = ids.astype(TEXT_DTYPE).fillna("") + "\x1f" + hashes.astype(TEXT_DTYPE).fillna("")
    stuck_key = (
        stuck["externalId"].astype(TEXT_DTYPE).fillna("")
        + "\x1f"
        + stuck["record_hash"].astype(TEXT_DTYPE).fillna("")
    )
    return isin_text(key, stuck_key)


def plan_delta(
    mapped: pd.DataFrame,
    snapshot: pd.DataFrame,
    *,
    missing_policy: Literal["disable", "ignore"] = "disable",
    full_sync: bool = False,
    username_column: str = "userName",
    held_ids: pd.Index | pd.Series | None = None,
    stuck: pd.DataFrame | None = None,
    out_of_scope: np.ndarray | pd.Series | None = None,
    prehire: np.ndarray | pd.Series | None = None,
    rows: Callable[[np.ndarray], pd.DataFrame] | None = None,
) -> DeltaPlan:
    """Plan joiners, movers, leavers, rehires, inactive workers and missing-from-feed disables (table in the
    module docstring).

    :param mapped: the mapped feed, one row per ``externalId``, with ``record_hash`` (hash of the mapped
        record) and ``active`` (bool).
    :param snapshot: the ledger state (:attr:`~airflow_provider_entra.provisioning.ledger.Ledger.state`, or a
        first-release snapshot from :func:`~airflow_provider_entra.provisioning.snapshot.read_snapshot`).
    :param missing_policy: ``disable`` sends ``active: false`` for active accounts absent from the feed;
        ``ignore`` only counts them (for partial feeds, such as one department's export).
    :param full_sync: also send unchanged and stuck records (Microsoft: "send everything for a full sync").
    :param username_column: the mapped column holding SCIM ``userName``; disables for missing workers carry
        the ledger's UPN there (a SCIM record needs a userName).
    :param held_ids: externalIds whose HR row was quarantined this run (or that a mangled id in a quarantined
        row could stand for): a ledger record among them that is absent from the feed is ``held``, not
        missing.
    :param stuck: the ledger's stuck records
        (:meth:`~airflow_provider_entra.provisioning.ledger.Ledger.stuck`).
    :param out_of_scope: per mapped row, whether an inactive worker unknown to the ledger is outside the
        declared scope (not sent); ``None``: every inactive worker is in scope.
    :param prehire: per mapped row, whether an active worker's hire date is still to come. Unless the ledger
        holds the account enabled already, such a worker is sent (and kept) disabled until that day, when the
        plan enables it as a ``rehire``; ``None``: no pre-hire policy.
    :param rows: the whole mapped rows at some positions of ``mapped`` (increasing), indexed by those
        positions, when ``mapped`` holds only ``externalId``, ``record_hash`` and ``active`` (a million
        records need not all be in memory to send a few thousand); default: taken from ``mapped``.
    :return: :class:`DeltaPlan`.
    :raises ValueError: on a missing column, a blank or repeated externalId, or a missing ``active`` flag.
    """
    if missing_policy not in ("disable", "ignore"):
        raise ValueError(f"missing_policy must be 'disable' or 'ignore', got {missing_policy!r}")
    for col in ("externalId", "record_hash", "active"):
        if col not in mapped.columns:
            raise ValueError(f"mapped frame has no {col!r} column")
    ids = mapped["externalId"].astype(TEXT_DTYPE)
    if ids.isna().any():
        raise ValueError(f"mapped frame has {int(ids.isna().sum())} row(s) without an externalId")
    repeated = ids[ids.duplicated()]
    if len(repeated):
        raise ValueError(f"mapped frame repeats externalId(s): {', '.join(repeated.unique()[:5])}")
    if mapped["active"].isna().any():
        raise ValueError(
            f"mapped frame has {int(mapped['active'].isna().sum())} row(s) without an active flag"
        )

    pos = index_in(ids, snapshot["externalId"])
    known = pos >= 0
    safe_pos = np.where(known, pos, 0)
    snap_hash = take_text(snapshot["record_hash"], pos, mapped.index)
    snap_active = np.zeros(len(ids), dtype=bool)
    if len(snapshot):
        snap_active = known & snapshot["active"].astype(bool).to_numpy()[safe_pos]
    active = mapped["active"].astype(bool).to_numpy()
    before_start = (
        np.zeros(len(ids), dtype=bool)
        if prehire is None
        else np.asarray(pd.Series(prehire).fillna(False), dtype=bool) & active & ~snap_active
    )
    active = active & ~before_start
    never_sent = (~known) | snap_hash.isna().to_numpy()
    hash_now = to_arrow(mapped["record_hash"].astype(TEXT_DTYPE))
    equal = pc.fill_null(pc.equal(hash_now, to_arrow(snap_hash).cast(hash_now.type)), False)
    same = np.asarray(equal.to_numpy(zero_copy_only=False), dtype=bool) & ~never_sent
    outside = (
        np.zeros(len(ids), dtype=bool)
        if out_of_scope is None
        else np.asarray(pd.Series(out_of_scope).fillna(False), dtype=bool)
    )

    kind = {name: i for i, name in enumerate(ALL_CHANGES)}
    codes = np.select(
        [
            snap_active & ~active,
            never_sent & active,
            never_sent & outside,
            never_sent,
            ~snap_active & active,
            active & ~same,
            ~active & ~same,
        ],
        [
            kind[LEAVER],
            kind[JOINER],
            kind[OUT_OF_SCOPE],
            kind[INACTIVE_NEW],
            kind[REHIRE],
            kind[MOVER],
            kind[INACTIVE_CHANGED],
        ],
        default=kind[UNCHANGED],
    )
    codes = np.where(before_start & (codes == kind[INACTIVE_NEW]), kind[PREHIRE], codes)
    # A manager Entra could not set (not provisioned then) that the ledger now holds: send the record again.
    retry = np.zeros(len(ids), dtype=bool)
    if len(snapshot) and "unresolved_manager" in snapshot.columns:
        waiting = take_text(snapshot["unresolved_manager"], pos, mapped.index)
        retry = (codes == kind[UNCHANGED]) & active & isin_text(waiting, snapshot["externalId"])
        codes = np.where(retry, kind[MOVER], codes)

    sent_kinds = [kind[k] for k in SENT_CHANGES]
    stuck_rows = np.isin(codes, sent_kinds) & _stuck_mask(ids, mapped["record_hash"], stuck)
    codes = np.where(stuck_rows, kind[STUCK], codes)

    sendable = list(SENT_CHANGES) + (list(FULL_SYNC_EXTRA) if full_sync else [])
    send = np.isin(codes, [kind[k] for k in sendable])
    labels = np.asarray(ALL_CHANGES, dtype=object)
    whole = mapped[send] if rows is None else rows(np.flatnonzero(send))
    to_send = whole.assign(change=pd.array(labels[codes[send]], dtype=TEXT_DTYPE))
    if before_start[send].any():  # pre-hires go out disabled
        to_send["active"] = to_send["active"].where(~before_start[send], False)
    to_send["changed_attributes"] = _explain_movers(to_send, snapshot, pos[send], retry[send])

    in_feed = np.zeros(len(snapshot), dtype=bool)
    in_feed[pos[known]] = True
    absent = snapshot[~in_feed]
    held_mask = (
        isin_text(absent["externalId"], pd.Index(held_ids).astype(str))
        if held_ids is not None and len(held_ids)
        else np.zeros(len(absent), dtype=bool)
    )
    held = pd.Index(absent.loc[held_mask, "externalId"], dtype=TEXT_DTYPE)
    missing = absent[~held_mask & absent["active"].astype(bool).to_numpy()]
    counts = {kind: 0 for kind in ALL_CHANGES}
    counts.update(zip(ALL_CHANGES, map(int, np.bincount(codes, minlength=len(ALL_CHANGES))), strict=True))
    counts[HELD] = len(held)
    stuck_table = _stuck_table(stuck, ids[stuck_rows])
    if missing_policy == "disable":
        columns = mapped if rows is None else rows(np.zeros(0, dtype=np.int64))
        disable = _disable_records(missing, columns, username_column)
        missing_stuck = _stuck_mask(disable["externalId"], disable["record_hash"], stuck)
        if missing_stuck.any():
            stuck_table = pd.concat(
                [stuck_table, _stuck_table(stuck, disable["externalId"][missing_stuck])], ignore_index=True
            )
            if not full_sync:
                disable = disable[~missing_stuck]
            counts[STUCK] += int(np.sum(missing_stuck))
        counts[MISSING_DISABLE] = int((disable["change"] == MISSING_DISABLE).sum()) if len(disable) else 0
        if len(disable):
            disable["changed_attributes"] = pd.Series("active", index=disable.index, dtype=TEXT_DTYPE)
            to_send = pd.concat([to_send, disable], ignore_index=True)
    else:
        counts[MISSING_IGNORED] = len(missing)
    to_send = to_send.reset_index(drop=True)

    disables = pd.Index(
        to_send.loc[to_send["change"].isin(DISABLING_CHANGES), "externalId"], dtype=TEXT_DTYPE
    )
    classification = pd.Series(
        pd.Categorical.from_codes(codes, categories=list(ALL_CHANGES)), index=pd.Index(ids, name="externalId")
    )
    return DeltaPlan(
        frame=to_send,
        counts=counts,
        unchanged_count=counts[UNCHANGED],
        disables=disables,
        full_sync=full_sync,
        missing_policy=missing_policy,
        classification=classification,
        held=held,
        stuck=stuck_table,
    )


def _stuck_table(stuck: pd.DataFrame | None, ids: pd.Series) -> pd.DataFrame:
    columns = ["externalId", "reason", "detail", "runs", "action"]
    if stuck is None or stuck.empty or not len(ids):
        return pd.DataFrame({c: pd.Series([], dtype="int64" if c == "runs" else TEXT_DTYPE) for c in columns})
    table = stuck[isin_text(stuck["externalId"], ids)]
    return table.loc[:, columns].reset_index(drop=True)


def _explain_movers(
    to_send: pd.DataFrame, snapshot: pd.DataFrame, pos: np.ndarray, retry: np.ndarray
) -> pd.Series:
    """``changed_attributes`` of the movers (from the ledger's attribute digests); empty for the others."""
    out = pd.Series("", index=to_send.index, dtype=TEXT_DTYPE)
    movers = (to_send["change"] == MOVER).to_numpy()
    if not movers.any():
        return out
    out[movers & retry] = MANAGER_RETRY
    explain = movers & ~retry
    if explain.any() and len(snapshot) and "attr_digest" in snapshot.columns:
        rows = to_send[explain]
        names, digests = attribute_digests(rows)
        index = rows.index
        before_names = _take_names(snapshot["attr_names"], pos[explain], index)
        before = take_text(snapshot["attr_digest"], pos[explain], index)
        out[explain] = changed_attributes(before_names, before, names, digests).to_numpy()
    return out


def _take_names(names: pd.Series, positions: np.ndarray, index: pd.Index) -> pd.Series:
    """The ledger's ``attr_names`` (categorical: a text per mapping) at ``positions`` (-1: none), as text."""
    if not isinstance(names.dtype, pd.CategoricalDtype):
        return take_text(names, positions, index)
    codes = np.where(positions >= 0, names.cat.codes.to_numpy()[np.maximum(positions, 0)], -1)
    texts = pd.Categorical.from_codes(codes, categories=names.cat.categories)
    return pd.Series(texts, index=index).astype(TEXT_DTYPE)


def _disable_records(missing: pd.DataFrame, mapped: pd.DataFrame, username_column: str) -> pd.DataFrame:
    """Minimal ``active: false`` records for active accounts absent from the feed.

    Every other mapped column is present and empty, with the mapped column's dtype, so that appending these
    rows keeps the plan's dtypes (no fall back to ``object``).
    """
    n = len(missing)
    records = {col: mapped[col].iloc[:0].reindex(pd.RangeIndex(n)) for col in mapped.columns}
    records["externalId"] = pd.Series(missing["externalId"].astype(TEXT_DTYPE).to_numpy(), dtype=TEXT_DTYPE)
    records["record_hash"] = pd.Series(missing["record_hash"].astype(TEXT_DTYPE).to_numpy(), dtype=TEXT_DTYPE)
    records["active"] = pd.Series(np.zeros(n, dtype=bool)).astype(mapped["active"].dtype)
    records[username_column] = pd.Series(
        missing["UserPrincipalName"].astype(TEXT_DTYPE).to_numpy(), dtype=TEXT_DTYPE
    )
    if "linked_external_id" in mapped.columns:
        records["linked_external_id"] = pd.Series(
            missing["linked_external_id"].astype(TEXT_DTYPE).to_numpy(), dtype=TEXT_DTYPE
        )
    records["change"] = pd.Series([MISSING_DISABLE] * n, dtype=TEXT_DTYPE)
    return pd.DataFrame(records)
