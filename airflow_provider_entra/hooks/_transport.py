"""The HTTP layer: one ``requests.Session`` per hook with urllib3 retries that also respect our pacing.

Retrying POST is safe here: bulkUpload is idempotent per record (re-sending the same ``externalId``
updates the same user to the same values), and start/pause/restart are idempotent state changes.

Every attempt urllib3 makes on its own (a retry after 429/5xx or a dropped connection) is still a call
Microsoft counts, so the retry object asks the hook's pacer for a slot before each re-send (and the hook's
``calls_made`` counts it), and hands the previous slot back when its response has arrived.
"""

from __future__ import annotations

import random
import ssl
import time
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ResponseError, SSLError
from urllib3.util.retry import Retry

from airflow_provider_entra._constants import RETRYABLE_STATUS_CODES


class TimeoutSession(requests.Session):
    """A ``requests.Session`` with a default timeout (msal passes none) whose ``verify`` really applies.

    Plain requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override a session's CA bundle; here an
    explicit bundle wins, and the environment only applies when the session trusts the system CAs.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.default_timeout)
        kwargs.setdefault("verify", self.verify)
        return super().request(method, url, *args, **kwargs)


class GraphRetry(Retry):
    """urllib3 ``Retry`` with a cap on ``Retry-After``, a cap on total waiting, and pacing hooks.

    - A ``Retry-After`` longer than ``retry_after_cap`` is not slept through: the response is returned as is
      (the hook maps it to a quota error) instead of blocking a worker for hours.
    - The sum of all waits of one call stays under ``total_backoff_cap``.
    - Backoff is exponential from the first retry (``backoff_factor * 2**(n-1)``) plus jitter.
    - ``on_response`` is called when a retried attempt's outcome is known, ``before_resend(method, url)``
      after the wait and before the next attempt goes out.
    """

    def __init__(
        self,
        *args: Any,
        retry_after_cap: float = 120.0,
        total_backoff_cap: float = 300.0,
        waited: float = 0.0,
        on_response: Callable[[], None] | None = None,
        before_resend: Callable[[str, str], None] | None = None,
        last_request: tuple[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after_cap = retry_after_cap
        self.total_backoff_cap = total_backoff_cap
        self.waited = waited
        self.on_response = on_response
        self.before_resend = before_resend
        self.last_request = last_request
        self._planned_wait = 0.0

    def new(self, **kw: Any) -> GraphRetry:
        kw.setdefault("retry_after_cap", self.retry_after_cap)
        kw.setdefault("total_backoff_cap", self.total_backoff_cap)
        kw.setdefault("waited", self.waited)
        kw.setdefault("on_response", self.on_response)
        kw.setdefault("before_resend", self.before_resend)
        kw.setdefault("last_request", self.last_request)
        return super().new(**kw)

    def _is_read_error(self, err: Exception) -> bool:
        # A connection the server drops while a large body is still being sent surfaces as a TLS EOF, not
        # as a protocol error; urllib3 counts it as "other" and would not retry it. Certificate errors stay
        # fatal.
        return super()._is_read_error(err) or _is_dropped_tls(err)

    def get_backoff_time(self) -> float:
        errors = 0
        for entry in reversed(self.history):
            if entry.redirect_location is not None:
                break
            errors += 1
        if errors == 0:
            return 0.0
        value = self.backoff_factor * (2 ** (errors - 1)) + random.random() * self.backoff_jitter
        return float(max(0.0, min(self.backoff_max, value)))

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> GraphRetry:
        if self.on_response is not None:
            self.on_response()
        retry_after = None
        if response is not None and response.headers.get("Retry-After"):
            try:
                retry_after = self.parse_retry_after(response.headers["Retry-After"])
            except Exception:  # an unparseable header falls back to backoff
                retry_after = None
            if retry_after is not None and retry_after > self.retry_after_cap:
                raise MaxRetryError(
                    _pool, url or "", ResponseError(f"Retry-After {retry_after:.0f}s above cap")
                )
        new_retry = super().increment(method, url, response, error, _pool, _stacktrace)
        wait = retry_after if retry_after is not None else new_retry.get_backoff_time()
        if self.waited + wait > self.total_backoff_cap:
            raise MaxRetryError(_pool, url or "", ResponseError("total retry wait above cap")) from error
        new_retry.waited = self.waited + wait
        new_retry._planned_wait = wait
        new_retry.last_request = (method or "GET", url or "")
        return new_retry

    def sleep(self, response: Any = None) -> None:
        # The wait was decided (and capped) in increment(); jitter is already in it.
        if self._planned_wait > 0:
            time.sleep(self._planned_wait)
        if self.before_resend is not None and self.last_request is not None:
            self.before_resend(*self.last_request)


def _is_dropped_tls(err: Exception) -> bool:
    """Whether ``err`` is a TLS connection closed by the peer (EOF), as opposed to a TLS failure."""
    cause = err.args[0] if isinstance(err, SSLError) and err.args else None
    return isinstance(cause, (ssl.SSLEOFError, ssl.SSLZeroReturnError))


def build_session(
    *,
    timeout: float,
    verify: str | bool,
    proxies: dict[str, str] | None,
    max_retries: int,
    backoff_factor: float,
    retry_after_cap: float,
    total_backoff_cap: float,
    on_response: Callable[[], None] | None = None,
    before_resend: Callable[[str, str], None] | None = None,
) -> TimeoutSession:
    """A session for Graph: TLS verified (``verify``: a CA bundle path or ``True``), retries on https.

    :param timeout: default per-request timeout in seconds.
    :param verify: CA bundle path, or ``True`` for the system CAs (never ``False``).
    :param proxies: requests-style proxies.
    :param max_retries: retries per call on 429/500/502/503/504 and connection errors.
    :param backoff_factor: base of the exponential backoff, seconds.
    :param retry_after_cap: longest ``Retry-After`` slept through.
    :param total_backoff_cap: longest total wait of one call.
    :param on_response: pacing hook, see :class:`GraphRetry`.
    :param before_resend: pacing hook, see :class:`GraphRetry`.
    """
    if verify is False:
        raise ValueError("TLS verification cannot be disabled")
    session = TimeoutSession(timeout)
    session.verify = verify
    if proxies:
        session.proxies.update(proxies)
    retry = GraphRetry(
        total=max_retries,
        connect=max_retries,
        read=max_retries,
        status=max_retries,
        other=0,
        redirect=0,
        allowed_methods=frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"}),
        status_forcelist=RETRYABLE_STATUS_CODES,
        backoff_factor=backoff_factor,
        backoff_max=max(backoff_factor, 30.0),
        backoff_jitter=backoff_factor,
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
        retry_after_cap=retry_after_cap,
        total_backoff_cap=total_backoff_cap,
        on_response=on_response,
        before_resend=before_resend,
    )
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
    session.mount("https://", adapter)
    return session
