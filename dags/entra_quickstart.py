"""Start here: provision the bundled HR sample into Entra ID and prove every record from the logs.

1. ``preflight``: is the provisioning job ready? (paused or quarantined: stop, saying what to do)
2. ``prepare`` + ``upload``: the export at ``hr_path`` (the 300-person sample ``data/hr_employees.csv``)
   is validated, bad rows quarantined, UPNs derived and each person mapped to SCIM with ``mapping_path``
   (``data/hr_mapping.yaml``, docs/mapping.md); then sent with bulkUpload, managers first.
3. ``verify``: wait in the triggerer for every record's outcome in the provisioning logs; ``report.html`` in
   ``<staging root>/entra_quickstart/<run id>/`` tells what happened to each person.

Set up an ``entra`` connection named ``entra_default`` (docs/connection.md; ``make demo`` runs this against
a local emulator), then trigger. This sends everyone every run; to send only the changes, with the deletion
guard and the ledger of what Entra holds, schedule ``entra_hr_provisioning``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator
from airflow_provider_entra.operators.job_health import EntraJobHealthOperator
from airflow_provider_entra.params import VERIFY, VERIFY_FROM_PARAMS, dag_params
from airflow_provider_entra.sensors.provisioning_logs import EntraProvisioningLogSensor
from airflow_provider_entra.staging import map_hr_export

DATA = Path(__file__).parent / "data"
SAMPLE = {"hr_path": str(DATA / "hr_employees.csv"), "mapping_path": str(DATA / "hr_mapping.yaml")}


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["entra"],
    doc_md=__doc__,
    params=dag_params("hr_path", "mapping_path", "upn_domain", "dry_run", "staging_path", *VERIFY, **SAMPLE),
)
def entra_quickstart() -> None:
    @task(multiple_outputs=True)
    def prepare(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
        """Check the Params; map the export to SCIM records (``mapped.parquet``), bad rows quarantined."""
        return map_hr_export(params, "entra_quickstart", run_id, dag_data_folder=DATA)

    prepared = prepare()
    upload = EntraBulkUploadOperator(
        task_id="upload",
        pool="entra_api",  # one tenant, one budget: docs/deployment.md
        input_path=prepared["mapped_path"],
        input_kind="mapped",
        mapping="{{ params.mapping_path }}",
        output_dir=prepared["run_dir"],
        build_only_param="dry_run",
    )
    verify = EntraProvisioningLogSensor(
        task_id="verify",
        pool="entra_api",  # one tenant, one budget: docs/deployment.md
        upload_summary=upload.output,
        report_dir=prepared["run_dir"],
        deferrable=True,  # the wait is in the triggerer, not a worker slot
        **VERIFY_FROM_PARAMS,
    )
    EntraJobHealthOperator(task_id="preflight") >> prepared >> upload >> verify


entra_quickstart()
