"""Airflow's Celery stack, natively on this machine, for the distributed test (``make test-distributed``).

Everything runs as separate processes, each in its own process group, stopped (SIGTERM, then SIGKILL) when
the module ends, start-up failures included:

* Debian's ``postgresql`` (a throw-away cluster in a temp folder, ``fsync`` off) and ``redis-server``;
* an S3 server from PyPI (moto's, in its own venv: ``S3_SERVER_PYTHON``), reached by every Airflow process
  through obstore's fsspec filesystem, registered for ``s3://`` by ``site/sitecustomize.py`` on
  ``PYTHONPATH`` (a deployment would use the Amazon provider's ``s3://<conn_id>@bucket`` instead; its
  botocore does not install beside python-dateutil 4);
* the Entra emulator (:class:`~airflow_provider_entra.emulator.process.EmulatorProcess`);
* Airflow's api-server, scheduler and dag-processor, then a triggerer and two Celery workers, each of these
  three in a mount namespace of its own (``unshare -m``) with a private tmpfs over the default staging root
  ``$AIRFLOW_HOME/entra-staging``: three machines' disks, as far as staging is concerned.

Only collected when ``ENTRA_DISTRIBUTED_TEST=1`` (``make test-distributed`` sets it): ``make test`` runs on
SQLite and has no room for the minutes this stack takes.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from _airflow_stack import ProcessStack, free_port, tail

from airflow_provider_entra.emulator.process import EmulatorProcess

if os.environ.get("ENTRA_DISTRIBUTED_TEST") != "1":
    collect_ignore_glob = ["test_*.py"]

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO_ROOT / "dags"
SITE = Path(__file__).resolve().parent / "site"
#: The S3 server's interpreter (its own venv: moto's botocore needs python-dateutil < 3).
S3_SERVER_PYTHON = Path(
    os.environ.get("ENTRA_S3_SERVER_PYTHON", REPO_ROOT / ".venv" / "s3-server" / "bin" / "python")
)
BUCKET = "entra-staging"
STAGING_URL = f"s3://{BUCKET}/airflow"
WORKERS = ("worker-1", "worker-2")
PRIVATE = ("triggerer", *WORKERS)

# Bounded waits (seconds): generous for a loaded 2-core machine, short enough to fail with a clear message.
SERVICE_TIMEOUT = 60
MIGRATE_TIMEOUT = 180
HEALTH_TIMEOUT = 150
PARSE_TIMEOUT = 150


class StackError(AssertionError):
    """A process did not start, died, or a wait ran out; the message carries the logs that explain it."""


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        pytest.fail(
            "the distributed test needs Debian's postgresql (initdb under /usr/lib/postgresql/*/bin): "
            "`make test-distributed` installs it as root (.ci/os-packages distributed)",
            pytrace=False,
        )
    return found[-1].parent


class Stack(ProcessStack):
    """The processes of the distributed test, their logs and the calls the test makes to them.

    :param root: a folder for everything (Postgres' data, logs, ``AIRFLOW_HOME``).
    :param emulator: the running emulator; its apps' connections become ``AIRFLOW_CONN_ENTRA_*``.
    """

    BUCKET = BUCKET
    STAGING_URL = STAGING_URL
    PRIVATE = PRIVATE
    error_type = StackError
    probe_errors = (*ProcessStack.probe_errors, OSError)
    one_off = frozenset({"postgres-initdb"})

    def __init__(self, root: Path, emulator: EmulatorProcess) -> None:
        self.root = root
        self.home = root / "airflow-home"
        #: The default staging root (no Variable, no Param): private to each of triggerer and workers.
        self.local_staging = self.home / "entra-staging"
        self.emulator = emulator
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, tuple[list[str], dict[str, str] | None]] = {}
        self.logs: dict[str, Path] = {}
        self.ports = {name: free_port() for name in ("postgres", "redis", "s3", "api")}
        self.base_url = f"http://127.0.0.1:{self.ports['api']}"
        self.s3_url = f"http://127.0.0.1:{self.ports['s3']}"
        self.airflow = str(Path(sys.executable).parent / "airflow")
        self.session = requests.Session()
        self.pg_dir: Path | None = None

    # -- environment -----------------------------------------------------------------------------------------
    def airflow_env(self) -> dict[str, str]:
        apps = self.emulator.info.get("apps", {})
        admin_conn = apps.get("admin", {}).get("airflow_conn", self.emulator.info["airflow_conn"])
        database = f"postgresql+psycopg2://postgres@127.0.0.1:{self.ports['postgres']}/airflow"
        # The test process' environment without its Airflow settings (tests/conftest.py sets unit-test mode).
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_FOLDER),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__CORE__PARALLELISM="16",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.base_url}/execution/",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=database,
            AIRFLOW__CELERY__BROKER_URL=f"redis://127.0.0.1:{self.ports['redis']}/0",
            AIRFLOW__CELERY__RESULT_BACKEND=f"db+postgresql+psycopg2://postgres@127.0.0.1:{self.ports['postgres']}/airflow",
            AIRFLOW__CELERY__WORKER_CONCURRENCY="4",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.ports["api"]),
            AIRFLOW__API__BASE_URL=self.base_url,
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="1",
            AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="0.5",
            AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="2",
            AIRFLOW_CONN_ENTRA_DEFAULT=json.dumps(self.emulator.info["airflow_conn"]),
            AIRFLOW_CONN_ENTRA_ADMIN=json.dumps(admin_conn),
            AIRFLOW_VAR_ENTRA_STAGING_PATH=STAGING_URL,
            # obstore's S3 store reads these; sitecustomize registers it with fsspec in every process.
            PYTHONPATH=os.pathsep.join(filter(None, [str(SITE), os.environ.get("PYTHONPATH", "")])),
            AWS_ENDPOINT_URL=self.s3_url,
            AWS_ACCESS_KEY_ID="distributed-test",
            AWS_SECRET_ACCESS_KEY="distributed-test-only",  # noqa: S105 - the local S3 server checks nothing
            AWS_REGION="us-east-1",
            AWS_ALLOW_HTTP="true",
        )
        return env

    # -- processes -------------------------------------------------------------------------------------------
    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``args`` in its own process group, output to ``<root>/logs/<name>.log``."""
        log_path = self.root / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.logs[name] = log_path
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                args,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.procs[name] = proc
        self.commands[name] = (args, env)
        return proc

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Stop ``name``'s process group (SIGTERM, SIGKILL after 30 s); start it again, same command."""
        proc = self.procs[name]
        self._signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            self._signal_group(proc, signal.SIGKILL)
            proc.wait(10)
        self._signal_group(proc, signal.SIGKILL)  # whatever it left behind
        args, env = self.commands[name]
        return self.spawn(name, args, env)

    def run(self, name: str, args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> None:
        """Run ``args`` to completion, output appended to ``<root>/logs/<name>.log``; fail on errors."""
        log_path = self.root / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.logs[name] = log_path
        with open(log_path, "ab") as out:
            try:
                result = subprocess.run(args, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                raise self.error(f"{name}: {args[0]} did not finish within {timeout} s") from exc
        if result.returncode != 0:
            raise self.error(f"{name}: {' '.join(args[:3])}... exited with code {result.returncode}")

    def start_services(self) -> None:
        """Postgres, Redis and the S3 server, each answering before this returns."""
        pg_bin = _postgres_bin()
        # Postgres refuses to run as root: as root, its folders belong to the postgres user.
        self.pg_dir = Path(tempfile.mkdtemp(prefix="entra-distributed-pg-"))
        data, sockets = self.pg_dir / "data", self.pg_dir / "sockets"
        sockets.mkdir()
        as_postgres: list[str] = []
        if os.geteuid() == 0:
            self.pg_dir.chmod(0o711)
            shutil.chown(sockets, "postgres")
            as_postgres = ["runuser", "-u", "postgres", "--"]
            data.mkdir(mode=0o700)
            shutil.chown(data, "postgres")
        self.run(
            "postgres-initdb",
            [
                *as_postgres,
                str(pg_bin / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        self.spawn(
            "postgres",
            [
                *as_postgres,
                str(pg_bin / "postgres"),
                "-D", str(data),
                "-p", str(self.ports["postgres"]),
                "-k", str(sockets),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
                "-c", "max_connections=200",
            ],
        )  # fmt: skip
        self.spawn(
            "redis",
            [
                "redis-server",
                "--port",
                str(self.ports["redis"]),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
        )
        if not S3_SERVER_PYTHON.exists():
            pytest.fail(
                f"no S3 server at {S3_SERVER_PYTHON}: `make test-distributed` installs moto's there "
                "(tests/distributed/s3-server.txt)",
                pytrace=False,
            )
        self.spawn(
            "s3",
            [str(S3_SERVER_PYTHON), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.ports["s3"])],
        )
        self.wait_for(self._port_open("postgres"), SERVICE_TIMEOUT, "Postgres to accept connections")
        self.wait_for(
            lambda: self._psql("SELECT 1"),
            SERVICE_TIMEOUT,
            "Postgres to answer queries",
            errors=(subprocess.SubprocessError,),
        )
        self._psql("CREATE DATABASE airflow")
        self.wait_for(self._port_open("redis"), SERVICE_TIMEOUT, "Redis to accept connections")
        self.wait_for(
            lambda: requests.get(self.s3_url, timeout=5).ok, SERVICE_TIMEOUT, "the S3 server to answer"
        )
        created = requests.put(f"{self.s3_url}/{BUCKET}", timeout=10)
        if not created.ok:
            raise self.error(
                f"creating the bucket {BUCKET} failed: {created.status_code} {created.text[:300]}"
            )

    def _port_open(self, name: str) -> Callable[[], bool]:
        def probe() -> bool:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(2)
                return sock.connect_ex(("127.0.0.1", self.ports[name])) == 0

        return probe

    def _psql(self, sql: str) -> bool:
        psql = shutil.which("psql") or str(_postgres_bin() / "psql")
        subprocess.run(
            [
                psql,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.ports["postgres"]),
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return True

    def start_airflow(self) -> None:
        """Migrate, create the pool, start every component; wait until all report healthy and the workers
        are ready."""
        env = self.airflow_env()
        self.local_staging.mkdir(parents=True, exist_ok=True)
        self.run("db-migrate", [self.airflow, "db", "migrate"], env=env, timeout=MIGRATE_TIMEOUT)
        for name in ("api-server", "scheduler", "dag-processor"):
            self.spawn(name, [self.airflow, name], env=env)
        for name in PRIVATE:
            component = ["triggerer"] if name == "triggerer" else ["celery", "worker", "-H", f"{name}@%h"]
            own = {
                **env,
                # each serves its logs on a port of its own (one machine, three "hosts")
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            }
            private_disk = (
                f'mount -t tmpfs -o mode=0700,size=512m tmpfs "{self.local_staging}" && '
                f'exec "{self.airflow}" "$@"'
            )
            self.spawn(
                name,
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    private_disk,
                    "sh",
                    *component,
                ],
                env=own,
            )
        self.wait_for(self._healthy, HEALTH_TIMEOUT, "the API server to report every component healthy")
        for name in WORKERS:
            self.wait_for(
                lambda n=name: "ready." in tail(self.logs[n], 200_000),
                HEALTH_TIMEOUT,
                f"Celery {name} to be ready",
            )
        self.api("POST", "pools", json={"name": "entra_api", "slots": 1, "description": "One Entra tenant"})

    def stop(self) -> None:
        """SIGTERM every process group, then SIGKILL what is left; remove Postgres' folder."""
        self.stop_processes()
        if self.pg_dir is not None:
            shutil.rmtree(self.pg_dir, ignore_errors=True)

    # -- diagnostics -----------------------------------------------------------------------------------------
    def where(self) -> str:
        return f"root: {self.root}"

    def task_logs(self, dag_id: str, run_id: str, states: set[str] | None = None, chars: int = 6000) -> str:
        """The Airflow logs of a run's task instances (by default the failed ones), for failure messages."""
        wanted = states or {"failed", "upstream_failed"}
        parts = []
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] not in wanted:
                continue
            folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={ti['task_id']}"
            for log in sorted(folder.glob("**/*.log")):
                header = f"----- {dag_id} {run_id} {ti['task_id']} ({ti['state']}): {log} -----"
                parts.append(f"{header}\n{tail(log, chars)}")
            if not folder.exists():
                parts.append(
                    f"----- {dag_id} {run_id} {ti['task_id']} ({ti['state']}): no log at {folder} -----"
                )
        return "\n".join(parts)

    # -- REST API --------------------------------------------------------------------------------------------
    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """``/api/v2/<path>`` (no login: all users are admins), decoded."""
        response = self.session.request(
            method, f"{self.base_url}/api/v2/{path.lstrip('/')}", timeout=30, **kwargs
        )
        if not response.ok:
            raise self.error(f"{method} /api/v2/{path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def healthy(self) -> bool:
        """Every component reports healthy (the API server's view)."""
        return self._healthy()

    def wait_for_dags(self, dag_ids: set[str], timeout: float = PARSE_TIMEOUT, interval: float = 2) -> None:
        super().wait_for_dags(dag_ids, timeout, interval)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Create a run of ``dag_id`` with ``conf``; its run id."""
        run = self.api("POST", f"dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def run_ids(self, dag_id: str) -> list[str]:
        """The ids of ``dag_id``'s runs."""
        return [
            str(r["dag_run_id"])
            for r in self.api("GET", f"dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
        ]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}")["state"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(
            self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})[
                "task_instances"
            ]
        )

    def states(self, dag_id: str, run_id: str) -> dict[str, str]:
        return {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        entry = self.api(
            "GET",
            f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            params={"deserialize": "true"},
        )
        return entry["value"]

    def active_runs(self) -> list[tuple[str, str, str]]:
        """Runs of any DAG still queued or running."""
        runs = self.api("GET", "dags/~/dagRuns", params={"limit": 100, "state": ["queued", "running"]})[
            "dag_runs"
        ]
        return [(r["dag_id"], r["dag_run_id"], r["state"]) for r in runs]


@pytest.fixture(scope="module")
def stack_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """The emulator, slow enough to process (45 s) that every verification defers to the triggerer, even one
    that waited for the pool slot behind the other runs' uploads."""
    with EmulatorProcess(tmp_path_factory.mktemp("distributed-emulator"), processing_delay=45) as emu:
        yield emu


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_emulator: EmulatorProcess) -> Iterator[Stack]:
    """The running stack; stopped (every process group) even when start-up fails."""
    stack = Stack(tmp_path_factory.mktemp("distributed"), stack_emulator)
    try:
        stack.start_services()
        stack.start_airflow()
        yield stack
    finally:
        stack.stop()
