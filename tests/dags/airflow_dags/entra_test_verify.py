"""Test-only DAGs: upload a staged HR file, then verify every record in the provisioning logs.

``entra_test_verify`` waits in the triggerer (deferrable sensor); ``entra_test_verify_poke`` pokes from the
worker; ``entra_test_verify_reschedule`` frees the worker between pokes (a new task run each time). All poll
every second with 100-entry pages so a test sees deferral, paging and the report quickly.
Run by ``tests/sensors/test_provisioning_logs.py`` with ``dag.test(run_conf={...})``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator
from airflow_provider_entra.sensors.provisioning_logs import EntraProvisioningLogSensor

for dag_id, deferrable, mode in (
    ("entra_test_verify", True, "poke"),
    ("entra_test_verify_poke", False, "poke"),
    ("entra_test_verify_reschedule", False, "reschedule"),
):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        render_template_as_native_obj=True,
        params={
            "input_path": Param("", type="string"),
            "mapping": Param(None, type=["null", "object", "string"]),
        },
        tags=["entra", "test"],
    ) as dag:
        upload = EntraBulkUploadOperator(
            task_id="upload", input_path="{{ params.input_path }}", mapping="{{ params.mapping }}"
        )
        EntraProvisioningLogSensor(
            task_id="verify",
            upload_summary=upload.output,
            deferrable=deferrable,
            mode=mode,
            poke_interval=1,
            timeout=120,
            page_size=100,
            settle_seconds=1,
            max_failures=0,
        )
    globals()[dag_id] = dag
