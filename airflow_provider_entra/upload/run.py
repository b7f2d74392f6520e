"""One upload's files in its output folder, and the steps that write them.

:class:`UploadRun` writes, in ``output_dir``:

* ``sent-external-ids.parquet``: every externalId of the run's requests (``externalId``, ``seq``,
  ``stage``, ``accepted_at``: the earliest acceptance of the record in this run, UTC, NaT when not accepted
  or unknown), for the verification; rewritten when sending ends, without the records Graph rejected and,
  when the daily allowance stopped sending early, without the records not sent (they wait for the next
  run: nothing waits for their log entries);
* ``upload-rejected.parquet``: records not sent, with a reason (mapping errors, management cycles,
  self-managers, records Graph rejected); only when there are some;
* ``upload-manifest.jsonl`` and ``upload-refused.jsonl`` (:mod:`~airflow_provider_entra.upload.manifest`);
* when only building: ``dry-run-requests.jsonl`` (every request's bytes, one per line) and
  ``dry-run-summary.json``.

No Airflow: ``out`` is any folder path that joins with ``/`` (a ``pathlib.Path`` or an
``ObjectStoragePath``); files go through :mod:`airflow_provider_entra._fsio`, owner-only on a local disk.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pandas as pd

from airflow_provider_entra._fsio import write_bytes, write_frame
from airflow_provider_entra.upload import manifest as files
from airflow_provider_entra.upload.planning import UploadPlan, stack_rejected
from airflow_provider_entra.upload.progress import Log, Progress
from airflow_provider_entra.upload.sending import (
    DEFAULT_MAX_REJECTED_RECORDS,
    NOTHING_SENT,
    Outcome,
    Post,
    send_plan,
)

__all__ = ["DRY_RUN_REQUESTS_NAME", "DRY_RUN_SUMMARY_NAME", "UploadRun"]

DRY_RUN_REQUESTS_NAME = "dry-run-requests.jsonl"
DRY_RUN_SUMMARY_NAME = "dry-run-summary.json"
#: Records set aside named one by one in the log; the file has them all.
LOGGED_RECORDS = 10


#: The unsent counts of a run that sent everything (or only built).
_UNSENT_NONE = {"unsent_records": 0, "unsent_requests": 0}


def _unsent(plan: UploadPlan, outcome: Outcome, gone: set[str]) -> dict[str, int]:
    """externalId -> request seq of every record not sent because sending stopped early (empty when it did
    not stop): neither accepted (now or in an earlier try) nor rejected by Graph."""
    if outcome.stopped is None:
        return {}
    done = outcome.accepted_ids() | gone
    return {ext: r.seq for r in plan.requests for ext in r.external_ids if ext not in done}


class UploadRun:
    """The files of one upload of ``plan`` into ``out``.

    :param out: the output folder.
    :param plan: the requests.
    :param log: where progress and warnings go (an operator's ``self.log``).
    """

    def __init__(self, out: Any, plan: UploadPlan, *, log: Log | None = None) -> None:
        self.out = out
        self.plan = plan
        self.log = log or logging.getLogger(__name__)

    def start(self, *, build_only: bool = False) -> dict[str, Any]:
        """Write the ids to send and the records set aside; return the summary's first keys (``records``,
        ``requests``, ``rejected``, ``manifest_path``, ``external_ids_path``, ``rejected_path``, ``dry_run``,
        ``stages``)."""
        plan = self.plan
        ids_path = self._write_frame(files.external_ids_frame(plan), files.EXTERNAL_IDS_NAME)
        rejected_path = self._write_rejected(plan.rejected) if len(plan.rejected) else None
        self.log.info(
            "%d records in %d requests over %d stage(s) %s; %d set aside",
            *(plan.records, len(plan.requests), len(plan.stage_sizes), plan.stage_sizes, len(plan.rejected)),
        )
        return {
            "records": plan.records,
            "requests": len(plan.requests),
            "rejected": len(plan.rejected),
            "manifest_path": str(self.out / files.MANIFEST_NAME),
            "external_ids_path": ids_path,
            "rejected_path": rejected_path,
            "dry_run": build_only,
            "stages": plan.stage_sizes,
        }

    def build_only(self, base: dict[str, Any]) -> dict[str, Any]:
        """Write every request's bytes, one per line, and the summary; send nothing.

        :param base: :meth:`start`'s summary.
        """
        requests_path = self.out / DRY_RUN_REQUESTS_NAME
        write_bytes(requests_path, (part for r in self.plan.requests for part in (r.body, b"\n")))  # streamed
        summary = {
            **base,
            **NOTHING_SENT,
            **_UNSENT_NONE,
            "job_id": None,
            "dry_run_requests_path": str(requests_path),
        }
        write_bytes(self.out / DRY_RUN_SUMMARY_NAME, json.dumps(summary, indent=2).encode("utf-8"))
        self.log.info(
            "Build only: %d requests written to %s; nothing was sent", len(self.plan.requests), requests_path
        )
        return summary

    def send(
        self,
        post: Post,
        base: dict[str, Any],
        *,
        max_rejected: int | None = DEFAULT_MAX_REJECTED_RECORDS,
        progress_every: int = 10,
        progress_seconds: float = 10.0,
    ) -> dict[str, Any]:
        """Send the plan (:func:`~airflow_provider_entra.upload.sending.send_plan`), resuming after what
        earlier tries did; write down what Graph rejected and the ids to verify, also when sending fails.

        :param post: sends one request.
        :param base: :meth:`start`'s summary.
        :param max_rejected: records Graph may reject before the upload stops.
        :param progress_every: log progress every this many calls...
        :param progress_seconds: ...or at least this often.
        :return: the summary (without ``job_id``); ``unsent_records`` and ``unsent_requests`` count what the
            daily allowance left for the next run (``stopped_by_quota`` says why).
        """
        plan = self.plan
        earlier = files.Earlier.read(self.out / files.MANIFEST_NAME, self.out / files.REFUSED_NAME)
        resumed, parts, stale = earlier.counts(plan)
        if resumed or parts or earlier.refused:
            self.log.info(
                "Resuming: %d of %d requests (and %d part(s) of requests Graph refused whole) are already in "
                "%s, %d refusal(s) in %s: none is sent again",
                *(
                    resumed,
                    len(plan.requests),
                    parts,
                    files.MANIFEST_NAME,
                    len(earlier.refused),
                    files.REFUSED_NAME,
                ),
            )
        if stale:
            self.log.info("Ignoring %d manifest line(s) of other runs or inputs", stale)
        outcome = Outcome()
        progress = Progress(self.log, plan.records, progress_every, progress_seconds)
        rejected_path = base["rejected_path"]
        try:
            with (
                files.LineWriter(self.out / files.MANIFEST_NAME) as manifest,
                files.LineWriter(self.out / files.REFUSED_NAME) as refused,
            ):
                send_plan(
                    plan,
                    post,
                    earlier=earlier,
                    manifest=manifest,
                    refusals=refused,
                    progress=progress,
                    max_rejected=max_rejected,
                    outcome=outcome,
                    log=self.log,
                )
        finally:  # also when sending fails: what Graph rejected so far is written down
            if outcome.graph_rejected:
                graph_rejected = pd.DataFrame(outcome.graph_rejected)
                rejected_path = self._write_rejected(stack_rejected(plan.rejected, graph_rejected), False)
                self.log.warning(
                    "%d record(s) rejected by Graph are in %s", len(graph_rejected), rejected_path
                )
            gone = {item["externalId"] for item in outcome.graph_rejected}
            unsent = _unsent(plan, outcome, gone)
            frame = files.external_ids_frame(
                plan, gone | unsent.keys(), files.acceptance(outcome.resumed + outcome.sent)
            )
            self._write_frame(frame, files.EXTERNAL_IDS_NAME)
        if unsent:
            self.log.warning(
                "Daily allowance spent: %d of %d records sent; %d record(s) in %d request(s) wait for the "
                "next run",
                *(plan.records - len(gone) - len(unsent), plan.records, len(unsent)),
                len(set(unsent.values())),
            )
        return {
            **base,
            **outcome.summary(),
            "unsent_records": len(unsent),
            "unsent_requests": len(set(unsent.values())),
            "rejected": len(plan.rejected) + len(outcome.graph_rejected),
            "rejected_path": rejected_path,
        }

    def _write_frame(self, frame: pd.DataFrame, name: str) -> str:
        return str(write_frame(frame, self.out / name))

    def _write_rejected(self, rejected: pd.DataFrame, log_rows: bool = True) -> str:
        path = self._write_frame(rejected.astype({"row": "string"}), files.REJECTED_NAME)
        if not log_rows:
            return path
        for row in rejected.head(LOGGED_RECORDS).itertuples(index=False):
            self.log.warning(
                "Not sent: record %s (row %s, %s): %s", row.externalId, row.row, row.stage, row.reason
            )
        if len(rejected) > LOGGED_RECORDS:
            self.log.warning(
                "... and %d more records not sent (see %s)", len(rejected) - LOGGED_RECORDS, path
            )
        return path
