"""The manifest: what Graph accepted, so a retried task resumes without resending.

Right after each 202 a line goes to ``upload-manifest.jsonl``::

    {"seq": 7, "stage": 1, "fingerprint": "…", "request_id": "…", "client_request_id": "…",
     "external_ids": ["1513", …], "operations": 50, "submitted_at": "2026-03-02T01:00:07.1+00:00",
     "accepted_at": "2026-03-02T01:00:07+00:00", "status_code": 202}

(``"part_of"``: the planned request's fingerprint, on the line of a part of a request Graph refused whole.)
``submitted_at`` is the local clock when the request was sent, ``accepted_at`` Microsoft's (the 202's
``Date`` header; ``null`` without one). Requests Graph refused (400) go to ``upload-refused.jsonl`` the same
way (fingerprint, externalIds, status, request id, reason), so a retry does not probe them again.

A retried task reads both files (:class:`Earlier`) and skips every request whose fingerprint is in them.

Writing (:class:`LineWriter`): on a local disk each line is written to the file as soon as it is appended
(one ``write``, so a killed process has lost nothing it recorded: only a request accepted in the instant
before the kill is sent again), and made durable with ``fsync`` in batches: every ``sync_every`` lines,
every ``sync_seconds`` and when closed. An object store cannot append: there the lines are kept and the
object is rewritten whole in the same batches, so a process killed between two batches sends the
requests of the unwritten lines again (a record sent twice is updated to the same values).

No Airflow: files go through :mod:`airflow_provider_entra._fsio` (a local path, a URL, or a path object
with ``fs`` such as an ``ObjectStoragePath``), which also reads them back (``read_jsonl`` skips a torn line).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import pandas as pd

from airflow_provider_entra._atomic import open_private_append
from airflow_provider_entra._fsio import exists, fs_and_path, is_local, read_bytes, read_jsonl, write_bytes_on
from airflow_provider_entra._time import utc
from airflow_provider_entra.upload.planning import PlannedRequest, UploadPlan

__all__ = [
    "EXTERNAL_IDS_NAME",
    "MANIFEST_NAME",
    "REFUSED_NAME",
    "REJECTED_NAME",
    "Earlier",
    "LineWriter",
    "acceptance",
    "accepted_line",
    "external_ids_frame",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = "upload-manifest.jsonl"
#: Requests (and parts) Graph refused with 400, one JSON line each: a retried task does not re-probe them.
REFUSED_NAME = "upload-refused.jsonl"
#: Every externalId of the run's requests (``externalId``, ``seq``, ``stage``, ``accepted_at``).
EXTERNAL_IDS_NAME = "sent-external-ids.parquet"
#: Records not sent, with a reason.
REJECTED_NAME = "upload-rejected.parquet"
#: Lines written between two ``fsync`` (local) or two rewrites (object store)...
DEFAULT_SYNC_EVERY = 100
#: ...and the longest time between them, in seconds.
DEFAULT_SYNC_SECONDS = 5.0


def _dump(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str) + "\n").encode("utf-8")


class LineWriter:
    """Append JSON lines to a file that a retried task reads back (see the module docstring).

    :param path: the JSON Lines file (created owner-only on a local disk when missing).
    :param sync_every: lines between two syncs.
    :param sync_seconds: longest time between two syncs.
    :param clock: monotonic seconds.
    """

    def __init__(
        self,
        path: Any,
        *,
        sync_every: int = DEFAULT_SYNC_EVERY,
        sync_seconds: float = DEFAULT_SYNC_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.sync_every = max(1, sync_every)
        self.sync_seconds = sync_seconds
        self._clock = clock
        self._fs, self._inner = fs_and_path(path)
        self._local = is_local(self._fs)
        self._handle: IO[bytes] | None = None
        self._content: bytearray | None = None  # object store: the whole object as it will be written
        self._unsynced = 0
        self._last_sync = clock()

    def append(self, record: Mapping[str, Any]) -> None:
        """Add one line: in the file at once on a local disk, at the next sync on an object store."""
        line = _dump(record)
        if self._local:
            handle = self._open()
            handle.write(line)
            handle.flush()
        else:
            self._object().extend(line)
        self._unsynced += 1
        if self._unsynced >= self.sync_every or self._clock() - self._last_sync >= self.sync_seconds:
            self.sync()

    def sync(self) -> None:
        """Make the lines appended so far durable (``fsync``), or write the object."""
        if self._unsynced:
            if self._handle is not None:
                os.fsync(self._handle.fileno())
            elif self._content is not None:
                write_bytes_on(self._fs, self._inner, bytes(self._content))
        self._unsynced = 0
        self._last_sync = self._clock()

    def close(self) -> None:
        """Sync and close."""
        try:
            self.sync()
        finally:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    def __enter__(self) -> LineWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _open(self) -> IO[bytes]:
        if self._handle is None:
            target = Path(self._inner)
            self._handle = open_private_append(target)
            if self._handle.tell() > 0:
                with open(target, "rb") as existing:
                    existing.seek(-1, os.SEEK_END)
                    if existing.read(1) != b"\n":  # a torn line: end it, so the next line starts clean
                        self._handle.write(b"\n")
        return self._handle

    def _object(self) -> bytearray:
        if self._content is None:
            self._content = bytearray(read_bytes(self.path) if exists(self.path) else b"")
            if self._content and not self._content.endswith(b"\n"):
                self._content.extend(b"\n")
        return self._content


def accepted_line(
    request: PlannedRequest, receipt: Mapping[str, Any], part_of: str | None = None
) -> dict[str, Any]:
    """The manifest line of an accepted request.

    :param request: the request (or part) sent.
    :param receipt: what Graph answered: ``status_code``, ``request_id``, ``client_request_id``,
        ``operation_count``, ``submitted_at`` and ``accepted_at`` (ISO 8601 texts, the latter ``None``
        without a ``Date``), as the hook's ``BulkUploadReceipt.to_dict()`` gives them.
    :param part_of: the planned request's fingerprint when ``request`` is a part of it.
    """
    line = {
        "seq": request.seq,
        "stage": request.stage,
        "fingerprint": request.fingerprint,
        "request_id": receipt.get("request_id"),
        "client_request_id": receipt.get("client_request_id"),
        "external_ids": request.external_ids,
        "operations": receipt.get("operation_count", request.operations),
        "submitted_at": receipt["submitted_at"],
        "accepted_at": receipt.get("accepted_at"),
        "status_code": receipt.get("status_code"),
    }
    if part_of is not None:
        line["part_of"] = part_of
    return line


@dataclass
class Earlier:
    """What earlier tries of the task left, by fingerprint: requests accepted and requests refused.

    :param accepted: manifest lines.
    :param refused: refusal lines.
    """

    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, manifest_path: Any, refused_path: Any) -> Earlier:
        """Read the manifest and the refusals file (either may be missing)."""
        return cls(_by_fingerprint(manifest_path), _by_fingerprint(refused_path))

    def counts(self, plan: UploadPlan) -> tuple[int, int, int]:
        """``(requests of the plan already accepted, parts of its requests already accepted, lines of other
        runs or inputs)``."""
        wanted = {request.fingerprint for request in plan.requests}
        resumed = len(wanted & self.accepted.keys())
        parts = sum(1 for line in self.accepted.values() if line.get("part_of") in wanted)
        stale = sum(
            1
            for key, line in self.accepted.items()
            if key not in wanted and line.get("part_of") not in wanted
        )
        return resumed, parts, stale


def _by_fingerprint(path: Any) -> dict[str, dict[str, Any]]:
    return {
        line["fingerprint"]: line for line in read_jsonl(path, missing_ok=True) if line.get("fingerprint")
    }


def acceptance(lines: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """externalId -> the earliest ``accepted_at`` among the manifest lines carrying it (ISO 8601 text)."""
    earliest: dict[str, tuple[datetime, str]] = {}
    for line in lines:
        accepted = line.get("accepted_at")
        if not accepted:
            continue
        stamp = utc(accepted)
        for ext in line.get("external_ids") or ():
            key = str(ext)
            if key not in earliest or stamp < earliest[key][0]:
                earliest[key] = (stamp, accepted)
    return {key: text for key, (_, text) in earliest.items()}


def external_ids_frame(
    plan: UploadPlan,
    leave_out: Iterable[str] = (),
    accepted_at: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """``externalId``, ``seq``, ``stage``, ``accepted_at`` (UTC, NaT when unknown) of every record of the
    plan's requests but ``leave_out``: what the verification waits for."""
    requests: Sequence[PlannedRequest] = plan.requests
    sizes = [request.operations for request in requests]
    ids = pd.Series([ext for request in requests for ext in request.external_ids], dtype=object)
    frame = pd.DataFrame(
        {
            "externalId": ids,
            "seq": np.repeat([request.seq for request in requests], sizes).astype(np.int64),
            "stage": np.repeat([request.stage for request in requests], sizes).astype(np.int64),
        }
    )
    gone = set(leave_out)
    if gone:
        frame = frame[~frame["externalId"].isin(gone)].reset_index(drop=True)
    times = frame["externalId"].map(accepted_at or {})
    frame["accepted_at"] = pd.to_datetime(times.where(times.notna(), None), utc=True, format="ISO8601")
    return frame
