"""A real Airflow (api-server, scheduler, dag-processor, triggerer) and headless Chromium for the UI test.

The four Airflow components run as separate subprocesses, like a deployment: LocalExecutor, SQLite in a temp
``AIRFLOW_HOME``, the repository's ``dags/`` as DAGs folder, the provider installed in the venv, and the
``entra_default``/``entra_admin`` connections pointing at an emulator started for this module. Chromium is the
one from the OS packages (``/usr/bin/chromium``), driven by Playwright; no browser is ever downloaded.
Screenshots go to ``artifacts/browser/`` at the repository root.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from _airflow_stack import ProcessStack, free_port, tail

from airflow_provider_entra.emulator.process import EmulatorProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO_ROOT / "dags"
ARTIFACTS = REPO_ROOT / "artifacts" / "browser"
CHROMIUM = Path(os.environ.get("ENTRA_BROWSER_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")

# Bounded waits (seconds): generous for a loaded 2-core CI machine, short enough to fail with a clear message.
MIGRATE_TIMEOUT = 90
HEALTH_TIMEOUT = 90
PARSE_TIMEOUT = 90
UI_TIMEOUT_MS = 30_000


class AirflowStackError(AssertionError):
    """A component did not start, died, or a wait ran out; the message carries the components' log tails."""


class AirflowStack(ProcessStack):
    """Airflow's four components as subprocesses sharing one temp ``AIRFLOW_HOME``.

    :param home: the ``AIRFLOW_HOME`` (SQLite DB, component logs, task logs).
    :param emulator: a running emulator; its connections become ``AIRFLOW_CONN_ENTRA_DEFAULT``/``_ADMIN``.
    :param staging: folder for the ``entra_staging_path`` Variable (``file://`` URL).
    """

    error_type = AirflowStackError
    tail_chars = 2500

    def __init__(self, home: Path, emulator: EmulatorProcess, staging: Path) -> None:
        self.home = home
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.airflow = str(Path(sys.executable).parent / "airflow")
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.session = requests.Session()
        apps = emulator.info.get("apps", {})
        admin_conn = apps.get("admin", {}).get("airflow_conn", emulator.info["airflow_conn"])
        # Start from the test process' environment without its Airflow settings (tests/conftest.py sets
        # unit-test mode and a copied DAGs folder for dag.test(); this stack is a deployment, not a test).
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_")}
        env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_FOLDER),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="4",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW__CORE__TEST_CONNECTION="Enabled",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.base_url}/execution/",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__BASE_URL=self.base_url,
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
            # The scheduler's and the triggerer's log servers default to fixed ports (8793, 8794).
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="1",
            AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="0.5",
            AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="2",
            AIRFLOW_CONN_ENTRA_DEFAULT=json.dumps(emulator.info["airflow_conn"]),
            AIRFLOW_CONN_ENTRA_ADMIN=json.dumps(admin_conn),
            AIRFLOW_VAR_ENTRA_STAGING_PATH=staging.as_uri(),
        )
        self.env = env

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> AirflowStack:
        """Migrate the DB, start the four components, wait until the API server answers healthy."""
        self.home.mkdir(parents=True, exist_ok=True)
        migrate_log = self.home / "db-migrate.log"
        self.logs["db migrate"] = migrate_log
        with open(migrate_log, "wb") as out:
            try:
                result = subprocess.run(
                    [self.airflow, "db", "migrate"],
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=MIGRATE_TIMEOUT,
                )
            except subprocess.TimeoutExpired as exc:
                raise self.error(f"`airflow db migrate` did not finish within {MIGRATE_TIMEOUT} s") from exc
        if result.returncode != 0:
            raise self.error(f"`airflow db migrate` exited with code {result.returncode}")
        # The example DAGs' Graph-calling tasks run in this pool; the scheduler queues nothing without it.
        with open(migrate_log, "ab") as out:
            pool = subprocess.run(
                [self.airflow, "pools", "set", "entra_api", "1", "One Entra tenant's Graph budget"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=MIGRATE_TIMEOUT,
            )
        if pool.returncode != 0:
            raise self.error(f"`airflow pools set entra_api` exited with code {pool.returncode}")
        for name in COMPONENTS:
            args = [self.airflow, name] + (["--port", str(self.port)] if name == "api-server" else [])
            log_path = self.home / f"{name}.log"
            self.logs[name] = log_path
            with open(log_path, "wb") as out:
                # Own process group: teardown reaches the LocalExecutor's and the DAG processor's children.
                self.procs[name] = subprocess.Popen(
                    args, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
        self.wait_for(self._healthy, HEALTH_TIMEOUT, "the API server to report every component healthy")
        return self

    def stop(self) -> None:
        """SIGTERM every component's process group, then SIGKILL whatever is left after a grace period."""
        self.stop_processes()

    def where(self) -> str:
        return f"AIRFLOW_HOME={self.home}"

    def log_tails(self, chars: int | None = None) -> str:
        """The end of each component's log and of every task log, for failure messages."""
        chars = chars or self.tail_chars
        parts = [super().log_tails(chars)]
        for task_log in sorted((self.home / "logs").glob("dag_id=*/**/*.log")):
            parts.append(f"----- task log {task_log.relative_to(self.home)} -----\n{tail(task_log, chars)}")
        return "\n".join(parts)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v2/<path>`` (no login: all users are admins) and return the decoded JSON."""
        response = self.session.request(
            method, f"{self.base_url}/api/v2/{path.lstrip('/')}", timeout=30, **kwargs
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def wait_for_dags(self, dag_ids: set[str], timeout: float = PARSE_TIMEOUT, interval: float = 1.0) -> None:
        super().wait_for_dags(dag_ids, timeout, interval)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The OS package's Chromium; fail (never skip) with how to install it."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"the browser test needs Chromium from the OS packages at {CHROMIUM}: install it with "
            "`apt-get install -y chromium` (Debian/Ubuntu; `make test` does this as root), or point "
            "ENTRA_BROWSER_TEST_CHROMIUM at a Chromium binary. Playwright's browser downloads are not used.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``artifacts/browser/`` at the repository root, emptied of the previous run's screenshots."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """An emulator of our own, slow enough to process (15 s) that the log check defers to the triggerer.

    The delay is longer than Airflow 3.3's LocalExecutor takes to report the deferring process finished
    (up to its 5 s ``min_heartbeat_interval``): a trigger that fires before that report makes the scheduler
    fail the resumed task ("finished with state success, but the task instance's state attribute is
    running"). Entra's own log delay is minutes.

    Task processes and the triggerer reach it through the connection environment variables.
    """
    with EmulatorProcess(tmp_path_factory.mktemp("browser-emulator"), processing_delay=15) as emu:
        yield emu


@pytest.fixture(scope="module")
def airflow_stack(
    tmp_path_factory: pytest.TempPathFactory, browser_emulator: EmulatorProcess
) -> Iterator[AirflowStack]:
    """A running, healthy Airflow; torn down (process groups) even when start-up fails.

    Its home (component logs, task logs) and staging folder stay in pytest's temp dir for a post-mortem.
    """
    root = tmp_path_factory.mktemp("browser-airflow")
    stack = AirflowStack(root / "airflow-home", browser_emulator, root / "staging")
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser_context(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Playwright persistent context on the system Chromium with a fresh profile directory."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 900},
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Remember each phase's report on the item, so the ``page`` fixture can screenshot a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def page(browser_context: Any, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh tab; on failure its last state is saved as ``artifacts/browser/FAILED-<test>.png``."""
    tab = browser_context.new_page()
    yield tab
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        try:
            tab.screenshot(path=str(artifacts / f"FAILED-{request.node.name}.png"), full_page=True)
        except Exception as exc:  # a failed screenshot must not hide the test's own failure
            print(f"could not save the failure screenshot: {exc!r}")
    tab.close()
