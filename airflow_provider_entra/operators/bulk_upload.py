"""Upload HR records to Entra's API-driven inbound provisioning, managers first, resumable after a crash,
within the tenant's daily allowance.

:class:`EntraBulkUploadOperator` is the Airflow shell of :mod:`airflow_provider_entra.upload` (planning,
manifest, splitting, the daily allowance: see that package for the rules and the files); the hook posts the
bytes the builder made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, BaseOperator

from airflow_provider_entra._constants import MAX_OPERATIONS_PER_REQUEST
from airflow_provider_entra.exceptions import (
    EntraError,
    EntraPayloadRejectedError,
    EntraQuotaExhaustedError,
)
from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.links import EntraProvisioningLogsLink
from airflow_provider_entra.staging import quota_root, read_frame, to_path
from airflow_provider_entra.upload import (
    EXTERNAL_IDS_NAME,
    MANIFEST_NAME,
    REFUSED_NAME,
    REJECTED_NAME,
    errors,
    planning,
)
from airflow_provider_entra.upload.lineage import UploadLineage, file_dataset, job_dataset
from airflow_provider_entra.upload.quota import DailyUsage, days_left, record_name
from airflow_provider_entra.upload.run import UploadRun
from airflow_provider_entra.upload.sending import DEFAULT_MAX_REJECTED_RECORDS

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

__all__ = ["EXTERNAL_IDS_NAME", "MANIFEST_NAME", "REFUSED_NAME", "REJECTED_NAME", "EntraBulkUploadOperator"]

#: HTTP status of a request Graph refused for its content: the only answer that is split in halves.
BAD_REQUEST = 400
#: Records placed late (manager chain reaching a record set aside) named one by one in the log.
LOGGED_WARNINGS = 10


class EntraBulkUploadOperator(BaseOperator):
    """Upload records to Entra (``bulkUpload``), managers first, resumable, with progress and a manifest.

    Input is a staged file (``input_path``: Parquet/CSV, HR layout with ``mapping``, or already mapped,
    detected by its ``record_hash`` or ``externalId``/``userName``/``active`` columns) or ``payloads``: SCIM
    BulkRequests (sent as they are) or SCIM User records (packed; ``schemas`` filled in when missing).

    :param input_path: ``.parquet`` or ``.csv`` file, local path or ObjectStoragePath/URL. (templated)
    :param payloads: a list of BulkRequest or User dicts, a native value such as ``task.output`` (text is
        refused); small lists only. (templated)
    :param mapping: mapping file path (YAML/JSON), dict or ``AttributeMapping``; required for HR-layout
        input. (templated)
    :param input_kind: ``"auto"`` (detect), ``"hr"`` or ``"mapped"``.
    :param entra_conn_id: connection of type ``entra``. (templated)
    :param build_only: build and write the requests and a summary, send nothing.
    :param build_only_param: name of a boolean run Param that replaces ``build_only`` when the task runs
        (the example DAGs pass ``"dry_run"``).
    :param managers_first: upload in managers-first stages (cycles and self-managers set aside).
    :param stage_order_path: the stage order the DAG's ``stages`` step staged (``externalId``, ``stage``,
        ``reason``); without it the order is computed here. (templated)
    :param known_manager_ids_path: file (``externalId`` column) of ids the job already provisioned: their
        reports need no earlier stage (used when the order is computed here). (templated)
    :param output_dir: folder for the manifest and outputs; default: the input file's folder (required with
        ``payloads``). (templated)
    :param max_operations: operations per request, 1 to 50.
    :param bulk_id_prefix: prefix of each ``bulkId``; default: derived from the run id, so a retried task
        builds the same requests and resumes. (templated)
    :param progress_every: log progress every this many calls...
    :param progress_seconds: ...or at least this often (seconds).
    :param max_rejected_records: records Graph may reject (400) in this task before it fails; ``None``: no
        limit.
    :param quota_dir: the folder of the tenants' daily bulkUpload records, shared by every task that calls
        them (``<quota_dir>/<tenant id>/``, see :mod:`airflow_provider_entra.upload.quota`); default: the
        Variable ``entra_quota_path``, else ``<staging root>/quota``. (templated)
    :return: ``{"records", "requests", "sent_requests", "resumed_requests", "rejected", "rejected_by_graph",
        "sent_records", "unsent_records", "unsent_requests", "stopped_by_quota", "request_ids",
        "request_ids_total", "first_submit", "last_submit", "first_accepted", "last_accepted",
        "manifest_path", "external_ids_path", "rejected_path", "dry_run", "stages", "job_id"}`` and, when it
        sent, ``daily_quota`` (``daily_call_budget``, ``used_before``, ``calls``, ``left``, ``stopped``,
        ``frees_at``, ``per_day``, ``days_left``) (``dry_run``: whether it only built; then also
        ``dry_run_requests_path``).

    The daily allowance: the connection's ``daily_call_budget`` calls per tenant in any 24 hours, counted in
    the shared record. When it is spent (or Microsoft answers 429 for the daily quota) the task stops
    sending, before the next call, and succeeds: the records not sent (``unsent_records``) are left out of
    ``sent-external-ids.parquet``, so nothing waits for them, and the next run sends them.
    """

    template_fields: Sequence[str] = (
        "input_path",
        "payloads",
        "mapping",
        "entra_conn_id",
        "stage_order_path",
        "known_manager_ids_path",
        "output_dir",
        "bulk_id_prefix",
        "quota_dir",
    )
    ui_color = "#fde9c9"
    operator_extra_links = (EntraProvisioningLogsLink(),)

    def __init__(
        self,
        *,
        input_path: str | ObjectStoragePath | None = None,
        payloads: Sequence[Mapping[str, Any]] | None = None,
        mapping: str | Mapping[str, Any] | Any = None,
        input_kind: planning.InputKind = "auto",
        entra_conn_id: str = EntraHook.default_conn_name,
        build_only: bool = False,
        build_only_param: str | None = None,
        managers_first: bool = True,
        stage_order_path: str | ObjectStoragePath | None = None,
        known_manager_ids_path: str | ObjectStoragePath | None = None,
        output_dir: str | ObjectStoragePath | None = None,
        max_operations: int = MAX_OPERATIONS_PER_REQUEST,
        bulk_id_prefix: str | None = None,
        progress_every: int = 10,
        progress_seconds: float = 10.0,
        max_rejected_records: int | None = DEFAULT_MAX_REJECTED_RECORDS,
        quota_dir: str | ObjectStoragePath | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        planning.check_options(input_kind, max_operations, max_rejected_records)
        self.input_path = input_path
        self.payloads = payloads
        self.mapping = mapping
        self.input_kind = input_kind
        self.entra_conn_id = entra_conn_id
        self.build_only = build_only
        self.build_only_param = build_only_param
        self.managers_first = managers_first
        self.stage_order_path = stage_order_path
        self.known_manager_ids_path = known_manager_ids_path
        self.output_dir = output_dir
        self.max_operations = max_operations
        self.bulk_id_prefix = bulk_id_prefix
        self.progress_every = progress_every
        self.progress_seconds = progress_seconds
        self.max_rejected_records = max_rejected_records
        self.quota_dir = quota_dir
        self.upload_lineage = UploadLineage()
        self._usage: DailyUsage | None = None

    @cached_property
    def hook(self) -> EntraHook:
        """The task's hook (one per task: one session, one pacing state)."""
        return EntraHook(self.entra_conn_id)

    def plan(self, context: Context | Mapping[str, Any]) -> planning.UploadPlan:
        """Build every request of this run, in upload order (deterministic).

        :param context: the task context (its ``run_id`` derives the default ``bulk_id_prefix``).
        """
        if (self.input_path is None) == (self.payloads is None):
            raise AirflowFailException("give exactly one of input_path and payloads")
        try:
            order = read_frame(self.stage_order_path) if self.stage_order_path is not None else None
            options = planning.PlanOptions(
                self._prefix(context),
                self.max_operations,
                self.managers_first,
                order,
                self._known_ids() if order is None and self.managers_first else None,
            )
            if self.input_path is None:
                plan = planning.plan_payloads(planning.payload_list(self.payloads), options)
            else:
                frame = read_frame(self.input_path)
                records, kind = planning.map_input(frame, kind=self.input_kind, mapping=self.mapping)
                self.log.info(
                    "Read %d rows from %s (%s layout): %d records to send, %d rejected, %d duplicates",
                    *(len(frame), self.input_path, kind, len(records.frame), len(records.rejected)),
                    records.duplicates_collapsed,
                )
                plan = planning.plan_records(records, options)
        except (errors.PlanningError, ValueError, FileNotFoundError) as exc:  # bad input: no retry can fix it
            raise AirflowFailException(f"{self.input_path or 'payloads'}: {exc}") from exc
        for row in plan.warnings.head(LOGGED_WARNINGS).itertuples(index=False):
            self.log.warning("Record %s: %s", row.externalId, row.warning)
        return plan

    def execute(self, context: Context) -> dict[str, Any]:
        build_only = self._build_only(context)
        run = UploadRun(self._output_dir(), self.plan(context), log=self.log)
        if self.input_path is not None:
            self.upload_lineage = UploadLineage(inputs=[file_dataset(str(to_path(self.input_path)))])
        base = run.start(build_only=build_only)
        if build_only:
            return run.build_only(base)
        EntraProvisioningLogsLink.persist(context, self.hook.portal_logs_url())
        with self._daily_usage(context) as usage:
            self._usage = usage
            try:
                summary = run.send(
                    self._post,
                    base,
                    max_rejected=self.max_rejected_records,
                    progress_every=self.progress_every,
                    progress_seconds=self.progress_seconds,
                )
            except errors.TooManyRejected as exc:  # systemic: a retry would set the same records aside again
                raise AirflowFailException(str(exc)) from exc
            except errors.RequestFailed as exc:
                cause = exc.__cause__
                retryable = not isinstance(cause, EntraError) or cause.retryable
                raise (AirflowException if retryable else AirflowFailException)(str(exc)) from cause
        host = urlsplit(self.hook.graph_endpoint).netloc
        job = job_dataset(self.hook.job_id, tenant_id=self.hook.settings.tenant_id, host=host)
        self.upload_lineage = UploadLineage(inputs=self.upload_lineage.inputs, outputs=[job])
        per_day = usage.calls_per_day()
        quota = {
            **usage.summary(),
            "per_day": per_day,
            "days_left": days_left(summary["unsent_requests"], per_day),
        }
        return {**summary, "job_id": self.hook.job_id, "daily_quota": quota}

    def _daily_usage(self, context: Context) -> DailyUsage:
        """The tenant's shared daily record, read now (what every upload to the tenant spent today); its calls
        of Microsoft's burst window go into the hook's limiter, so an upload that starts right after another,
        in a new process, does not take the whole window again."""
        settings = self.hook.settings
        root = to_path(self.quota_dir) if self.quota_dir is not None else quota_root(context.get("params"))
        ti = context.get("ti")
        name = record_name(
            self.dag_id, str(context.get("run_id")), self.task_id, str(getattr(ti, "map_index", -1))
        )
        usage = DailyUsage(
            root / str(settings.tenant_id or settings.client_id), name, budget=settings.daily_call_budget
        ).open()
        self.log.info(
            "Daily allowance: %d of %d bulkUpload calls left for the tenant (%d counted in 24 h, in %s)",
            usage.left,
            usage.budget,
            usage.used_before,
            usage.folder,
        )
        limiter = self.hook.limiter
        if seeded := limiter.seed(usage.recent_call_ages(limiter.window_seconds)):
            self.log.info(
                "%d bulkUpload call(s) of an earlier upload are still in the tenant's %g s window: counted",
                seeded,
                limiter.window_seconds,
            )
        return usage

    def _post(self, request: planning.PlannedRequest) -> dict[str, Any]:
        """Post the request's bytes as they are, within the daily allowance; a 400 becomes
        :class:`~.errors.Refused` (split it), a spent allowance or a 429 for the daily quota
        :class:`~.errors.QuotaSpent` (stop sending)."""
        usage = self._usage
        if usage is None:
            raise AirflowFailException("the daily allowance is read in execute(), before posting")
        usage.check()
        before = self.hook.calls_made
        try:
            return self.hook.bulk_upload_bytes(request.body, operations=request.operations).to_dict()
        except EntraQuotaExhaustedError as exc:
            raise usage.refused(exc.retry_after) from exc
        except EntraPayloadRejectedError as exc:
            if exc.status_code != BAD_REQUEST:
                raise
            raise errors.Refused(exc.error_code, exc.graph_message, request_id=exc.request_id) from exc
        finally:
            usage.spend(self.hook.calls_made - before)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The input file in, the provisioning job out; ``None`` without the OpenLineage provider."""
        try:
            from airflow.providers.openlineage.extractors import OperatorLineage
            from openlineage.client.event_v2 import Dataset
        except ImportError:
            return None
        lineage = self.upload_lineage
        return OperatorLineage(
            inputs=[Dataset(namespace=namespace, name=name) for namespace, name in lineage.inputs],
            outputs=[Dataset(namespace=namespace, name=name) for namespace, name in lineage.outputs],
        )

    def _build_only(self, context: Context | Mapping[str, Any]) -> bool:
        if self.build_only_param is None:
            return self.build_only
        params = context.get("params") or {}
        if self.build_only_param not in params:  # a typo must not turn a dry run into an upload
            raise AirflowFailException(
                f"build_only_param={self.build_only_param!r} names no Param of this run"
            )
        value = params[self.build_only_param]
        if not isinstance(value, bool):
            raise AirflowFailException(
                f"the Param {self.build_only_param!r} must be true or false, got {value!r}"
            )
        return value

    def _output_dir(self) -> ObjectStoragePath:
        if self.output_dir is not None:
            return to_path(self.output_dir)
        if self.input_path is not None:
            return to_path(self.input_path).parent
        raise AirflowFailException("output_dir is required when the input is a list of payloads")

    def _prefix(self, context: Context | Mapping[str, Any]) -> str:
        if self.bulk_id_prefix is not None:  # "" is a valid prefix
            return str(self.bulk_id_prefix)
        if not context.get("run_id"):
            raise AirflowFailException("no run_id in the context: pass bulk_id_prefix")
        return planning.run_prefix(str(context["run_id"]))

    def _known_ids(self) -> list[str] | None:
        if self.known_manager_ids_path is None:
            return None
        frame = read_frame(self.known_manager_ids_path)
        column = "externalId" if "externalId" in frame.columns else frame.columns[0]
        return frame[column].dropna().astype(str).tolist()
