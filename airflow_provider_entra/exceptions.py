"""The provider's one error tree.

Every error carries what a caller needs to decide and to report, as keyword attributes, never parsed
back out of the message: ``status_code`` (HTTP status or ``None``), ``error_code`` (Graph/AADSTS error
code or ``None``), ``graph_message`` (Graph's ``error.message``, e.g. the field a refused record got
wrong, or ``None``), ``request_id`` (Graph's ``request-id`` header, for Microsoft support) and
``retry_after`` (seconds, if known). :attr:`EntraError.retryable` says whether trying again later can help.
Messages never contain a secret (client secret, private key, assertion or access token).

::

    EntraError                          base; AirflowException, so Airflow fails the task with the message
     +-- EntraConnectionConfigError     the Airflow connection is incomplete or invalid (names the field)  [1]
     +-- EntraAuthError                 no token (wrong secret/cert, unknown app), 401, 403 (names permission)
     +-- EntraThrottledError            429 still answered after the retries (burst limit)
     |    +-- EntraQuotaExhaustedError  a 429 with a Retry-After beyond the retry cap: the daily quota
     +-- EntraPayloadRejectedError      the request was refused as malformed (local check, 400, 413)  [1]
     +-- EntraApiError                  any other Graph error (404, 409, 5xx after retries, unreadable body)

    [1] never ``retryable``; any error with HTTP 403 or a TLS verification failure is not either.

Foreign exceptions (msal error dicts, ``requests`` errors) are mapped in one place, ``hooks/entra.py``.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException

__all__ = [
    "EntraApiError",
    "EntraAuthError",
    "EntraConnectionConfigError",
    "EntraError",
    "EntraPayloadRejectedError",
    "EntraQuotaExhaustedError",
    "EntraThrottledError",
]


class EntraError(AirflowException):
    """Base class of every error raised by this provider.

    :param message: human-readable explanation, free of secrets.
    :param status_code: HTTP status of the response that caused the error, if any.
    :param error_code: Graph ``error.code`` or the token endpoint's ``error``/AADSTS code, if any.
    :param request_id: Graph ``request-id`` (or the token endpoint's trace id), for Microsoft support.
    :param retry_after: seconds the server asked to wait, if known.
    :param graph_message: Graph's ``error.message`` (without the status, code or request id), if any.
    """

    status_code: int | None  # type: ignore[assignment]  # an HTTP status per error, not Airflow's HTTPStatus
    #: Error codes of failures that no retry can fix (checked in :attr:`retryable`): an untrusted TLS
    #: certificate, and the token endpoint's wrong or expired secret, unknown app, certificate that does not
    #: match, unknown tenant (https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes).
    PERMANENT_ERROR_CODES = frozenset(
        {
            "TlsVerificationFailed",
            "AADSTS7000215",
            "AADSTS7000222",
            "AADSTS700016",
            "AADSTS700027",
            "AADSTS90002",
        }
    )

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        graph_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error_code = error_code
        self.request_id = request_id
        self.retry_after = retry_after
        self.graph_message = graph_message

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed later: not for a bad connection or credential, a missing
        permission (403), a payload Graph or the hook refused, or a TLS certificate this machine does not
        trust."""
        return self.status_code != 403 and self.error_code not in self.PERMANENT_ERROR_CODES

    def __str__(self) -> str:
        return self.message

    def _attrs(self) -> dict[str, object]:
        return {
            "status_code": self.status_code,
            "error_code": self.error_code,
            "request_id": self.request_id,
            "retry_after": self.retry_after,
            "graph_message": self.graph_message,
        }

    def serialize(self) -> tuple[str, tuple[str], dict[str, object]]:
        """Class path, args and kwargs that rebuild this error (Airflow's exception serialisation)."""
        cls = type(self)
        return f"{cls.__module__}.{cls.__name__}", (self.message,), self._attrs()

    def __reduce__(self):  # keep keyword attributes across pickling (Celery, multiprocessing)
        return (_rebuild, (type(self), self.message, self._attrs()))


def _rebuild(cls: type[EntraError], message: str, attrs: dict) -> EntraError:
    return cls(message, **attrs)


class EntraConnectionConfigError(EntraError):
    """The ``entra`` connection is missing a field or holds an invalid value; the message names the field."""

    @property
    def retryable(self) -> bool:
        """Never: the connection must be fixed first."""
        return False


class EntraAuthError(EntraError):
    """A token could not be acquired, or Graph refused it (401) or the permission is missing (403)."""


class EntraThrottledError(EntraError):
    """Graph kept answering ``429 Too Many Requests`` after the configured retries."""


class EntraQuotaExhaustedError(EntraThrottledError):
    """Graph answered 429 with a ``Retry-After`` longer than the retry cap: the tenant's daily quota is spent
    (the upload operator stops sending cleanly on it; the allowance it counts itself is in
    :mod:`airflow_provider_entra.upload.quota`)."""


class EntraPayloadRejectedError(EntraError):
    """A bulkUpload payload was refused: locally (over 50 operations, not a BulkRequest) or by Graph."""

    @property
    def retryable(self) -> bool:
        """Never: the same payload would be refused again."""
        return False


class EntraApiError(EntraError):
    """Any other error answered by Graph (404, 409, 5xx after retries) or a response that cannot be read."""
