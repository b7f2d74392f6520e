"""The emulated tenant, independent of HTTP: it holds the state and coordinates the parts that act on it.

Everything here runs under one lock; HTTP handlers and the background processor call in. Processing happens
``processing_delay`` seconds after an upload is received (or at once on ``POST /_emulator/process``), only
while the job is Active, one upload (= one cycle) at a time, records in request order.

The parts (``docs/emulator.md`` lists them): options in ``_config``, limits and faults in ``_limits``,
counters in ``_stats``, users in ``_directory``, jobs and pending uploads in ``_jobs``, a cycle's processing
in ``_processing``, log entries in ``_logs``, persistence in ``_store``.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from airflow_provider_entra.emulator._config import Config
from airflow_provider_entra.emulator._directory import Directory
from airflow_provider_entra.emulator._identity import App
from airflow_provider_entra.emulator._jobs import Job, Upload, new_job_id
from airflow_provider_entra.emulator._limits import Limits
from airflow_provider_entra.emulator._logfilter import to_sql
from airflow_provider_entra.emulator._logs import decode_token, encode_token, unpack
from airflow_provider_entra.emulator._processing import Cycle
from airflow_provider_entra.emulator._protocol import DEFAULT_DOMAIN, JOB_STATUS_ACTIVE, JOB_STATUS_PAUSED
from airflow_provider_entra.emulator._stats import Stats
from airflow_provider_entra.emulator._store import Store

log = logging.getLogger("entra_emulator")


class Emulator:
    """All state of one emulated tenant."""

    def __init__(
        self,
        data_dir: Path,
        *,
        tenant_id: str,
        config: Config,
        domain: str = DEFAULT_DOMAIN,
    ) -> None:
        self.tenant_id = tenant_id
        self.domain = domain
        self.lock = threading.RLock()
        self.wakeup = threading.Condition(self.lock)
        self.startup_config = copy.deepcopy(config)
        self.config = config
        self.limits = Limits(config)
        self.store = Store(data_dir / "emulator.sqlite3")
        self.stats = Stats()
        self.directory = Directory()
        self.apps: dict[str, App] = {}
        self.jobs: dict[str, Job] = {}
        self.pending: list[Upload] = []
        self._upload_seq = 0
        self._load()

    # -- persistence -----------------------------------------------------------------------------------------
    def _load(self) -> None:
        for data in self.store.get("apps") or []:
            app = App.from_dict(data)
            self.apps[app.client_id] = app
        for data in self.store.get("jobs") or []:
            job = Job.from_dict(data)
            self.jobs[job.job_id] = job
        for user in self.store.load_users():
            self.directory.add(user)
        for data in self.store.load_uploads():
            self.pending.append(Upload(**data))
        self._upload_seq = max([u.seq for u in self.pending], default=0)
        self._upload_seq = max(self._upload_seq, int(self.store.get("upload_seq") or 0))

    def save_registry(self) -> None:
        """Persist apps and jobs."""
        with self.lock:
            self.store.put("apps", [a.to_dict() for a in self.apps.values()])
            self.store.put("jobs", [j.to_dict() for j in self.jobs.values()])

    def close(self) -> None:
        with self.lock:
            self.save_registry()
            self.store.close()

    # -- registry --------------------------------------------------------------------------------------------
    def app_by_name(self, name: str) -> App | None:
        return next((a for a in self.apps.values() if a.name == name), None)

    def add_app(self, app: App) -> App:
        """Register (or replace) an app; create its job when the job id is new."""
        with self.lock:
            for other in list(self.apps.values()):
                if other.name == app.name and other.client_id != app.client_id:
                    del self.apps[other.client_id]
            self.apps[app.client_id] = app
            if app.job_id and app.job_id not in self.jobs:
                self.jobs[app.job_id] = Job(
                    job_id=app.job_id,
                    service_principal_id=app.service_principal_id,
                    app_name=app.name,
                    display_name=f"API2AAD-{app.name}",
                    application_id=str(uuid.uuid4()),
                )
            self.save_registry()
        return app

    def new_job_id(self) -> str:
        return new_job_id(self.tenant_id)

    # -- limits and options ----------------------------------------------------------------------------------
    def take_upload_call(self) -> float:
        """Count a bulkUpload call against the burst and daily limits; return Retry-After seconds or 0."""
        with self.lock:
            return self.limits.take_upload_call(self.config, time.time())

    def daily_exhausted(self) -> bool:
        with self.lock:
            return self.limits.daily_used(time.time()) >= self.config.daily_quota

    def daily_used(self) -> int:
        """bulkUpload calls counted against the daily quota (the last 24 hours)."""
        with self.lock:
            return self.limits.daily_used(time.time())

    def new_day(self, hours: float) -> int:
        """Move the daily quota window ``hours`` on (:meth:`Limits.advance_daily_window`); return the
        calls still counted."""
        with self.lock:
            return self.limits.advance_daily_window(hours * 3600, time.time())

    def take_log_call(self, client_id: str) -> float:
        """Count a provisioning-logs call for an app; return Retry-After seconds or 0."""
        with self.lock:
            return self.limits.take_log_call(self.config, client_id, time.time())

    def pick_fault(self, endpoint: str, *, repeat: bool = False) -> dict[str, Any] | None:
        """The fault to inject into this call, if any (see :meth:`Limits.pick_fault`)."""
        with self.lock:
            return self.limits.pick_fault(self.config, endpoint, repeat=repeat)

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.config.update(changes)
            if "faults" in changes:
                self.limits.plan_faults(self.config.faults)
            self.wakeup.notify_all()
            return self.public_config()

    def public_config(self) -> dict[str, Any]:
        out = asdict(self.config)
        out["faults"] = copy.deepcopy(self.limits.fault_plan)
        return out

    # -- uploads ---------------------------------------------------------------------------------------------
    def accept_upload(self, job: Job, operations: list[dict[str, Any]], request_id: str) -> Upload:
        with self.lock:
            self._upload_seq += 1
            now = time.time()
            upload = Upload(
                seq=self._upload_seq,
                job_id=job.job_id,
                received=now,
                due=now + self.config.processing_delay,
                request_id=request_id,
                operations=[{"bulkId": op["bulkId"], "data": op["data"]} for op in operations],
            )
            self.pending.append(upload)
            self.store.add_upload(upload.seq, asdict(upload))
            self.store.put("upload_seq", self._upload_seq)
            self.stats.uploads_accepted += 1
            self.stats.operations_received += len(operations)
            self.wakeup.notify_all()
            return upload

    def _processable(self) -> list[Upload]:
        """Pending uploads of Active jobs, in order of arrival."""
        return [
            u
            for u in self.pending
            if (job := self.jobs.get(u.job_id)) is not None and job.status == JOB_STATUS_ACTIVE
        ]

    def next_due(self) -> float | None:
        """When the next processable upload becomes due (None: nothing to do)."""
        with self.lock:
            return min((u.due for u in self._processable()), default=None)

    def process_due(self, *, force: bool = False) -> dict[str, int]:
        """Process every upload that is due (all pending ones when ``force``) of Active jobs, in order."""
        processed_uploads = processed_ops = 0
        while True:
            with self.lock:
                now = time.time()
                upload = next((u for u in self._processable() if force or u.due <= now), None)
                if upload is None:
                    return {
                        "processed_uploads": processed_uploads,
                        "processed_operations": processed_ops,
                        "pending_uploads": len(self.pending),
                    }
                try:
                    self._process_upload(upload)
                except Exception:
                    # A bug must not wedge the queue: drop the upload, say so, keep serving.
                    log.exception("processing upload %s failed; it is dropped", upload.seq)
                    self.pending.remove(upload)
                    self.store.delete_uploads([upload.seq])
                    self.stats.uploads_failed += 1
                    continue
                processed_uploads += 1
                processed_ops += len(upload.operations)

    def _cycle(self, job: Job, exts: list[str]) -> Cycle:
        return Cycle(
            job, self.directory, self.config, tenant_id=self.tenant_id, domain=self.domain, exts=exts
        )

    def _process_upload(self, upload: Upload) -> None:
        records = [op["data"] for op in upload.operations]
        cycle = self._cycle(self.jobs[upload.job_id], [r["externalId"] for r in records])
        cycle.apply_records(records)
        self.pending.remove(upload)
        self.stats.uploads_processed += 1
        self.stats.operations_processed += len(upload.operations)
        self._commit(cycle, len(upload.operations), delete_uploads=[upload.seq])

    def _commit(self, cycle: Cycle, imported: int, delete_uploads: list[int]) -> None:
        """End the cycle and persist what it changed, its log entries and the jobs in one transaction."""
        cycle.finish(imported)
        self.store.commit_batch(
            users=cycle.touched.values(),
            logs=cycle.log.rows,
            delete_uploads=delete_uploads,
            kv={"jobs": [j.to_dict() for j in self.jobs.values()]},
        )

    # -- job control -----------------------------------------------------------------------------------------
    def start_job(self, job: Job) -> None:
        with self.lock:
            job.start()
            self.save_registry()
            self.wakeup.notify_all()

    def pause_job(self, job: Job) -> None:
        with self.lock:
            job.pause()
            self.save_registry()

    def restart_job(self, job: Job, scopes: set[str]) -> None:
        """Restart: purge unprocessed uploads of a stopped job, clear quarantine, release held disables."""
        with self.lock:
            if job.status == JOB_STATUS_PAUSED:
                purged = [u for u in self.pending if u.job_id == job.job_id]
                self.pending = [u for u in self.pending if u.job_id != job.job_id]
                self.store.delete_uploads(u.seq for u in purged)
                self.stats.uploads_purged += len(purged)
            held = job.restart()
            if "ForceDeletes" in scopes and held:
                cycle = self._cycle(job, [])
                cycle.release_held(held)
                self._commit(cycle, len(held), delete_uploads=[])
            self.save_registry()
            self.wakeup.notify_all()

    # -- reads -----------------------------------------------------------------------------------------------
    def public_users(self) -> list[dict[str, Any]]:
        with self.lock:
            return self.directory.public()

    def job_view(self, job: Job) -> dict[str, Any]:
        with self.lock:
            return job.view(synced=self.directory.synced_count(job.job_id), domain=self.domain)

    def query_logs(
        self, filter_text: str | None, top: int, skiptoken: str | None, ascending: bool
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of log entries and the skiptoken of the next page (None on the last page).

        Paging is keyset-based and pinned to the entries that existed when the first page was read, so entries
        written while a client pages never shift or duplicate what it sees.
        """
        conditions, params = to_sql(filter_text)
        state = decode_token(skiptoken) if skiptoken else None
        with self.lock:
            if state is None:
                state = {"max": self.store.max_log_seq(), "after": None}
            conditions.append("seq <= ?")
            params.append(state["max"])
            if self.config.log_delay > 0:
                conditions.append("ts <= ?")
                params.append(time.time() - self.config.log_delay)
            if state["after"] is not None:
                conditions.append("seq > ?" if ascending else "seq < ?")
                params.append(state["after"])
            rows = self.store.query_logs(
                " AND ".join(conditions), params, "ASC" if ascending else "DESC", top + 1
            )
        page = rows[:top]
        next_token = None
        if len(rows) > top:
            next_token = encode_token({"max": state["max"], "after": page[-1][0]})
        return [unpack(body) for _, body in page], next_token

    # -- reset -----------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Clear directory, logs, uploads, stats, quotas and faults; restore start-up options; keep apps."""
        with self.lock:
            self.directory.clear()
            self.pending.clear()
            self.config = copy.deepcopy(self.startup_config)
            self.limits.reset(self.config)
            for job in self.jobs.values():
                job.reset()
            self.store.clear(keep_keys=["apps", "jobs", "upload_seq", "meta"])
            self.stats.reset()
            self.save_registry()
