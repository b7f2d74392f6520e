"""The example DAGs' Params: one definition per name, picked by name, a DAG's own defaults."""

from __future__ import annotations

import pytest

from airflow_provider_entra import params
from airflow_provider_entra.params import PARAMS, dag_params


def test_every_param_has_a_description_and_a_valid_default() -> None:
    chosen = dag_params(*PARAMS, hr_path="/data/hr.csv", mapping_path="/data/mapping.yaml")
    assert list(chosen) == list(PARAMS)
    for name, param in chosen.items():
        assert param.description, name
        if name != "employee_ids":  # given at each trigger: its empty default is refused on purpose
            param.resolve(suppress_exception=False)  # the default passes its own schema


def test_groups_name_only_defined_params() -> None:
    groups = [getattr(params, name) for name in params.__all__ if name.isupper() and name != "PARAMS"]
    for group in groups:
        names = group.values() if isinstance(group, dict) else group
        assert set(names) <= set(PARAMS), group


def test_a_dag_gives_its_own_default_and_each_dag_gets_its_own_param() -> None:
    strict = dag_params("max_disable_count", max_disable_count=5)
    default = dag_params("max_disable_count")
    assert strict["max_disable_count"].value == 5 and default["max_disable_count"].value == 50
    assert strict["max_disable_count"] is not default["max_disable_count"]
    assert strict["max_disable_count"].description == default["max_disable_count"].description
    assert list(dag_params("dry_run", staging_path="s3://b/entra")) == ["dry_run", "staging_path"]


def test_a_path_param_needs_the_dags_default_and_unknown_names_fail() -> None:
    with pytest.raises(ValueError, match="Param hr_path needs a default"):
        dag_params("hr_path")
    with pytest.raises(KeyError):
        dag_params("no_such_param")
