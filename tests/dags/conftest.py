"""Running the example DAGs with dag.test() (the DAGs folder is the session's copy of dags/).

The ``dags`` fixture gives the helpers: ``run`` (dag.test with a staging root under tmp_path and fast
verification), ``states``, ``xcom``, ``read_summary``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

DAGS = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
DATA = DAGS / "data"
#: Poll the emulator's logs every second and do not wait a minute for follow-up entries.
FAST = {"verify_poke_interval": 1, "verify_settle_seconds": 2, "verify_timeout_minutes": 2}


def get_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def run(dag_id: str, staging: Path, **conf: Any):
    """``dag.test()`` with the run's staging root under ``staging`` and fast verification."""
    return get_dag(dag_id).test(run_conf={"staging_path": str(staging), **FAST, **conf})


def states(dag_run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def xcom(dag_run, task_id: str, key: str = "return_value"):
    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key)
        ).first()
        return XComModel.deserialize_value(row) if row is not None else None


def run_folder(dag_run, task_id: str = "extract") -> Path:
    """The run's staging folder, as the task ``task_id`` returned it (``run_dir``)."""
    run_dir = xcom(dag_run, task_id, key="run_dir")
    return Path(run_dir.removeprefix("file://"))


def read_summary(dag_run, task_id: str = "extract") -> dict[str, Any]:
    """The run's ``run-summary.json``."""
    return json.loads((run_folder(dag_run, task_id) / "run-summary.json").read_text())


class DagRuns:
    """The helpers above, as one fixture object."""

    data = DATA
    run = staticmethod(run)
    states = staticmethod(states)
    xcom = staticmethod(xcom)
    run_folder = staticmethod(run_folder)
    read_summary = staticmethod(read_summary)


@pytest.fixture
def dags(airflow_db) -> DagRuns:
    """Helpers to run example DAGs with dag.test() (needs the migrated metadata DB)."""
    return DagRuns()
