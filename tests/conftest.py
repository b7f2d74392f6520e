"""Shared test set-up.

Airflow reads its configuration at first import, so the environment is fixed here, before anything
imports ``airflow``. Behaviour tests talk to the local Entra emulator over HTTPS on loopback through the
real hook code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# A copy of Microsoft's sample files (MIT, AzureAD/entra-id-inbound-provisioning); see its README.md.
MICROSOFT_SAMPLE = REPO_ROOT / "tests" / "data" / "microsoft-sample"

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="entra-airflow-home-"))
# dag.test() only runs DAGs found in the DAGs folder, so the tests' folder holds a copy of the example DAGs
# (with their data) plus the test-only DAGs in tests/dags/airflow_dags/.
DAGS_FOLDER = _AIRFLOW_HOME / "dags"
shutil.copytree(REPO_ROOT / "dags", DAGS_FOLDER, ignore=shutil.ignore_patterns("__pycache__"))
for _test_dag in (REPO_ROOT / "tests" / "dags" / "airflow_dags").glob("*.py"):
    shutil.copy(_test_dag, DAGS_FOLDER / _test_dag.name)
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
os.environ.pop("AIRFLOW_CONN_ENTRA_DEFAULT", None)
os.environ.pop("AIRFLOW_CONN_ENTRA_ADMIN", None)

import pytest  # noqa: E402

from airflow_provider_entra.emulator.process import EmulatorProcess  # noqa: E402


@pytest.fixture(scope="session")
def microsoft_sample() -> Path:
    """Folder with Microsoft's own sample HR exports, mappings and provisioning logs."""
    return MICROSOFT_SAMPLE


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """One emulator process for the session (fast processing); ``entra_env`` resets it per test."""
    data_dir = tmp_path_factory.mktemp("emulator")
    with EmulatorProcess(data_dir, processing_delay=0.2) as emu:
        yield emu


@pytest.fixture
def entra_env(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorProcess]:
    """A clean emulator, ``entra_default``/``entra_admin`` connections pointing at it, no cached msal apps."""
    from airflow_provider_entra.hooks.entra import clear_msal_apps

    emulator.reset()
    monkeypatch.setenv("AIRFLOW_CONN_ENTRA_DEFAULT", json.dumps(emulator.info["airflow_conn"]))
    admin = emulator.info.get("apps", {}).get("admin")
    if admin:
        monkeypatch.setenv("AIRFLOW_CONN_ENTRA_ADMIN", json.dumps(admin["airflow_conn"]))
    clear_msal_apps()
    yield emulator
    clear_msal_apps()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the SQLite metadata DB once per session (needed by dag.test())."""
    from airflow.utils import db

    db.resetdb()
    return _AIRFLOW_HOME


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)
