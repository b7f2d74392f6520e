"""A full ``entra_hr_provisioning`` run leaves no secret in logs, XCom, staged files or reports.

The run is driven with ``dag.test()`` against the emulator twice: once with a client secret, once with a
certificate whose private key is inline in the connection. Everything the runs produced is then searched for
the client secret, every line of the private key's PEM body, the access tokens the emulator issued (one is
fetched through the hook to know its shape), and anything that looks like a JWT at all:

* every log record (caplog at DEBUG, all loggers), and stdout/stderr at file-descriptor level;
* task log files under ``$AIRFLOW_HOME/logs``;
* every XCom value of the runs, and the rendered template fields, read from the metadata database;
* every file in the runs' staging folders (Parquet decoded, so compression cannot hide a value).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pandas as pd
import pytest
from airflow.utils.state import DagRunState

from airflow_provider_entra.hooks.entra import EntraHook, clear_msal_apps

DAG_ID = "entra_hr_provisioning"
FAST = {"verify_poke_interval": 1, "verify_settle_seconds": 2, "verify_timeout_minutes": 2}
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def run_dag(staging: Path, **conf):
    from airflow.dag_processing.dagbag import DagBag

    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    bag = DagBag(dag_folder=str(folder / f"{DAG_ID}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(DAG_ID).test(run_conf={"staging_path": str(staging), **FAST, **conf})


def database_text(run_ids: list[str]) -> str:
    """XCom values and rendered template fields of the runs, as text."""
    from airflow.utils.session import create_session
    from sqlalchemy import bindparam, text

    parts = []
    with create_session() as session:
        for table in ("xcom", "rendered_task_instance_fields"):
            rows = session.execute(
                text(f"SELECT * FROM {table} WHERE run_id IN :ids").bindparams(  # noqa: S608
                    bindparam("ids", expanding=True)
                ),
                {"ids": run_ids},
            ).fetchall()
            assert table != "xcom" or rows, "the runs pushed no XCom at all?"
            parts += [repr(tuple(row)) for row in rows]
    return "\n".join(parts)


def staged_text(folder: Path) -> str:
    parts = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            parts.append(pd.read_parquet(path).to_csv(index=False))
        else:
            parts.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(parts)


def log_files_text(home: Path) -> str:
    logs = home / "logs"
    if not logs.exists():
        return ""
    return "\n".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file())


def pem_body_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


@pytest.mark.slow
def test_full_demo_run_leaks_no_secret_key_or_token(
    airflow_db, entra_env, monkeypatch, tmp_path, caplog, capfd
):
    emulator = entra_env
    caplog.set_level(logging.DEBUG)
    info = emulator.info
    secret = info["client_secret"]
    key_pem = Path(info["certificate"]["private_key_path"]).read_text()
    cert_pem = Path(info["certificate"]["certificate_path"]).read_text()
    known_token = EntraHook().get_token()
    assert JWT.fullmatch(known_token), "the emulator's tokens are JWTs"

    staging = tmp_path / "staging"
    first = run_dag(staging)
    assert first.state == DagRunState.SUCCESS

    # The same run with a certificate: the private key inline in the connection's extra.
    certificate_conn = json.loads(json.dumps(info["airflow_conn"]))
    certificate_conn["login"] = info["certificate"]["client_id"]
    certificate_conn.pop("password")
    certificate_conn["extra"].update({"certificate": cert_pem, "private_key": key_pem})
    monkeypatch.setenv("AIRFLOW_CONN_ENTRA_DEFAULT", json.dumps(certificate_conn))
    clear_msal_apps()
    changed = pd.read_csv(
        Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "data" / "hr_employees_next_day.csv"
    )
    export = tmp_path / "next_day.csv"
    changed.to_csv(export, index=False)
    second = run_dag(staging, hr_path=str(export))
    assert second.state == DagRunState.SUCCESS
    assert emulator.stats()["tokens_issued"]["default"] >= 2  # both credentials were used

    out, err = capfd.readouterr()
    haystacks = {
        "log records": "\n".join(
            f"{r.name} {r.levelname} {r.getMessage()} {r.args!r} {getattr(r, 'event', '')}"
            for r in caplog.records
        ),
        "stdout/stderr": out + err,
        "task log files": log_files_text(Path(os.environ["AIRFLOW_HOME"])),
        "XCom and rendered fields": database_text([first.run_id, second.run_id]),
        "staged files and reports": staged_text(staging),
    }
    print({where: len(text) for where, text in haystacks.items()})
    # The places searched really hold the runs' output.
    assert len(haystacks["staged files and reports"]) > 10_000
    assert info["client_id"] in haystacks["log records"]  # DEBUG records of the hook were captured
    assert "records_sent" in haystacks["XCom and rendered fields"]
    assert "report.html" in {p.name for p in staging.rglob("*")}
    needles = {"client secret": secret, "access token": known_token}
    needles.update({f"private key line {i}": line for i, line in enumerate(pem_body_lines(key_pem))})
    for where, text in haystacks.items():
        for what, needle in needles.items():
            assert needle not in text, f"{what} found in {where}"
        found = JWT.findall(text)
        assert found == [], f"JWT-looking string in {where}: {found[0][:20]}..."
