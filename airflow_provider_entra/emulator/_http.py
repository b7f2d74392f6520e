"""Graph's HTTP conventions (error envelope, request ids, ``Date``) and the middleware that counts every call
and injects faults.

Graph's error envelope and ids: https://learn.microsoft.com/en-us/graph/errors; the ``Date`` header:
https://www.rfc-editor.org/rfc/rfc9110#section-6.6.1 (``docs/emulator.md`` says how the emulator dates a 202).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
import uuid
from email.utils import formatdate
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_provider_entra.emulator._core import Emulator


class GraphError(Exception):
    """An error answered with Graph's envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.details = details


def graph_ids(request: Request) -> dict[str, str]:
    """``request-id``/``client-request-id`` headers for a Graph response (the client's id is echoed)."""
    ids = getattr(request.state, "graph_ids", None)
    if ids is None:
        request_id = str(uuid.uuid4())
        ids = {
            "request-id": request_id,
            "client-request-id": request.headers.get("client-request-id") or request_id,
        }
        request.state.graph_ids = ids
    return ids


def error_body(code: str, message: str, ids: dict[str, str], details: list | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {
        "code": code,
        "message": message,
        "innerError": {
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": ids["request-id"],
            "client-request-id": ids["client-request-id"],
        },
    }
    if details:
        err["details"] = details
    return {"error": err}


def retry_after(seconds: float, override: int | None) -> str:
    """A ``Retry-After`` value: ``override`` when set, else the wait in whole seconds (at least 1)."""
    return str(override if override is not None else max(1, math.ceil(seconds)))


def base_url_of(request: Request) -> str:
    """``https://host:port`` as the client addressed the emulator."""
    return str(request.base_url).rstrip("/")


def endpoint_of(path: str) -> str:
    """The stats/fault bucket of a request path."""
    if path.startswith("/_emulator"):
        return "control"
    if path.endswith("/oauth2/v2.0/token"):
        return "token"
    if "/.well-known/" in path or "/discovery/" in path:
        return "discovery"
    if path.startswith("/msi/"):
        return "managedIdentity"
    if path.endswith("/bulkUpload"):
        return "bulkUpload"
    if "/auditLogs/provisioning" in path:
        return "provisioningLogs"
    if "/synchronization/jobs" in path:
        return "job"
    return "other"


def http_date(ts: float) -> str:
    """``ts`` (seconds since the epoch) as an HTTP ``Date`` value: IMF-fixdate, GMT, the second it falls in
    (floored like the provisioning logs' ``activityDateTime``, so an entry is never dated before its upload's
    acceptance)."""
    return formatdate(math.floor(ts), usegmt=True)


def with_date_header(message: Message) -> Message:
    """The ``http.response.start`` message with a ``Date`` header (the clock now) unless it has one.

    Every Graph response carries ``Date`` (RFC 9110 section 6.6.1); the bulkUpload route sets its own, the
    time the upload was accepted, and keeps it. uvicorn's header is switched off (it is cached per second).
    """
    headers = list(message.get("headers") or [])
    if any(name.lower() == b"date" for name, _ in headers):
        return message
    headers.append((b"date", http_date(time.time()).encode("latin-1")))
    return {**message, "headers": headers}


def _abort(send: Send) -> None:
    """Drop the TCP connection without an HTTP response (uvicorn's protocol owns the transport)."""
    owner = getattr(send, "__self__", None)
    transport = getattr(owner, "transport", None)
    if transport is None:
        raise RuntimeError("dropped connection (injected fault)")
    transport.abort()


class StatsAndFaults:
    """Outermost ASGI middleware: counts every call and its status, and injects planned or random faults."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = endpoint_of(scope["path"])
        stats = self.emulator.stats
        arrival: dict[str, Any] | None = None
        repeat = False
        with self.emulator.lock:
            stats.calls[endpoint] += 1
            if endpoint != "control":
                client_request_id = next(
                    (v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"client-request-id"),
                    None,
                )
                arrival, repeat = stats.log_request(endpoint, scope["method"], client_request_id)
                scope.setdefault("state", {})["arrival"] = arrival
        fault = self.emulator.pick_fault(endpoint, repeat=repeat) if endpoint != "control" else None
        real_send = send

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = with_date_header(message)
                with self.emulator.lock:
                    stats.status[f"{endpoint}:{message['status']}"] += 1
                    if message["status"] == 429:
                        stats.throttled[endpoint] += 1
                    if arrival is not None:
                        arrival["status"] = message["status"]
            await real_send(message)

        if fault is None:
            await self.app(scope, receive, counting_send)
            return
        kind = fault["kind"]
        with self.emulator.lock:
            stats.faults[kind] += 1
            if arrival is not None:
                arrival["fault"] = kind
        if kind == "slow":
            await asyncio.sleep(fault["seconds"])
            await self.app(scope, receive, counting_send)
        elif kind == "drop":
            _abort(send)
        elif kind == "drop_after":

            async def swallow(message: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
            _abort(send)
        else:
            status = int(kind)
            request_id = str(uuid.uuid4())
            ids = {"request-id": request_id, "client-request-id": request_id}
            for name, value in scope.get("headers", []):
                if name == b"client-request-id":
                    ids["client-request-id"] = value.decode()
            headers = dict(ids)
            code, message = {
                429: ("TooManyRequests", "Too many requests (injected fault)."),
                500: ("InternalServerError", "An internal server error occurred (injected fault)."),
                503: ("ServiceUnavailable", "The service is temporarily unavailable (injected fault)."),
            }[status]
            if status in (429, 503):
                headers["Retry-After"] = str(
                    fault.get("retry_after") or self.emulator.config.retry_after or 1
                )
            response = JSONResponse(error_body(code, message, ids), status_code=status, headers=headers)
            await response(scope, receive, counting_send)
