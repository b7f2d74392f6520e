"""The release artefacts and the README's install command, checked the way a user would meet them.

``python -m build`` makes the wheel and sdist once per session; they must hold the LICENSE and the example
DAGs with their data, and pass ``twine check``. Then pip, against PyPI, plans the README's install into a
venv that already runs Airflow 3.1 (``--dry-run --report``): Airflow must stay the version it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_DAGS = sorted(path.name for path in (REPO_ROOT / "dags").glob("entra_*.py"))
EXAMPLE_DATA = sorted(
    path.relative_to(REPO_ROOT / "dags" / "data").as_posix()
    for path in (REPO_ROOT / "dags" / "data").rglob("*")
    if path.is_file() and "__pycache__" not in path.parts
)
# The Airflow a user already runs; the venv holding it is kept between sessions (pytest's tmp root).
USER_AIRFLOW = "3.1.8"
AIRFLOW_DISTRIBUTIONS = {"apache-airflow", "apache-airflow-core", "apache-airflow-task-sdk"}

pytestmark = pytest.mark.install


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO_ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return {"wheel": next(out.glob("*.whl")), "sdist": next(out.glob("*.tar.gz"))}


def _git_files(prefix: str) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", prefix], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    return sorted(name for name in listed if (REPO_ROOT / name).is_file())


def test_wheel_holds_license_package_and_example_dags(dist: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(dist["wheel"]).namelist())
    dist_info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
    assert f"{dist_info}/licenses/LICENSE" in names
    # Every tracked module of the package is in the wheel (the package list in pyproject.toml is complete).
    missing = [name for name in _git_files("airflow_provider_entra") if name not in names]
    assert missing == []
    for dag in EXAMPLE_DAGS:
        assert f"airflow_provider_entra/example_dags/{dag}" in names
    for data in EXAMPLE_DATA:
        assert f"airflow_provider_entra/example_dags/data/{data}" in names
    assert {"hr_mapping.yaml", "admin_mapping.yaml", "hr_employees.csv"} <= set(EXAMPLE_DATA)
    assert {"examples/workday_raas.csv", "examples/workday_raas_mapping.yaml"} <= set(EXAMPLE_DATA)
    assert "airflow_provider_entra/mapping/mapping.schema.json" in names

    metadata = zipfile.ZipFile(dist["wheel"]).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Requires-Python: >=3.11" in metadata
    assert "Project-URL: Source, " in metadata
    assert "Classifier: Programming Language :: Python :: 3.13" in metadata


def test_sdist_holds_license_and_example_dags(dist: dict[str, Path]) -> None:
    with tarfile.open(dist["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml"} <= names
    assert {f"dags/{dag}" for dag in EXAMPLE_DAGS} <= names
    assert {f"dags/data/{data}" for data in EXAMPLE_DATA} <= names


def test_twine_check_passes(dist: dict[str, Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dist["wheel"]), str(dist["sdist"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2


def test_installed_wheel_copies_example_dags(dist: dict[str, Path], tmp_path: Path) -> None:
    """``python -m airflow_provider_entra.examples copy`` works from the wheel's files alone."""
    site = tmp_path / "site"
    zipfile.ZipFile(dist["wheel"]).extractall(site)  # noqa: S202 (our own wheel)
    dags = tmp_path / "dags"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from airflow_provider_entra.examples import main; sys.exit(main(['copy', sys.argv[2]]))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code, str(site), str(dags)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in dags.glob("*.py")) == EXAMPLE_DAGS
    copied = (dags / "data").rglob("*")
    assert sorted(p.relative_to(dags / "data").as_posix() for p in copied if p.is_file()) == EXAMPLE_DATA
    assert (dags / "data" / "hr_mapping.yaml").read_bytes() == (
        REPO_ROOT / "dags" / "data" / "hr_mapping.yaml"
    ).read_bytes()


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with ``apache-airflow==USER_AIRFLOW`` installed from PyPI, reused across sessions."""
    venv = tmp_path_factory.getbasetemp().parent / f"entra-user-airflow-{USER_AIRFLOW}-py311"
    stamp = venv / ".installed"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=120)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             f"apache-airflow=={USER_AIRFLOW}"],
            check=True,
            timeout=900,
        )  # fmt: skip
        stamp.touch()
    return venv


def _planned_installs(venv: Path, *requirements: str, report: Path) -> dict[str, str]:
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--dry-run", "--report", str(report), *requirements],
        check=True,
        timeout=600,
    )  # fmt: skip
    planned = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in planned}


def test_readme_install_keeps_the_users_airflow(
    dist: dict[str, Path], user_venv: Path, tmp_path: Path
) -> None:
    # The README: pip install airflow-provider-entra "apache-airflow==$(airflow version)"
    version = subprocess.run(
        [str(user_venv / "bin" / "airflow"), "version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={"AIRFLOW_HOME": str(tmp_path / "airflow-home"), "PATH": "/usr/bin:/bin"},
    ).stdout.split()[-1]
    assert version == USER_AIRFLOW
    readme = (REPO_ROOT / "README.md").read_text()
    assert 'pip install airflow-provider-entra "apache-airflow==$(airflow version)"' in readme

    planned = _planned_installs(
        user_venv, str(dist["wheel"]), f"apache-airflow=={version}", report=tmp_path / "readme.json"
    )
    assert "airflow-provider-entra" in planned
    assert AIRFLOW_DISTRIBUTIONS.isdisjoint(planned), {name: planned[name] for name in AIRFLOW_DISTRIBUTIONS}

    # The check can fail: this repository's development constraints would move that user to our Airflow.
    pinned = _planned_installs(
        user_venv,
        str(dist["wheel"]),
        "--constraint",
        str(REPO_ROOT / "constraints.txt"),
        report=tmp_path / "constraints.json",
    )
    assert pinned.get("apache-airflow") not in (None, USER_AIRFLOW)
