"""bulkUpload request validation: what Microsoft rejects with 400 before anything is queued.

Each problem is reported with a JSON-pointer-like ``target`` (``Operations[3].data.externalId``) so the Graph
error body names the offending field. Record data is also checked with scim2-models, an independent SCIM
implementation, after the custom extension namespaces (which scim2-models cannot know) are set aside.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from scim2_models import EnterpriseUser, User

from airflow_provider_entra.emulator._protocol import (
    BULK_METHOD,
    BULK_PATH,
    BULK_REQUEST_SCHEMA,
    CORE_USER_SCHEMA,
    ENTERPRISE_USER_SCHEMA,
    MAX_OPERATIONS_PER_REQUEST,
    SCIM_CONTENT_TYPE,
)

_SCIM_USER = User[EnterpriseUser]
_KNOWN_BULK_KEYS = {"schemas", "Operations", "failOnErrors"}
_KNOWN_OPERATION_KEYS = {"method", "bulkId", "path", "data", "version"}
# Sent by many SCIM clients (Microsoft's CSV2SCIM sample among them) but not a User attribute: ignored.
_IGNORED_DATA_KEYS = {"resourcetype"}


@dataclass
class Problem:
    """One reason a request is rejected."""

    target: str
    message: str


@dataclass
class BulkValidationError(Exception):
    """The request is malformed; ``problems`` lists every reason, the first is the headline."""

    code: str
    problems: list[Problem] = field(default_factory=list)
    status_code: int = 400

    @property
    def message(self) -> str:
        first = self.problems[0]
        more = f" (and {len(self.problems) - 1} more problem(s))" if len(self.problems) > 1 else ""
        return f"{first.target}: {first.message}{more}" if first.target else first.message + more


def check_content_type(content_type: str | None) -> None:
    """Raise unless the request declares ``application/scim+json``."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media != SCIM_CONTENT_TYPE:
        got = content_type or "none"
        raise BulkValidationError(
            "BadRequest",
            [Problem("Content-Type", f"must be '{SCIM_CONTENT_TYPE}', got '{got}'")],
        )


def parse_body(raw: bytes, max_bytes: int) -> dict[str, Any]:
    """Parse the request body as a JSON object."""
    if len(raw) > max_bytes:
        raise BulkValidationError(
            "RequestEntityTooLarge",
            [Problem("", f"the request body is {len(raw)} bytes; the emulator accepts at most {max_bytes}")],
            status_code=413,
        )
    if not raw.strip():
        raise BulkValidationError("BadRequest", [Problem("", "the request body is empty")])
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BulkValidationError(
            "BadRequest", [Problem("", f"the request body is not valid JSON: {exc}")]
        ) from exc
    if not isinstance(body, dict):
        raise BulkValidationError("BadRequest", [Problem("", "the request body must be a JSON object")])
    return body


def _scim_problems(prefix: str, data: dict[str, Any]) -> list[Problem]:
    try:
        _SCIM_USER.model_validate(data)
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            out.append(Problem(f"{prefix}.{loc}" if loc else prefix, err["msg"]))
        return out
    except (TypeError, ValueError) as exc:
        return [Problem(prefix, str(exc))]
    return []


def validate_bulk_request(body: dict[str, Any], *, reject_duplicate_external_ids: bool = False) -> list[dict]:
    """Check a SCIM BulkRequest as Microsoft's bulkUpload does; return its operations.

    :param body: the parsed JSON body.
    :param reject_duplicate_external_ids: Microsoft does not document what happens to the same externalId
        twice
        in one request; by default both records are queued and processed in order.
    :raises BulkValidationError: listing every problem found.
    """
    problems: list[Problem] = []
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or BULK_REQUEST_SCHEMA not in schemas:
        problems.append(Problem("schemas", f"must be a list containing '{BULK_REQUEST_SCHEMA}'"))
    for key in body:
        if key not in _KNOWN_BULK_KEYS:
            problems.append(Problem(key, "is not an attribute of a SCIM BulkRequest"))
    fail_on_errors = body.get("failOnErrors")
    if fail_on_errors is not None and (
        isinstance(fail_on_errors, bool) or not isinstance(fail_on_errors, int)
    ):
        problems.append(Problem("failOnErrors", "must be an integer or null"))
    operations = body.get("Operations")
    if not isinstance(operations, list):
        problems.append(Problem("Operations", "is required and must be a list"))
        raise BulkValidationError("BadRequest", problems)
    if not operations:
        problems.append(Problem("Operations", "must contain at least one operation"))
    if len(operations) > MAX_OPERATIONS_PER_REQUEST:
        problems.append(
            Problem(
                "Operations",
                f"contains {len(operations)} operations; at most {MAX_OPERATIONS_PER_REQUEST} are allowed",
            )
        )
        raise BulkValidationError("BadRequest", problems)
    bulk_ids: dict[str, int] = {}
    external_ids: dict[str, int] = {}
    for i, op in enumerate(operations):
        where = f"Operations[{i}]"
        if not isinstance(op, dict):
            problems.append(Problem(where, "must be an object"))
            continue
        for key in op:
            if key not in _KNOWN_OPERATION_KEYS:
                problems.append(Problem(f"{where}.{key}", "is not an attribute of a bulk operation"))
        method = op.get("method")
        if method != BULK_METHOD:
            problems.append(
                Problem(
                    f"{where}.method", f"must be '{BULK_METHOD}' (got {json.dumps(method)}); only POST exists"
                )
            )
        path = op.get("path")
        if path != BULK_PATH:
            problems.append(Problem(f"{where}.path", f"must be '{BULK_PATH}' (got {json.dumps(path)})"))
        bulk_id = op.get("bulkId")
        if not isinstance(bulk_id, str) or not bulk_id.strip():
            problems.append(Problem(f"{where}.bulkId", "is required and must be a non-empty string"))
        elif bulk_id in bulk_ids:
            problems.append(
                Problem(f"{where}.bulkId", f"'{bulk_id}' is already used by Operations[{bulk_ids[bulk_id]}]")
            )
        else:
            bulk_ids[bulk_id] = i
        data = op.get("data")
        if not isinstance(data, dict):
            problems.append(Problem(f"{where}.data", "is required and must be an object"))
            continue
        problems.extend(_data_problems(f"{where}.data", data))
        ext = data.get("externalId")
        if isinstance(ext, str) and ext.strip():
            if reject_duplicate_external_ids and ext in external_ids:
                problems.append(
                    Problem(
                        f"{where}.data.externalId",
                        f"'{ext}' is already used by Operations[{external_ids[ext]}]",
                    )
                )
            external_ids.setdefault(ext, i)
    if problems:
        raise BulkValidationError("BadRequest", problems)
    return operations


def _data_problems(where: str, data: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    schemas = data.get("schemas")
    if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
        return [Problem(f"{where}.schemas", "is required and must be a list of schema URNs")]
    if CORE_USER_SCHEMA not in schemas:
        problems.append(Problem(f"{where}.schemas", f"must contain '{CORE_USER_SCHEMA}'"))
    ext = data.get("externalId")
    if not isinstance(ext, str) or not ext.strip():
        problems.append(Problem(f"{where}.externalId", "is required and must be a non-empty string"))
    core_data: dict[str, Any] = {}
    for key, value in data.items():
        if key.lower() in _IGNORED_DATA_KEYS:
            continue
        if key.lower().startswith("urn:") and key != ENTERPRISE_USER_SCHEMA:
            if key not in schemas:
                problems.append(
                    Problem(f"{where}.{key}", "is used but its namespace is not listed in schemas")
                )
            elif not isinstance(value, dict):
                problems.append(Problem(f"{where}.{key}", "must be an object"))
            continue
        core_data[key] = value
    if ENTERPRISE_USER_SCHEMA in data and ENTERPRISE_USER_SCHEMA not in schemas:
        problems.append(
            Problem(f"{where}.{ENTERPRISE_USER_SCHEMA}", "is used but its namespace is not listed in schemas")
        )
    if problems:
        return problems
    core_data["schemas"] = [s for s in schemas if s in (CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA)]
    if core_data.get("active") is not None and not isinstance(core_data["active"], bool):
        problems.append(Problem(f"{where}.active", "must be a boolean"))
    return problems + _scim_problems(where, core_data)
