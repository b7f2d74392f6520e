"""Run one EntraBulkUploadOperator in its own process, so a test can SIGKILL it mid-run.

Usage: ``python _upload_child.py <input.parquet> <mapping.json> <output_dir>``; the connection comes from
``AIRFLOW_CONN_ENTRA_DEFAULT``. Prints the operator's summary as JSON on the last line when it finishes.
"""

from __future__ import annotations

import json
import sys

from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator


def main() -> None:
    input_path, mapping_path, output_dir = sys.argv[1:4]
    with open(mapping_path) as handle:
        mapping = json.load(handle)
    operator = EntraBulkUploadOperator(
        task_id="upload", input_path=input_path, mapping=mapping, output_dir=output_dir
    )
    summary = operator.execute({"run_id": "scheduled__2026-03-02T01:00:00+00:00"})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
