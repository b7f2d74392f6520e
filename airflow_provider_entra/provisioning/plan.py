"""Delta planning: compare the mapped feed with the last committed snapshot and decide what to send.

Every feed record, and every active snapshot record missing from the feed, gets one ``change`` kind:

=========================  ==============================================================  =====  =========
change                     condition                                                        delta  full_sync
=========================  ==============================================================  =====  =========
``joiner``                 not in the snapshot (or never sent: no hash), active             sent   sent
``mover``                  active before and now, record hash differs                       sent   sent
``leaver``                 active in the snapshot, inactive in the feed                     sent   sent
``rehire``                 inactive in the snapshot, active in the feed                     sent   sent
``missing_disable``        active in the snapshot, absent from the feed, policy ``disable``  sent   sent
``unchanged``              same hash, same active flag                                      --     sent
``inactive_changed``       inactive before and now, hash differs                            --     sent
``skipped_inactive_new``   never sent and inactive                                          --     --
``missing_ignored``        active in the snapshot, absent from the feed, policy ``ignore``  --     --
=========================  ==============================================================  =====  =========

Why: Entra has no delete, so a leaver is a POST with ``active: false``. An inactive worker Entra has never
seen is not sent even in a full sync: it would only create an account to disable it. A disabled account whose
data changed is left alone in a delta (nobody signs in with it); a full sync brings it up to date. A worker
missing from the feed is either an HR deletion (disable) or an export that lost rows (the deletion guard, see
:mod:`~airflow_provider_entra.provisioning.guard`, stops a run that would disable too many).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from airflow_provider_entra.provisioning._hr import TEXT_DTYPE, index_in, take_text, to_arrow

__all__ = [
    "ALL_CHANGES",
    "INACTIVE_CHANGED",
    "JOINER",
    "LEAVER",
    "MISSING_DISABLE",
    "MISSING_IGNORED",
    "MOVER",
    "REHIRE",
    "SENT_CHANGES",
    "SKIPPED_INACTIVE_NEW",
    "UNCHANGED",
    "DeltaPlan",
    "plan_delta",
]

JOINER = "joiner"
MOVER = "mover"
LEAVER = "leaver"
REHIRE = "rehire"
MISSING_DISABLE = "missing_disable"
UNCHANGED = "unchanged"
INACTIVE_CHANGED = "inactive_changed"
SKIPPED_INACTIVE_NEW = "skipped_inactive_new"
MISSING_IGNORED = "missing_ignored"

#: Changes sent in a delta run.
SENT_CHANGES = (JOINER, MOVER, LEAVER, REHIRE, MISSING_DISABLE)
#: Changes additionally sent when ``full_sync`` is on.
FULL_SYNC_EXTRA = (UNCHANGED, INACTIVE_CHANGED)
#: Every change kind, in report order.
ALL_CHANGES = (*SENT_CHANGES, UNCHANGED, INACTIVE_CHANGED, SKIPPED_INACTIVE_NEW, MISSING_IGNORED)
#: Changes that turn an enabled account into a disabled one (what the deletion guard counts).
DISABLING_CHANGES = (LEAVER, MISSING_DISABLE)


@dataclass(frozen=True)
class DeltaPlan:
    """What to send this run.

    :param frame: the mapped rows to send plus a ``change`` column (missing-from-feed disables at the end).
    :param counts: number of records per change kind (every kind of :data:`ALL_CHANGES`, zeros included).
    :param unchanged_count: records with the same hash and active flag (sent only in a full sync).
    :param disables: externalIds whose account this plan disables (leavers and missing-from-feed).
    :param full_sync: whether unchanged records are sent too.
    :param missing_policy: what was done with active records missing from the feed.
    :param classification: the change kind of every feed record (sent or not), indexed by externalId
        (categorical; the missing-from-feed records are only in ``frame`` and ``counts``).
    """

    frame: pd.DataFrame
    counts: dict[str, int]
    unchanged_count: int
    disables: pd.Index
    full_sync: bool = False
    missing_policy: str = "disable"
    classification: pd.Series = field(default_factory=lambda: pd.Series([], dtype="category"), repr=False)

    @property
    def to_send_ids(self) -> pd.Index:
        """externalIds of the records to send, in send order."""
        return pd.Index(self.frame["externalId"])

    @property
    def to_send_count(self) -> int:
        """How many records this plan sends."""
        return len(self.frame)


def plan_delta(
    mapped: pd.DataFrame,
    snapshot: pd.DataFrame,
    *,
    missing_policy: Literal["disable", "ignore"] = "disable",
    full_sync: bool = False,
    username_column: str = "userName",
) -> DeltaPlan:
    """Plan joiners, movers, leavers, rehires and missing-from-feed disables (table in the module docstring).

    :param mapped: the mapped feed, one row per ``externalId``, with ``record_hash`` (hash of the mapped
        record) and ``active`` (bool).
    :param snapshot: the last committed snapshot
        (:func:`~airflow_provider_entra.provisioning.snapshot.read_snapshot`).
    :param missing_policy: ``disable`` sends ``active: false`` for active accounts absent from the feed;
        ``ignore`` only counts them (for partial feeds, such as one department's export).
    :param full_sync: also send unchanged records (Microsoft: "send everything for a full sync").
    :param username_column: the mapped column holding SCIM ``userName``; disables for missing workers carry
        the snapshot's UPN there (a SCIM record needs a userName).
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
    snap_hash = take_text(snapshot["record_hash"], pos, mapped.index)
    snap_active = np.zeros(len(ids), dtype=bool)
    if len(snapshot):
        snap_active = known & snapshot["active"].astype(bool).to_numpy()[np.where(known, pos, 0)]
    active = mapped["active"].astype(bool).to_numpy()
    never_sent = (~known) | snap_hash.isna().to_numpy()
    hash_now = to_arrow(mapped["record_hash"].astype(TEXT_DTYPE))
    equal = pc.fill_null(pc.equal(hash_now, to_arrow(snap_hash).cast(hash_now.type)), False)
    same = np.asarray(equal.to_numpy(zero_copy_only=False), dtype=bool) & ~never_sent

    kind = {name: i for i, name in enumerate(ALL_CHANGES)}
    codes = np.select(
        [
            snap_active & ~active,
            never_sent & active,
            never_sent,
            ~snap_active & active,
            active & ~same,
            ~active & ~same,
        ],
        [
            kind[LEAVER],
            kind[JOINER],
            kind[SKIPPED_INACTIVE_NEW],
            kind[REHIRE],
            kind[MOVER],
            kind[INACTIVE_CHANGED],
        ],
        default=kind[UNCHANGED],
    )
    sent_kinds = list(SENT_CHANGES) + (list(FULL_SYNC_EXTRA) if full_sync else [])
    send = np.isin(codes, [kind[k] for k in sent_kinds])
    labels = np.asarray(ALL_CHANGES, dtype=object)
    to_send = mapped[send].assign(change=pd.array(labels[codes[send]], dtype=TEXT_DTYPE))

    in_feed = np.zeros(len(snapshot), dtype=bool)
    in_feed[pos[known]] = True
    missing = snapshot[~in_feed & snapshot["active"].astype(bool).to_numpy()]
    counts = {kind: 0 for kind in ALL_CHANGES}
    counts.update(zip(ALL_CHANGES, map(int, np.bincount(codes, minlength=len(ALL_CHANGES))), strict=True))
    if missing_policy == "disable":
        counts[MISSING_DISABLE] = len(missing)
        if len(missing):
            to_send = pd.concat(
                [to_send, _disable_records(missing, mapped, username_column)], ignore_index=True
            )
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
    )


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
