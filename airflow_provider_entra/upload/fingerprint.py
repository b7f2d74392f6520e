"""Request bodies and their fingerprints.

A request is the UTF-8 JSON bytes that are POSTed: the bytes
:func:`~airflow_provider_entra.scim.build_bulk_requests` made, or :func:`encode` of a dict (a payload given
as it is, half of a refused request). Its *fingerprint* is the SHA-256 of those same bytes: requests are
built deterministically, so a retried task rebuilds the same bytes and finds their fingerprints in the
manifest.

>>> body = encode({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": []})
>>> body[:12], len(fingerprint(body))
(b'{"schemas":[', 64)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["encode", "fingerprint"]


def encode(payload: Mapping[str, Any]) -> bytes:
    """A request dict as compact UTF-8 JSON, the way the builder writes requests.

    :param payload: a SCIM BulkRequest.
    :raises TypeError: for a value JSON cannot hold.
    """
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def fingerprint(body: bytes) -> str:
    """SHA-256 (hex) of a request's bytes: equal for equal requests across processes.

    :param body: the request as POSTed.
    """
    return hashlib.sha256(body).hexdigest()
