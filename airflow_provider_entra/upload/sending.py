"""Send a plan: request by request, skipping what earlier tries did, splitting what Graph refuses.

:func:`send_plan` posts each request through a ``post`` callable (the operator's: the hook's bulkUpload of
the request's bytes), writes a manifest line after each acceptance, and on :class:`Refused` (HTTP 400)
records the refusal and sends the request's halves, depth first, down to single records; a single record
still refused is set aside with Graph's reason. More than ``max_rejected`` records set aside raises
:class:`TooManyRejected`. :class:`QuotaSpent` (the tenant's daily allowance is spent) stops sending cleanly:
the outcome says why (``stopped``) and the requests not sent wait for the next run. Any other error of
``post`` is raised as :class:`RequestFailed` (chained), after which a retry resumes from the manifest.

No Airflow, no network: ``post`` is the only way out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_entra._time import utc
from airflow_provider_entra.upload.errors import QuotaSpent, Refused, RequestFailed, TooManyRejected
from airflow_provider_entra.upload.manifest import REJECTED_NAME, Earlier, LineWriter, accepted_line
from airflow_provider_entra.upload.planning import PlannedRequest, UploadPlan
from airflow_provider_entra.upload.progress import Log, Progress
from airflow_provider_entra.upload.splitting import halves

__all__ = [
    "DEFAULT_MAX_REJECTED_RECORDS",
    "GRAPH_REJECTED_STAGE",
    "NOTHING_SENT",
    "Outcome",
    "Post",
    "send_plan",
]

#: Records Graph may reject (400, isolated by splitting requests) per task before the task fails.
DEFAULT_MAX_REJECTED_RECORDS = 50
#: ``stage`` of the records Graph rejected, in ``upload-rejected.parquet``.
GRAPH_REJECTED_STAGE = "upload"
#: Reasons quoted in the error when too many records were rejected.
REASONS_IN_ERROR = 5
#: Request ids kept in the summary; beyond that the first and last few (the manifest has all).
MAX_REQUEST_IDS_IN_SUMMARY = 200
REQUEST_IDS_KEPT_AT_EACH_END = 10
#: externalIds named in a log line or an error.
IDS_NAMED = 5

#: Post one request; return the receipt (see :func:`~airflow_provider_entra.upload.manifest.accepted_line`)
#: or raise :class:`Refused` when Graph refused its content.
Post = Callable[[PlannedRequest], Mapping[str, Any]]

#: The sending part of a summary when nothing was sent (a build-only run).
NOTHING_SENT: dict[str, Any] = {
    "rejected_by_graph": 0,
    "sent_records": 0,
    "sent_requests": 0,
    "resumed_requests": 0,
    "request_ids": [],
    "request_ids_total": 0,
    "first_submit": None,
    "last_submit": None,
    "first_accepted": None,
    "last_accepted": None,
    "stopped_by_quota": None,
}


@dataclass
class Outcome:
    """What sending did: manifest lines accepted now and in earlier tries, records Graph rejected
    (:data:`~airflow_provider_entra.provisioning.stages.REJECTED_COLUMNS` dicts), and why sending stopped
    early when the daily allowance ran out (``None``: it did not)."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    resumed: list[dict[str, Any]] = field(default_factory=list)
    graph_rejected: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None

    def accepted_ids(self) -> set[str]:
        """The externalIds of every accepted line."""
        return {str(ext) for line in self.resumed + self.sent for ext in line.get("external_ids") or ()}

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """Every accepted line of this plan (earlier tries and this one), in upload order."""
        return sorted(self.resumed + self.sent, key=lambda line: line["seq"])

    def summary(self) -> dict[str, Any]:
        """The sending part of the task's summary (the keys of :data:`NOTHING_SENT`)."""
        accepted = self.accepted
        request_ids = [line.get("request_id") for line in accepted]
        if len(request_ids) > MAX_REQUEST_IDS_IN_SUMMARY:
            keep = REQUEST_IDS_KEPT_AT_EACH_END
            request_ids = request_ids[:keep] + request_ids[-keep:]
        submitted = [line["submitted_at"] for line in accepted]
        times = [line["accepted_at"] for line in accepted if line.get("accepted_at")]
        return {
            "rejected_by_graph": len(self.graph_rejected),
            "sent_records": sum(len(line.get("external_ids") or ()) for line in accepted),
            "sent_requests": len(self.sent),
            "resumed_requests": len(self.resumed),
            "request_ids": request_ids,
            "request_ids_total": len(accepted),
            "first_submit": min(submitted) if submitted else None,
            "last_submit": max(submitted) if submitted else None,
            "first_accepted": min(times, key=utc) if times else None,
            "last_accepted": max(times, key=utc) if times else None,
            "stopped_by_quota": self.stopped,
        }


def ids_text(external_ids: list[str]) -> str:
    """The first few externalIds, for a message."""
    return ", ".join(external_ids[:IDS_NAMED]) + (" ..." if len(external_ids) > IDS_NAMED else "")


def send_plan(
    plan: UploadPlan,
    post: Post,
    *,
    earlier: Earlier,
    manifest: LineWriter,
    refusals: LineWriter,
    progress: Progress,
    max_rejected: int | None = DEFAULT_MAX_REJECTED_RECORDS,
    outcome: Outcome | None = None,
    log: Log | None = None,
) -> Outcome:
    """Send every request of ``plan`` not accepted in an earlier try.

    :param plan: the requests.
    :param post: sends one request (see :data:`Post`).
    :param earlier: what earlier tries accepted and refused (refusals made now are added to it).
    :param manifest: where accepted requests are written down.
    :param refusals: where refused requests are written down.
    :param progress: progress counter.
    :param max_rejected: records Graph may reject before :class:`TooManyRejected`; ``None``: no limit.
    :param outcome: filled in as requests go (pass one to read what was done when an error is raised).
    :param log: where warnings go.
    :raises TooManyRejected: more than ``max_rejected`` records rejected.
    :raises RequestFailed: ``post`` failed otherwise (the error is its ``__cause__``).
    :return: the outcome; ``stopped`` says why sending stopped early when ``post`` raised
        :class:`QuotaSpent` (the request it was posting, its parts not yet accepted and every later
        request are not sent).
    """
    sender = _Sender(
        plan,
        post,
        earlier,
        manifest,
        refusals,
        progress,
        max_rejected,
        outcome or Outcome(),
        log or logging.getLogger(__name__),
    )
    try:
        for request in plan.requests:
            pending: list[tuple[PlannedRequest, str | None]] = [(request, None)]
            while pending:  # depth first, first half first: a deterministic order
                part, part_of = pending.pop(0)
                pending[:0] = sender.send(part, part_of)
    except QuotaSpent as spent:
        sender.outcome.stopped = str(spent)
        sender.log.warning("Sending stopped: %s The records not sent wait for the next run.", spent)
    progress.finish()
    return sender.outcome


@dataclass
class _Sender:
    plan: UploadPlan
    post: Post
    earlier: Earlier
    manifest: LineWriter
    refusals: LineWriter
    progress: Progress
    max_rejected: int | None
    outcome: Outcome
    log: Log

    def send(self, request: PlannedRequest, part_of: str | None) -> list[tuple[PlannedRequest, str]]:
        """Send one request (or part); return its halves when Graph refused it whole."""
        done = self.earlier.accepted.get(request.fingerprint)
        if done is not None:
            self.outcome.resumed.append(done)
            self.progress.skipped(request.operations)
            return []
        known = self.earlier.refused.get(request.fingerprint)
        if known is not None:  # refused in an earlier try: Graph would refuse it again, do not re-probe
            return self._refused(request, part_of, str(known.get("reason") or ""))
        try:
            receipt = self.post(request)
        except Refused as refusal:
            self.progress.refused()
            record = {
                "fingerprint": request.fingerprint,
                "seq": request.seq,
                "external_ids": request.external_ids,
                "status_code": refusal.status_code,
                "request_id": refusal.request_id,
                "reason": refusal.reason,
            }
            self.refusals.append(record)
            self.earlier.refused[request.fingerprint] = record
            if request.operations > 1:
                self.log.warning(
                    "Graph refused request %d/%d (%d records, externalIds %s): %s; sending it in halves to "
                    "find the bad record(s)",
                    request.seq + 1,
                    len(self.plan.requests),
                    request.operations,
                    ids_text(request.external_ids),
                    refusal.message or refusal.code,
                )
            return self._refused(request, part_of, refusal.reason)
        except QuotaSpent:
            raise
        except Exception as exc:
            raise RequestFailed(
                f"bulkUpload of request {request.seq + 1}/{len(self.plan.requests)} (stage {request.stage}, "
                f"externalIds {ids_text(request.external_ids)}) failed: {exc}. {len(self.outcome.sent)} "
                f"request(s) were accepted in this try and are in {self.manifest.path}; a retry of this task "
                "resumes after them.",
                request=request,
            ) from exc
        line = accepted_line(request, receipt, part_of)
        self.manifest.append(line)
        self.outcome.sent.append(line)
        self.progress.sent(request.operations)
        return []

    def _refused(
        self, request: PlannedRequest, part_of: str | None, reason: str
    ) -> list[tuple[PlannedRequest, str]]:
        if request.operations > 1:
            return halves(request, part_of)
        self._set_aside(request.external_ids[0], reason)
        self.progress.rejected(request.operations)
        return []

    def _set_aside(self, external_id: str, reason: str) -> None:
        rejected = self.outcome.graph_rejected
        rejected.append(
            {
                "row": self.plan.row_of(external_id),
                "externalId": external_id,
                "stage": GRAPH_REJECTED_STAGE,
                "reason": reason,
            }
        )
        self.log.warning("Not sent: record %s: %s", external_id, reason)
        if self.max_rejected is not None and len(rejected) > self.max_rejected:
            first = "; ".join(
                f"{item['externalId']}: {item['reason']}" for item in rejected[:REASONS_IN_ERROR]
            )
            raise TooManyRejected(
                f"Graph rejected {len(rejected)} records, more than max_rejected_records="
                f"{self.max_rejected}: something systemic is wrong (the mapping or the input's types?), so "
                f"the upload stops. First reasons: {first}. The rejected records are in {REJECTED_NAME}; the "
                f"{len(self.outcome.sent)} request(s) accepted in this try are in the manifest and a retry "
                "resumes after them."
            )
