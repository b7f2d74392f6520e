"""What the pure upload layer raises; the operator turns each into the Airflow error it calls for.

::

    UploadError                 base
     +-- PlanningError          the input cannot be planned (bad input, no retry can fix it); a ValueError
     +-- TooManyRejected        Graph rejected more records than allowed: something systemic is wrong
     +-- RequestFailed          posting one request failed for another reason (its cause is chained)
     +-- QuotaSpent             the tenant's daily allowance is spent: sending stops cleanly, the rest waits
    Refused                     raised by a ``post`` callable: Graph refused the request's content (400)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_entra.upload.planning import PlannedRequest

__all__ = ["PlanningError", "QuotaSpent", "Refused", "RequestFailed", "TooManyRejected", "UploadError"]


class UploadError(Exception):
    """Base class of the upload layer's errors."""


class PlanningError(UploadError, ValueError):
    """The input cannot be turned into requests (a missing mapping, a malformed payload, ...)."""


class TooManyRejected(UploadError):
    """More records rejected by Graph than ``max_rejected_records``: retrying cannot help."""


class RequestFailed(UploadError):
    """Posting a request failed with an error that is not a content refusal; ``__cause__`` is that error.

    :param message: what failed, with how many requests were accepted before.
    :param request: the request (or part) being posted.
    """

    def __init__(self, message: str, *, request: PlannedRequest) -> None:
        super().__init__(message)
        self.request = request


class QuotaSpent(UploadError):
    """The tenant's daily bulkUpload allowance is spent, by our count (checked before sending) or by
    Microsoft's 429. Raised by a ``post`` callable; the send loop stops cleanly and the records not sent
    wait for the next run (not a failure).

    :param message: what is spent, and when the next call is allowed.
    :param by_microsoft: Microsoft answered 429 for the daily quota (rather than our count saying so).
    :param retry_after: seconds until the next call is allowed, when known.
    """

    def __init__(self, message: str, *, by_microsoft: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.by_microsoft = by_microsoft
        self.retry_after = retry_after


class Refused(Exception):
    """Graph refused a request for its content (HTTP 400): the caller splits it to find the bad records.

    :param code: Graph's ``error.code`` (``None`` when it gave none).
    :param message: Graph's ``error.message`` (``None`` when it gave none).
    :param status_code: the HTTP status.
    :param request_id: Graph's ``request-id``.
    """

    def __init__(
        self,
        code: str | None,
        message: str | None,
        *,
        status_code: int = 400,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message or code or f"HTTP {status_code}")
        self.code = code
        self.message = message
        self.status_code = status_code
        self.request_id = request_id

    @property
    def reason(self) -> str:
        """``Graph rejected the record: <code>: <message>``, the reason a record set aside carries."""
        text = f"Graph rejected the record: {self.code or f'HTTP {self.status_code}'}"
        return f"{text}: {self.message}" if self.message else text
