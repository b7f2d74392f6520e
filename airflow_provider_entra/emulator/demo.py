"""``make demo``: the bundled HR sample provisioned end to end through Airflow, against the local emulator.

Run from a clone of the repository (``python -m airflow_provider_entra.emulator.demo``, which ``make demo``
does after installing). It

1. makes ``.demo/`` (an Airflow home with a SQLite metadata DB; the DAGs folder is the repository's ``dags/``)
   and migrates the DB (``airflow db migrate``);
2. starts the Entra emulator in the background and points the ``entra_default`` and ``entra_admin``
   connections at it (``AIRFLOW_CONN_*`` environment variables);
3. runs ``airflow dags test entra_hr_provisioning`` on ``dags/data/hr_employees.csv``, then
   ``entra_admin_accounts`` (admin accounts for privileged staff), then ``entra_hr_provisioning`` again on the
   next day's export (joiners, movers, leavers): the second run sends only the changes;
4. prints each run's summary (from its ``run-summary.json``) and where the reports are; stops the emulator.

Everything it writes stays in ``.demo/`` (git-ignored); each demo starts from scratch. The exit status is
non-zero when any step fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_provider_entra.emulator.process import EmulatorProcess

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DEMO = REPO / ".demo"
HR_DAG = "entra_hr_provisioning"
ADMIN_DAG = "entra_admin_accounts"
#: Seconds the emulator waits before processing an upload (Microsoft: minutes; here the demo stays short).
PROCESSING_DELAY = 1.0
#: The demo's verification polls often and waits briefly for follow-up log entries.
FAST_VERIFY = {"verify_poke_interval": 2, "verify_settle_seconds": 5, "verify_timeout_minutes": 5}
#: A step taking longer than this is stuck.
STEP_TIMEOUT = 600


class DemoError(RuntimeError):
    """A demo step failed; the message says which and where its log is."""


def _say(text: str = "") -> None:
    print(text, flush=True)


def _environment(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONWARNINGS": "ignore",
        }
    )
    return env


def _airflow(args: Sequence[str], env: Mapping[str, str], log: Path) -> None:
    """Run the Airflow CLI (the one installed beside this Python), output to ``log``; raise on failure."""
    command = [sys.executable, "-m", "airflow", *args]
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as out:
        try:
            done = subprocess.run(
                command,
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=STEP_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DemoError(f"`airflow {' '.join(args[:3])}` took over {STEP_TIMEOUT} s; log: {log}") from exc
    if done.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-40:])
        raise DemoError(f"`airflow {' '.join(args[:3])}` exited with {done.returncode}; log: {log}\n{tail}")
    _say(f"   ok in {time.monotonic() - started:.0f} s (log: {log.relative_to(REPO)})")


def _run_dag(dag_id: str, conf: Mapping[str, Any], env: Mapping[str, str], log: Path) -> None:
    _airflow(["dags", "test", dag_id, "-c", json.dumps(dict(conf))], env, log)


def _latest_summary(staging: Path, dag_id: str, seen: set[Path]) -> tuple[Path, dict[str, Any]]:
    """The ``run-summary.json`` a run just wrote (the one not seen before)."""
    found = sorted(set((staging / dag_id).glob("*/run-summary.json")) - seen, key=lambda p: p.stat().st_mtime)
    if not found:
        raise DemoError(f"{dag_id} wrote no run-summary.json under {staging / dag_id}")
    seen.add(found[-1])
    return found[-1], json.loads(found[-1].read_text(encoding="utf-8"))


def _local(path: str | None) -> str:
    if not path:
        return "-"
    text = str(path).removeprefix("file://")
    try:
        return str(Path(text).relative_to(REPO))
    except ValueError:
        return text


def _print_summary(title: str, summary: Mapping[str, Any], path: Path) -> None:
    changes = summary.get("changes") or {}
    outcomes = summary.get("outcomes") or {}
    files = summary.get("files") or {}
    _say(f"\n== {title} ==")
    _say(f"   HR rows read        {summary.get('source', {}).get('rows', '-')}")
    transform = summary.get("transform") or {}
    if transform:
        _say(f"   quarantined rows    {transform.get('quarantined', 0)}")
    sent_kinds = ", ".join(f"{k} {v}" for k, v in changes.items() if v and k != "unchanged")
    _say(f"   changes             {sent_kinds or 'none'}; unchanged {changes.get('unchanged', 0)}")
    _say(
        f"   records sent        {summary.get('records_sent', 0)} in {summary.get('requests', 0)} request(s)"
    )
    _say(f"   outcomes            {', '.join(f'{k} {v}' for k, v in outcomes.items() if v) or 'none'}")
    _say(
        f"   committed           {summary.get('committed', 0)} to the job's ledger "
        f"({summary.get('ledger_active')} active accounts in it)"
    )
    _say(f"   report              {_local(files.get('report_html'))}")
    _say(f"   outcomes CSV        {_local(files.get('report_csv'))}")
    _say(f"   quarantine          {_local(files.get('quarantine'))}")
    _say(f"   run summary         {_local(str(path))}")


def _check(summary: Mapping[str, Any], title: str) -> None:
    outcomes = summary.get("outcomes") or {}
    bad = int(outcomes.get("failure", 0)) + int(outcomes.get("missing", 0))
    if summary.get("status") != "done" or bad:
        raise DemoError(f"{title}: status {summary.get('status')}, {bad} record(s) failed or missing")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return the process exit status."""
    del argv
    if not (DAGS / f"{HR_DAG}.py").exists():
        _say(f"The demo runs from a clone of the repository: {DAGS / (HR_DAG + '.py')} is missing.")
        return 2
    started = time.monotonic()
    shutil.rmtree(DEMO, ignore_errors=True)
    home, staging, logs = DEMO / "airflow-home", DEMO / "staging", DEMO / "logs"
    for folder in (home, staging, logs):
        folder.mkdir(parents=True)
    env = _environment(home)
    emulator = EmulatorProcess(DEMO / "emulator", processing_delay=PROCESSING_DELAY)
    try:
        _say("1. Airflow metadata DB (SQLite) in .demo/airflow-home")
        _airflow(["db", "migrate"], env, logs / "db-migrate.log")

        _say("2. Entra emulator (HTTPS on loopback)")
        emulator.start()
        env["AIRFLOW_CONN_ENTRA_DEFAULT"] = json.dumps(emulator.info["airflow_conn"])
        env["AIRFLOW_CONN_ENTRA_ADMIN"] = json.dumps(emulator.info["apps"]["admin"]["airflow_conn"])
        _say(f"   {emulator.info['graph_endpoint']} (job {emulator.info['job_id']})")

        seen: set[Path] = set()
        conf = {"staging_path": str(staging), **FAST_VERIFY}
        _say(f"3. airflow dags test {HR_DAG}: day one, dags/data/hr_employees.csv")
        _run_dag(HR_DAG, {**conf, "hr_path": str(DAGS / "data" / "hr_employees.csv")}, env, logs / "day1.log")
        day1_path, day1 = _latest_summary(staging, HR_DAG, seen)
        _check(day1, "day one")
        users_day1 = len(emulator.users())

        _say(f"4. airflow dags test {ADMIN_DAG}: admin accounts for privileged staff (job 'admin')")
        _run_dag(ADMIN_DAG, conf, env, logs / "admin.log")
        admin_path, admin = _latest_summary(staging, ADMIN_DAG, set())
        _check(admin, "admin accounts")

        _say(f"5. airflow dags test {HR_DAG}: day two, dags/data/hr_employees_next_day.csv")
        next_day = str(DAGS / "data" / "hr_employees_next_day.csv")
        _run_dag(HR_DAG, {**conf, "hr_path": next_day}, env, logs / "day2.log")
        day2_path, day2 = _latest_summary(staging, HR_DAG, seen)
        _check(day2, "day two")

        _print_summary("Day one: first run, everybody is a joiner", day1, day1_path)
        _say(f"   Entra directory     {users_day1} users")
        _print_summary("Admin accounts", admin, admin_path)
        _print_summary("Day two: only the changes are sent", day2, day2_path)
        users = emulator.users()
        disabled = sum(1 for u in users if not u.get("accountEnabled"))
        _say(f"   Entra directory     {len(users)} users ({disabled} disabled)")
        stats = emulator.stats()
        _say(
            f"\nEmulator: {stats['calls'].get('bulkUpload', 0)} bulkUpload calls, "
            f"{stats['operations_received']} records received, {stats['log_entries']} log entries."
        )
        _say(f"Demo passed in {time.monotonic() - started:.0f} s. Open the reports above in a browser.")
        return 0
    except DemoError as exc:
        _say(f"\nDEMO FAILED: {exc}")
        return 1
    finally:
        emulator.stop()


if __name__ == "__main__":
    sys.exit(main())
