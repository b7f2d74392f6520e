"""OpenLineage datasets of an upload, as plain pairs (no OpenLineage needed)."""

from __future__ import annotations

import pytest

from airflow_provider_entra.upload.lineage import file_dataset, job_dataset


def test_files_follow_openlineage_naming(tmp_path):
    path = tmp_path / "delta.parquet"
    assert file_dataset(str(path)) == ("file", str(path))
    assert file_dataset(f"file://{path}") == ("file", str(path))
    assert file_dataset("s3://hr-exports/2026/03/hr.parquet") == ("s3://hr-exports", "2026/03/hr.parquet")
    assert file_dataset("abfs://hr@account.dfs.core.windows.net/x.csv") == (
        "abfs://hr@account.dfs.core.windows.net",
        "x.csv",
    )


def test_the_job_is_named_by_tenant_or_host():
    assert job_dataset("API2AAD.t.j", tenant_id="t", host="graph.microsoft.com") == (
        "entra://t",
        "API2AAD.t.j",
    )
    assert job_dataset("API2AAD.t.j", host="127.0.0.1:8443") == ("entra://127.0.0.1:8443", "API2AAD.t.j")
    with pytest.raises(ValueError, match="tenant id or the Graph host"):
        job_dataset("API2AAD.t.j")
