"""EntraHook: credentials and tokens (msal), one paced and retrying Graph session, and the Graph calls.

Example::

    hook = EntraHook("entra_default")
    receipt = hook.bulk_upload(payload)  # 202 Accepted; outcomes appear later in the provisioning logs
    for entry in hook.iter_provisioning_logs(since=receipt.accepted_at or receipt.submitted_at):
        ...

Tokens come from one long-lived msal application per credential, kept in a process-wide registry
(:func:`clear_msal_apps` empties it); msal owns the token cache and refresh. Graph calls go through one
``requests.Session`` per hook, with urllib3 retries (429/500/502/503/504, ``Retry-After`` honoured), a
sliding-window limiter shared per (tenant, client, job) and a provisioning-logs limiter shared per
(tenant, client), within the process. The tenant's daily bulkUpload allowance is counted by the upload
(:mod:`airflow_provider_entra.upload.quota`), where every worker sees it; here, a 429 for the daily quota
becomes :class:`~airflow_provider_entra.exceptions.EntraQuotaExhaustedError`. Secrets never reach a log
line or an error message.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import msal
import requests
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_entra._constants import (
    BULK_REQUEST_SCHEMA,
    BULK_UPLOAD_PATH,
    CLOUDS,
    DEFAULT_RESET_SCOPE,
    GRAPH_SCOPE_SUFFIX,
    INVALID_AUTHENTICATION_TOKEN,
    JOB_PATH,
    MAX_OPERATIONS_PER_REQUEST,
    PERMISSION_JOB_CONTROL,
    PERMISSION_JOB_READ,
    PERMISSION_LOGS,
    PERMISSION_UPLOAD,
    PROVISIONING_LOGS_PATH,
    SCIM_CONTENT_TYPE,
)
from airflow_provider_entra.exceptions import (
    EntraApiError,
    EntraAuthError,
    EntraConnectionConfigError,
    EntraError,
    EntraPayloadRejectedError,
    EntraQuotaExhaustedError,
    EntraThrottledError,
)
from airflow_provider_entra.get_provider_info import (
    CONN_FIELDS,
    CONN_TYPE,
    INTEGRATION_NAME,
    UI_FIELD_BEHAVIOUR,
)
from airflow_provider_entra.hooks._pacing import SlidingWindowLimiter, clear_pacing, shared_limiter
from airflow_provider_entra.hooks._settings import (
    CREDENTIAL_CERTIFICATE,
    CREDENTIAL_FEDERATED,
    CREDENTIAL_MANAGED_IDENTITY,
    CREDENTIAL_SECRET,
    EntraSettings,
    parse_connection,
)
from airflow_provider_entra.hooks._transport import TimeoutSession, build_session

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Connection

__all__ = ["BulkUploadReceipt", "EntraHook", "clear_msal_apps"]

log = logging.getLogger(__name__)

_CREDENTIAL_LABELS = {
    CREDENTIAL_SECRET: "client secret",
    CREDENTIAL_CERTIFICATE: "certificate",
    CREDENTIAL_MANAGED_IDENTITY: "managed identity",
    CREDENTIAL_FEDERATED: "federated token (workload identity)",
}

# Operation names used in messages, with the least-privileged permission each needs (named on 403).
_OP_UPLOAD = ("bulkUpload", PERMISSION_UPLOAD)
_OP_LOGS = ("read provisioning logs", PERMISSION_LOGS)
_OP_GET_JOB = ("read provisioning job", PERMISSION_JOB_READ)
_OP_START = ("start provisioning job", PERMISSION_JOB_CONTROL)
_OP_PAUSE = ("pause provisioning job", PERMISSION_JOB_CONTROL)
_OP_RESTART = ("restart provisioning job", PERMISSION_JOB_CONTROL)

# --- msal application registry -----------------------------------------------------------------------------

_msal_lock = threading.Lock()
_msal_apps: dict[tuple, Any] = {}


def clear_msal_apps() -> None:
    """Forget every cached msal application (and so its token cache) and the shared pacing state.

    Meant for tests and for long-lived processes after a credential rotation; tasks never need it.
    """
    with _msal_lock:
        _msal_apps.clear()
    clear_pacing()


@dataclass(frozen=True)
class BulkUploadReceipt:
    """What Graph answered to one accepted bulkUpload (records are processed later, asynchronously).

    :param status_code: HTTP status, 202 when accepted.
    :param request_id: Graph's ``request-id`` header.
    :param client_request_id: the ``client-request-id`` sent (and echoed by Graph).
    :param location: the ``Location`` header: the provisioning-logs query for the job.
    :param submitted_at: when the request was sent (aware, UTC), by the local clock.
    :param operation_count: number of SCIM operations in the request.
    :param accepted_at: when Graph accepted the request, by Microsoft's clock: the 202's ``Date`` header
        (aware, UTC, whole seconds); ``None`` when the header is missing or unparseable. Entra processes the
        records, and writes their log entries, at or after this time.
    """

    status_code: int
    request_id: str | None
    client_request_id: str | None
    location: str | None
    submitted_at: datetime
    operation_count: int
    accepted_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for XCom, ``submitted_at`` and ``accepted_at`` as ISO 8601 strings."""
        data = asdict(self)
        data["submitted_at"] = self.submitted_at.isoformat()
        data["accepted_at"] = self.accepted_at.isoformat() if self.accepted_at else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BulkUploadReceipt:
        """Rebuild a receipt from :meth:`to_dict` output (a dict without ``accepted_at`` is accepted too)."""
        accepted = data.get("accepted_at")
        return cls(
            **{
                **data,
                "submitted_at": datetime.fromisoformat(data["submitted_at"]),
                "accepted_at": datetime.fromisoformat(accepted) if accepted else None,
            }
        )


class _Attempt(threading.local):
    """The in-flight request of the current thread, for the retry object's pacing callbacks."""

    limiter: SlidingWindowLimiter | None = None
    slot: Any = None


class EntraHook(BaseHook):
    """Talk to Microsoft Entra API-driven inbound provisioning through Microsoft Graph.

    :param entra_conn_id: the Airflow connection of type ``entra``.
    """

    conn_name_attr = "entra_conn_id"
    default_conn_name = "entra_default"
    conn_type = CONN_TYPE
    hook_name = INTEGRATION_NAME

    def __init__(self, entra_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        connection = kwargs.pop("connection", None)
        super().__init__(**kwargs)
        self.entra_conn_id = entra_conn_id
        self._connection: Connection | None = connection
        self._attempt = _Attempt()
        self._counter_lock = threading.Lock()
        self._calls_made = 0

    @classmethod
    def from_connection(cls, connection: Connection) -> EntraHook:
        """A hook on a connection already fetched (e.g. by ``get_async_connection`` in a trigger).

        :param connection: a connection of type ``entra``.
        """
        return cls(connection.conn_id, connection=connection)

    # --- connection ---------------------------------------------------------------------------------------

    @cached_property
    def settings(self) -> EntraSettings:
        """The checked connection; raises :class:`EntraConnectionConfigError` naming a bad field."""
        conn = self._connection or self.get_connection(self.entra_conn_id)
        try:
            extra = conn.extra_dejson
        except Exception:
            raise EntraConnectionConfigError(
                f"Connection '{self.entra_conn_id}': extra is not valid JSON"
            ) from None
        return parse_connection(self.entra_conn_id, conn.login, conn.password, extra)

    @property
    def job_id(self) -> str:
        """The provisioning job id (``API2AAD.<tenant>.<guid>``)."""
        return self.settings.require("job_id")

    @property
    def service_principal_id(self) -> str:
        """Object id of the provisioning app's service principal."""
        return self.settings.require("service_principal_id")

    @property
    def tenant_id(self) -> str:
        """The tenant id."""
        return self.settings.require("tenant_id")

    @property
    def graph_endpoint(self) -> str:
        """Graph base URL without version, e.g. ``https://graph.microsoft.com``."""
        return self.settings.graph_endpoint

    @property
    def api_version(self) -> str:
        """``v1.0`` or ``beta``."""
        return self.settings.api_version

    # --- pacing -------------------------------------------------------------------------------------------

    @cached_property
    def limiter(self) -> SlidingWindowLimiter:
        """Burst limiter for bulkUpload and job calls, shared per (tenant, client id, job) in this process."""
        s = self.settings
        return shared_limiter(
            ("graph", s.authority_host, s.tenant_id, s.client_id, s.job_id),
            s.calls_per_window,
            s.window_seconds,
            name=f"graph {s.job_id or s.client_id}",
        )

    @cached_property
    def log_limiter(self) -> SlidingWindowLimiter:
        """Provisioning-logs limiter (5 requests / 10 s), shared per (tenant, client id) in this process."""
        s = self.settings
        return shared_limiter(
            ("logs", s.authority_host, s.tenant_id, s.client_id),
            s.log_calls_per_window,
            s.log_window_seconds,
            name=f"logs {s.client_id}",
        )

    @property
    def calls_made(self) -> int:
        """Graph requests this hook has sent, retries included."""
        return self._calls_made

    def pacing_stats(self) -> dict[str, Any]:
        """Counters for progress logs: calls made, limiter waits."""
        return {
            "calls_made": self.calls_made,
            "limiter": self.limiter.stats(),
            "log_limiter": self.log_limiter.stats(),
        }

    # --- tokens -------------------------------------------------------------------------------------------

    def _msal_key(self) -> tuple:
        s = self.settings
        return (
            s.credential_type,
            s.authority,
            s.client_id,
            s.credential_fingerprint(),
            s.verify,
            json.dumps(s.proxies, sort_keys=True),
            s.timeout,
        )

    def _msal_app(self) -> Any:
        key = self._msal_key()
        with _msal_lock:
            app = _msal_apps.get(key)
            if app is None:
                app = _msal_apps[key] = self._build_msal_app()
            return app

    def _build_msal_app(self) -> Any:
        s = self.settings
        http_client = build_session(
            timeout=s.timeout,
            verify=s.verify,
            proxies=s.proxies,
            max_retries=min(s.max_retries, 3),
            backoff_factor=s.backoff_factor,
            retry_after_cap=s.retry_after_cap,
            total_backoff_cap=min(s.total_backoff_cap, 60.0),
        )
        if s.credential_type == CREDENTIAL_MANAGED_IDENTITY:
            identity = (
                msal.UserAssignedManagedIdentity(client_id=s.managed_identity_client_id)
                if s.managed_identity_client_id
                else msal.SystemAssignedManagedIdentity()
            )
            log.debug(
                "Creating msal managed identity client (%s)", "user-assigned" if s.client_id else "system"
            )
            return msal.ManagedIdentityClient(
                identity, http_client=http_client, token_cache=msal.TokenCache()
            )
        credential: Any
        if s.credential_type == CREDENTIAL_SECRET:
            credential = s.client_secret
        elif s.credential_type == CREDENTIAL_CERTIFICATE:
            credential = {"private_key": s.private_key_pem, "thumbprint": s.certificate_thumbprint}
            if s.private_key_passphrase:
                credential["passphrase"] = s.private_key_passphrase
            if s.send_x5c:
                credential["public_certificate"] = s.certificate_pem
        else:
            token_file = s.federated_token_file

            def read_assertion() -> str:  # read on every token request: the platform rotates the file
                with open(token_file) as fh:  # type: ignore[arg-type]
                    return fh.read().strip()

            credential = {"client_assertion": read_assertion}
        log.debug(
            "Creating msal confidential client for client %s in tenant %s at %s (%s)",
            s.client_id,
            s.tenant_id,
            s.authority_host,
            _CREDENTIAL_LABELS[s.credential_type],
        )
        try:
            return msal.ConfidentialClientApplication(
                s.client_id,
                client_credential=credential,
                authority=s.authority,
                http_client=http_client,
                token_cache=msal.TokenCache(),
                instance_discovery=None if s.is_microsoft_authority else False,
            )
        except (ValueError, OSError, requests.RequestException, msal.exceptions.MsalError) as exc:
            raise self._auth_error(
                exc,
                f"{self._token_subject()}: could not set up the {_CREDENTIAL_LABELS[s.credential_type]} "
                f"credential: {self._redact(_first_line(exc))}",
            ) from None

    def _token_subject(self) -> str:
        s = self.settings
        client = s.client_id or "(system-assigned identity)"
        return f"Token for client {client} in tenant {s.tenant_id} ({s.authority_host})"

    def _auth_error(self, exc: BaseException, message: str) -> EntraAuthError:
        """``exc`` from msal as the hook's error: a TLS verification failure says so, else ``message``."""
        tls = _tls_failure(exc, self.settings.authority_host)
        if tls:
            return EntraAuthError(f"{self._token_subject()}: {tls}", error_code="TlsVerificationFailed")
        return EntraAuthError(message, error_code=type(exc).__name__)

    def get_token(self) -> str:
        """Return a Graph access token, from msal's cache when still valid.

        :raises EntraAuthError: the token could not be acquired (message names tenant and client, not msal).
        """
        s = self.settings
        app = self._msal_app()
        try:
            if s.credential_type == CREDENTIAL_MANAGED_IDENTITY:
                resource = s.scope.removesuffix(GRAPH_SCOPE_SUFFIX)
                result = app.acquire_token_for_client(resource=resource)
            else:
                result = app.acquire_token_for_client(scopes=[s.scope])
        except (ValueError, OSError, requests.RequestException, msal.exceptions.MsalError) as exc:
            raise self._auth_error(
                exc,
                f"{self._token_subject()} failed ({_CREDENTIAL_LABELS[s.credential_type]}): "
                f"{type(exc).__name__}: {self._redact(_first_line(exc))}",
            ) from None
        if not isinstance(result, dict) or "access_token" not in result:
            raise self._token_error(result if isinstance(result, dict) else {})
        self.log.debug(
            "Token for client %s in tenant %s from %s",
            s.client_id,
            s.tenant_id,
            result.get("token_source", "msal"),
        )
        return result["access_token"]

    def _token_error(self, result: dict[str, Any]) -> EntraAuthError:
        description = str(result.get("error_description") or "")
        aadsts = re.search(r"AADSTS\d+", description)
        summary = description.split("Trace ID:")[0].strip().splitlines()[0] if description.strip() else ""
        error = result.get("error") or "unknown_error"
        return EntraAuthError(
            f"{self._token_subject()} failed ({_CREDENTIAL_LABELS[self.settings.credential_type]}): "
            f"{error}: {self._redact(summary)}".rstrip(": "),
            error_code=aadsts.group(0) if aadsts else error,
            request_id=result.get("correlation_id"),
        )

    def _invalidate_token(self) -> None:
        """Drop the cached token so the next :meth:`get_token` asks the identity provider again."""
        key = self._msal_key()
        with _msal_lock:
            app = _msal_apps.get(key)
            if app is None:
                return
            if isinstance(app, msal.ConfidentialClientApplication):
                app.remove_tokens_for_client()
            else:  # ManagedIdentityClient has no public removal: a new client starts with an empty cache
                del _msal_apps[key]

    def _redact(self, text: str) -> str:
        s = self.settings
        for secret in (s.client_secret, s.private_key_passphrase):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    # --- Graph transport ----------------------------------------------------------------------------------

    @cached_property
    def session(self) -> TimeoutSession:
        """The hook's Graph session (retries, timeout, CA bundle, proxies)."""
        s = self.settings
        return build_session(
            timeout=s.timeout,
            verify=s.verify,
            proxies=s.proxies,
            max_retries=s.max_retries,
            backoff_factor=s.backoff_factor,
            retry_after_cap=s.retry_after_cap,
            total_backoff_cap=s.total_backoff_cap,
            on_response=self._attempt_done,
            before_resend=self._attempt_again,
        )

    def get_conn(self) -> TimeoutSession:
        """The Graph ``requests.Session`` (Airflow's hook convention); prefer the hook's methods."""
        return self.session

    def _url(self, path: str) -> str:
        return f"{self.graph_endpoint}/{self.api_version}/{path}"

    def _count_call(self) -> None:
        with self._counter_lock:
            self._calls_made += 1

    def _take_slot(self, limiter: SlidingWindowLimiter) -> None:
        self._attempt.limiter = limiter
        self._attempt.slot = limiter.acquire()
        self._count_call()

    def _attempt_done(self) -> None:
        if self._attempt.limiter is not None:
            self._attempt.limiter.release(self._attempt.slot)
        self._attempt.slot = None

    def _attempt_again(self, method: str, url: str) -> None:
        if self._attempt.limiter is not None:
            self._take_slot(self._attempt.limiter)

    def _send(
        self,
        method: str,
        url: str,
        *,
        limiter: SlidingWindowLimiter,
        **kwargs: Any,
    ) -> requests.Response:
        self._take_slot(limiter)
        try:
            return self.session.request(method, url, **kwargs)
        finally:
            self._attempt_done()
            self._attempt.limiter = None

    def _request(
        self,
        method: str,
        url: str,
        operation: tuple[str, str],
        *,
        logs: bool = False,
        upload: bool = False,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one Graph call: token, pacing, retries, one token refresh on 401, typed errors."""
        limiter = self.log_limiter if logs else self.limiter
        client_request_id = str(uuid.uuid4())
        refreshed = False
        while True:
            token = self.get_token()
            all_headers = {
                "Authorization": f"Bearer {token}",
                "client-request-id": client_request_id,
                "return-client-request-id": "true",
                "Accept": "application/json",
                **(headers or {}),
            }
            try:
                response = self._send(method, url, limiter=limiter, headers=all_headers, **kwargs)
            except requests.RequestException as exc:
                tls = _tls_failure(exc, self.graph_endpoint)
                if tls:
                    raise EntraApiError(
                        f"{operation[0]} failed: {tls}", error_code="TlsVerificationFailed"
                    ) from None
                raise EntraApiError(
                    f"{operation[0]} failed: no response from {self.graph_endpoint} after "
                    f"{self.settings.max_retries} retries ({type(exc).__name__})",
                    error_code=type(exc).__name__,
                ) from None
            if response.status_code == 401 and not refreshed:
                code = _graph_error(response)[0]
                self.log.info(
                    "Graph answered 401 (%s) to %s; refreshing the token once and retrying",
                    code or "no code",
                    operation[0],
                )
                refreshed = True
                self._invalidate_token()
                continue
            if response.status_code >= 400:
                raise self._api_error(response, operation, upload=upload)
            return response

    def _api_error(
        self, response: requests.Response, operation: tuple[str, str], *, upload: bool
    ) -> EntraError:
        status = response.status_code
        code, message = _graph_error(response)
        request_id = response.headers.get("request-id") or _graph_request_id(response)
        retry_after = _retry_after(response)
        what, permission = operation
        detail = f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        text = f"{what} failed: {self._redact(detail)}" + (
            f" (request-id {request_id})" if request_id else ""
        )
        attrs: dict[str, Any] = {
            "status_code": status,
            "error_code": code,
            "request_id": request_id,
            "retry_after": retry_after,
            "graph_message": self._redact(message) if message else None,
        }
        if status == 401:
            if code == INVALID_AUTHENTICATION_TOKEN or code is None:
                text += "; the token was refused even after a refresh"
            return EntraAuthError(text, **attrs)
        if status == 403:
            return EntraAuthError(
                f"{text}. The app (client {self.settings.client_id}) needs the application permission "
                f"{permission} with admin consent",
                **attrs,
            )
        if status == 429:
            if retry_after is not None and retry_after > self.settings.retry_after_cap:
                return EntraQuotaExhaustedError(
                    f"{text}; Graph asks to wait {retry_after / 60:.0f} min, longer than the retry cap "
                    f"({self.settings.retry_after_cap:g} s): the tenant's daily quota is likely spent",
                    **attrs,
                )
            return EntraThrottledError(
                f"{text}; still throttled after {self.settings.max_retries} retries", **attrs
            )
        if upload and status in (400, 413, 415):
            return EntraPayloadRejectedError(text, **attrs)
        return EntraApiError(text, **attrs)

    # --- bulkUpload -----------------------------------------------------------------------------------------

    def bulk_upload(self, payload: dict[str, Any]) -> BulkUploadReceipt:
        """POST one SCIM BulkRequest (at most 50 operations) to the job's bulkUpload endpoint.

        :param payload: a SCIM BulkRequest (``schemas``, ``Operations``, ``failOnErrors``).
        :return: the receipt; records are processed later and only the provisioning logs tell outcomes.
        :raises EntraPayloadRejectedError: before sending when the payload is not a BulkRequest of 1 to 50
            operations, or when Graph answers 400/413.
        :raises EntraQuotaExhaustedError: Graph answered 429 with a ``Retry-After`` beyond the retry cap
            (the tenant's daily quota).
        """
        operations = _check_bulk_request(payload)
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return self.bulk_upload_bytes(body, operations=operations)

    def bulk_upload_bytes(self, body: bytes, *, operations: int) -> BulkUploadReceipt:
        """POST one SCIM BulkRequest already encoded, as it is: the bytes
        :func:`~airflow_provider_entra.scim.build_bulk_requests` made are sent without being decoded and
        encoded again (:meth:`bulk_upload` takes a dict).

        :param body: the request's UTF-8 JSON.
        :param operations: its operation count, 1 to 50 (checked here: the body is not parsed).
        :return: the receipt; records are processed later and only the provisioning logs tell outcomes.
        :raises EntraPayloadRejectedError: before sending for an empty body or an operation count out of
            range, or when Graph answers 400/413; Graph's ``error.message`` is on ``graph_message``.
        :raises EntraQuotaExhaustedError: Graph answered 429 with a ``Retry-After`` beyond the retry cap
            (the tenant's daily quota).
        """
        if not isinstance(body, (bytes, bytearray)) or not body:
            raise EntraPayloadRejectedError(
                "bulkUpload body must be the request's JSON bytes (nothing was sent)"
            )
        if not 1 <= operations <= MAX_OPERATIONS_PER_REQUEST:
            raise EntraPayloadRejectedError(
                f"bulkUpload request has {operations} operations; Graph accepts 1 to "
                f"{MAX_OPERATIONS_PER_REQUEST} per request (nothing was sent)"
            )
        url = self._url(
            BULK_UPLOAD_PATH.format(service_principal_id=self.service_principal_id, job_id=self.job_id)
        )
        submitted_at = datetime.now(timezone.utc)
        response = self._request(
            "POST",
            url,
            _OP_UPLOAD,
            upload=True,
            headers={"Content-Type": SCIM_CONTENT_TYPE},
            data=bytes(body),
        )
        return self._upload_receipt(response, submitted_at, operations)

    def _upload_receipt(
        self, response: requests.Response, submitted_at: datetime, operations: int
    ) -> BulkUploadReceipt:
        """The receipt of an accepted bulkUpload."""
        receipt = BulkUploadReceipt(
            status_code=response.status_code,
            request_id=response.headers.get("request-id"),
            client_request_id=response.headers.get("client-request-id")
            or str(response.request.headers.get("client-request-id") or "")
            or None,
            location=response.headers.get("Location"),
            submitted_at=submitted_at,
            operation_count=operations,
            accepted_at=_http_date(response.headers.get("Date")),
        )
        self.log.debug(
            "bulkUpload accepted: %d operations, HTTP %d, request-id %s",
            operations,
            receipt.status_code,
            receipt.request_id,
        )
        return receipt

    # --- provisioning logs ----------------------------------------------------------------------------------

    def iter_provisioning_logs(
        self, since: datetime | None = None, filter: str | None = None, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Yield the job's provisioning log entries, page by page (``@odata.nextLink``), paced at 5 per 10 s.

        :param since: only entries with ``activityDateTime`` at or after this time (naive means UTC).
        :param filter: extra OData filter, joined with ``and``
            (e.g. ``provisioningStatusInfo/status eq 'failure'``).
        :param page_size: ``$top`` per page.
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        clauses = [f"jobid eq '{self.job_id}'"]
        if since is not None:
            if since.tzinfo is None:
                since = since.replace(tzinfo=timezone.utc)
            stamp = since.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
            clauses.append(f"activityDateTime ge {stamp}")
        if filter:
            clauses.append(filter)
        url: str | None = self._url(PROVISIONING_LOGS_PATH)
        params: dict[str, Any] | None = {"$filter": " and ".join(clauses), "$top": page_size}
        origin = urlsplit(self.graph_endpoint)
        while url:
            response = self._request("GET", url, _OP_LOGS, logs=True, params=params)
            body = _json(response, _OP_LOGS[0])
            yield from body.get("value", [])
            url, params = body.get("@odata.nextLink"), None
            if url:
                nxt = urlsplit(url)
                if (nxt.scheme, nxt.netloc) != (origin.scheme, origin.netloc):
                    raise EntraApiError(
                        f"{_OP_LOGS[0]} failed: @odata.nextLink points to another host ({nxt.netloc}); "
                        "refusing to send the token there"
                    )

    # --- provisioning job -----------------------------------------------------------------------------------

    def _job_url(self, action: str = "") -> str:
        path = JOB_PATH.format(service_principal_id=self.service_principal_id, job_id=self.job_id)
        return self._url(path + (f"/{action}" if action else ""))

    def get_job(self) -> dict[str, Any]:
        """Return the job (``status.code``: NotConfigured, NotRun, Active, Paused or Quarantine)."""
        return _json(self._request("GET", self._job_url(), _OP_GET_JOB), _OP_GET_JOB[0])

    def start_job(self) -> None:
        """Start the provisioning job (204). Call once; never in a loop."""
        self._request("POST", self._job_url("start"), _OP_START)

    def pause_job(self) -> None:
        """Pause the provisioning job (204). A paused job accepts uploads but processes nothing."""
        self._request("POST", self._job_url("pause"), _OP_PAUSE)

    def restart_job(self, reset_scope: str = DEFAULT_RESET_SCOPE) -> None:
        """Restart the job (204). Purges uploads not yet processed when the job is not running.

        :param reset_scope: comma-separated scopes, e.g. ``"Watermark, Escrows, QuarantineState"``;
            add ``ForceDeletes`` to release deletes held by the accidental-deletion threshold.
        """
        self._request(
            "POST", self._job_url("restart"), _OP_RESTART, json={"criteria": {"resetScope": reset_scope}}
        )

    # --- UI -------------------------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: acquire a token, then read the job. Says which step failed."""
        step = "connection"
        try:
            settings = self.settings
            step = "token"
            self.get_token()
            step = "job"
            job = self.get_job()
        except EntraError as exc:
            return False, f"{step}: {exc}"
        except Exception as exc:  # the Test button must answer, whatever happened
            return False, f"{step}: {type(exc).__name__}: {self._redact(_first_line(exc))}"
        status = (job.get("status") or {}).get("code", "unknown")
        return True, (
            f"Token acquired for client {settings.client_id} in tenant {settings.tenant_id}; "
            f"job {settings.job_id} read (status {status})"
        )

    def portal_logs_url(self) -> str:
        """A link to the job's provisioning logs: the Entra app's logs blade in the Azure portal, or the Graph
        logs query when the connection points at a non-Microsoft host (such as the local emulator)."""
        s = self.settings
        if s.cloud and s.is_microsoft_authority:
            portal = CLOUDS[s.cloud].portal
            return (
                f"{portal}/#view/Microsoft_AAD_IAM/ManagedAppMenuBlade/~/ProvisioningLogs/"
                f"objectId/{quote(self.service_principal_id)}"
            )
        query = quote(f"jobid eq '{self.job_id}'")
        return f"{self._url(PROVISIONING_LOGS_PATH)}?$filter={query}"

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form on Airflow 3.0/3.1 (3.2+ reads ``conn-fields`` instead)."""
        from wtforms import BooleanField, IntegerField, PasswordField, StringField
        from wtforms.validators import Optional, any_of

        from airflow_provider_entra._compat import connection_form_helpers

        BS3TextFieldWidget, BS3PasswordFieldWidget, lazy_gettext = connection_form_helpers()

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            schema = spec["schema"]
            label = lazy_gettext(spec["label"])
            description = spec.get("description", "")
            if "boolean" in schema["type"]:
                widgets[name] = BooleanField(label, description=description, default=schema.get("default"))
            elif "integer" in schema["type"]:
                widgets[name] = IntegerField(
                    label,
                    validators=[Optional()],
                    widget=BS3TextFieldWidget(),
                    description=description,
                    default=schema.get("default"),
                )
            elif schema.get("format") == "password":
                widgets[name] = PasswordField(label, widget=BS3PasswordFieldWidget(), description=description)
            else:
                validators = [Optional()] + ([any_of(schema["enum"])] if "enum" in schema else [])
                widgets[name] = StringField(
                    label,
                    validators=validators,
                    widget=BS3TextFieldWidget(),
                    description=description,
                    default=schema.get("default"),
                )
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Standard-field behaviour of the form on Airflow 3.0/3.1 (3.2+ reads ``ui-field-behaviour``)."""
        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }


# --- helpers ------------------------------------------------------------------------------------------------


def _http_date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` header (IMF-fixdate, RFC 9110) as an aware UTC datetime; ``None`` when absent or
    unparseable (a missing header must not fail an upload Graph accepted).

    >>> _http_date("Sun, 06 Dec 2026 00:38:17 GMT")
    datetime.datetime(2026, 12, 6, 0, 38, 17, tzinfo=datetime.timezone.utc)
    """
    if not value:
        return None
    try:
        stamp = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if stamp.tzinfo is None:  # "-0000": UTC with no claim about the local zone (RFC 5322)
        return stamp.replace(tzinfo=timezone.utc)
    return stamp.astimezone(timezone.utc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _tls_failure(exc: BaseException, host: str) -> str | None:
    """A plain sentence when ``exc`` (or anything it wraps) is a failed TLS certificate verification."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        error = stack.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ssl.SSLCertVerificationError):
            reason = error.verify_message or error.reason or "certificate verify failed"
            return (
                f"TLS certificate verification failed for {host} ({reason}): the server's certificate is "
                "not signed by a CA this machine trusts. Set the connection's 'ca_bundle' extra to the PEM "
                "file of the CA that signed it (or add that CA to the system trust store); verification "
                "cannot be turned off"
            )
        stack.extend([error.__cause__, error.__context__, getattr(error, "reason", None), *error.args])
    return None


def _check_bulk_request(payload: Any) -> int:
    """Refuse locally what Graph would refuse; return the operation count."""
    if not isinstance(payload, dict):
        raise EntraPayloadRejectedError(
            f"bulkUpload payload must be a dict (SCIM BulkRequest), got {type(payload)}"
        )
    if BULK_REQUEST_SCHEMA not in (payload.get("schemas") or []):
        raise EntraPayloadRejectedError(f"bulkUpload payload field 'schemas' must list {BULK_REQUEST_SCHEMA}")
    operations = payload.get("Operations")
    if not isinstance(operations, list) or not operations:
        raise EntraPayloadRejectedError("bulkUpload payload field 'Operations' must be a non-empty list")
    if len(operations) > MAX_OPERATIONS_PER_REQUEST:
        raise EntraPayloadRejectedError(
            f"bulkUpload payload has {len(operations)} operations; Graph accepts at most "
            f"{MAX_OPERATIONS_PER_REQUEST} per request (nothing was sent)"
        )
    return len(operations)


def _graph_error(response: requests.Response) -> tuple[str | None, str | None]:
    """``(error.code, error.message)`` from a Graph error envelope, or ``(None, None)``."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None, None
    if not isinstance(error, dict):
        return (str(error), None) if error else (None, None)
    return error.get("code"), error.get("message")


def _graph_request_id(response: requests.Response) -> str | None:
    try:
        inner = response.json()["error"].get("innerError") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return inner.get("request-id") if isinstance(inner, dict) else None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max((parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds(), 0.0)
        except (TypeError, ValueError):
            return None


def _json(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise EntraApiError(
            f"{what} failed: HTTP {response.status_code} with a body that is not JSON",
            status_code=response.status_code,
            request_id=response.headers.get("request-id"),
        ) from None
    if not isinstance(body, dict):
        raise EntraApiError(f"{what} failed: expected a JSON object", status_code=response.status_code)
    return body
