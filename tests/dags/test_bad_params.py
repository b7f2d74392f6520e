"""Unusable Params fail the run at once with a message that names the Param, and echo no file content."""

from __future__ import annotations

import pytest
from airflow.utils.state import DagRunState, TaskInstanceState

SECRET = "db.internal:5432:airflow:airflow:s3cr3t-passw0rd"


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("hr_path", "CREDENTIALS", "Param hr_path: "),
        ("hr_path", "FOLDER", "Param hr_path: "),
        ("mapping_path", "MISSING", "Param mapping_path: "),
        ("upn_domain", "{}", "Param upn_domain: '{}' is not a domain name"),
    ],
)
def test_a_bad_param_fails_extract_naming_it(dags, entra_env, tmp_path, caplog, capfd, param, value, message):
    credentials = tmp_path / ".pgpass"
    credentials.write_text(SECRET + "\nsecond line\n")
    value = {
        "CREDENTIALS": str(credentials),
        "FOLDER": str(tmp_path),
        "MISSING": str(tmp_path / "no.yaml"),
    }.get(value, value)
    run = dags.run("entra_hr_provisioning", tmp_path / "staging", **{param: value})
    assert run.state == DagRunState.FAILED
    states = dags.states(run)
    assert states["extract"] == TaskInstanceState.FAILED  # failed, not up for retry
    assert entra_env.stats()["calls"].get("bulkUpload", 0) == 0
    captured = capfd.readouterr()
    text = caplog.text + captured.out + captured.err
    assert message in text
    assert SECRET not in text and "second line" not in text
