"""``python -m airflow_provider_entra.mapping``: check a mapping (and a sample export) without Airflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from airflow_provider_entra.mapping._schema import json_schema_text

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "dags" / "data"


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_provider_entra.mapping", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )


def _requests(stdout: str) -> list[dict]:
    """The JSON documents printed after the summary lines."""
    decoder = json.JSONDecoder()
    text = stdout[stdout.index("\n{") + 1 :]
    out = []
    while text.strip():
        doc, end = decoder.raw_decode(text)
        out.append(doc)
        text = text[end:].lstrip()
    return out


def test_the_bundled_mapping_on_its_sample() -> None:
    result = _run(
        "check",
        DATA / "hr_mapping.yaml",
        "--sample",
        DATA / "hr_employees.csv",
        "--upn-domain",
        "contoso.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hr_mapping.yaml: a valid mapping (dags/data/hr_employees.csv, Microsoft's CSV2SCIM columns" in (
        result.stdout
    )
    assert "quarantined 0" in result.stdout
    (request,) = _requests(result.stdout)
    assert request["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"]
    first = request["Operations"][0]
    assert first["method"] == "POST" and first["path"] == "/Users"
    assert first["data"]["userName"].endswith("@contoso.com")
    assert first["data"]["externalId"] == first["bulkId"]


def test_requests_zero_prints_counts_only() -> None:
    result = _run("check", DATA / "hr_mapping.yaml", "--sample", DATA / "hr_employees.csv", "--requests", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bulk request(s)" in result.stdout
    assert "{" not in result.stdout


def test_a_misspelt_column_names_the_nearest_one_and_the_line(tmp_path: Path) -> None:
    text = (DATA / "hr_mapping.yaml").read_text(encoding="utf-8")
    broken = text.replace("  title: JobTitle", "  title: JobTitel")
    line = next(i for i, row in enumerate(broken.splitlines(), 1) if "JobTitel" in row)
    mapping = tmp_path / "hr_mapping.yaml"
    mapping.write_text(broken, encoding="utf-8")
    result = _run("check", mapping, "--sample", DATA / "hr_employees.csv")
    assert result.returncode == 1
    assert (
        f"{mapping}:{line}: attributes.title: the export has no column 'JobTitel'; nearest: 'JobTitle'"
        in (result.stdout)
    )
    assert "BulkRequest" not in result.stdout


def test_structure_problems_without_a_sample(tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "source:\n  id: EmpNo\n  frist_name: Given\n  upn: {from: email}\n"
        "attributes:\n  externalId: EmpNo\n  userName: UserPrincipalName\n  active: {constant: true}\n",
        encoding="utf-8",
    )
    result = _run("check", mapping)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{mapping}:3: source.frist_name: unknown key 'frist_name' (did you mean")
    assert lines[1].startswith(f"{mapping}:4: source.upn.from:")
    assert len(lines) == 2


def test_quarantined_sample_rows_are_problems(tmp_path: Path) -> None:
    sample = tmp_path / "export.csv"
    sample.write_text(
        "EmpNo,State,GivenName,Surname\n1,Active,Ann,Lee\n2,Maybe,Bob,Ray\n3,Terminated,Cy,Oh\n",
        encoding="utf-8",
    )
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "source: {id: EmpNo, status: State, first_name: GivenName, last_name: Surname}\n"
        "attributes:\n  externalId: EmpNo\n  userName: UserPrincipalName\n"
        "  active: {expr: 'State == \"Active\"'}\n  name.givenName: GivenName\n",
        encoding="utf-8",
    )
    result = _run("check", mapping, "--sample", sample, "--upn-domain", "contoso.com")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "valid 2, mapped 2, quarantined 1" in result.stdout
    assert "1 x " in result.stdout and "State" in result.stdout
    (request,) = _requests(result.stdout)
    users = {op["data"]["externalId"]: op["data"] for op in request["Operations"]}
    assert users["1"]["userName"] == "ann.lee@contoso.com" and users["1"]["active"] is True
    assert users["3"]["active"] is False


def test_schema_prints_the_shipped_schema() -> None:
    result = _run("schema")
    assert result.returncode == 0
    assert result.stdout == json_schema_text()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert _run().returncode == 2
    assert _run("check").returncode == 2
    assert _run("check", tmp_path / "absent.yaml").returncode == 2
    assert _run("check", DATA / "hr_mapping.yaml", "--sample", tmp_path / "absent.csv").returncode == 2
    assert _run("check", DATA / "hr_mapping.yaml", "--requests", "-1").returncode == 2
