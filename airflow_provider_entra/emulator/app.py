"""The emulator's HTTP surface: a FastAPI app for login.microsoftonline.com, graph.microsoft.com and test
controls.

Routes (``{ver}`` is ``v1.0`` or ``beta``):

- ``GET /{tenant}/v2.0/.well-known/openid-configuration``, ``GET /{tenant}/discovery/v2.0/keys``,
  ``POST /{tenant}/oauth2/v2.0/token``, ``GET /msi/token`` (App Service managed identity);
- ``POST /{ver}/servicePrincipals/{sp}/synchronization/jobs/{job}/bulkUpload``,
  ``GET /{ver}/servicePrincipals/{sp}/synchronization/jobs[/{job}]``, ``POST .../{job}/start|pause|restart``,
  ``GET /{ver}/auditLogs/provisioning``;
- ``/_emulator/...`` test controls (no authentication: the emulator is a loopback developer tool).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import inspect
import json
import math
import time
import uuid
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_provider_entra.emulator._core import Emulator
from airflow_provider_entra.emulator._identity import (
    GRAPH_RESOURCES,
    App,
    Identity,
    OAuthError,
    TokenError,
    b64_secret,
    scope_resource,
)
from airflow_provider_entra.emulator._jobs import Job
from airflow_provider_entra.emulator._logfilter import FilterError
from airflow_provider_entra.emulator._pki import jwk
from airflow_provider_entra.emulator._protocol import (
    ALL_ROLES,
    GRAPH_RESOURCE,
    JOB_CONTROL_ROLES,
    JOB_READ_ROLES,
    LOG_ROLES,
    MANAGED_IDENTITY_API_VERSION,
    MAX_LOG_PAGE_SIZE,
    RESET_SCOPES,
    ROLE_APP_RW_OWNED,
    ROLE_UPLOAD_OWNED,
    UPLOAD_ROLES,
    iso,
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


def _retry_after(seconds: float, override: int | None) -> str:
    return str(override if override is not None else max(1, math.ceil(seconds)))


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


def create_app(emulator: Emulator, identity: Identity, *, base_url: str, info: dict[str, Any]) -> ASGIApp:
    """Build the ASGI app: the FastAPI routes inside the stats and fault-injection middleware.

    :param emulator: the tenant state.
    :param identity: token issuer/verifier.
    :param base_url: the advertised ``https://host:port`` (used in emulator.json-style answers).
    :param info: the emulator.json content (``managed_identity`` settings are read from it).
    """
    api = FastAPI(title="Entra emulator", docs_url=None, redoc_url=None, openapi_url=None)
    tenant_id = emulator.tenant_id

    @api.exception_handler(GraphError)
    async def _graph_error(request: Request, exc: GraphError) -> JSONResponse:
        ids = graph_ids(request)
        return JSONResponse(
            error_body(exc.code, exc.message, ids, exc.details),
            status_code=exc.status,
            headers={**ids, **exc.headers},
        )

    @api.exception_handler(OAuthError)
    async def _oauth_error(request: Request, exc: OAuthError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    # ------------------------------------------------------------------------------------------------
    # identity
    def _tenant(tenant: str) -> None:
        if tenant.lower() not in (tenant_id.lower(), emulator.domain.lower()):
            raise OAuthError(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
                "signing "
                f"into the correct cloud.",
            )

    def _base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    @api.get("/{tenant}/v2.0/.well-known/openid-configuration")
    def openid_configuration(tenant: str, request: Request) -> JSONResponse:
        try:
            _tenant(tenant)
        except OAuthError as exc:
            return JSONResponse(exc.body(), status_code=400)
        base = _base(request)
        return JSONResponse(
            {
                "token_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/{tenant_id}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/{tenant_id}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{base}/oidc/userinfo",
                "authorization_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "roles"],
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": request.url.netloc,
                "rbac_url": "https://pas.windows.net",
            }
        )

    @api.get("/{tenant}/discovery/v2.0/keys")
    def keys(tenant: str) -> JSONResponse:
        return JSONResponse({"keys": [jwk(identity._token_key, identity.token_kid)]})

    @api.get("/common/discovery/instance")
    def instance_discovery(request: Request) -> JSONResponse:
        base = _base(request)
        host = request.url.netloc
        return JSONResponse(
            {
                "tenant_discovery_endpoint": f"{base}/{tenant_id}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            }
        )

    @api.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request) -> JSONResponse:
        _tenant(tenant)
        form = {k: str(v) for k, v in (await request.form()).items()}
        return await run_in_threadpool(_token, tenant, form, request)

    def _token(tenant: str, form: dict[str, str], request: Request) -> JSONResponse:
        with emulator.lock:
            apps = dict(emulator.apps)
        app = identity.authenticate(form, apps, f"/{tenant}/oauth2/v2.0/token")
        resource = scope_resource(form.get("scope"))
        if resource.rstrip("/") not in GRAPH_RESOURCES and not resource.startswith(_base(request)):
            raise OAuthError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named {tenant_id}.",
            )
        lifetime = emulator.config.token_lifetime
        with emulator.lock:
            emulator.stats.tokens_issued[app.name] += 1
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": identity.issue(app, lifetime),
            },
            headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )

    @api.get("/msi/token")
    def managed_identity_token(request: Request) -> JSONResponse:
        mi = info.get("managed_identity") or {}
        header = request.headers.get("x-identity-header")
        if not header or header != mi.get("identity_header"):
            return JSONResponse(
                {"statusCode": 401, "message": "The X-IDENTITY-HEADER header is missing or wrong."},
                status_code=401,
            )
        params = request.query_params
        if params.get("api-version") != MANAGED_IDENTITY_API_VERSION:
            return JSONResponse(
                {"statusCode": 400, "message": f"api-version must be {MANAGED_IDENTITY_API_VERSION}."},
                status_code=400,
            )
        resource = (params.get("resource") or "").rstrip("/")
        if resource.endswith("/.default"):
            resource = resource[: -len("/.default")]
        if resource not in GRAPH_RESOURCES:
            return JSONResponse(
                {"statusCode": 500, "message": f"Unknown resource '{resource}'."},
                status_code=500,
            )
        with emulator.lock:
            app = emulator.apps.get(mi.get("client_id", ""))
        requested = params.get("client_id")
        if app is None or (requested and requested != app.client_id):
            return JSONResponse(
                {
                    "statusCode": 400,
                    "message": f"No managed identity found for specified ClientId '{requested}'.",
                },
                status_code=400,
            )
        lifetime = emulator.config.token_lifetime
        with emulator.lock:
            emulator.stats.tokens_issued[app.name] += 1
        return JSONResponse(
            {
                "access_token": identity.issue(app, lifetime),
                "expires_on": str(int(time.time()) + lifetime),
                "resource": GRAPH_RESOURCE,
                "token_type": "Bearer",
                "client_id": app.client_id,
            }
        )

    # ------------------------------------------------------------------------------------------------ graph
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
            headers={"Retry-After": _retry_after(seconds, emulator.config.retry_after)},
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
        location = f"{_base(request)}/{ver}/auditLogs/provisioning?$filter=" + quote(
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
                f"{_base(request)}/{ver}/$metadata#servicePrincipals('{sp}')/synchronization/jobs/$entity"
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
                    f"{_base(request)}/{ver}/$metadata#servicePrincipals('{sp}')/synchronization/jobs"
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
        base = _base(request)
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

    for ver in API_VERSIONS:
        jobs_path = f"/{ver}/servicePrincipals/{{sp}}/synchronization/jobs"

        api.add_api_route(
            f"{jobs_path}/{{job_id}}/bulkUpload", _wrap(bulk_upload, ver, ["sp", "job_id"]), methods=["POST"]
        )
        api.add_api_route(
            f"{jobs_path}/{{job_id}}/start", _wrap(start_job, ver, ["sp", "job_id"]), methods=["POST"]
        )
        api.add_api_route(
            f"{jobs_path}/{{job_id}}/pause", _wrap(pause_job, ver, ["sp", "job_id"]), methods=["POST"]
        )
        api.add_api_route(
            f"{jobs_path}/{{job_id}}/restart", _wrap(restart_job, ver, ["sp", "job_id"]), methods=["POST"]
        )
        api.add_api_route(
            f"{jobs_path}/{{job_id}}/schema", _wrap(get_schema, ver, ["sp", "job_id"]), methods=["GET"]
        )
        api.add_api_route(
            f"{jobs_path}/{{job_id}}/schema", _wrap(put_schema, ver, ["sp", "job_id"]), methods=["PUT"]
        )
        api.add_api_route(f"{jobs_path}/{{job_id}}", _wrap(get_job, ver, ["sp", "job_id"]), methods=["GET"])
        api.add_api_route(jobs_path, _wrap(list_jobs, ver, ["sp"]), methods=["GET"])
        api.add_api_route(
            f"/{ver}/auditLogs/provisioning", _wrap(provisioning_logs, ver, []), methods=["GET"]
        )

    # ------------------------------------------------------------------------------------------------
    # controls
    @api.get("/_emulator/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "tenant_id": tenant_id}

    @api.get("/_emulator/users")
    def users() -> list[dict[str, Any]]:
        return emulator.public_users()

    @api.get("/_emulator/stats")
    def stats() -> dict[str, Any]:
        with emulator.lock:
            s = emulator.stats
            return {
                "calls": dict(s.calls),
                "calls_total": sum(v for k, v in s.calls.items() if k != "control"),
                "throttled": dict(s.throttled),
                "throttled_total": sum(s.throttled.values()),
                "status": dict(s.status),
                "faults": dict(s.faults),
                "operations_received": s.operations_received,
                "operations_processed": s.operations_processed,
                "uploads_accepted": s.uploads_accepted,
                "uploads_rejected": s.uploads_rejected,
                "uploads_processed": s.uploads_processed,
                "uploads_purged": s.uploads_purged,
                "uploads_failed": s.uploads_failed,
                "uploads_pending": len(emulator.pending),
                "tokens_issued": dict(s.tokens_issued),
                "users": len(emulator.directory.users),
                "log_entries": emulator.store.count_logs(),
                "daily_calls_used": emulator.limits.daily_used(),
                "since": iso(s.started),
            }

    @api.get("/_emulator/requests")
    def request_log(endpoint: str | None = None) -> list[dict[str, Any]]:
        with emulator.lock:
            return [dict(r) for r in emulator.stats.requests if endpoint is None or r["endpoint"] == endpoint]

    @api.post("/_emulator/process")
    def process() -> dict[str, Any]:
        return emulator.process_due(force=True)

    @api.get("/_emulator/config")
    def get_config() -> dict[str, Any]:
        with emulator.lock:
            return emulator.public_config()

    @api.post("/_emulator/config")
    async def set_config(request: Request) -> JSONResponse:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object")
            return JSONResponse(emulator.configure(changes))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    @api.post("/_emulator/reset")
    def reset() -> dict[str, Any]:
        emulator.reset()
        return {"status": "reset"}

    @api.get("/_emulator/jobs")
    def jobs() -> list[dict[str, Any]]:
        with emulator.lock:
            return [
                {
                    **emulator.job_view(j),
                    "app": j.app_name,
                    "servicePrincipalId": j.service_principal_id,
                    "customAttributes": dict(j.custom_attributes),
                    "declaredAttributes": list(j.declared_attributes),
                    "held": len(j.held),
                }
                for j in emulator.jobs.values()
            ]

    @api.post("/_emulator/jobs/{job_id}")
    async def configure_job(job_id: str, request: Request) -> JSONResponse:
        body = await request.json()
        with emulator.lock:
            job = emulator.jobs.get(job_id)
            if job is None:
                return JSONResponse({"error": f"unknown job {job_id}"}, status_code=404)
            unknown = set(body) - {"delete_threshold", "custom_attributes", "status"}
            if unknown:
                return JSONResponse({"error": f"unknown key(s) {sorted(unknown)}"}, status_code=400)
            if "delete_threshold" in body:
                job.delete_threshold = int(body["delete_threshold"])
            if "custom_attributes" in body:
                if not isinstance(body["custom_attributes"], dict):
                    return JSONResponse({"error": "custom_attributes must be an object"}, status_code=400)
                job.custom_attributes = {str(k): str(v) for k, v in body["custom_attributes"].items()}
            if "status" in body:
                if body["status"] not in ("Active", "Paused"):
                    return JSONResponse({"error": "status must be Active or Paused"}, status_code=400)
                job.status = body["status"]
                job.quarantine = None
            emulator.save_registry()
            emulator.wakeup.notify_all()
            return JSONResponse({**emulator.job_view(job), "customAttributes": job.custom_attributes})

    @api.post("/_emulator/apps")
    async def create_app_route(request: Request) -> JSONResponse:
        body = await request.json()
        name = str(body.get("name") or f"app-{uuid.uuid4().hex[:8]}")
        roles = body.get("roles", ALL_ROLES)
        if not isinstance(roles, list):
            return JSONResponse({"error": "roles must be a list"}, status_code=400)
        with emulator.lock:
            default = emulator.app_by_name("default")
            own_job = bool(body.get("own_job", False))
            sp_id = str(uuid.uuid4()) if own_job else default.service_principal_id  # type: ignore[union-attr]
            job_id = emulator.new_job_id() if own_job else default.job_id  # type: ignore[union-attr]
            app = App(
                name=name,
                client_id=str(uuid.uuid4()),
                client_secret=b64_secret(),
                service_principal_id=sp_id,
                job_id=job_id,
                roles=[str(r) for r in roles],
                certificates=list(default.certificates) if body.get("certificate") and default else [],
            )
            emulator.add_app(app)
        return JSONResponse(app_info(app, base_url, info))

    return StatsAndFaults(api, emulator)


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


def app_info(app: App, base_url: str, info: dict[str, Any]) -> dict[str, Any]:
    """An app's entry in emulator.json, including the Airflow connection JSON for it."""
    return {
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "service_principal_id": app.service_principal_id,
        "job_id": app.job_id,
        "roles": list(app.roles),
        "airflow_conn": airflow_conn(app, base_url, info["tenant_id"], info["ca_bundle"]),
    }


def airflow_conn(app: App, base_url: str, tenant_id: str, ca_bundle: str) -> dict[str, Any]:
    return {
        "conn_type": "entra",
        "login": app.client_id,
        "password": app.client_secret,
        "extra": {
            "tenant_id": tenant_id,
            "service_principal_id": app.service_principal_id,
            "job_id": app.job_id,
            "authority_host": base_url,
            "graph_endpoint": base_url,
            "ca_bundle": ca_bundle,
            "api_version": "v1.0",
        },
    }
