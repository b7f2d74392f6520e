"""Run one EntraBulkUploadOperator in its own process (killed with SIGKILL by the resume test).

Usage: ``python _upload_child.py <input.parquet> <mapping.json> <run_id>``; the connection comes from
``AIRFLOW_CONN_ENTRA_DEFAULT`` in the environment. Prints the summary as JSON on success.
"""

from __future__ import annotations

import json
import sys

from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator


def main() -> None:
    input_path, mapping_path, run_id = sys.argv[1:4]
    with open(mapping_path) as handle:
        mapping = json.load(handle)
    operator = EntraBulkUploadOperator(task_id="upload", input_path=input_path, mapping=mapping)
    summary = operator.execute({"run_id": run_id})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
