#!/usr/bin/env python
"""Compatibility job: the built wheel in a fresh venv of each supported Airflow line, as a user installs it.

For each case below it

1. creates a fresh venv with the case's Python (pyenv's, or ``pythonX.Y`` on PATH) and installs
   ``apache-airflow==<version>`` from PyPI without our constraints (a user's existing deployment; for a line
   whose unconstrained install is broken upstream, the pins Airflow's own constraints would apply);
2. plans the README's install, ``pip install <wheel> "apache-airflow==$(airflow version)"``, with
   ``--dry-run --report`` and fails if Airflow, its core or its Task SDK would change; then installs it;
3. checks ``airflow providers list`` shows the provider, imports the hook, operators, sensor, trigger and
   link, checks the ``entra`` connection type and the connection form's extra fields (what the UI reads),
   round-trips the trigger's ``serialize()``;
4. copies the example DAGs with ``python -m airflow_provider_entra.examples copy`` and loads them in a DagBag
   (no import errors, every DAG found);
5. runs ``entra_hr_provisioning`` end to end (``airflow dags test``) against the local emulator (started from
   this repository's ``.venv``) and checks the run summary: status ``done``, every record verified;
6. for the ``floors`` case: installs the lowest declared pandas, numpy, pyarrow and msal and also runs the
   pure and hook tests (``tests/scim``, ``tests/provisioning``, ``tests/hooks``) against the installed wheel.

It writes ``<work>/results.json`` and the markdown support table ``<work>/support-table.md`` (``--readme``
also replaces the table in README.md). Exit status 1 when any case fails.

Run it from the repository root with the development venv: ``.venv/bin/python .ci/compat.py`` (``.ci/run``
does, after ``make test``). ``--cases 3.1,floors`` picks cases; by default every line runs on every Python it
supports (``--matrix quick``: one Python per line).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from airflow_provider_entra.emulator.process import EmulatorProcess  # noqa: E402

PYTHONS = ("3.11", "3.12", "3.13")
AIRFLOW_DISTRIBUTIONS = ("apache-airflow", "apache-airflow-core", "apache-airflow-task-sdk")
EXAMPLE_DAGS = (
    "entra_admin_accounts",
    "entra_hr_provisioning",
    "entra_on_demand",
    "entra_provisioning_review",
)
#: The lowest versions pyproject.toml declares; the floors case installs exactly these.
FLOORS = ("pandas==3.0.0", "numpy==2.0.0", "pyarrow==26.0.0", "msal==1.29.0")
STEP_TIMEOUT = 900


@dataclass
class Case:
    """One Airflow line on one Python."""

    name: str
    airflow: str
    python: str
    #: Extra requirements for the user's deployment and for the provider's install.
    pins: tuple[str, ...] = ()
    #: Install Airflow as of this time (``pip --uploaded-prior-to``): what its constraints (made at its
    #: release) pin.
    as_of: str | None = None
    #: Run the pure tests against the installed wheel too.
    pure_tests: bool = False
    #: Pythons this line supports (the full matrix runs each).
    pythons: tuple[str, ...] = PYTHONS
    note: str = ""


# `python` is a line's one Python in the quick matrix (spread so each Python meets several lines); the full
# matrix, which CI runs, takes every Python in `pythons`. make test covers 3.3 on 3.11 with our constraints.
# Airflow 3.0 and 3.2 installed without constraints get FastAPI/Starlette/pydantic/cadwyn releases newer than
# they work with: even a one-task DAG fails inside Airflow (`airflow dags test`: 3.0.6 answers 422 to the task
# start, 3.2.2 fails on a pydantic discriminator). Their users install with Airflow's constraints, which are
# made at release; `as_of` installs what PyPI held then.
CASES = [
    Case("2.11", "2.11.2", "3.12", pythons=("3.11", "3.12")),
    Case("3.0", "3.0.6", "3.12", pythons=("3.11", "3.12"), as_of="2025-08-29T16:00:00Z"),
    Case("3.1", "3.1.8", "3.13"),
    Case("3.2", "3.2.2", "3.11", as_of="2026-05-29T06:00:00Z"),
    Case("3.3", "3.3.2", "3.13"),
    Case("floors", "3.3.2", "3.11", pins=FLOORS, pure_tests=True, pythons=("3.11",)),
]


@dataclass
class Result:
    case: str
    airflow: str
    python: str
    ok: bool = False
    failed_step: str = ""
    error: str = ""
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


class StepError(RuntimeError):
    pass


def find_python(version: str) -> str:
    pyenv = Path.home() / ".pyenv" / "versions"
    found = sorted(
        pyenv.glob(f"{version}.*/bin/python"), key=lambda p: [int(x) for x in p.parts[-3].split(".")]
    )
    if found:
        return str(found[-1])
    on_path = shutil.which(f"python{version}")
    if on_path:
        return on_path
    raise StepError(f"no Python {version} (pyenv or python{version} on PATH)")


def run(
    cmd: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    timeout: int = STEP_TIMEOUT,
    check: bool = True,
) -> str:
    """Run ``cmd``, append its output to ``log``, return stdout (and stderr when ``check`` is false); raise
    StepError with the tail on failure."""
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=log.parent)
        out.write(done.stdout)
        out.write(done.stderr)
    if not check:
        return done.stdout + done.stderr
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise StepError(f"exit {done.returncode}: {' '.join(cmd[:6])}...\n{tail}")
    return done.stdout


def airflow_env(home: Path, airflow: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV", "PYTHON"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            # Airflow 2 runs SQLite only with its SequentialExecutor (its default).
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor" if airflow >= "3" else "SequentialExecutor",
            "PYTHONWARNINGS": "ignore",
        }
    )
    return env


CHECK_PROVIDER = r"""
import importlib, json
modules = ["hooks.entra", "operators.bulk_upload", "operators.job_health", "sensors.provisioning_logs",
           "triggers.provisioning_logs", "links"]
for name in modules:
    importlib.import_module("airflow_provider_entra." + name)
from airflow.providers_manager import ProvidersManager
from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.triggers.provisioning_logs import EntraProvisioningLogTrigger

out = {"hook_conn_type": EntraHook.conn_type}
# First, as in a fresh API server: the connection form metadata the UI reads (GET /ui/connections/hook_meta).
try:  # Airflow 3
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    meta = {m.connection_type: m for m in HookMetaService.hook_meta_data()}
    entra = meta.get("entra")
    out["form_fields"] = sorted((entra.extra_fields or {}) if entra else {})
except ImportError:  # Airflow 2: the FAB UI builds the form from the hook's widgets
    widgets = ProvidersManager().connection_form_widgets
    out["form_fields"] = sorted(k.rsplit("__", 1)[-1] for k in widgets if k.startswith("extra__entra__"))
info = ProvidersManager().hooks.get("entra")
out["registered_hook"] = info.hook_class_name if info else None
trigger = EntraProvisioningLogTrigger(entra_conn_id="entra_default", external_ids_path="/ids.csv",
    since="2026-01-01T00:00:00Z", poll_interval=5, timeout_at="2026-01-01T01:00:00Z", state_path="/s.jsonl")
path, kwargs = trigger.serialize()
module, _, cls = path.rpartition(".")
rebuilt = getattr(importlib.import_module(module), cls)(**kwargs)
out["trigger_roundtrip"] = rebuilt.serialize() == (path, kwargs)
print(json.dumps(out))
"""

CHECK_DAGBAG = r"""
import json, os
try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow >= 3.2
except ImportError:
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
errors = {k: str(v)[-800:] for k, v in bag.import_errors.items()}
print(json.dumps({"dag_ids": sorted(bag.dag_ids), "import_errors": errors}))
"""

VERSIONS = r"""
import json
from importlib.metadata import version
names = ["apache-airflow", "apache-airflow-core", "apache-airflow-task-sdk",
         "apache-airflow-providers-common-compat", "airflow-provider-entra",
         "pandas", "numpy", "pyarrow", "msal", "fastapi"]
out = {}
for name in names:
    try:
        out[name] = version(name)
    except Exception:
        pass
print(json.dumps(out))
"""


def latest_summary(staging: Path) -> dict[str, Any]:
    found = sorted(staging.glob("entra_hr_provisioning/*/run-summary.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise StepError(f"entra_hr_provisioning wrote no run-summary.json under {staging}")
    return json.loads(found[-1].read_text())


def planned_installs(report: Path) -> dict[str, str]:
    items = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in items}


def run_case(case: Case, wheel: Path, work: Path, emulator: EmulatorProcess) -> Result:
    result = Result(case.name, case.airflow, case.python)
    root = work / f"{case.name}-py{case.python}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    log = root / "job.log"
    venv, home = root / "venv", root / "airflow-home"
    py, pip = str(venv / "bin" / "python"), [str(venv / "bin" / "python"), "-m", "pip"]
    pip_flags = ["--disable-pip-version-check", "--quiet"]
    env = airflow_env(home, case.airflow)
    started = time.monotonic()
    step = "venv"

    def timed(name: str) -> None:
        nonlocal step, mark
        now = time.monotonic()
        result.steps[step] = round(now - mark, 1)
        step, mark = name, now

    mark = started
    try:
        run([find_python(case.python), "-m", "venv", str(venv)], log)
        run([*pip, "install", *pip_flags, "--upgrade", "pip"], log)
        timed("install airflow")
        airflow_pins = [
            p for p in case.pins if p.split("==")[0] not in {"pandas", "numpy", "pyarrow", "msal"}
        ]
        as_of = ["--uploaded-prior-to", case.as_of] if case.as_of else []
        # Local package mirrors carry no upload times, so --uploaded-prior-to would let newer files in:
        # PyPI only (no pip configuration files) for this step.
        pip_env = {**os.environ, "PIP_CONFIG_FILE": os.devnull} if case.as_of else None
        run([*pip, "install", *pip_flags, *as_of, f"apache-airflow=={case.airflow}", *airflow_pins], log,
            pip_env)  # fmt: skip
        before = json.loads(run([py, "-c", VERSIONS], log))
        version = run([str(venv / "bin" / "airflow"), "version"], log, env).split()[-1]
        if version != case.airflow:
            raise StepError(f"`airflow version` says {version}, expected {case.airflow}")

        timed("install provider")
        readme_install = [str(wheel), f"apache-airflow=={version}", *case.pins]
        report = root / "install-report.json"
        run([*pip, "install", *pip_flags, "--dry-run", "--report", str(report), *readme_install], log)
        planned = planned_installs(report)
        moved = {name: planned[name] for name in AIRFLOW_DISTRIBUTIONS if name in planned}
        if moved or "airflow-provider-entra" not in planned:
            raise StepError(
                f"the README's install would change Airflow: {moved} (planned: {sorted(planned)})"
            )
        run([*pip, "install", *pip_flags, *readme_install], log)
        result.versions = json.loads(run([py, "-c", VERSIONS], log))
        changed = {n: (before.get(n), result.versions.get(n)) for n in AIRFLOW_DISTRIBUTIONS}
        if any(a != b for a, b in changed.values()):
            raise StepError(f"Airflow changed during the install: {changed}")

        timed("providers list")
        listed = run([str(venv / "bin" / "airflow"), "providers", "list"], log, env)
        if "airflow-provider-entra" not in listed:
            raise StepError("`airflow providers list` does not show airflow-provider-entra")

        timed("hook and connection form")
        checks = json.loads(run([py, "-c", CHECK_PROVIDER], log, env).strip().splitlines()[-1])
        result.details["provider"] = checks
        if checks["registered_hook"] != "airflow_provider_entra.hooks.entra.EntraHook":
            raise StepError(f"connection type entra is not registered: {checks}")
        if not {"tenant_id", "service_principal_id", "job_id"} <= set(checks["form_fields"]):
            raise StepError(f"the connection form lacks the entra fields: {checks['form_fields']}")
        if not checks["trigger_roundtrip"]:
            raise StepError("the trigger does not rebuild from serialize()")

        timed("example DAGs import")
        run([py, "-m", "airflow_provider_entra.examples", "copy", str(home / "dags")], log, env)
        run([str(venv / "bin" / "airflow"), "db", "migrate"], log, env)
        bag = json.loads(run([py, "-c", CHECK_DAGBAG], log, env).strip().splitlines()[-1])
        result.details["dagbag"] = bag
        if bag["import_errors"] or not set(EXAMPLE_DAGS) <= set(bag["dag_ids"]):
            raise StepError(f"example DAGs: {bag}")

        timed("DAG end to end")
        # As a deployment's DAG processor would have: Airflow 3.0's `dags test` treats the outlet Asset of a
        # DAG it has not parsed as inactive and fails the task that publishes it.
        run([str(venv / "bin" / "airflow"), "dags", "reserialize"], log, env)
        emulator.reset()
        staging = root / "staging"
        env["AIRFLOW_CONN_ENTRA_DEFAULT"] = json.dumps(emulator.info["airflow_conn"])
        env["AIRFLOW_CONN_ENTRA_ADMIN"] = json.dumps(emulator.info["apps"]["admin"]["airflow_conn"])
        conf = {
            "staging_path": str(staging),
            "hr_path": str(home / "dags" / "data" / "hr_employees.csv"),
            "verify_poke_interval": 2,
            "verify_settle_seconds": 5,
            "verify_timeout_minutes": 5,
        }
        run([str(venv / "bin" / "airflow"), "dags", "test", "entra_hr_provisioning", "-c", json.dumps(conf)],
            log, env)  # fmt: skip
        summary = latest_summary(staging)
        outcomes = summary.get("outcomes") or {}
        result.details["run"] = {
            "status": summary.get("status"),
            "records_sent": summary.get("records_sent"),
            "outcomes": outcomes,
            "directory_users": len(emulator.users()),
        }
        bad = int(outcomes.get("failure", 0)) + int(outcomes.get("missing", 0))
        if summary.get("status") != "done" or bad or not summary.get("records_sent"):
            raise StepError(f"entra_hr_provisioning: {result.details['run']}")

        timed("deletion guard")
        # Half the employees missing from the next export: the guard must stop the run before any upload
        # and say how to go ahead. Lines without human approval (< 3.1) must fail fast by themselves.
        guard_conf = {**conf, "hr_path": str(home / "dags" / "data" / "hr_employees_truncated.csv")}
        if tuple(int(x) for x in case.airflow.split(".")[:2]) >= (3, 1):
            guard_conf["approval_timeout_minutes"] = 0
        output = run([str(venv / "bin" / "airflow"), "dags", "test", "entra_hr_provisioning", "-c",
                      json.dumps(guard_conf)], log, env, check=False)  # fmt: skip
        guard = latest_summary(staging)
        result.details["guard"] = {"status": guard.get("status"), "records_sent": guard.get("records_sent")}
        if guard.get("status") != "guard_tripped" or guard.get("records_sent"):
            raise StepError(f"the deletion guard let the truncated export through: {result.details['guard']}")
        # The failure's message; Airflow 3.0 prints it wrapped inside a rich traceback's box.
        text = re.sub(r"[│\s]+", " ", re.sub(r"\x1b\[[0-9;]*m", "", output))
        if "To go ahead, trigger the DAG again with the Param approve_disables: true" not in text:
            raise StepError("the tripped guard does not say how to re-run (approve_disables)")

        if case.pure_tests:
            timed("pure tests")
            run([*pip, "install", *pip_flags, f"{wheel}[emulator]", *case.pins, "pytest", "pytest-asyncio",
                 "pytest-timeout"], log)  # fmt: skip
            junit = root / "pure-tests.xml"
            tests = [str(REPO / "tests" / name) for name in ("scim", "provisioning", "hooks")]
            run([str(venv / "bin" / "pytest"), "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                 "--rootdir", str(REPO), "-c", str(REPO / "pyproject.toml"), *tests], log, env)  # fmt: skip
            result.details["pure_tests"] = junit.read_text().split("<testsuite ", 1)[1].split(">", 1)[0]
        timed("done")
        result.ok = True
    except (StepError, subprocess.TimeoutExpired) as exc:
        result.failed_step = step
        result.error = str(exc)[-2000:]
    result.seconds = round(time.monotonic() - started, 1)
    return result


def table(results: list[Result], total: float) -> str:
    lines = [
        "| Airflow | Python | result | Airflow installed from PyPI | common-compat | pandas | numpy "
        "| pyarrow | msal | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    cases = {c.name: c for c in CASES}
    for r in results:
        v = r.versions
        as_of = cases[r.case].as_of if r.case in cases else None
        source = f"as of {as_of[:10]} (its constraints)" if as_of else "latest, unconstrained"
        label = r.airflow + (" (lowest declared floors)" if r.case == "floors" else "")
        status = "passed" if r.ok else f"**failed** at {r.failed_step}"
        lines.append(
            f"| {label} | {r.python} | {status} | {source} "
            f"| {v.get('apache-airflow-providers-common-compat', '-')} "
            f"| {v.get('pandas', '-')} | {v.get('numpy', '-')} | {v.get('pyarrow', '-')} "
            f"| {v.get('msal', '-')} | {r.seconds / 60:.1f} |"
        )
    lines.append("")
    lines.append(
        f"Measured by `.ci/compat.py` on {time.strftime('%Y-%m-%d')}: {len(results)} case(s), "
        f"{sum(r.ok for r in results)} passed, {total / 60:.1f} minutes."
    )
    return "\n".join(lines) + "\n"


TABLE_START, TABLE_END = "<!-- compat-table:start -->", "<!-- compat-table:end -->"


def update_readme(text: str) -> None:
    readme = REPO / "README.md"
    content = readme.read_text()
    head, rest = content.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    readme.write_text(f"{head}{TABLE_START}\n{text}{TABLE_END}{tail}")


def build_wheel(work: Path) -> Path:
    out = work / "dist"
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(REPO)], check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    return next(out.glob("*.whl"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument(
        "--matrix",
        choices=["full", "quick"],
        default="full",
        help="full (CI): every line on every Python it supports; quick: one Python per line",
    )
    parser.add_argument("--work", type=Path, default=REPO / "artifacts" / "compat")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args(argv)

    cases = [c for c in CASES if not args.cases or c.name in args.cases.split(",")]
    if args.matrix == "full":
        cases = [Case(**{**c.__dict__, "python": p}) for c in cases for p in c.pythons]
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    wheel = build_wheel(args.work)
    print(f"compat: {wheel.name}, {len(cases)} case(s), work in {args.work}", flush=True)
    results = []
    with EmulatorProcess(args.work / "emulator", processing_delay=1.0) as emulator:
        for case in cases:
            print(f"compat: Airflow {case.airflow} ({case.name}) on Python {case.python} ...", flush=True)
            result = run_case(case, wheel, args.work, emulator)
            results.append(result)
            verdict = "passed" if result.ok else f"FAILED at {result.failed_step}: {result.error}"
            print(f"compat:   {verdict} in {result.seconds:.0f} s {result.steps}", flush=True)
    total = time.monotonic() - started
    (args.work / "results.json").write_text(json.dumps([r.__dict__ for r in results], indent=2))
    text = table(results, total)
    (args.work / "support-table.md").write_text(text)
    print(text)
    if args.readme:
        update_readme(text)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
