"""The upload's rules, without Airflow: plan the requests, send them resumably, split what Graph refuses.

:class:`~airflow_provider_entra.operators.bulk_upload.EntraBulkUploadOperator` is the Airflow shell around
this package; everything here runs (and is tested) without Airflow or a network.

=====================  ===================================================================================
module                 owns
=====================  ===================================================================================
:mod:`.planning`       records or payloads -> 50-operation requests (bytes) in stage order
:mod:`.order`          the managers-first stage order: computed, or read back from the ``stages`` step
:mod:`.fingerprint`    request bytes and their SHA-256, which names a request across retries
:mod:`.splitting`      the halves of a request Graph refused with 400
:mod:`.manifest`       what was accepted or refused, written as it happens and read back on a retry
:mod:`.sending`        the send loop: skip, post, write down, split, set aside, stop when the quota is spent
:mod:`.quota`          the tenant's daily allowance, counted under the staging root where every worker sees it
:mod:`.progress`       ``412/2,000 records (20%), 7.9 calls/s, ETA 4m``
:mod:`.lineage`        the OpenLineage datasets of an upload, as plain pairs
:mod:`.job_health`     whether the provisioning job can process an upload at all
=====================  ===================================================================================

Resuming without resending
--------------------------
Requests are built deterministically: the same input and the same ``bulkId`` prefix give the same bytes
in the same order, so each request has a stable *fingerprint* (SHA-256 of the bytes POSTed). Right after
each 202 a line goes to ``upload-manifest.jsonl`` (:mod:`.manifest`); a retried task skips every request
whose fingerprint is there. Only a request accepted in the instant before the process died (its line not
yet written) is sent again.

Records Graph rejects
---------------------
A 400 refuses the whole request. Its two halves are then sent, recursively down to single operations
(:mod:`.splitting`): accepted parts go into the manifest (with ``"part_of"``), a single record still refused
is set aside in ``upload-rejected.parquet`` (stage ``upload``, reason ``Graph rejected the record:
<code>: <message>``). Every refusal is written to ``upload-refused.jsonl``, so a retry neither resends what
was accepted nor re-probes what was refused. More than ``max_rejected`` records set aside stops the upload
(:class:`~.errors.TooManyRejected`): that points at the mapping or the input's types, not at a few records.

A first load larger than a day's quota
--------------------------------------
Each call is counted in the tenant's shared record (:mod:`.quota`); when the allowance is spent, or
Microsoft answers 429 for the daily quota, the send loop stops before the next call
(:class:`~.errors.QuotaSpent`): what was accepted is in the manifest and verified as usual, the records not
sent are left out of ``sent-external-ids.parquet`` (nothing waits for them) and counted in the summary
(``unsent_records``). The run ends as a partial load, not a failure; the next run plans against the ledger,
so it sends what is left (managers first, as the stages put them) and nothing Entra already holds.
"""

from __future__ import annotations

from airflow_provider_entra.upload.errors import (
    PlanningError,
    QuotaSpent,
    Refused,
    RequestFailed,
    TooManyRejected,
    UploadError,
)
from airflow_provider_entra.upload.fingerprint import encode, fingerprint
from airflow_provider_entra.upload.manifest import (
    EXTERNAL_IDS_NAME,
    MANIFEST_NAME,
    REFUSED_NAME,
    REJECTED_NAME,
    Earlier,
    LineWriter,
    acceptance,
    external_ids_frame,
)
from airflow_provider_entra.upload.order import STAGE_ORDER_NAME, stage_order
from airflow_provider_entra.upload.planning import (
    InputKind,
    PlannedRequest,
    PlanOptions,
    UploadPlan,
    map_input,
    payload_list,
    plan_payloads,
    plan_records,
    stack_rejected,
)
from airflow_provider_entra.upload.progress import Progress, format_progress
from airflow_provider_entra.upload.sending import (
    DEFAULT_MAX_REJECTED_RECORDS,
    GRAPH_REJECTED_STAGE,
    NOTHING_SENT,
    Outcome,
    send_plan,
)

__all__ = [
    "DEFAULT_MAX_REJECTED_RECORDS",
    "EXTERNAL_IDS_NAME",
    "GRAPH_REJECTED_STAGE",
    "MANIFEST_NAME",
    "NOTHING_SENT",
    "REFUSED_NAME",
    "REJECTED_NAME",
    "STAGE_ORDER_NAME",
    "Earlier",
    "InputKind",
    "LineWriter",
    "Outcome",
    "PlannedRequest",
    "PlanOptions",
    "PlanningError",
    "Progress",
    "QuotaSpent",
    "Refused",
    "RequestFailed",
    "TooManyRejected",
    "UploadError",
    "UploadPlan",
    "acceptance",
    "encode",
    "external_ids_frame",
    "fingerprint",
    "format_progress",
    "map_input",
    "payload_list",
    "plan_payloads",
    "plan_records",
    "send_plan",
    "stack_rejected",
    "stage_order",
]
