"""Test-only DAGs: upload a staged HR file, then verify every record in the provisioning logs.

``entra_test_verify`` waits in the triggerer (deferrable sensor); ``entra_test_verify_poke`` pokes from the
worker; ``entra_test_verify_reschedule`` frees the worker between pokes (a new task run each time). All poll
every second with 100-entry pages so a test sees deferral, paging and the report quickly.
``entra_test_verify_params`` (deferrable) and ``entra_test_verify_params_reschedule`` take their timing from
the run's Params instead: the sensor's own ``timeout`` is 0 (it would report every record missing at once)
and its ``poke_interval``/``settle_seconds`` differ from what the tests pass in ``run_conf``.
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

for dag_id, deferrable, mode in (
    ("entra_test_verify_params", True, "poke"),
    ("entra_test_verify_params_reschedule", False, "reschedule"),
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
            "verify_poke_interval": Param(1, type="number", minimum=0),
            "verify_settle_seconds": Param(1, type="number", minimum=0),
            "verify_timeout_minutes": Param(2, type="number", minimum=0),
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
            poke_interval=2,
            timeout=0,
            settle_seconds=0,
            page_size=100,
            max_failures=0,
            poke_interval_param="verify_poke_interval",
            settle_seconds_param="verify_settle_seconds",
            timeout_minutes_param="verify_timeout_minutes",
        )
    globals()[dag_id] = dag
