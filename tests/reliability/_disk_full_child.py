"""Run one write-heavy step with a small file-size limit (RLIMIT_FSIZE), as on a disk that fills up mid-write.

Usage: ``python _disk_full_child.py <limit bytes> <scenario> <json args>``. The write that crosses the limit
fails with ``OSError(EFBIG)`` (SIGXFSZ is ignored), partway through the file. Prints ``ok`` or
``error: <type>: <message>`` on the last line; exits 0 or 3.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _ledger(args: dict[str, Any]) -> None:
    from airflow_provider_entra.provisioning.ledger import commit

    n = int(args["rows"])
    ids = np.arange(n).astype(str)
    sent = pd.DataFrame(
        {
            "externalId": ids,
            "record_hash": np.char.add("hash-of-record-", ids),
            "userName": np.char.add(np.char.add("user", ids), "@contoso.com"),
            "active": True,
        }
    )
    commit(args["path"], sent, pd.DataFrame({"external_id": ids, "status": "success"}), run_id="disk-full")


def _transform(args: dict[str, Any]) -> None:
    from airflow_provider_entra.provisioning import pipeline

    run = Path(args["run"])
    pipeline.transform(
        run / pipeline.RAW_NAME,
        args["mapping"],
        run,
        upn_domain="contoso.com",
        ledger=run / "missing-ledger",
    )


def _report(args: dict[str, Any]) -> None:
    from airflow_provider_entra.provisioning.reconcile import reconcile
    from airflow_provider_entra.provisioning.report import write_report

    ids = [str(i) for i in range(int(args["rows"]))]
    write_report(reconcile([], ids), args["out"], run_id="manual__disk_full")


def _upload(args: dict[str, Any]) -> None:
    from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator

    EntraBulkUploadOperator(
        task_id="upload",
        input_path=args["input"],
        mapping=args["mapping"],
        output_dir=args["out"],
        bulk_id_prefix="diskfull-",
    ).execute({"run_id": "manual__disk_full"})


SCENARIOS = {"ledger": _ledger, "transform": _transform, "report": _report, "upload": _upload}


def main() -> int:
    limit, scenario, args = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    step = SCENARIOS[scenario]
    # Imports first (they may write caches), then the limit.
    import airflow_provider_entra.operators.bulk_upload  # noqa: F401
    import airflow_provider_entra.provisioning.pipeline  # noqa: F401

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        step(args)
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}")
        return 3
    print("ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
