"""Test-only DAG: preflight the job, then upload a staged HR file (paths and options come from conf).

Run by ``tests/operators/test_bulk_upload.py`` with ``dag.test(run_conf={...})``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator
from airflow_provider_entra.operators.job_health import EntraJobHealthOperator

with DAG(
    dag_id="entra_test_upload",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "input_path": Param("", type="string"),
        "mapping": Param(None, type=["null", "object", "string"]),
        "output_dir": Param(None, type=["null", "string"]),
        "dry_run": Param(False, type="boolean"),
    },
    tags=["entra", "test"],
) as dag:
    preflight = EntraJobHealthOperator(task_id="preflight")
    upload = EntraBulkUploadOperator(
        task_id="upload",
        input_path="{{ params.input_path }}",
        mapping="{{ params.mapping }}",
        output_dir="{{ params.output_dir }}",
        build_only_param="dry_run",
    )
    preflight >> upload
