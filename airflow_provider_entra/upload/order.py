"""The managers-first upload order of a run, as a small frame a task can stage and another can read.

A *stage order* holds one row per record: ``externalId``, ``stage`` (nullable integer: the record's
managers-first stage, ``<NA>`` when staging set it aside) and ``reason`` (why it was set aside, else
``<NA>``). :func:`stage_order` computes it with
:func:`~airflow_provider_entra.provisioning.stages.plan_stages`; a DAG's staging step writes it
(``stage-order.parquet``) and the upload reads it back with :func:`stage_groups` instead of ordering the
records again.

>>> import pandas as pd
>>> people = pd.DataFrame({"externalId": ["2", "1", "3"], "manager": ["1", None, "2"]})
>>> order = stage_order(people, manager_column="manager").order
>>> order["stage"].tolist()
[1, 0, 2]
>>> groups, rejected = stage_groups(people["externalId"], order)
>>> [positions.tolist() for positions in groups]
[[1], [0], [2]]

Pure pandas/numpy: no Airflow, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from airflow_provider_entra.provisioning.stages import (
    REJECTED_COLUMNS,
    SCIM_MANAGER_COLUMN,
    STAGE,
    plan_stages,
)
from airflow_provider_entra.upload.errors import PlanningError

__all__ = [
    "STAGE_ORDER_COLUMNS",
    "STAGE_ORDER_NAME",
    "StageOrder",
    "empty_rejected",
    "stage_groups",
    "stage_order",
]

#: File name of a staged order in a run folder.
STAGE_ORDER_NAME = "stage-order.parquet"
#: Columns of a stage order.
STAGE_ORDER_COLUMNS: tuple[str, ...] = ("externalId", "stage", "reason")
#: Ids named in the error when a staged order misses some records.
IDS_NAMED = 5


def empty_rejected() -> pd.DataFrame:
    """No record set aside: an empty frame with :data:`REJECTED_COLUMNS`."""
    return pd.DataFrame(columns=list(REJECTED_COLUMNS))


@dataclass(frozen=True)
class StageOrder:
    """A computed stage order.

    :param order: ``externalId``, ``stage``, ``reason`` (:data:`STAGE_ORDER_COLUMNS`), one row per input row.
    :param warnings: rows placed in the trailing stages because their manager chain reaches a row set aside
        (``row``, ``externalId``, ``warning``), as :func:`plan_stages` reports them.
    """

    order: pd.DataFrame
    warnings: pd.DataFrame


def stage_order(
    frame: pd.DataFrame,
    *,
    id_column: str = "externalId",
    manager_column: str = SCIM_MANAGER_COLUMN,
    known_ids: Iterable[object] | None = None,
) -> StageOrder:
    """Order ``frame``'s records managers first (see :mod:`~airflow_provider_entra.provisioning.stages`).

    :param frame: one row per record.
    :param id_column: the records' id column.
    :param manager_column: the manager's id column (a frame without it is one stage).
    :param known_ids: ids the job already provisioned: a manager among them counts as resolved.
    """
    staged = plan_stages(frame, id_column=id_column, manager_column=manager_column, known_ids=known_ids)
    reason = pd.Series(pd.NA, index=frame.index, dtype="string")
    reason.loc[staged.rejected["row"]] = staged.rejected["reason"].to_numpy()
    order = pd.DataFrame(
        {
            "externalId": frame[id_column].astype("string").str.strip().to_numpy(),
            "stage": staged.depth.to_numpy(),
            "reason": reason.to_numpy(),
        }
    )
    return StageOrder(order.astype({"stage": "Int64"}), staged.warnings)


def stage_groups(ids: pd.Series, order: pd.DataFrame) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Split records into stages by a stage order.

    :param ids: the records' externalIds, indexed by their input row.
    :param order: a stage order (:data:`STAGE_ORDER_COLUMNS`) covering every id.
    :return: the positions (into ``ids``) of each stage in upload order, input order inside a stage; and the
        records the order sets aside (:data:`REJECTED_COLUMNS`, ``stage`` ``"stages"``).
    :raises PlanningError: when the order has no row for some ids (it was staged from another input).
    """
    keys = _texts(ids)
    staged_ids = pd.Index(_texts(order["externalId"]))
    first = ~staged_ids.duplicated()
    where = staged_ids[first].get_indexer(keys)
    missing = where < 0
    if missing.any():
        named = ", ".join(map(str, keys[missing].head(IDS_NAMED)))
        raise PlanningError(
            f"the stage order has no row for {int(missing.sum())} record(s) ({named}"
            f"{' ...' if missing.sum() > IDS_NAMED else ''}): it was staged from another input"
        )
    stage = order["stage"].to_numpy(dtype="float64", na_value=np.nan)[first][where]
    aside = np.isnan(stage)
    reasons = order["reason"].to_numpy(dtype=object, na_value=None)[first][where[aside]]
    rejected = pd.DataFrame(
        {
            "row": ids.index[aside],
            "externalId": keys[aside].to_numpy(dtype=object),
            "stage": STAGE,
            "reason": [reason or "set aside by staging" for reason in reasons],
        },
        columns=list(REJECTED_COLUMNS),
    )
    kept = np.flatnonzero(~aside)
    ranked = np.argsort(stage[kept], kind="stable")
    _, starts = np.unique(stage[kept][ranked], return_index=True)
    return [kept[ranked[start:stop]] for start, stop in _bounds(starts, len(kept))], rejected


def _texts(values: pd.Series) -> pd.Series:
    """Stripped texts (a string Series: lookups stay in Arrow)."""
    return values.astype("string").str.strip()


def _bounds(starts: np.ndarray, total: int) -> list[tuple[int, int]]:
    ends = [*starts[1:].tolist(), total]
    return list(zip(starts.tolist(), ends, strict=True))
