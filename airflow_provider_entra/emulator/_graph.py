"""The Graph routes: bulkUpload, the provisioning job (read, start, pause, restart, schema) and the
provisioning logs, each under ``/v1.0`` and ``/beta``.

Each checks what Graph checks, in Graph's order: the token (401), the job (404), the role (403), the limits
(429), then the request (400). Microsoft's pages: ``docs/entra-facts.md`` sections 1, 4 and 5.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from airflow_provider_entra.emulator._core import Emulator
from airflow_provider_entra.emulator._http import GraphError, base_url_of, graph_ids, http_date, retry_after
from airflow_provider_entra.emulator._identity import Identity, TokenError
from airflow_provider_entra.emulator._jobs import Job
from airflow_provider_entra.emulator._logfilter import FilterError
from airflow_provider_entra.emulator._protocol import (
    JOB_CONTROL_ROLES,
    JOB_READ_ROLES,
    LOG_ROLES,
    MAX_LOG_PAGE_SIZE,
    RESET_SCOPES,
    ROLE_APP_RW_OWNED,
    ROLE_UPLOAD_OWNED,
    UPLOAD_ROLES,
)
from airflow_provider_entra.emulator._schema import SchemaError, build_schema, read_schema
from airflow_provider_entra.emulator._validation import (
    BulkValidationError,
    check_content_type,
    parse_body,
    validate_bulk_request,
)

API_VERSIONS = ("v1.0", "beta")
_OWNED_BY = {ROLE_UPLOAD_OWNED, ROLE_APP_RW_OWNED}


def add_graph_routes(api: FastAPI, emulator: Emulator, identity: Identity) -> None:
    """Add the Graph routes to ``api``."""

    def _claims(request: Request) -> dict[str, Any]:
        """The caller's token claims, or 401 as Graph answers it."""
        try:
            return identity.verify(request.headers.get("authorization"))
        except TokenError as exc:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                str(exc),
                headers={
                    "WWW-Authenticate": (
                        'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
                        'authorize", client_id="00000003-0000-0000-c000-000000000000"'
                    )
                },
            ) from exc

    def _require(claims: dict[str, Any], roles: set[str], job: Job | None = None) -> None:
        """403 unless the token holds one of ``roles`` (an ``.OwnedBy`` role only for the app's own job)."""
        granted = set(claims.get("roles") or []) & roles
        ok = any(r not in _OWNED_BY for r in granted) or (
            bool(granted) and job is not None and claims.get("oid") == job.service_principal_id
        )
        if not ok:
            raise GraphError(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation. The application needs one of these "
                f"application permissions: {', '.join(sorted(roles))}.",
            )

    def _auth(request: Request, roles: set[str]) -> dict[str, Any]:
        claims = _claims(request)
        _require(claims, roles)
        return claims

    def _authorized_job(request: Request, sp: str, job_id: str, roles: set[str]) -> Job:
        """Token first (401), then the job (404), then the role (403), as Graph's gateway orders them."""
        claims = _claims(request)
        job = _job(sp, job_id)
        _require(claims, roles, job)
        return job

    def _job(sp: str, job_id: str) -> Job:
        with emulator.lock:
            job = emulator.jobs.get(job_id)
        if job is None or job.service_principal_id != sp:
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{job_id}' does not exist or one of its queried reference-property objects are "
                "not "
                f"present (servicePrincipal '{sp}').",
            )
        return job

    def _throttled(seconds: float, message: str) -> GraphError:
        return GraphError(
            429,
            "TooManyRequests",
            message,
            headers={"Retry-After": retry_after(seconds, emulator.config.retry_after)},
        )

    async def bulk_upload(ver: str, sp: str, job_id: str, request: Request) -> Response:
        job = _authorized_job(request, sp, job_id, UPLOAD_ROLES)
        wait = emulator.take_upload_call()
        if wait:
            if emulator.daily_exhausted():
                raise _throttled(
                    wait,
                    f"The tenant's daily limit of {emulator.config.daily_quota} bulkUpload calls is used up; "
                    f"try again later.",
                )
            raise _throttled(
                wait, f"Too many requests: more than {emulator.config.rate_limit} calls/seconds."
            )
        raw = await request.body()
        try:
            check_content_type(request.headers.get("content-type"))
            body = parse_body(raw, emulator.config.max_payload_bytes)
            operations = validate_bulk_request(
                body, reject_duplicate_external_ids=emulator.config.reject_duplicate_external_ids
            )
        except BulkValidationError as exc:
            with emulator.lock:
                emulator.stats.uploads_rejected += 1
            raise GraphError(
                exc.status_code,
                exc.code,
                exc.message,
                details=[
                    {"code": "InvalidValue", "target": p.target, "message": p.message} for p in exc.problems
                ],
            ) from exc
        ids = graph_ids(request)
        upload = emulator.accept_upload(job, operations, ids["request-id"])
        arrival = getattr(request.state, "arrival", None)
        if arrival is not None:
            bulk_ids = "\n".join(str(op["bulkId"]) for op in operations)
            with emulator.lock:
                arrival["upload"] = {
                    "seq": upload.seq,
                    "operations": len(operations),
                    "bulk_ids_sha256": hashlib.sha256(bulk_ids.encode("utf-8")).hexdigest(),
                }
        location = f"{base_url_of(request)}/{ver}/auditLogs/provisioning?$filter=" + quote(
            f"jobid eq '{job.job_id}'", safe="'"
        )
        # Date: the acceptance time; processing (and every log entry's activityDateTime) is at or after it.
        headers = {**ids, "Location": location, "Date": http_date(upload.received)}
        return Response(status_code=202, headers=headers)

    def get_schema(ver: str, sp: str, job_id: str, request: Request) -> JSONResponse:
        job = _authorized_job(request, sp, job_id, JOB_READ_ROLES)
        with emulator.lock:
            schema = build_schema(job.job_id, list(job.declared_attributes), dict(job.custom_attributes))
        return JSONResponse(schema, headers=graph_ids(request))

    async def put_schema(ver: str, sp: str, job_id: str, request: Request) -> Response:
        job = _authorized_job(request, sp, job_id, JOB_CONTROL_ROLES)
        try:
            declared, mapped = read_schema(json.loads(await request.body()))
        except (ValueError, SchemaError) as exc:
            raise GraphError(400, "BadRequest", f"Invalid synchronization schema: {exc}") from exc
        with emulator.lock:
            job.declared_attributes = declared
            job.custom_attributes = mapped
            emulator.save_registry()
        return Response(status_code=204, headers=graph_ids(request))

    def get_job(ver: str, sp: str, job_id: str, request: Request) -> JSONResponse:
        job = _authorized_job(request, sp, job_id, JOB_READ_ROLES)
        body = {
            "@odata.context": (
                f"{base_url_of(request)}/{ver}/$metadata#servicePrincipals('{sp}')/synchronization/jobs/$entity"
            ),
            **emulator.job_view(job),
        }
        return JSONResponse(body, headers=graph_ids(request))

    def list_jobs(ver: str, sp: str, request: Request) -> JSONResponse:
        claims = _claims(request)
        with emulator.lock:
            jobs = [j for j in emulator.jobs.values() if j.service_principal_id == sp]
        if not jobs:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{sp}' does not exist.")
        _require(claims, JOB_READ_ROLES, jobs[0])
        return JSONResponse(
            {
                "@odata.context": (
                    f"{base_url_of(request)}/{ver}/$metadata#servicePrincipals('{sp}')/synchronization/jobs"
                ),
                "value": [emulator.job_view(j) for j in jobs],
            },
            headers=graph_ids(request),
        )

    def start_job(ver: str, sp: str, job_id: str, request: Request) -> Response:
        job = _authorized_job(request, sp, job_id, JOB_CONTROL_ROLES)
        emulator.start_job(job)
        return Response(status_code=204, headers=graph_ids(request))

    def pause_job(ver: str, sp: str, job_id: str, request: Request) -> Response:
        job = _authorized_job(request, sp, job_id, JOB_CONTROL_ROLES)
        emulator.pause_job(job)
        return Response(status_code=204, headers=graph_ids(request))

    async def restart_job(ver: str, sp: str, job_id: str, request: Request) -> Response:
        job = _authorized_job(request, sp, job_id, JOB_CONTROL_ROLES)
        raw = await request.body()
        scopes: set[str] = set()
        if raw.strip():
            try:
                body = json.loads(raw)
                scope_text = (body.get("criteria") or {}).get("resetScope") or ""
            except (ValueError, AttributeError) as exc:
                raise GraphError(
                    400, "BadRequest", "The restart body must be JSON: {'criteria': {...}}"
                ) from exc
            scopes = {s.strip() for s in str(scope_text).split(",") if s.strip()}
            unknown = scopes - RESET_SCOPES
            if unknown:
                raise GraphError(
                    400,
                    "BadRequest",
                    f"resetScope has unknown value(s) {sorted(unknown)}; allowed: {sorted(RESET_SCOPES)}.",
                )
        await run_in_threadpool(emulator.restart_job, job, scopes)
        return Response(status_code=204, headers=graph_ids(request))

    def provisioning_logs(ver: str, request: Request) -> JSONResponse:
        claims = _auth(request, LOG_ROLES)
        wait = emulator.take_log_call(claims.get("appid", ""))
        if wait:
            raise _throttled(
                wait,
                "Too many requests: the provisioning logs API allows "
                f"{emulator.config.log_rate_limit} calls/seconds per app.",
            )
        params = request.query_params
        unsupported = [
            k for k in params if k.startswith("$") and k not in ("$filter", "$top", "$skiptoken", "$orderby")
        ]
        if unsupported:
            raise GraphError(400, "BadRequest", f"Query option(s) {unsupported} are not supported.")
        top_text = params.get("$top")
        top = emulator.config.log_page_size
        if top_text is not None:
            try:
                top = int(top_text)
            except ValueError as exc:
                raise GraphError(400, "BadRequest", f"Invalid $top value '{top_text}'.") from exc
            if not 1 <= top <= MAX_LOG_PAGE_SIZE:
                raise GraphError(
                    400, "BadRequest", f"$top must be between 1 and {MAX_LOG_PAGE_SIZE}, got {top}."
                )
        orderby = (params.get("$orderby") or "activityDateTime desc").strip()
        parts = orderby.split()
        if (
            parts[0].lower() != "activitydatetime"
            or len(parts) > 2
            or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc"))
        ):
            raise GraphError(
                400, "BadRequest", f"$orderby '{orderby}' is not supported; use activityDateTime asc|desc."
            )
        ascending = len(parts) == 2 and parts[1].lower() == "asc"
        filter_text = params.get("$filter")
        try:
            entries, next_token = emulator.query_logs(filter_text, top, params.get("$skiptoken"), ascending)
        except FilterError as exc:
            raise GraphError(400, "BadRequest", f"Invalid filter clause: {exc}") from exc
        except ValueError as exc:
            raise GraphError(400, "BadRequest", str(exc)) from exc
        if ver == "beta":
            for e in entries:
                e["action"] = (
                    e["provisioningAction"].capitalize()
                    if e["provisioningAction"] != "stageddelete"
                    else "StagedDelete"
                )
                e["statusInfo"] = {"status": e["provisioningStatusInfo"]["status"]}
        base = base_url_of(request)
        body: dict[str, Any] = {
            "@odata.context": f"{base}/{ver}/$metadata#auditLogs/provisioning",
            "value": entries,
        }
        if next_token:
            query = {"$top": str(top), "$skiptoken": next_token}
            if filter_text:
                query["$filter"] = filter_text
            if params.get("$orderby"):
                query["$orderby"] = orderby
            body["@odata.nextLink"] = f"{base}/{ver}/auditLogs/provisioning?" + urlencode(
                query, quote_via=quote
            )
        return JSONResponse(body, headers=graph_ids(request))

    job_path = "/servicePrincipals/{sp}/synchronization/jobs/{job_id}"
    routes: list[tuple[str, str, Any]] = [  # (method, path after /{ver}, handler); path parameters by name
        ("POST", f"{job_path}/bulkUpload", bulk_upload),
        ("POST", f"{job_path}/start", start_job),
        ("POST", f"{job_path}/pause", pause_job),
        ("POST", f"{job_path}/restart", restart_job),
        ("GET", f"{job_path}/schema", get_schema),
        ("PUT", f"{job_path}/schema", put_schema),
        ("GET", job_path, get_job),
        ("GET", "/servicePrincipals/{sp}/synchronization/jobs", list_jobs),
        ("GET", "/auditLogs/provisioning", provisioning_logs),
    ]
    for ver in API_VERSIONS:
        for method, path, handler in routes:
            names = [n for n in ("sp", "job_id") if f"{{{n}}}" in path]
            api.add_api_route(f"/{ver}{path}", _wrap(handler, ver, names), methods=[method])


def _wrap(fn: Any, version: str, names: list[str]) -> Any:
    """Bind the API version into a route handler, keeping FastAPI's signature-based parameter parsing."""
    params = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=str) for n in names]
    params.append(inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request))
    if asyncio.iscoroutinefunction(fn):

        async def handler(**kwargs: Any) -> Any:
            return await fn(version, **kwargs)

    else:

        def handler(**kwargs: Any) -> Any:  # type: ignore[misc]
            return fn(version, **kwargs)

    handler.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    handler.__name__ = f"{fn.__name__}_{version.replace('.', '_')}"
    return handler
