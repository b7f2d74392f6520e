"""Order records into upload stages so that managers are provisioned before their reports.

Entra resolves ``manager.value`` (the manager's externalId) only against users the job has already
processed. A manager sent in the same request as the report yields a skipped reference step first and a
second ``update`` a moment later; a manager sent *after* the report is not resolved in this run at all.
Uploading stage 0 (people whose manager is not in the batch), then stage 1 (their direct reports), and so
on, lets every reference resolve in one run.

>>> plan = plan_stages(frame, id_column="externalId", manager_column="manager")  # doctest: +SKIP
>>> [len(stage) for stage in plan.stages]                                        # doctest: +SKIP
[1, 4, 23, 310]

Rules
-----
* **Roots** (stage 0): no manager, a manager not in the frame, or a manager in ``known_ids`` (already
  provisioned by this job, so the reference resolves whatever the order). Edges to known managers are
  cut before cycles are looked for, so a cycle among people who already exist does not block them.
* **Self-managers** (a row naming its own externalId as manager) and every member of a **management
  cycle** (A -> B -> A, A -> B -> C -> A, ...) go to :attr:`StagePlan.rejected` with a reason naming the
  cycle members: no order can resolve their manager references.
* **Rows below a cycle** (their chain of managers reaches a rejected row) are *not* rejected: their own
  record is fine, but the reference at the top of their chain will not resolve in this run. They are
  placed after every other stage, still managers-first among themselves (so references *inside* their
  branch do resolve), and listed in :attr:`StagePlan.warnings`.
* **Duplicate ids** are the validator's business (it quarantines them). If some reach this function the
  first row of each id defines the hierarchy and every row is placed by its own manager.
* Ids and managers are compared as stripped strings; integral floats (``1959.0``, from a CSV column with
  blanks) read as ``"1959"``. Empty and missing managers mean "no manager".

Depths are computed with pointer jumping on integer arrays (``O(n log depth)``, no recursion, no per-row
Python loop), so a million rows, or a single chain a million deep, take seconds. The stages themselves are
built lazily from :attr:`StagePlan.depth`.

Pure pandas/numpy: no Airflow, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

__all__ = [
    "MAX_CYCLE_MEMBERS_NAMED",
    "REJECTED_COLUMNS",
    "SCIM_MANAGER_COLUMN",
    "STAGE",
    "WARNING_COLUMNS",
    "StagePlan",
    "plan_stages",
]

#: The column a SCIM-mapped frame uses for the enterprise extension's manager reference.
SCIM_MANAGER_COLUMN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
#: Columns of :attr:`StagePlan.rejected`: the shape of the other quarantine frames of ``provisioning``
#: (``row``, ``externalId``, ``stage``, ``reason``), so they can be concatenated.
REJECTED_COLUMNS: tuple[str, ...] = ("row", "externalId", "stage", "reason")
#: Value of the ``stage`` column of :attr:`StagePlan.rejected` (the step that quarantined the row).
STAGE = "stages"
#: Columns of :attr:`StagePlan.warnings`.
WARNING_COLUMNS: tuple[str, ...] = ("row", "externalId", "warning")
#: A cycle reason names at most this many members, then gives the count.
MAX_CYCLE_MEMBERS_NAMED = 10


@dataclass(frozen=True)
class StagePlan:
    """Upload order for a frame of records.

    :param frame: the input rows that can be uploaded (rejected rows removed), input order.
    :param depth: stage number of every input row (nullable ``Int64``, ``<NA>`` for rejected rows),
        indexed like the input frame.
    :param rejected: self-managers and cycle members: columns ``row`` (input index label), ``externalId``,
        ``stage`` (always ``"stages"``), ``reason``.
    :param warnings: rows placed in the trailing stages because their manager chain reaches a rejected row:
        columns ``row``, ``externalId``, ``warning``.
    """

    frame: pd.DataFrame
    depth: pd.Series
    rejected: pd.DataFrame
    warnings: pd.DataFrame

    @cached_property
    def _positions(self) -> list[np.ndarray]:
        depth = self.depth.dropna().to_numpy(dtype=np.int64)
        if depth.size == 0:
            return []
        order = np.argsort(depth, kind="stable")
        _, starts = np.unique(depth[order], return_index=True)
        return np.split(order, starts[1:])

    @property
    def n_stages(self) -> int:
        """Number of stages."""
        return len(self._positions)

    @property
    def stage_index(self) -> list[pd.Index]:
        """Index labels (of the input frame) of each stage, in upload order."""
        return [self.frame.index[positions] for positions in self._positions]

    @cached_property
    def stages(self) -> list[pd.DataFrame]:
        """The rows of each stage, in upload order (input order inside a stage). Subsets of the input
        frame with its columns unchanged."""
        return list(self.iter_stages())

    def iter_stages(self) -> Iterator[pd.DataFrame]:
        """Yield each stage's rows without building them all at once."""
        for positions in self._positions:
            yield self.frame.iloc[positions]

    def stage_sizes(self) -> list[int]:
        """Rows per stage."""
        return [len(positions) for positions in self._positions]


def _keys(values: pd.Series) -> np.ndarray:
    """Comparable string keys (object array, ``None`` for missing or blank)."""
    if pd.api.types.is_float_dtype(values.dtype):
        present = values.dropna()
        if bool((present == np.floor(present)).all()):
            values = values.astype("Int64")
    text = values.astype("string").str.strip()
    text = text.mask(text.eq(""))
    return text.to_numpy(dtype=object, na_value=None)


def _jump(parent: np.ndarray, nodes: np.ndarray, steps_needed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pointer jumping over ``parent`` (``-1`` = root) for ``nodes``.

    :return: ``(ancestor, distance)``: after the loop, ``ancestor`` is ``-1`` for nodes whose chain ends at
        a root and ``distance`` is then their number of steps to it; other nodes are on or below a cycle,
        and their ``ancestor`` is ``parent`` applied at least ``steps_needed`` times (so lies on the cycle).
    """
    ancestor = np.full(parent.shape, -1, dtype=np.int64)
    ancestor[nodes] = parent[nodes]
    distance = np.zeros(parent.shape, dtype=np.int64)
    distance[nodes] = (parent[nodes] >= 0).astype(np.int64)
    jumped = 1
    active = nodes[ancestor[nodes] >= 0]
    while active.size and jumped < max(steps_needed, 1):
        distance[active] += distance[ancestor[active]]
        ancestor[active] = ancestor[ancestor[active]]
        jumped *= 2
        active = active[ancestor[active] >= 0]
    return ancestor, distance


def _cycle_labels(parent: np.ndarray, cycle_nodes: np.ndarray) -> np.ndarray:
    """Label every cycle node with the smallest node number on its cycle (min-doubling)."""
    label = np.arange(parent.size, dtype=np.int64)
    step = parent.copy()
    covered = 1
    while covered < cycle_nodes.size:
        label[cycle_nodes] = np.minimum(label[cycle_nodes], label[step[cycle_nodes]])
        step[cycle_nodes] = step[step[cycle_nodes]]
        covered *= 2
    return label


def _cycle_reason(start: int, size: int, parent: np.ndarray, names: np.ndarray) -> str:
    if size == 1:
        return f"self-manager: {names[start]} names itself as manager"
    members = []
    node = start
    for _ in range(min(size, MAX_CYCLE_MEMBERS_NAMED)):
        members.append(str(names[node]))
        node = int(parent[node])
    if size <= MAX_CYCLE_MEMBERS_NAMED:
        return f"management cycle {' -> '.join([*members, members[0]])} (each is managed by the next)"
    return f"management cycle of {size} people {' -> '.join(members)} -> ... (each is managed by the next)"


def plan_stages(
    df: pd.DataFrame,
    *,
    id_column: str = "externalId",
    manager_column: str = "manager",
    known_ids: Iterable[object] | None = None,
) -> StagePlan:
    """Order the rows of ``df`` into managers-first upload stages.

    :param df: one row per record.
    :param id_column: column holding each record's id (``externalId`` in a SCIM-mapped frame).
    :param manager_column: column holding the manager's id; for a SCIM-mapped frame pass
        :data:`SCIM_MANAGER_COLUMN`. A frame without this column is one stage.
    :param known_ids: ids already provisioned by this job; a manager among them counts as resolved.
    :return: a :class:`StagePlan`.
    :raises KeyError: when ``id_column`` is not a column of ``df``.
    """
    if id_column not in df.columns:
        raise KeyError(f"plan_stages: id column {id_column!r} is not in the frame")
    rows = len(df)
    ids = _keys(df[id_column])
    if manager_column in df.columns:
        managers = _keys(df[manager_column])
    else:
        managers = np.full(rows, None, dtype=object)

    has_id = pd.notna(ids)
    first = has_id & ~pd.Series(ids).duplicated(keep="first").to_numpy()
    node_names = ids[first]
    nodes = pd.Index(node_names)
    n_nodes = len(nodes)
    row_node = np.where(has_id, nodes.get_indexer(ids), -1)

    has_manager = pd.notna(managers)
    if known_ids is not None:
        known = pd.Index(pd.Series(list(known_ids), dtype=object).astype("string").str.strip().dropna())
        has_manager &= ~pd.Index(managers).isin(known)
    row_parent = np.where(has_manager, nodes.get_indexer(managers), -1).astype(np.int64)
    self_row = has_id & has_manager & (row_parent == row_node)

    parent = row_parent[first]
    all_nodes = np.arange(n_nodes, dtype=np.int64)
    ancestor, distance = _jump(parent, all_nodes, n_nodes)
    unresolved = all_nodes[ancestor >= 0]

    node_depth = distance.copy()
    on_cycle = np.zeros(n_nodes, dtype=bool)
    below_cycle = np.zeros(n_nodes, dtype=bool)
    node_reason = np.full(n_nodes, None, dtype=object)
    if unresolved.size:
        cycle_nodes = np.unique(ancestor[unresolved])
        on_cycle[cycle_nodes] = True
        label = _cycle_labels(parent, cycle_nodes)
        starts, sizes = np.unique(label[cycle_nodes], return_counts=True)
        reasons = {
            int(start): _cycle_reason(int(start), int(size), parent, node_names)
            for start, size in zip(starts, sizes, strict=True)
        }
        node_reason[cycle_nodes] = [reasons[int(start)] for start in label[cycle_nodes]]

        below = unresolved[~on_cycle[unresolved]]
        below_cycle[below] = True
        # The cycle each branch hangs from names the warning.
        node_reason[below] = node_reason[ancestor[below]]
        cut = parent.copy()
        cut[below[on_cycle[parent[below]]]] = -1
        _, below_distance = _jump(cut, below, below.size)
        regular = ~on_cycle & ~below_cycle
        base = int(node_depth[regular].max()) + 1 if regular.any() else 0
        node_depth[below] = base + below_distance[below]
        # A report of a cycle member starts the trailing stages.
        node_depth[cycle_nodes] = base - 1

    # Place every row by its own manager.
    rejected_row = ~has_id | self_row | np.where(row_node >= 0, on_cycle[np.maximum(row_node, 0)], False)
    safe_parent = np.maximum(row_parent, 0)
    depth = np.where(row_parent >= 0, node_depth[safe_parent] + 1, 0)
    warned_row = ~rejected_row & (row_parent >= 0) & (on_cycle[safe_parent] | below_cycle[safe_parent])

    reason = np.full(rows, None, dtype=object)
    reason[~has_id] = f"missing {id_column}"
    node_rows = ~self_row & has_id & rejected_row
    reason[node_rows] = node_reason[row_node[node_rows]]
    reason[self_row] = [f"self-manager: {name} names itself as manager" for name in ids[self_row]]
    rejected = pd.DataFrame(
        {
            "row": df.index[rejected_row],
            "externalId": ids[rejected_row],
            "stage": STAGE,
            "reason": reason[rejected_row],
        },
        columns=list(REJECTED_COLUMNS),
    )
    warning_text = np.array(
        [
            f"manager chain reaches a rejected row ({why}); the reference at the top of this branch "
            "will not resolve in this run"
            for why in node_reason[safe_parent[warned_row]]
        ],
        dtype=object,
    )
    warnings = pd.DataFrame(
        {"row": df.index[warned_row], "externalId": ids[warned_row], "warning": warning_text},
        columns=list(WARNING_COLUMNS),
    )
    depth_series = pd.Series(depth, index=df.index, dtype="Int64").mask(rejected_row)
    return StagePlan(
        frame=df.loc[~rejected_row] if rejected_row.any() else df,
        depth=depth_series,
        rejected=rejected,
        warnings=warnings,
    )
