"""Bisection of a request Graph refused for its content (HTTP 400).

A 400 refuses the whole request, although usually one record is at fault (``"active": "yes"``). The request
is then sent again as two halves, recursively down to single operations: the parts Graph accepts are
uploaded, and a single record it still refuses is set aside with Graph's reason. One bad record in a
50-operation request costs ``2 * ceil(log2(50))`` = 12 extra calls.

The split is deterministic (first half the larger; each half encoded the same way every time), so a
retried task rebuilds the same parts with the same fingerprints: it finds the parts already accepted in the
manifest and the parts already refused in the refusals file, without a call.

>>> from airflow_provider_entra.upload.fingerprint import encode
>>> from airflow_provider_entra.upload.planning import PlannedRequest
>>> ops = [{"method": "POST", "bulkId": ext, "path": "/Users", "data": {"externalId": ext}} for ext in "abc"]
>>> whole = PlannedRequest.of(0, 0, encode({"schemas": [], "Operations": ops}), ["a", "b", "c"])
>>> [(part.external_ids, part_of == whole.fingerprint) for part, part_of in halves(whole)]
[(['a', 'b'], True), (['c'], True)]
"""

from __future__ import annotations

import json

from airflow_provider_entra.upload.fingerprint import encode
from airflow_provider_entra.upload.planning import PlannedRequest

__all__ = ["halves"]


def halves(request: PlannedRequest, part_of: str | None = None) -> list[tuple[PlannedRequest, str]]:
    """The two halves of a request of two operations or more, each a request of its own with the same
    ``seq`` and ``stage``, paired with the fingerprint of the planned request they come from.

    :param request: the refused request (or part).
    :param part_of: the planned request's fingerprint when ``request`` is already a part; default: its own.
    :raises ValueError: for a request of a single operation (it cannot be split).
    """
    if request.operations < 2:
        raise ValueError(f"request {request.seq} has a single operation: it cannot be split")
    payload = json.loads(request.body)  # only refused requests are decoded: a rare path
    operations = payload["Operations"]
    middle = (len(operations) + 1) // 2
    origin = part_of or request.fingerprint
    return [
        (
            PlannedRequest.of(
                request.seq,
                request.stage,
                encode({**payload, "Operations": operations[start:stop]}),
                request.external_ids[start:stop],
            ),
            origin,
        )
        for start, stop in ((0, middle), (middle, len(operations)))
    ]
