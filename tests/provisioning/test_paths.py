"""provisioning.paths: the staging layout, the run folders' names, the HR snapshot Asset."""

from __future__ import annotations

import pytest

from airflow_provider_entra.provisioning import paths


def test_run_ids_become_folder_names_and_staging_root_precedence(tmp_path):
    assert paths.sanitise_run_id("manual__2026-03-02T01:00:00+00:00") == "manual__2026-03-02T01_00_00_00_00"
    assert paths.sanitise_run_id("../../etc") == "etc"
    with pytest.raises(ValueError):
        paths.sanitise_run_id("///")
    assert paths.staging_root("s3://b/p/", "file:///var", tmp_path) == "s3://b/p"
    assert paths.staging_root(" ", "file:///var/x", tmp_path) == "file:///var/x"
    assert paths.staging_root(None, None, tmp_path) == f"file://{tmp_path.resolve()}/entra-staging"
    assert paths.run_dir("s3://b/p", "d", "r:1") == "s3://b/p/d/r_1"
    assert paths.snapshot_dir(str(tmp_path), "d") == str(tmp_path / "d" / "snapshot")
    assert paths.run_dir(tmp_path, "d", "r") == tmp_path / "d" / "r"


def test_first_release_snapshots_are_adopted_by_the_dags_of_their_job():
    root = "s3://b/entra"
    hr = "s3://b/entra/entra_hr_provisioning/snapshot/hr_snapshot.parquet"
    assert paths.first_release_snapshot(root, "entra_hr_provisioning") == hr
    assert paths.first_release_snapshot(root, "entra_on_demand") == hr  # the same job
    admin = paths.first_release_snapshot(root, "entra_admin_accounts")
    assert admin == "s3://b/entra/entra_admin_accounts/snapshot/admin_snapshot.parquet"
    assert paths.first_release_snapshot(root, "my_own_dag") is None


def test_the_hr_snapshot_asset_does_not_depend_on_the_staging_root():
    """The HR DAG publishes, and the admin DAG (on Airflow 2.11: by URI) follows, one fixed URI."""
    assert paths.HR_SNAPSHOT_ASSET_URI == "entra-staging://entra_hr_provisioning/snapshot/hr_current.parquet"
    assert paths.HR_SNAPSHOT_ASSET_NAME == "entra_hr_snapshot"
