"""The stage order: computed once, staged as a small frame, read back into stages."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_provider_entra.upload import PlanningError
from airflow_provider_entra.upload.order import stage_groups, stage_order


def people() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "externalId": ["2", "1", "3", "4", "5", "6", "7"],
            "manager": ["1", None, "2", "4", "6", "5", "6"],  # 4 manages itself; 5 and 6 manage each other
        },
        index=[10, 11, 12, 13, 14, 15, 16],  # input rows
    )


def test_the_order_holds_each_records_stage_or_why_it_was_set_aside(tmp_path):
    computed = stage_order(people(), manager_column="manager")
    order = computed.order
    assert order["stage"].tolist()[:3] == [1, 0, 2] and order["stage"].iloc[3:6].isna().all()
    assert order["reason"].iloc[3].startswith("self-manager: 4")
    assert "management cycle" in order["reason"].iloc[4]
    assert computed.warnings["externalId"].tolist() == ["7"]  # below the cycle: placed last, with a warning
    # Staged to a file and read back, as the DAG's stages step and the upload do.
    order.to_parquet(tmp_path / "stage-order.parquet", index=False)
    groups, rejected = stage_groups(people()["externalId"], pd.read_parquet(tmp_path / "stage-order.parquet"))
    assert [positions.tolist() for positions in groups] == [[1], [0], [2], [6]]
    assert rejected["row"].tolist() == [13, 14, 15] and set(rejected["stage"]) == {"stages"}
    assert rejected["reason"].tolist() == order["reason"].iloc[3:6].tolist()


def test_ids_are_compared_as_stripped_text():
    order = pd.DataFrame({"externalId": [" 1", "2"], "stage": [0, 1], "reason": [None, None]})
    groups, rejected = stage_groups(pd.Series(["2", "1 "]), order)
    assert [positions.tolist() for positions in groups] == [[1], [0]] and rejected.empty


def test_an_order_that_misses_records_is_refused():
    order = pd.DataFrame({"externalId": ["1"], "stage": [0], "reason": [None]})
    with pytest.raises(PlanningError, match=r"no row for 2 record\(s\) \(2, 3\)"):
        stage_groups(pd.Series(["1", "2", "3"]), order)
