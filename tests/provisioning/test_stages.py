"""Managers-first upload stages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_provider_entra.provisioning.stages import (
    REJECTED_COLUMNS,
    SCIM_MANAGER_COLUMN,
    WARNING_COLUMNS,
    plan_stages,
)


def frame(pairs: list[tuple[str, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=["externalId", "manager"])


def depth_of(plan, df: pd.DataFrame) -> dict[str, object]:
    return dict(zip(df["externalId"], plan.depth.tolist(), strict=True))


def stage_ids(plan) -> list[list[str]]:
    return [stage["externalId"].tolist() for stage in plan.stages]


def test_hierarchy_depth_and_order() -> None:
    df = frame([("d", "b"), ("b", "a"), ("c", "a"), ("a", "ceo"), ("ceo", None), ("e", "d")])
    plan = plan_stages(df)
    assert depth_of(plan, df) == {"ceo": 0, "a": 1, "b": 2, "c": 2, "d": 3, "e": 4}
    assert stage_ids(plan) == [["ceo"], ["a"], ["b", "c"], ["d"], ["e"]]
    assert plan.n_stages == 5
    assert plan.stage_sizes() == [1, 1, 2, 1, 1]
    assert plan.rejected.empty and plan.warnings.empty
    assert [list(index) for index in plan.stage_index] == [[4], [3], [1, 2], [0], [5]]


def test_every_manager_comes_in_an_earlier_stage() -> None:
    rng = np.random.default_rng(7)
    n = 5000
    parent = (rng.random(n) * np.arange(n)).astype(int)
    ids = [f"E{i:05d}" for i in range(n)]
    managers = [None] + [ids[p] for p in parent[1:]]
    order = rng.permutation(n)
    df = frame([(ids[i], managers[i]) for i in order])
    plan = plan_stages(df)
    stage_of = {eid: k for k, stage in enumerate(plan.stages) for eid in stage["externalId"]}
    assert len(stage_of) == n
    for eid, manager in zip(df["externalId"], df["manager"], strict=True):
        if pd.notna(manager):
            assert stage_of[manager] < stage_of[eid]


def test_multiple_roots() -> None:
    df = frame([("r1", None), ("r2", ""), ("a", "r1"), ("b", "r2"), ("c", "b")])
    plan = plan_stages(df)
    assert stage_ids(plan) == [["r1", "r2"], ["a", "b"], ["c"]]


def test_manager_outside_the_file_is_a_root() -> None:
    df = frame([("a", "not-in-file"), ("b", "a"), ("c", "gone")])
    plan = plan_stages(df)
    assert depth_of(plan, df) == {"a": 0, "b": 1, "c": 0}


def test_known_ids_count_as_roots() -> None:
    df = frame([("boss", None), ("a", "boss"), ("b", "a")])
    plan = plan_stages(df, known_ids=["a"])
    assert depth_of(plan, df) == {"boss": 0, "a": 1, "b": 0}


def test_known_ids_break_cycles_among_existing_people() -> None:
    df = frame([("x", "y"), ("y", "x")])
    assert len(plan_stages(df).rejected) == 2
    plan = plan_stages(df, known_ids={"x"})
    assert plan.rejected.empty
    assert depth_of(plan, df) == {"x": 1, "y": 0}


def test_self_manager_rejected_and_reports_warned() -> None:
    df = frame([("boss", None), ("s", "s"), ("r", "s"), ("ok", "boss")])
    plan = plan_stages(df)
    assert list(plan.rejected.columns) == list(REJECTED_COLUMNS)
    assert plan.rejected.to_dict("records") == [
        {"row": 1, "externalId": "s", "stage": "stages", "reason": "self-manager: s names itself as manager"}
    ]
    assert plan.frame["externalId"].tolist() == ["boss", "r", "ok"]
    assert pd.isna(plan.depth.iloc[1])
    # r is not rejected: it goes after every other stage, with a warning naming the cause.
    assert stage_ids(plan) == [["boss"], ["ok"], ["r"]]
    assert list(plan.warnings.columns) == list(WARNING_COLUMNS)
    assert plan.warnings["externalId"].tolist() == ["r"]
    assert "s names itself as manager" in plan.warnings["warning"].iloc[0]


def test_two_cycle() -> None:
    df = frame([("a", "b"), ("b", "a"), ("c", None)])
    plan = plan_stages(df)
    assert plan.rejected["externalId"].tolist() == ["a", "b"]
    assert plan.rejected["row"].tolist() == [0, 1]
    assert set(plan.rejected["reason"]) == {"management cycle a -> b -> a (each is managed by the next)"}
    assert stage_ids(plan) == [["c"]]


def test_three_cycle_with_branch_below_in_trailing_stages() -> None:
    df = frame(
        [
            ("ceo", None),
            ("vp", "ceo"),
            ("dir", "vp"),
            ("x", "y"),
            ("y", "z"),
            ("z", "x"),
            ("under", "z"),  # reports to a cycle member
            ("deeper", "under"),  # reports to someone below the cycle
        ]
    )
    plan = plan_stages(df)
    assert plan.rejected["externalId"].tolist() == ["x", "y", "z"]
    reason = plan.rejected["reason"].iloc[0]
    assert reason == "management cycle x -> y -> z -> x (each is managed by the next)"
    assert set(plan.rejected["reason"]) == {reason}
    # Trailing stages keep managers-first order inside the branch.
    assert stage_ids(plan) == [["ceo"], ["vp"], ["dir"], ["under"], ["deeper"]]
    assert plan.warnings["externalId"].tolist() == ["under", "deeper"]
    assert all(reason in text for text in plan.warnings["warning"])


def test_long_cycle_reason_is_capped() -> None:
    n = 25
    df = frame([(f"p{i}", f"p{(i + 1) % n}") for i in range(n)])
    plan = plan_stages(df)
    assert len(plan.rejected) == n
    reason = plan.rejected["reason"].iloc[0]
    assert reason.startswith("management cycle of 25 people p0 -> p1 ->")
    assert "p10" not in reason
    assert plan.n_stages == 0 and plan.stages == []


def test_missing_id_is_rejected() -> None:
    df = frame([("a", None), (None, "a"), ("  ", "a")])
    plan = plan_stages(df)
    assert plan.rejected["row"].tolist() == [1, 2]
    assert set(plan.rejected["reason"]) == {"missing externalId"}


def test_duplicate_ids_first_row_defines_the_hierarchy() -> None:
    # The validator quarantines duplicates; if some slip through, no row is lost and none loops.
    df = frame([("a", None), ("b", "a"), ("b", "c"), ("c", "b")])
    plan = plan_stages(df)
    assert plan.rejected.empty
    assert plan.depth.tolist() == [0, 1, 3, 2]


def test_scim_column_names_and_numeric_ids() -> None:
    df = pd.DataFrame(
        {"externalId": [1, 2, 3], SCIM_MANAGER_COLUMN: [np.nan, 1.0, 2.0], "userName": ["a@x", "b@x", "c@x"]},
        index=["r1", "r2", "r3"],
    )
    plan = plan_stages(df, manager_column=SCIM_MANAGER_COLUMN)
    assert plan.depth.to_dict() == {"r1": 0, "r2": 1, "r3": 2}
    # Stages are subsets of the input with its columns unchanged.
    assert list(plan.stages[0].columns) == list(df.columns)


def test_empty_frame() -> None:
    plan = plan_stages(frame([]))
    assert (plan.n_stages, len(plan.rejected), len(plan.warnings), len(plan.depth)) == (0, 0, 0, 0)


def test_frame_without_manager_column_is_one_stage() -> None:
    df = pd.DataFrame({"externalId": ["a", "b"]})
    assert plan_stages(df).stage_sizes() == [2]


def test_unknown_id_column_names_it() -> None:
    with pytest.raises(KeyError, match="WorkerID"):
        plan_stages(frame([("a", None)]), id_column="WorkerID")


def test_microsoft_sample1(microsoft_sample: Path) -> None:
    df = pd.read_csv(microsoft_sample / "Sample1-employeeData.csv", dtype=str)
    plan = plan_stages(df, id_column="WorkerID", manager_column="ManagerID")
    in_file = df["ManagerID"].isin(set(df["WorkerID"]))
    assert plan.rejected.empty
    assert sum(plan.stage_sizes()) == len(df) == 332
    # Most managers are outside the file, so most rows are roots.
    assert plan.stage_sizes()[0] == int((~in_file).sum()) == 229
    # Each row sits one stage below the first row of its manager (duplicates: the first row defines the id).
    first_position = pd.Series(np.arange(len(df)), index=df["WorkerID"]).groupby(level=0).first()
    depth = plan.depth.to_numpy(dtype=np.int64)
    managed = np.flatnonzero(in_file.to_numpy())
    manager_depth = depth[first_position.loc[df["ManagerID"].iloc[managed]].to_numpy()]
    assert np.array_equal(depth[managed], manager_depth + 1)
    assert plan.n_stages == int(depth.max()) + 1 > 1


def test_million_row_chain() -> None:
    n = 1_000_000
    ids = np.arange(n).astype(str)
    df = pd.DataFrame({"externalId": ids, "manager": np.concatenate([[None], ids[:-1]])})
    plan = plan_stages(df)
    assert plan.rejected.empty
    assert int(plan.depth.max()) == n - 1
    assert np.array_equal(plan.depth.to_numpy(dtype=np.int64), np.arange(n))
    assert plan.n_stages == n
