"""A run's inputs are checked before anything is read: errors name the Param, never echo a file's content."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_entra.provisioning.inputs import (
    InputError,
    check_domain,
    check_inputs,
    check_source_path,
    parse_roots,
)
from airflow_provider_entra.provisioning.validate import validate_hr

SECRET = "db.internal:5432:airflow:airflow:s3cr3t-passw0rd"


def test_sources_outside_the_roots_are_refused_without_reading_them(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "hr.csv").write_text("WorkerID\n1\n")
    secret = tmp_path / ".pgpass"
    secret.write_text(SECRET + "\n")
    check_source_path(exports / "hr.csv", [exports])
    with pytest.raises(InputError, match="Param hr_path:") as refused:
        check_source_path(secret, [exports])
    assert SECRET not in str(refused.value) and "entra_hr_source_roots" in str(refused.value)
    # ``..`` and symlinks are followed before comparing.
    with pytest.raises(InputError):
        check_source_path(exports / ".." / ".pgpass", [exports])
    link = exports / "hr-link.csv"
    link.symlink_to(secret)
    with pytest.raises(InputError):
        check_source_path(link, [exports])
    # A root is a folder, not a prefix of names: /exports-old is not inside /exports.
    (tmp_path / "exports-old").mkdir()
    with pytest.raises(InputError):
        check_source_path(tmp_path / "exports-old" / "hr.csv", [exports])


def test_the_default_allows_export_files_but_no_credentials(tmp_path: Path) -> None:
    check_source_path(tmp_path / "hr.csv", [], exports_elsewhere=True)
    check_source_path(tmp_path / "hr.TSV", [], exports_elsewhere=True)
    for refused in ("/etc/passwd", tmp_path / "airflow.cfg", tmp_path / ".aws" / "credentials.csv"):
        with pytest.raises(InputError):
            check_source_path(refused, [], exports_elsewhere=True)
    # Object storage: only configured roots.
    check_source_path("memory://bucket/hr/today.csv", ["memory://bucket/hr"])
    with pytest.raises(InputError):
        check_source_path("memory://other/today.csv", ["memory://bucket/hr"])


def test_parse_roots_reads_lists_and_separated_text() -> None:
    assert parse_roots('["/data/hr", "s3://b/hr"]') == ["/data/hr", "s3://b/hr"]
    assert parse_roots("/data/hr, s3://b/hr;\n/x") == ["/data/hr", "s3://b/hr", "/x"]
    assert parse_roots(None) == [] and parse_roots("") == []


def test_each_unusable_param_is_named(tmp_path: Path) -> None:
    export = tmp_path / "hr.csv"
    export.write_text("WorkerID\n1\n")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("attributes: {}\n")
    good = {"hr_path": str(export), "mapping_path": str(mapping), "upn_domain": "contoso.com"}
    check_inputs(good, roots=[tmp_path], file_params={"mapping_path": "attribute mapping"})
    cases = {
        "hr_path": ({"hr_path": str(tmp_path)}, "is a folder"),
        "mapping_path": ({"mapping_path": str(tmp_path / "missing.yaml")}, "does not exist"),
        "upn_domain": ({"upn_domain": "{}"}, "not a domain name"),
    }
    for param, (change, message) in cases.items():
        with pytest.raises(InputError, match=message) as raised:
            check_inputs(
                {**good, **change}, roots=[tmp_path], file_params={"mapping_path": "attribute mapping"}
            )
        assert raised.value.param == param and str(raised.value).startswith(f"Param {param}:")


@pytest.mark.parametrize("domain", ["{}", "{}.com", "contoso", "-x.com", "a@b.com", "contoso.c0m", "", None])
def test_domains_are_checked(domain) -> None:
    with pytest.raises(InputError, match="upn_domain"):
        check_domain(domain)


def test_domains_accepted() -> None:
    assert check_domain(" Contoso.COM ") == "contoso.com"
    assert check_domain("hr.contoso.onmicrosoft.com") == "hr.contoso.onmicrosoft.com"


def test_a_file_that_is_not_an_export_is_not_echoed() -> None:
    """The schema error of a credentials file read as an export names no content."""
    frame = pd.DataFrame(columns=[SECRET])
    with pytest.raises(ValueError, match="do not look like column names") as raised:
        validate_hr(frame)
    assert SECRET not in str(raised.value)
    with pytest.raises(ValueError, match="columns present: EmpNo, GivenName"):
        validate_hr(pd.DataFrame(columns=["EmpNo", "GivenName"]))
