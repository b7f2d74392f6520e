"""The emulator's state and behaviour, independent of HTTP: apps, jobs, directory, uploads, processing, logs.

Everything here runs under one lock; HTTP handlers and the background processor call in. Processing happens
``processing_delay`` seconds after an upload is received (or at once on ``POST /_emulator/process``), only
while the job is Active, one upload (= one cycle) at a time, records in request order.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import logging
import math
import random
import threading
import time
import uuid
import zlib
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from airflow_provider_entra.emulator._identity import App
from airflow_provider_entra.emulator._logfilter import to_sql
from airflow_provider_entra.emulator._mapping import (
    import_details,
    map_record,
    order_key,
    show,
    valid_upn,
)
from airflow_provider_entra.emulator._protocol import (
    DAILY_WINDOW_SECONDS,
    DEFAULT_DELETE_THRESHOLD,
    DEFAULT_DOMAIN,
    ENTERPRISE_USER_SCHEMA,
    ERROR_INVALID_UPN,
    JOB_STATUS_ACTIVE,
    JOB_STATUS_PAUSED,
    JOB_STATUS_QUARANTINE,
    LOG_RATE_LIMIT,
    QUARANTINE_TOO_MANY_DELETES,
    SKIP_NOT_EFFECTIVELY_ENTITLED,
    SKIP_REDUNDANT,
    SKIP_UNRESOLVED_REFERENCE,
)
from airflow_provider_entra.emulator._store import Store

log = logging.getLogger("entra_emulator")
_ENT = ENTERPRISE_USER_SCHEMA
_ENT_CAP = "U" + ENTERPRISE_USER_SCHEMA[1:]
ERROR_REQUIRED_MISSING = "AzureActiveDirectoryRequiredPropertyMissing"


def parse_rate(text: str) -> tuple[int, float]:
    """Parse ``"calls/seconds"`` (e.g. ``"40/5"``)."""
    try:
        calls, seconds = str(text).split("/")
        parsed = int(calls), float(seconds)
    except ValueError as exc:
        raise ValueError(f"rate limit must look like 'calls/seconds', got {text!r}") from exc
    if parsed[0] < 1 or parsed[1] <= 0:
        raise ValueError(f"rate limit must be positive, got {text!r}")
    return parsed


def iso(ts: float) -> str:
    """UTC timestamp in whole seconds with ``Z``, as provisioning logs show it."""
    return dt.datetime.fromtimestamp(math.floor(ts), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(ts: float) -> str:
    return (
        dt.datetime.fromtimestamp(ts, dt.timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass
class Config:
    """Runtime options; each can be changed through ``POST /_emulator/config``."""

    processing_delay: float = 1.0
    rate_limit: str = "40/5"
    daily_quota: int = 6000
    token_lifetime: int = 3600
    log_page_size: int = 100
    log_rate_limit: str = LOG_RATE_LIMIT
    log_delay: float = 0.0
    fault_rate: float = 0.0
    throttle_rate: float = 0.0
    drop_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 2.0
    retry_after: int | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)
    #: Inject faults (random and planned) only into a request's first arrival (by ``client-request-id``);
    #: its retries pass, so a client's resend count can be checked against the faults it met.
    fault_first_attempt_only: bool = False
    reject_duplicate_external_ids: bool = False
    missing_active_disables: bool = True
    create_inactive: bool = True
    delete_window_seconds: float = 86400.0
    max_payload_bytes: int = 1_048_576

    def update(self, changes: dict[str, Any]) -> None:
        """Apply changes, rejecting unknown keys and malformed values before anything changes."""
        known = {f.name: f for f in fields(self)}
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(
                f"unknown config key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        trial = copy.deepcopy(self)
        for key, value in changes.items():
            current = getattr(self, key)
            if key in ("rate_limit", "log_rate_limit"):
                parse_rate(value)
            elif key == "faults":
                if not isinstance(value, list) or not all(isinstance(f, dict) for f in value):
                    raise ValueError("faults must be a list of objects")
                value = [_check_fault(f) for f in value]
            elif key == "retry_after":
                value = None if value is None else int(value)
            elif isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be a boolean")
            elif isinstance(current, int):
                value = int(value)
            elif isinstance(current, float):
                value = float(value)
            if key.endswith("_rate") and key not in ("rate_limit", "log_rate_limit") and not 0 <= value <= 1:
                raise ValueError(f"{key} must be between 0 and 1")
            setattr(trial, key, value)
        for key in changes:
            setattr(self, key, getattr(trial, key))


FAULT_KINDS = {"500", "503", "429", "drop", "drop_after", "slow"}
FAULT_ENDPOINTS = {"*", "bulkUpload", "provisioningLogs", "job", "token", "discovery", "managedIdentity"}


def _check_fault(fault: dict[str, Any]) -> dict[str, Any]:
    kind = str(fault.get("kind", ""))
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault kind must be one of {sorted(FAULT_KINDS)}, got {kind!r}")
    endpoint = fault.get("endpoint", "*")
    if endpoint not in FAULT_ENDPOINTS:
        raise ValueError(f"fault endpoint must be one of {sorted(FAULT_ENDPOINTS)}, got {endpoint!r}")
    return {
        "kind": kind,
        "endpoint": endpoint,
        "count": int(fault.get("count", 1)),
        "retry_after": fault.get("retry_after"),
        "seconds": float(fault.get("seconds", 2.0)),
    }


class SlidingWindow:
    """At most ``calls`` events in any ``seconds``-long window."""

    def __init__(self, calls: int, seconds: float) -> None:
        self.calls, self.seconds = calls, seconds
        self.events: deque[float] = deque()

    def acquire(self, now: float) -> float:
        """Record an event if allowed and return 0; otherwise return the seconds until one is allowed."""
        while self.events and self.events[0] <= now - self.seconds:
            self.events.popleft()
        if len(self.events) >= self.calls:
            return self.events[len(self.events) - self.calls] + self.seconds - now
        self.events.append(now)
        return 0.0


@dataclass
class Job:
    """A provisioning job of an API-driven provisioning app (one service principal)."""

    job_id: str
    service_principal_id: str
    app_name: str
    display_name: str
    application_id: str
    status: str = JOB_STATUS_ACTIVE
    quarantine: dict[str, Any] | None = None
    delete_threshold: int = DEFAULT_DELETE_THRESHOLD
    custom_attributes: dict[str, str] = field(default_factory=dict)  # mapped: source path -> Entra attribute
    declared_attributes: list[str] = field(
        default_factory=list
    )  # custom attributes the API directory declares
    last_execution: dict[str, Any] | None = None
    last_successful_execution: dict[str, Any] | None = None
    held: list[dict[str, Any]] = field(default_factory=list)
    delete_times: list[float] = field(default_factory=list)
    source_system_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    target_system_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Upload:
    seq: int
    job_id: str
    received: float
    due: float
    request_id: str
    operations: list[dict[str, Any]]


@dataclass
class _Cycle:
    job: Job
    cycle_id: str
    cycle_exts: set[str]
    known_before: dict[str, bool]
    # (user id, externalId, changeId, manager externalId) to resolve after the cycle's records
    deferred: list[tuple[str, str, str, str]] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    touched: dict[str, dict] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)


#: Most recent Graph and token calls kept in the request log (``GET /_emulator/requests``).
REQUEST_LOG_SIZE = 100_000


class Stats:
    """Counters the tests read through ``GET /_emulator/stats``, and the request log."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls: Counter = Counter()
        self.throttled: Counter = Counter()
        self.status: Counter = Counter()
        self.faults: Counter = Counter()
        self.operations_received = 0
        self.operations_processed = 0
        self.uploads_accepted = 0
        self.uploads_rejected = 0
        self.uploads_processed = 0
        self.uploads_purged = 0
        self.uploads_failed = 0
        self.tokens_issued: Counter = Counter()
        self.started = time.time()
        #: One entry per arrival (not control calls): seq, time, endpoint, method, client_request_id,
        #: fault, status and, for an accepted bulkUpload, ``upload`` (seq, operations, bulk_ids_sha256).
        self.requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.request_seq = 0
        self.client_request_ids: set[str] = set()

    def log_request(self, endpoint: str, method: str, client_request_id: str | None) -> tuple[dict, bool]:
        """Record an arrival; return the entry and whether this client-request-id arrived before."""
        self.request_seq += 1
        entry: dict[str, Any] = {
            "seq": self.request_seq,
            "time": time.time(),
            "endpoint": endpoint,
            "method": method,
            "client_request_id": client_request_id,
            "fault": None,
            "status": None,
        }
        self.requests.append(entry)
        repeat = client_request_id is not None and client_request_id in self.client_request_ids
        if client_request_id is not None:
            self.client_request_ids.add(client_request_id)
        return entry, repeat


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
        self.data_dir = data_dir
        self.tenant_id = tenant_id
        self.domain = domain
        self.lock = threading.RLock()
        self.wakeup = threading.Condition(self.lock)
        self.startup_config = copy.deepcopy(config)
        self.config = config
        self.store = Store(data_dir / "emulator.sqlite3")
        self.stats = Stats()
        self.apps: dict[str, App] = {}
        self.jobs: dict[str, Job] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.by_emp: dict[str, str] = {}
        self.by_upn: dict[str, str] = {}
        self.pending: list[Upload] = []
        self._upload_seq = 0
        self._upload_limiter = SlidingWindow(*parse_rate(config.rate_limit))
        self._daily: deque[float] = deque()
        self._log_limiters: dict[str, SlidingWindow] = {}
        self._fault_plan: list[dict[str, Any]] = []
        self._rng = random.Random()  # noqa: S311
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
            self._index(user)
        for data in self.store.load_uploads():
            self.pending.append(Upload(**data))
        self._upload_seq = max([u.seq for u in self.pending], default=0)
        self._upload_seq = max(self._upload_seq, int(self.store.get("upload_seq") or 0))

    def _index(self, user: dict[str, Any]) -> None:
        self.users[user["id"]] = user
        if user.get("employeeId"):
            self.by_emp[user["employeeId"]] = user["id"]
        if user.get("userPrincipalName"):
            self.by_upn[user["userPrincipalName"].lower()] = user["id"]

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

    def add_app(self, app: App, *, job_display_name: str | None = None) -> App:
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
                    display_name=job_display_name or f"API2AAD-{app.name}",
                    application_id=str(uuid.uuid4()),
                )
            self.save_registry()
        return app

    def new_job_id(self) -> str:
        return f"API2AAD.{self.tenant_id.replace('-', '')}.{uuid.uuid4()}"

    # -- limits ----------------------------------------------------------------------------------------------
    def take_upload_call(self) -> float:
        """Count a bulkUpload call against the burst and daily limits; return Retry-After seconds or 0."""
        with self.lock:
            now = time.time()
            cfg = self.config
            calls, seconds = parse_rate(cfg.rate_limit)
            if (self._upload_limiter.calls, self._upload_limiter.seconds) != (calls, seconds):
                self._upload_limiter = SlidingWindow(calls, seconds)
            while self._daily and self._daily[0] <= now - DAILY_WINDOW_SECONDS:
                self._daily.popleft()
            if len(self._daily) >= cfg.daily_quota:
                return max(1.0, self._daily[0] + DAILY_WINDOW_SECONDS - now)
            wait = self._upload_limiter.acquire(now)
            if wait > 0:
                return wait
            self._daily.append(now)
            return 0.0

    def daily_exhausted(self) -> bool:
        with self.lock:
            return len(self._daily) >= self.config.daily_quota

    def take_log_call(self, client_id: str) -> float:
        """Count a provisioning-logs call for an app; return Retry-After seconds or 0."""
        with self.lock:
            calls, seconds = parse_rate(self.config.log_rate_limit)
            limiter = self._log_limiters.get(client_id)
            if limiter is None or (limiter.calls, limiter.seconds) != (calls, seconds):
                limiter = self._log_limiters[client_id] = SlidingWindow(calls, seconds)
            return limiter.acquire(time.time())

    def pick_fault(self, endpoint: str, *, repeat: bool = False) -> dict[str, Any] | None:
        """Return the fault to inject into this call, if any (the planned ones first, then random ones).

        :param repeat: the call's ``client-request-id`` arrived before (a retry); with
            ``fault_first_attempt_only`` such a call gets no fault and consumes no planned one.
        """
        with self.lock:
            if repeat and self.config.fault_first_attempt_only:
                return None
            for fault in self._fault_plan:
                if fault["count"] > 0 and fault["endpoint"] in ("*", endpoint):
                    fault["count"] -= 1
                    self._fault_plan = [f for f in self._fault_plan if f["count"] > 0]
                    return fault
            if endpoint not in ("bulkUpload", "provisioningLogs", "job"):
                return None
            cfg = self.config
            roll = self._rng.random()
            for kind, rate in (
                ("drop", cfg.drop_rate),
                ("429", cfg.throttle_rate),
                (self._rng.choice(["500", "503"]), cfg.fault_rate),
                ("slow", cfg.slow_rate),
            ):
                if roll < rate:
                    return {
                        "kind": kind,
                        "endpoint": endpoint,
                        "retry_after": None,
                        "seconds": cfg.slow_seconds,
                    }
                roll -= rate
            return None

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.config.update(changes)
            if "faults" in changes:
                self._fault_plan = copy.deepcopy(self.config.faults)
            self.wakeup.notify_all()
            return self.public_config()

    def public_config(self) -> dict[str, Any]:
        out = asdict(self.config)
        out["faults"] = copy.deepcopy(self._fault_plan)
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

    def next_due(self) -> float | None:
        """When the next processable upload becomes due (None: nothing to do)."""
        with self.lock:
            dues = [
                u.due
                for u in self.pending
                if self.jobs.get(u.job_id) and self.jobs[u.job_id].status == JOB_STATUS_ACTIVE
            ]
            return min(dues) if dues else None

    def process_due(self, *, force: bool = False) -> dict[str, int]:
        """Process every upload that is due (all pending ones when ``force``) of Active jobs, in order."""
        processed_uploads = processed_ops = 0
        while True:
            with self.lock:
                now = time.time()
                upload = next(
                    (
                        u
                        for u in self.pending
                        if self.jobs.get(u.job_id) is not None
                        and self.jobs[u.job_id].status == JOB_STATUS_ACTIVE
                        and (force or u.due <= now)
                    ),
                    None,
                )
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

    # -- processing ------------------------------------------------------------------------------------------
    def _process_upload(self, upload: Upload) -> None:
        job = self.jobs[upload.job_id]
        began = time.time()
        exts = [op["data"]["externalId"] for op in upload.operations]
        cycle = _Cycle(
            job=job,
            cycle_id=str(uuid.uuid4()),
            cycle_exts=set(exts),
            known_before={e: self._known_to_job(job, e) for e in set(exts)},
        )
        for op in upload.operations:
            self._apply_record(cycle, op["data"], str(uuid.uuid4()))
        self._second_pass(cycle)
        self.pending.remove(upload)
        self.stats.uploads_processed += 1
        self.stats.operations_processed += len(upload.operations)
        self._finish_cycle(cycle, began, len(upload.operations), delete_uploads=[upload.seq])

    def _finish_cycle(self, cycle: _Cycle, began: float, imported: int, delete_uploads: list[int]) -> None:
        job = cycle.job
        failures = cycle.counts["failure"]
        execution = {
            "activityIdentifier": cycle.cycle_id,
            "countEntitled": imported,
            "countEntitledForProvisioning": imported,
            "countEscrowed": failures,
            "countEscrowedRaw": failures,
            "countExported": cycle.counts["exported"],
            "countExports": cycle.counts["exported"],
            "countImported": imported,
            "countImportedDeltas": imported,
            "countImportedReferenceDeltas": cycle.counts["references"],
            "error": None,
            "state": "EntryLevelErrors" if failures else "Succeeded",
            "timeBegan": iso_ms(began),
            "timeEnded": iso_ms(time.time()),
        }
        job.last_execution = execution
        if not failures:
            job.last_successful_execution = execution
        self.store.commit_batch(
            users=cycle.touched.values(),
            logs=cycle.rows,
            delete_uploads=delete_uploads,
            kv={"jobs": [j.to_dict() for j in self.jobs.values()]},
        )

    def _known_to_job(self, job: Job, ext: str) -> bool:
        oid = self.by_emp.get(ext)
        return oid is not None and job.job_id in self.users[oid].get("_jobs", [])

    def _resolve_manager_now(self, cycle: _Cycle, manager_ext: str) -> str | None:
        """A manager resolves only if this job processed it in an earlier cycle."""
        if manager_ext in cycle.cycle_exts and not cycle.known_before.get(manager_ext):
            return None
        if self._known_to_job(cycle.job, manager_ext):
            return self.by_emp[manager_ext]
        return None

    def _step(self, name: str, kind: str, status: str, description: str, details: dict | None = None) -> dict:
        return {
            "name": name,
            "provisioningStepType": kind,
            "status": status,
            "description": description,
            "details": details or {},
        }

    def _apply_record(
        self, cycle: _Cycle, data: dict[str, Any], change_id: str, *, force_deletes: bool = False
    ) -> None:
        started = time.perf_counter()
        job, cfg = cycle.job, self.config
        ext = data["externalId"]
        target, manager_ext = map_record(
            data,
            job.custom_attributes,
            domain=self.domain,
            missing_active_disables=cfg.missing_active_disables,
        )
        active = target.get("accountEnabled", True)
        steps = [
            self._step(
                "EntryImportAdd",
                "import",
                "success",
                f"Received {_ENT} '{ext}' change of type (Add) from API",
                import_details(data),
            )
        ]
        oid = self.by_emp.get(ext)
        user = self.users.get(oid) if oid else None
        if user is not None:
            steps.append(
                self._step(
                    "EntryImport",
                    "matching",
                    "success",
                    f"Retrieved  '{user.get('userPrincipalName')}' from Azure Active Directory",
                    {"objectId": user["id"], **{k: show(v) for k, v in _visible(user).items() if k != "id"}},
                )
            )
        steps.append(
            self._step(
                "EntrySynchronizationScoping",
                "scoping",
                "success",
                f"Determine if {_ENT} in scope by evaluating against each scoping filter",
                {
                    "Active in the source system": show(active),
                    "Scoping filter evaluation passed": "True",
                    "ScopeEvaluationResult": "{}",
                },
            )
        )
        entry = {
            "cycle": cycle,
            "change_id": change_id,
            "ext": ext,
            "steps": steps,
            "started": started,
        }
        if user is None:
            self._create(entry, target, manager_ext, active)
        else:
            self._update(entry, user, target, manager_ext, force_deletes=force_deletes)

    def _reference(
        self, entry: dict, upn: str, manager_ext: str | None, current_manager: str | None
    ) -> str | None:
        """Resolve the manager now, or add the skipped step (and queue the second pass when documented)."""
        if not manager_ext:
            return None
        cycle: _Cycle = entry["cycle"]
        resolved = self._resolve_manager_now(cycle, manager_ext)
        if resolved:
            return resolved
        if current_manager and self.users.get(current_manager, {}).get("employeeId") == manager_ext:
            return current_manager
        entry["steps"].append(
            self._step(
                "EntrySynchronizationSkip",
                "processing",
                "success",
                f"We were unable to assign {manager_ext} as the manager of {upn}. In order to ensure that "
                "the "
                f"references are updated properly, you have two options. First, ensure that {manager_ext} is "
                "in "
                f"scope for provisioning. Provision {manager_ext} on-demand and then provision {upn} "
                "on-demand. "
                f"Alternatively, you can restart provisioning after ensuring that {manager_ext} is in scope "
                "for "
                f"provisioning. ",
                {
                    manager_ext: "manager Add",
                    "PropertyName": "manager",
                    "SkipReason": SKIP_UNRESOLVED_REFERENCE,
                },
            )
        )
        if manager_ext in cycle.cycle_exts and not cycle.known_before.get(manager_ext):
            entry["deferred_manager"] = manager_ext
        return None

    def _create(self, entry: dict, target: dict, manager_ext: str | None, active: bool) -> None:
        cycle: _Cycle = entry["cycle"]
        ext = entry["ext"]
        steps = entry["steps"]
        upn = target.get("userPrincipalName")
        if not active and not self.config.create_inactive:
            steps.append(
                self._step(
                    "EntrySynchronizationSkip",
                    "scoping",
                    "skipped",
                    f"{_ENT} '{ext}' will be skipped: it is not active in API and no matching {_ENT} was "
                    "found "
                    f"in Azure Active Directory",
                    {"SkipReason": SKIP_NOT_EFFECTIVELY_ENTITLED, "IsActive": "False"},
                )
            )
            self._emit(entry, "other", "skipped", None, upn or "", target.get("displayName") or "", [], None)
            return
        steps.append(
            self._step(
                "EntrySynchronizationAdd",
                "matching",
                "success",
                f"{_ENT} '{ext}' will be created in Azure Active Directory ({_ENT} is active and assigned in "
                "API, "
                f"but no matching {_ENT} was found in Azure Active Directory)",
            )
        )
        error = None
        if not upn:
            error = (ERROR_INVALID_UPN, "The userPrincipalName is missing: the record has no userName.")
        elif not valid_upn(upn):
            error = (ERROR_INVALID_UPN, f"The userPrincipalName '{upn}' is not a valid user principal name.")
        elif upn.lower() in self.by_upn:
            error = (
                ERROR_INVALID_UPN,
                f"Another object with the same value for property userPrincipalName already exists "
                f"(userPrincipalName '{upn}').",
            )
        elif not target.get("displayName"):
            error = (
                ERROR_REQUIRED_MISSING,
                "The required property displayName is missing: send displayName.",
            )
        if error:
            self._fail(entry, "create", "EntryExportAdd", upn or ext, target.get("displayName") or "", error)
            return
        assert upn  # a missing upn set an error above
        new_id = str(uuid.uuid4())
        manager = self._reference(entry, upn, manager_ext, None)
        if manager:
            target["manager"] = manager
        now = time.time()
        user = {
            "id": new_id,
            **target,
            "createdDateTime": iso(now),
            "lastModifiedDateTime": iso(now),
            "_jobs": [cycle.job.job_id],
        }
        self._index(user)
        cycle.touched[new_id] = user
        if entry.get("deferred_manager"):
            cycle.deferred.append((new_id, entry["ext"], entry["change_id"], entry["deferred_manager"]))
        mods = [(k, None, show(v)) for k, v in sorted(target.items(), key=lambda kv: order_key(kv[0]))]
        mods += [("IsSoftDeleted", None, "False"), ("passwordProfile.password", None, "[Redacted]")]
        details = {k.replace(".", ""): v for k, _, v in mods} | {"ReportableIdentifier": entry["ext"]}
        entry["steps"].append(
            self._step(
                "EntryExportAdd",
                "export",
                "success",
                f"{_ENT_CAP} '{upn}' was created in Azure Active Directory",
                details,
            )
        )
        cycle.counts["exported"] += 1
        self._emit(entry, "create", "success", user, upn, target["displayName"], mods, None)

    def _update(
        self, entry: dict, user: dict, target: dict, manager_ext: str | None, *, force_deletes: bool
    ) -> None:
        cycle: _Cycle = entry["cycle"]
        job = cycle.job
        upn_now = user.get("userPrincipalName", "")
        new_upn = target.get("userPrincipalName")
        if new_upn and new_upn.lower() != upn_now.lower():
            clash = self.by_upn.get(new_upn.lower())
            error = None
            if not valid_upn(new_upn):
                error = (
                    ERROR_INVALID_UPN,
                    f"The userPrincipalName '{new_upn}' is not a valid user principal name.",
                )
            elif clash and clash != user["id"]:
                error = (
                    ERROR_INVALID_UPN,
                    f"Another object with the same value for property userPrincipalName already exists "
                    f"(userPrincipalName '{new_upn}').",
                )
            if error:
                self._fail(
                    entry, "update", "EntryExportUpdate", upn_now, user.get("displayName", ""), error, user
                )
                return
        manager = self._reference(entry, new_upn or upn_now, manager_ext, user.get("manager"))
        if manager:
            target["manager"] = manager
        mods = [
            (k, show(user.get(k)), show(v))
            for k, v in sorted(target.items(), key=lambda kv: order_key(kv[0]))
            if user.get(k) != v
        ]
        is_disable = user.get("accountEnabled", True) is True and target.get("accountEnabled") is False
        if is_disable and not force_deletes and self._over_delete_threshold(job):
            self._stage_delete(entry, user)
            return
        if entry.get("deferred_manager"):
            cycle.deferred.append((user["id"], entry["ext"], entry["change_id"], entry["deferred_manager"]))
        if job.job_id not in user.get("_jobs", []):
            user.setdefault("_jobs", []).append(job.job_id)
            cycle.touched[user["id"]] = user
        if not mods:
            entry["steps"].append(
                self._step(
                    "EntrySynchronizationNone",
                    "processing",
                    "skipped",
                    f"No changes are needed for {_ENT} '{entry['ext']}': the values in Azure Active "
                    "Directory "
                    f"already match the source",
                    {"SkipReason": SKIP_REDUNDANT, "ReportableIdentifier": entry["ext"]},
                )
            )
            self._emit(entry, "other", "skipped", user, upn_now, user.get("displayName", ""), [], None)
            return
        if new_upn and new_upn.lower() != upn_now.lower():
            self.by_upn.pop(upn_now.lower(), None)
            self.by_upn[new_upn.lower()] = user["id"]
        for key, _, _ in mods:
            user[key] = target[key]
        user["lastModifiedDateTime"] = iso(time.time())
        cycle.touched[user["id"]] = user
        if is_disable:
            job.delete_times.append(time.time())
        entry["steps"].append(
            self._step(
                "EntryExportUpdate",
                "export",
                "success",
                f"{_ENT_CAP} '{user['userPrincipalName']}' was updated in Azure Active Directory",
                {"ReportableIdentifier": entry["ext"]},
            )
        )
        cycle.counts["exported"] += 1
        action = "disable" if is_disable else "update"
        self._emit(
            entry, action, "success", user, user["userPrincipalName"], user.get("displayName", ""), mods, None
        )

    def _over_delete_threshold(self, job: Job) -> bool:
        now = time.time()
        window = self.config.delete_window_seconds
        job.delete_times = [t for t in job.delete_times if t > now - window]
        return job.status == JOB_STATUS_QUARANTINE or len(job.delete_times) + 1 > job.delete_threshold

    def _stage_delete(self, entry: dict, user: dict) -> None:
        cycle: _Cycle = entry["cycle"]
        job = cycle.job
        now = time.time()
        if job.status != JOB_STATUS_QUARANTINE:
            job.status = JOB_STATUS_QUARANTINE
            job.quarantine = {
                "currentBegan": iso(now),
                "nextAttempt": iso(now + 12 * 3600),
                "reason": QUARANTINE_TOO_MANY_DELETES,
                "seriesBegan": iso(now),
                "seriesCount": 1,
                "error": {
                    "code": QUARANTINE_TOO_MANY_DELETES,
                    "message": (
                        f"The job exceeded its accidental deletions threshold of {job.delete_threshold} "
                        f"disables/deletes; the rest are held until the job is restarted with ForceDeletes."
                    ),
                    "tenantActionable": True,
                },
            }
        job.held.append({"ext": entry["ext"], "change_id": entry["change_id"], "user_id": user["id"]})
        reason = (
            f"The accidental deletions threshold of {job.delete_threshold} was exceeded; disabling "
            f"'{user.get('userPrincipalName')}' is held until an administrator restarts the job with "
            "ForceDeletes."
        )
        entry["steps"].append(
            self._step(
                "EntrySynchronizationSkip",
                "processing",
                "skipped",
                reason,
                {"SkipReason": QUARANTINE_TOO_MANY_DELETES, "Threshold": str(job.delete_threshold)},
            )
        )
        error = {
            "errorCode": QUARANTINE_TOO_MANY_DELETES,
            "reason": reason,
            "additionalDetails": None,
            "errorCategory": "NonServiceFailure",
            "recommendedAction": (
                "Review the held disables, then restart the job with resetScope ForceDeletes."
            ),
        }
        self._emit(
            entry,
            "stageddelete",
            "skipped",
            user,
            user.get("userPrincipalName", ""),
            user.get("displayName", ""),
            [],
            error,
        )

    def _fail(
        self,
        entry: dict,
        action: str,
        step_name: str,
        upn: str,
        display_name: str,
        error: tuple[str, str],
        user: dict | None = None,
    ) -> None:
        code, reason = error
        verb = "create" if action == "create" else "update"
        entry["steps"].append(
            self._step(
                step_name,
                "export",
                "failure",
                f"Failed to {verb} {_ENT} '{upn}' in Azure Active Directory; Error: {reason}",
                {"ReportableIdentifier": entry["ext"]},
            )
        )
        info = {
            "errorCode": code,
            "reason": reason,
            "additionalDetails": None,
            "errorCategory": "NonServiceFailure",
            "recommendedAction": (
                "Make the userPrincipalName unique and valid in the source (userName), then send the record "
                "again."
                if code == ERROR_INVALID_UPN
                else "Send the missing attribute, then send the record again."
            ),
        }
        self._emit(entry, action, "failure", user, upn, display_name, [], info)  # counts the failure

    def _second_pass(self, cycle: _Cycle) -> None:
        """Entries for managers created in this cycle: an ``update`` with the same changeId."""
        for user_id, ext, change_id, manager_ext in cycle.deferred:
            user = self.users.get(user_id)
            manager_id = self.by_emp.get(manager_ext)
            if user is None or manager_id is None or not self._known_to_job(cycle.job, manager_ext):
                continue
            if user.get("manager") == manager_id:
                continue
            started = time.perf_counter()
            old = user.get("manager")
            user["manager"] = manager_id
            user["lastModifiedDateTime"] = iso(time.time())
            cycle.touched[user_id] = user
            cycle.counts["references"] += 1
            entry = {
                "cycle": cycle,
                "change_id": change_id,
                "ext": ext,
                "started": started,
                "steps": [
                    self._step(
                        "EntryExportUpdate",
                        "export",
                        "success",
                        f"{_ENT_CAP} '{ext}' was updated in Azure Active Directory",
                        {"ReportableIdentifier": ext},
                    )
                ],
            }
            self._emit(
                entry,
                "update",
                "success",
                user,
                user.get("userPrincipalName", ""),
                user.get("displayName", ""),
                [("manager", old, manager_id)],
                None,
            )

    def _emit(
        self,
        entry: dict,
        action: str,
        status: str,
        user: dict | None,
        upn: str,
        display_name: str,
        mods: list[tuple[str, Any, Any]],
        error: dict | None,
    ) -> None:
        cycle: _Cycle = entry["cycle"]
        job = cycle.job
        now = time.time()
        cycle.counts[status] += 1
        target_id = user["id"] if user is not None else ""
        body = {
            "id": str(uuid.uuid4()),
            "activityDateTime": iso(now),
            "tenantId": self.tenant_id,
            "jobId": job.job_id,
            "cycleId": cycle.cycle_id,
            "changeId": entry["change_id"],
            "provisioningAction": action,
            "durationInMilliseconds": max(1, int((time.perf_counter() - entry["started"]) * 1000)),
            "initiatedBy": {
                "id": "",
                "displayName": "Azure AD Provisioning Service",
                "initiatorType": "system",
            },
            "servicePrincipal": {"id": job.service_principal_id, "displayName": job.display_name},
            "sourceSystem": {"id": job.source_system_id, "displayName": "API", "details": {}},
            "targetSystem": {
                "id": job.target_system_id,
                "displayName": "Azure Active Directory",
                "details": {
                    "ApplicationId": job.application_id,
                    "ServicePrincipalId": job.service_principal_id,
                    "ServicePrincipalDisplayName": job.display_name,
                },
            },
            "sourceIdentity": {"id": entry["ext"], "displayName": "", "identityType": _ENT, "details": {}},
            "targetIdentity": {
                "id": target_id,
                "displayName": display_name,
                "identityType": "User",
                "details": {
                    "id": target_id,
                    "odatatype": "User",
                    "DisplayName": display_name,
                    "UserPrincipalName": upn,
                },
            },
            "provisioningStatusInfo": {"status": status, "errorInformation": error},
            "provisioningSteps": entry["steps"],
            "modifiedProperties": [{"displayName": k, "oldValue": o, "newValue": n} for k, o, n in mods],
        }
        cycle.rows.append(
            (
                body["id"],
                now,
                math.floor(now),
                job.job_id,
                job.service_principal_id,
                cycle.cycle_id,
                entry["change_id"],
                entry["ext"],
                target_id,
                status,
                action,
                zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 1),
            )
        )

    # -- job control -----------------------------------------------------------------------------------------
    def start_job(self, job: Job) -> None:
        with self.lock:
            if job.status == JOB_STATUS_QUARANTINE:
                job.held = []
                job.delete_times = []
            job.status = JOB_STATUS_ACTIVE
            job.quarantine = None
            self.save_registry()
            self.wakeup.notify_all()

    def pause_job(self, job: Job) -> None:
        with self.lock:
            if job.status == JOB_STATUS_ACTIVE:
                job.status = JOB_STATUS_PAUSED
            self.save_registry()

    def restart_job(self, job: Job, scopes: set[str]) -> None:
        """Restart: purge unprocessed uploads of a stopped job, clear quarantine, release held disables."""
        with self.lock:
            if job.status == JOB_STATUS_PAUSED:
                purged = [u for u in self.pending if u.job_id == job.job_id]
                self.pending = [u for u in self.pending if u.job_id != job.job_id]
                self.store.delete_uploads(u.seq for u in purged)
                self.stats.uploads_purged += len(purged)
            held, job.held = job.held, []
            job.delete_times = []
            job.status = JOB_STATUS_ACTIVE
            job.quarantine = None
            if "ForceDeletes" in scopes and held:
                self._release_held(job, held)
            self.save_registry()
            self.wakeup.notify_all()

    def _release_held(self, job: Job, held: list[dict[str, Any]]) -> None:
        began = time.time()
        cycle = _Cycle(job=job, cycle_id=str(uuid.uuid4()), cycle_exts=set(), known_before={})
        for item in held:
            user = self.users.get(item["user_id"])
            if user is None or user.get("accountEnabled") is False:
                continue
            entry = {
                "cycle": cycle,
                "change_id": item["change_id"],
                "ext": item["ext"],
                "started": time.perf_counter(),
                "steps": [],
            }
            old = user.get("accountEnabled", True)
            user["accountEnabled"] = False
            user["lastModifiedDateTime"] = iso(time.time())
            cycle.touched[user["id"]] = user
            entry["steps"].append(
                self._step(
                    "EntryExportUpdate",
                    "export",
                    "success",
                    f"{_ENT_CAP} '{user.get('userPrincipalName')}' was updated in Azure Active Directory "
                    f"(held disable released by ForceDeletes)",
                    {"ReportableIdentifier": item["ext"]},
                )
            )
            cycle.counts["exported"] += 1
            self._emit(
                entry,
                "disable",
                "success",
                user,
                user.get("userPrincipalName", ""),
                user.get("displayName", ""),
                [("accountEnabled", show(old), "False")],
                None,
            )
        self._finish_cycle(cycle, began, len(held), delete_uploads=[])

    # -- reads -----------------------------------------------------------------------------------------------
    def public_users(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self._public_user(u) for u in self.users.values()]

    def _public_user(self, user: dict[str, Any]) -> dict[str, Any]:
        out = _visible(user)
        manager = self.users.get(user.get("manager") or "")
        out["manager"] = user.get("manager")
        out["managerEmployeeId"] = manager.get("employeeId") if manager else None
        out["provisionedByJobs"] = list(user.get("_jobs", []))
        return out

    def job_view(self, job: Job) -> dict[str, Any]:
        with self.lock:
            synced = sum(1 for u in self.users.values() if job.job_id in u.get("_jobs", []))
            schedule_state = {"Active": "Active", "Paused": "Disabled"}.get(job.status, "Active")
            return {
                "id": job.job_id,
                "templateId": "API2AAD",
                "schedule": {"expiration": None, "interval": "PT40M", "state": schedule_state},
                "status": {
                    "code": job.status,
                    "countSuccessiveCompleteFailures": 0,
                    "escrowsPruned": False,
                    "lastExecution": job.last_execution,
                    "lastSuccessfulExecution": job.last_successful_execution,
                    "lastSuccessfulExecutionWithExports": job.last_successful_execution,
                    "progress": [],
                    "quarantine": job.quarantine,
                    "steadyStateFirstAchievedTime": None,
                    "steadyStateLastAchievedTime": None,
                    "synchronizedEntryCountByType": [{"key": "User", "value": synced}],
                    "troubleshootingUrl": None,
                },
                "synchronizationJobSettings": [
                    {"name": "QuarantineTooManyDeletesThreshold", "value": str(job.delete_threshold)},
                    {"name": "Domain", "value": json.dumps({"domain": self.domain})},
                ],
            }

    def query_logs(
        self, filter_text: str | None, top: int, skiptoken: str | None, ascending: bool
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of log entries and the skiptoken of the next page (None on the last page).

        Paging is keyset-based and pinned to the entries that existed when the first page was read, so entries
        written while a client pages never shift or duplicate what it sees.
        """
        conditions, params = to_sql(filter_text)
        state = _decode_token(skiptoken) if skiptoken else None
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
            next_token = _encode_token({"max": state["max"], "after": page[-1][0]})
        return [json.loads(zlib.decompress(body)) for _, body in page], next_token

    # -- reset -----------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Clear directory, logs, uploads, stats, quotas and faults; restore start-up options; keep apps."""
        with self.lock:
            self.users.clear()
            self.by_emp.clear()
            self.by_upn.clear()
            self.pending.clear()
            self._daily.clear()
            self._log_limiters.clear()
            self._fault_plan = []
            self.config = copy.deepcopy(self.startup_config)
            self._upload_limiter = SlidingWindow(*parse_rate(self.config.rate_limit))
            for job in self.jobs.values():
                job.status = JOB_STATUS_ACTIVE
                job.quarantine = None
                job.held = []
                job.delete_times = []
                job.last_execution = None
                job.last_successful_execution = None
                job.delete_threshold = DEFAULT_DELETE_THRESHOLD
                job.custom_attributes = {}
                job.declared_attributes = []
            self.store.clear(keep_keys=["apps", "jobs", "upload_seq", "meta"])
            self.stats.reset()
            self.save_registry()


def _visible(user: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in user.items() if not k.startswith("_")}


def _encode_token(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(token: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(state, dict) or not isinstance(state.get("max"), int):
            raise ValueError
        return state
    except (ValueError, TypeError) as exc:
        raise ValueError(f"$skiptoken '{token}' is not valid") from exc
