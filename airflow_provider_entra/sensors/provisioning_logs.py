"""Verify an upload: wait for every record's outcome in the provisioning logs, report, and judge the run.

``bulkUpload`` answers 202 with no per-record result; outcomes appear in the provisioning logs 5 to 10
minutes later. :class:`EntraProvisioningLogSensor` takes the upload task's summary, waits (in the triggerer
by default) until every externalId sent has an outcome or the timeout passes, then writes the run's report
next to its staged files and fails the task when too many records failed.

Example::

    verify = EntraProvisioningLogSensor(
        task_id="verify",
        upload_summary=upload.output,  # the EntraBulkUploadOperator's return value
        max_failure_percent=1.0,
    )

A DAG whose trigger form sets the verification timing passes the names of those Params; the sensor reads
them when it starts (they override ``poke_interval``, ``settle_seconds`` and ``timeout``)::

    verify = EntraProvisioningLogSensor(
        task_id="verify",
        upload_summary=upload.output,
        poke_interval_param="verify_poke_interval",  # seconds
        settle_seconds_param="verify_settle_seconds",  # seconds
        timeout_minutes_param="verify_timeout_minutes",  # minutes
    )
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_entra import _fsio
from airflow_provider_entra._time import utc
from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.links import EntraProvisioningLogsLink
from airflow_provider_entra.provisioning.paths import ENTRIES_NAME, OUTCOMES_NAME, STARTED_NAME
from airflow_provider_entra.provisioning.reconcile import (
    DEFAULT_TOLERANCE_SECONDS,
    STATUS_FAILURE,
    STATUS_MISSING,
    STATUS_WARNING,
    STATUSES,
    failure_reasons,
    reconcile,
    records_to_resend,
)
from airflow_provider_entra.provisioning.report import write_report
from airflow_provider_entra.provisioning.verdict import Tally, verdict
from airflow_provider_entra.staging import local_path, read_jsonl, to_path, write_bytes, write_frame
from airflow_provider_entra.triggers.provisioning_logs import (
    DEFAULT_LOOKBACK_SECONDS,
    DEFAULT_PAGE_SIZE,
    DEFAULT_SETTLE_SECONDS,
    STATUS_COMPLETE,
    STATUS_ERROR,
    STATUS_TIMEOUT,
    EntraProvisioningLogTrigger,
    ProvisioningLogCollector,
    load_acceptance,
    load_external_ids,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

__all__ = ["ENTRIES_NAME", "OUTCOMES_NAME", "EntraProvisioningLogSensor"]

#: Failed records named in the task's failure message; the report lists all.
MAX_NAMED_FAILURES = 10
#: XCom key the result is also pushed under when the task fails on the thresholds.
VERIFICATION_XCOM_KEY = "verification"


def _parse_summary(value: Mapping[str, Any] | str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    raise AirflowFailException(
        "upload_summary must be the upload task's summary as a dict: pass the upload task's output "
        f"(upload.output), not a Jinja string; got {type(value).__name__}"
    )


def _param_number(params: Mapping[str, Any], name: str) -> float:
    """The run Param ``name`` as a non-negative number (a timing the sensor takes from the trigger form)."""
    if name not in params:
        raise AirflowFailException(f"The sensor reads its timing from the Param {name!r}; this run lacks it")
    value = params[name]
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise AirflowFailException(f"Param {name!r} must be a non-negative number, got {value!r}")
    return number


class EntraProvisioningLogSensor(BaseSensorOperator):
    """Wait until every record of an upload has an outcome in the provisioning logs, then report and judge.

    Each poll is one filtered, paged listing of the job's log (never a query per user), paced at the
    logs API's 5 requests per 10 seconds. With ``deferrable=True`` (the default when the deployment sets
    ``[operators] default_deferrable = True``; the example DAGs pass it) the task reads no log itself: it
    hands the wait to :class:`~airflow_provider_entra.triggers.provisioning_logs.EntraProvisioningLogTrigger`
    in the triggerer at once, so every log read of the deployment's deferred verifications is paced by the
    triggerer's limiters (one per app and job); otherwise it pokes (``mode="poke"`` or ``"reschedule"``).
    When every record has an outcome, or ``timeout`` passes (the rest are ``missing``), it writes into
    ``report_dir``:
    ``outcomes.parquet``, ``outcomes.csv`` and ``report.html``, then fails the task when more records did
    not reach Entra than ``max_failures`` or ``max_failure_percent`` allow (the one rule of
    :func:`~airflow_provider_entra.provisioning.verdict.verdict`), naming the top reasons. A dry-run upload
    is skipped.

    :param upload_summary: the upload task's return value as a dict: pass ``upload.output`` (resolved
        natively, not rendered to text).
        Needs ``external_ids_path`` (or ``manifest_path``) and ``first_submit``; the per-record acceptance
        times are read from the ``accepted_at`` column of that file (or the manifest's lines). (templated)
    :param entra_conn_id: connection of type ``entra``; must point at the job that received the upload.
        (templated)
    :param report_dir: folder (local path or ObjectStoragePath URL) for the report and collected entries;
        default: the folder of the upload's manifest. (templated)
    :param page_size: ``$top`` per page of the logs listing.
    :param max_failures: fail when more records than this did not reach Entra (failed, or no log entry by
        the timeout: not proven is not provisioned); ``None`` for no count limit.
    :param max_failure_percent: the same limit as a percentage of the records sent; ``None`` for none.
    :param settle_seconds: once every record has an outcome but some manager references were still
        unresolved, wait this long for Entra's follow-up ``update`` entries.
    :param lookback_seconds: each poll re-reads this band behind the newest entry seen (log delay spread).
    :param acceptance_tolerance_seconds: *seconds*. Each record is verified only by its own entries: those
        dated at or after the moment Graph accepted the request carrying it (the 202's ``Date`` header,
        Microsoft's clock, as recorded by the upload in ``accepted_at``) minus this tolerance. The default,
        0, is exact: both timestamps are truncated to whole seconds and an upload's entries are written after
        its acceptance; an entry an earlier run wrote before this upload's second never counts. The poll
        window starts at the earliest acceptance minus this tolerance.
    :param clock_skew_seconds: fallback only, for records whose acceptance time is unknown (a 202 without a
        ``Date`` header, or an upload summary from before acceptance times were recorded): for them the
        window starts, and older entries are ignored, this long before the first submit by the worker's
        local clock. The margin must cover the skew between that clock and Microsoft's, so such records can
        be credited with another run's entry written within it.
    :param deferrable: wait in the triggerer instead of a worker slot; default: the deployment's
        ``[operators] default_deferrable``.
    :param poke_interval: seconds between polls (in both modes).
    :param timeout: seconds to wait for outcomes before reporting the rest as missing.
    :param poke_interval_param: name of a run Param holding the seconds between polls; when set, its value
        replaces ``poke_interval`` at execute time (so the trigger form can change it).
    :param settle_seconds_param: name of a run Param holding ``settle_seconds``; replaces it at execute time.
    :param timeout_minutes_param: name of a run Param holding the timeout in *minutes*; replaces ``timeout``
        at execute time, for the trigger's deadline and for poke and reschedule modes alike.
    :return: ``{"status": "complete"|"timeout", "records", "outcomes": {status: count}, "failures",
        "missing", "warnings", "to_resend", "report_html", "report_csv", "outcomes_path", "log_requests",
        "log_polls", "deferred"}``.
    """

    template_fields: Sequence[str] = ("upload_summary", "entra_conn_id", "report_dir")
    ui_color = "#d9ead3"
    operator_extra_links = (EntraProvisioningLogsLink(),)

    def __init__(
        self,
        *,
        upload_summary: Mapping[str, Any] | str,
        entra_conn_id: str = EntraHook.default_conn_name,
        report_dir: str | ObjectStoragePath | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_failures: int | None = 0,
        max_failure_percent: float | None = None,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
        lookback_seconds: float = DEFAULT_LOOKBACK_SECONDS,
        acceptance_tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
        clock_skew_seconds: float = 120.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 60,
        timeout: float = 3600,
        poke_interval_param: str | None = None,
        settle_seconds_param: str | None = None,
        timeout_minutes_param: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if not acceptance_tolerance_seconds >= 0:
            raise ValueError(
                f"acceptance_tolerance_seconds must be 0 or more, got {acceptance_tolerance_seconds!r}"
            )
        self.upload_summary = upload_summary
        self.entra_conn_id = entra_conn_id
        self.report_dir = report_dir
        self.page_size = page_size
        self.max_failures = max_failures
        self.max_failure_percent = max_failure_percent
        self.settle_seconds = settle_seconds
        self.lookback_seconds = lookback_seconds
        self.acceptance_tolerance_seconds = acceptance_tolerance_seconds
        self.clock_skew_seconds = clock_skew_seconds
        self.deferrable = deferrable
        self.poke_interval_param = poke_interval_param
        self.settle_seconds_param = settle_seconds_param
        self.timeout_minutes_param = timeout_minutes_param
        self._collector: ProvisioningLogCollector | None = None
        self._verify_started_at: str | None = None
        self._accepted_at: dict[str, datetime] | None = None

    # --- inputs -------------------------------------------------------------------------------------------

    @property
    def summary(self) -> dict[str, Any]:
        """The parsed upload summary."""
        return _parse_summary(self.upload_summary)

    def _ids_source(self) -> str:
        summary = self.summary
        source = summary.get("external_ids_path") or summary.get("manifest_path")
        if not source:
            raise AirflowFailException("upload_summary has neither external_ids_path nor manifest_path")
        return str(source)

    def _report_dir(self) -> ObjectStoragePath:
        if self.report_dir:
            return to_path(self.report_dir)
        return to_path(self._ids_source()).parent

    def _entries_path(self) -> ObjectStoragePath:
        return self._report_dir() / ENTRIES_NAME

    def _acceptance(self) -> dict[str, datetime]:
        """externalId -> acceptance time of its request, for the records where the upload recorded one."""
        if self._accepted_at is None:
            self._accepted_at = load_acceptance(self._ids_source())
        return self._accepted_at

    def _since(self) -> datetime:
        """Start of the first poll window, and the cutoff of records without a known acceptance.

        The earliest acceptance minus the tolerance; when some record's acceptance is unknown, the first
        submit minus ``clock_skew_seconds`` (local clock) if that is earlier.
        """
        accepted = self._acceptance()
        starts = []
        if accepted:
            starts.append(min(accepted.values()) - timedelta(seconds=self.acceptance_tolerance_seconds))
        if not accepted or any(ext not in accepted for ext in load_external_ids(self._ids_source())):
            starts.append(utc(self.summary["first_submit"]) - timedelta(seconds=self.clock_skew_seconds))
        return min(starts)

    def _collector_for_run(self) -> ProvisioningLogCollector:
        if self._collector is None:
            self._collector = ProvisioningLogCollector(
                load_external_ids(self._ids_source()),
                since=self._since(),
                entries_path=self._entries_path(),
                page_size=self.page_size,
                lookback_seconds=self.lookback_seconds,
                settle_seconds=self.settle_seconds,
                accepted_at=self._acceptance(),
                tolerance_seconds=self.acceptance_tolerance_seconds,
            ).restore()
        return self._collector

    @cached_property
    def hook(self) -> EntraHook:
        """The connection's hook, built once per task (checked against the upload's job)."""
        hook = EntraHook(self.entra_conn_id)
        expected_job = self.summary.get("job_id")
        if expected_job and expected_job != hook.job_id:
            raise AirflowFailException(
                f"Connection '{self.entra_conn_id}' points at job {hook.job_id}, but the upload went to job "
                f"{expected_job}: its outcomes are in that job's logs. Use the upload's connection."
            )
        return hook

    def _started_at(self) -> str:
        """When this verification started: kept beside the collected entries, so a sensor in ``reschedule``
        mode (``execute`` runs again on every poke) and a retry keep the first start."""
        path = self._report_dir() / STARTED_NAME
        if _fsio.exists(path):
            return _fsio.read_bytes(path).decode().strip()
        started = datetime.now(timezone.utc).isoformat()
        write_bytes(path, started.encode())
        return started

    def _apply_param_timing(self, context: Context) -> None:
        """Replace ``poke_interval``, ``settle_seconds`` and ``timeout`` by the run Params named for them."""
        named = (self.poke_interval_param, self.settle_seconds_param, self.timeout_minutes_param)
        if not any(named):
            return
        params = context.get("params") or {}
        if self.poke_interval_param:
            self.poke_interval = _param_number(params, self.poke_interval_param)
        if self.settle_seconds_param:
            self.settle_seconds = _param_number(params, self.settle_seconds_param)
        if self.timeout_minutes_param:
            self.timeout = _param_number(params, self.timeout_minutes_param) * 60

    # --- run ----------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        self._apply_param_timing(context)  # before anything reads the timing, in every mode
        summary = self.summary
        if summary.get("dry_run"):
            raise AirflowSkipException("The upload was a dry run: nothing was sent, nothing to verify.")
        self._verify_started_at = self._started_at()
        hook = self.hook
        EntraProvisioningLogsLink.persist(context, hook.portal_logs_url())
        if not summary.get("first_submit"):
            self.log.info("The upload sent no records; nothing to verify.")
            return self._finish(context, STATUS_COMPLETE, deferred=False)
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout:
                self.log.warning("Timed out after %s s; reporting the records without outcome", self.timeout)
                return self._finish(context, STATUS_TIMEOUT, deferred=False)
        # No log read here: every read of a deferred verification is the triggerer's, so its limiter (one per
        # app and job) paces all of them together; a read on a worker would be counted by no one else.
        collector = self._collector_for_run()  # what an earlier try collected
        if collector.is_complete():
            return self._finish(context, STATUS_COMPLETE, deferred=False)
        timeout_at = datetime.now(timezone.utc) + timedelta(seconds=self.timeout)
        self.log.info(
            "Waiting in the triggerer for %d record(s) without an outcome, polling every %s s until %s",
            len(collector.expected) - collector.resolved,
            self.poke_interval,
            timeout_at.isoformat(timespec="seconds"),
        )
        self.defer(
            trigger=EntraProvisioningLogTrigger(
                entra_conn_id=self.entra_conn_id,
                external_ids_path=self._ids_source(),
                since=self._since().isoformat(),
                poll_interval=float(self.poke_interval),
                timeout_at=timeout_at.isoformat(),
                page_size=self.page_size,
                state_path=str(self._entries_path()),
                lookback_seconds=self.lookback_seconds,
                settle_seconds=self.settle_seconds,
                started_at=self._verify_started_at,
                tolerance_seconds=self.acceptance_tolerance_seconds,
            ),
            method_name="execute_complete",
            kwargs={"verify_started_at": self._verify_started_at},
            # The trigger stops itself at timeout_at; this only guards against a lost trigger.
            timeout=timedelta(seconds=self.timeout + max(300.0, 2 * float(self.poke_interval))),
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        collector = self._collector_for_run()
        result = collector.poll(self.hook)
        self._log_progress(result.resolved, result.expected, result.log_requests, result.pending_references)
        if not result.complete:
            return False
        return PokeReturnValue(
            is_done=True, xcom_value=self._finish(context, STATUS_COMPLETE, deferred=False)
        )

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        verify_started_at: str | None = None,
    ) -> dict[str, Any]:
        """Resume after the trigger: reconcile the collected entries, report, apply the thresholds."""
        if not event:
            raise AirflowException("The provisioning-log trigger ended without an event")
        self._verify_started_at = verify_started_at or event.get("started_at")
        if event.get("status") == STATUS_ERROR:
            raise AirflowException(f"Reading the provisioning logs failed: {event.get('message')}")
        self._check_sees_collected(event)
        status = STATUS_TIMEOUT if event.get("status") == STATUS_TIMEOUT else STATUS_COMPLETE
        if status == STATUS_TIMEOUT:
            self.log.warning(
                "Timed out with %s/%s records resolved; reporting the rest as missing",
                event.get("resolved"),
                event.get("expected"),
            )
        return self._finish(context, status, deferred=True)

    def _check_sees_collected(self, event: Mapping[str, Any]) -> None:
        """Fail, rather than judge on partial data, when this worker reads fewer entries than the trigger
        collected: the staging root is not one storage for both (a local path on two machines)."""
        collected = event.get("entries")
        if collected is None or not self.summary.get("first_submit"):
            return
        self._collector = None  # what the storage holds now, not what this instance polled before deferring
        seen = self._collector_for_run().entries
        if seen < int(collected):
            raise AirflowException(
                f"The triggerer collected {collected} provisioning-log entries into "
                f"{event.get('entries_path')}, but this worker reads {seen} there: the staging root is not "
                "the same storage for the triggerer and the workers. Nothing is judged on partial data. Set "
                "the Airflow Variable entra_staging_path to object storage both reach (s3://, abfs://, "
                "gs://...), or share the local staging root between them (NFS) and set the Variable "
                "entra_staging_shared to true."
            )

    def _log_progress(self, resolved: int, expected: int, requests: int, pending: int) -> None:
        self.log.info(
            "Provisioning logs: %d/%d records have an outcome (%d log request(s) this poll)%s",
            resolved,
            expected,
            requests,
            f", {pending} manager reference(s) pending" if pending else "",
        )

    # --- result -------------------------------------------------------------------------------------------

    def _finish(self, context: Context, status: str, *, deferred: bool) -> dict[str, Any]:
        summary = self.summary
        report_dir = self._report_dir()
        sent = load_external_ids(self._ids_source()) if summary.get("first_submit") else []
        collector: ProvisioningLogCollector | None = None
        entries: list[Any] = []
        if sent:
            collector = self._collector_for_run()  # restored from the state files after a deferral
            entries = read_jsonl(self._entries_path(), missing_ok=True)
        outcomes = reconcile(
            entries,
            sent,
            since=self._since() if sent else None,
            accepted_at=self._acceptance() if sent else None,
            tolerance_seconds=self.acceptance_tolerance_seconds,
        )
        outcomes_path = write_frame(outcomes, report_dir / OUTCOMES_NAME)
        local = local_path(report_dir)
        run_id = str(context.get("run_id") or "") if hasattr(context, "get") else ""
        paths = write_report(
            outcomes,
            local if local is not None else report_dir,
            run_id=run_id or "(no run id)",
            summary={
                "job_id": summary.get("job_id"),
                "records_sent": len(sent),
                "requests": summary.get("requests"),
                "rejected_before_upload": summary.get("rejected"),
                "verification": status,
                "log_requests": collector.log_requests if collector else 0,
                "log_polls": collector.polls if collector else 0,
                "manifest": summary.get("manifest_path"),
            },
            timings={
                "first_submitted_at": summary.get("first_submit"),
                "last_submitted_at": summary.get("last_submit"),
                "first_accepted_at": summary.get("first_accepted"),
                "last_accepted_at": summary.get("last_accepted"),
                "verify_started_at": self._verify_started_at,
                "verify_finished_at": datetime.now(timezone.utc).isoformat(),
            },
        )
        counts = {name: int((outcomes["status"] == name).sum()) for name in STATUSES}
        failures = counts[STATUS_FAILURE]
        missing = counts[STATUS_MISSING]
        result = {
            "status": status,
            "records": len(sent),
            "outcomes": counts,
            "failures": failures,
            "missing": missing,
            "warnings": counts[STATUS_WARNING],
            "to_resend": len(records_to_resend(outcomes)),
            # URLs like the upload's paths (file:///... on a local disk), whatever write_report returned
            "report_html": str(report_dir / Path(str(paths.html)).name),
            "report_csv": str(report_dir / Path(str(paths.csv)).name),
            "outcomes_path": str(outcomes_path),
            "log_requests": collector.log_requests if collector else 0,
            "log_polls": collector.polls if collector else 0,
            "deferred": deferred,
        }
        self.log.info(
            "Verified %d records: %s. Report: %s",
            len(sent),
            ", ".join(f"{count} {name}" for name, count in counts.items() if count),
            result["report_html"],
        )
        problem = self._threshold_breach(outcomes, failures, missing, status)
        if problem:
            ti = context.get("ti") if hasattr(context, "get") else None
            if ti is not None:
                ti.xcom_push(key=VERIFICATION_XCOM_KEY, value=result)
            raise AirflowException(f"{problem} Report: {result['report_html']}")
        return result

    def _threshold_breach(
        self, outcomes: pd.DataFrame, failures: int, missing: int, status: str
    ) -> str | None:
        """:func:`~airflow_provider_entra.provisioning.verdict.verdict`, with reasons and records named."""
        tally = Tally(records=len(outcomes), failures=failures, missing=missing)
        text = verdict(tally, max_failures=self.max_failures, max_failure_percent=self.max_failure_percent)
        if text is None:
            return None
        if missing and status == STATUS_TIMEOUT:
            text += " The verification timed out."
        reasons = failure_reasons(outcomes, top=5)
        if reasons:
            text += " Top reasons: " + ", ".join(f"{code} ({count})" for code, count in reasons) + "."
        failed = outcomes[outcomes["status"].eq(STATUS_FAILURE)].head(MAX_NAMED_FAILURES)
        if len(failed):
            named = ", ".join(
                f"{row.external_id} ({row.error_code or row.reason or 'no reason'})"
                for row in failed.itertuples(index=False)
            )
            more = failures - len(failed)
            text += f" Failed: {named}" + (f" and {more} more" if more > 0 else "") + "."
        if missing:
            lost = outcomes.loc[outcomes["status"].eq(STATUS_MISSING), "external_id"].head(MAX_NAMED_FAILURES)
            text += f" Missing: {', '.join(lost)}" + (" ..." if missing > len(lost) else "") + "."
        return text
