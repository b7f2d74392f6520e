"""bulkUpload: documented requests are accepted; each malformed one gets a 400 naming the problem."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_entra.emulator.testing import BULK, CORE, ENTERPRISE, Graph, bulk, user

DATA = Path(__file__).parent / "data"


def _problem(response: Any) -> tuple[str, str, list[dict]]:
    body = response.json()["error"]
    return body["code"], body["message"], body.get("details", [])


def test_documented_example_is_accepted_with_202_and_headers(graph: Graph) -> None:
    body = json.loads((DATA / "graph-bulkupload-example.json").read_text())
    response = graph.upload(body, headers={"client-request-id": "my-correlation-id"})
    assert response.status_code == 202
    assert response.content == b""
    assert response.headers["client-request-id"] == "my-correlation-id"
    assert response.headers["request-id"]
    location = response.headers["Location"]
    assert "/auditLogs/provisioning?$filter=jobid%20eq%20'" in location
    assert graph.app["job_id"] in location


def test_beta_path_is_accepted_too(graph: Graph) -> None:
    response = graph.upload(bulk(user("1")), version="beta")
    assert response.status_code == 202
    assert "/beta/auditLogs/provisioning" in response.headers["Location"]


def test_documented_minimal_payload_is_accepted(graph: Graph) -> None:
    body = {
        "schemas": [BULK],
        "Operations": [
            {
                "method": "POST",
                "bulkId": "701984",
                "path": "/Users",
                "data": {
                    "schemas": [CORE, ENTERPRISE],
                    "externalId": "701984",
                    "userName": "bjensen@contoso.com",
                    "active": True,
                },
            }
        ],
        "failOnErrors": None,
    }
    assert graph.upload(body).status_code == 202


def test_microsoft_csv2scim_sample_is_rejected_for_its_own_defects(
    graph: Graph, microsoft_sample: Path
) -> None:
    body = json.loads((microsoft_sample / "Sample-CSV-2-SCIM-payload.json").read_text())
    response = graph.upload(body)
    assert response.status_code == 400
    code, message, details = _problem(response)
    assert code == "BadRequest"
    targets = {d["target"] for d in details}
    assert "Operations[0].path" in targets  # lowercase /users
    assert "Operations[2].bulkId" in targets  # the repeated bulkId
    assert "/users" in message


def _op(**changes: Any) -> dict[str, Any]:
    op = {"method": "POST", "bulkId": "b0", "path": "/Users", "data": user("100")}
    op.update(changes)
    return op


def _with_data(**changes: Any) -> dict[str, Any]:
    data = user("100")
    for key, value in changes.items():
        if value is _DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return {"schemas": [BULK], "Operations": [_op(data=data)]}


_DROP = object()
_CUSTOM = "urn:ietf:params:scim:schemas:extension:contoso:1.0:User"

MALFORMED = {
    "bulk schema missing": ({"Operations": [_op()]}, "schemas"),
    "bulk schema wrong": ({"schemas": [CORE], "Operations": [_op()]}, "schemas"),
    "Operations missing": ({"schemas": [BULK]}, "Operations"),
    "Operations empty": ({"schemas": [BULK], "Operations": []}, "Operations"),
    "51 operations": (
        {"schemas": [BULK], "Operations": [_op(bulkId=str(i), data=user(str(i))) for i in range(51)]},
        "Operations",
    ),
    "method PUT": ({"schemas": [BULK], "Operations": [_op(method="PUT")]}, "Operations[0].method"),
    "method DELETE": ({"schemas": [BULK], "Operations": [_op(method="DELETE")]}, "Operations[0].method"),
    "method PATCH": ({"schemas": [BULK], "Operations": [_op(method="PATCH")]}, "Operations[0].method"),
    "path Groups": ({"schemas": [BULK], "Operations": [_op(path="/Groups")]}, "Operations[0].path"),
    "path lowercase": ({"schemas": [BULK], "Operations": [_op(path="/users")]}, "Operations[0].path"),
    "path with id": ({"schemas": [BULK], "Operations": [_op(path="/Users/123")]}, "Operations[0].path"),
    "bulkId missing": ({"schemas": [BULK], "Operations": [_op(bulkId=None)]}, "Operations[0].bulkId"),
    "bulkId repeated": (
        {"schemas": [BULK], "Operations": [_op(), _op(data=user("101"))]},
        "Operations[1].bulkId",
    ),
    "data missing": ({"schemas": [BULK], "Operations": [_op(data=None)]}, "Operations[0].data"),
    "data schemas missing": (_with_data(schemas=_DROP), "Operations[0].data.schemas"),
    "core schema missing": (_with_data(schemas=[ENTERPRISE]), "Operations[0].data.schemas"),
    "externalId missing": (_with_data(externalId=_DROP), "Operations[0].data.externalId"),
    "externalId empty": (_with_data(externalId=""), "Operations[0].data.externalId"),
    "externalId not a string": (_with_data(externalId=701984), "Operations[0].data.externalId"),
    "enterprise namespace not declared": (_with_data(schemas=[CORE]), f"Operations[0].data.{ENTERPRISE}"),
    "custom namespace not declared": (
        _with_data(**{_CUSTOM: {"HireDate": "2024-01-01T00:00:00Z"}}),
        f"Operations[0].data.{_CUSTOM}",
    ),
    "active not a boolean": (_with_data(active="yes"), "Operations[0].data.active"),
    "name not an object": (_with_data(name="Barbara Jensen"), "Operations[0].data.name"),
    "unknown core attribute": (_with_data(favouriteColour="green"), "Operations[0].data.favouriteColour"),
    "email not an email": (
        _with_data(emails=[{"value": "not-an-address", "type": "work"}]),
        "Operations[0].data.emails.0.value",
    ),
    "unknown bulk attribute": ({"schemas": [BULK], "Operations": [_op()], "extra": 1}, "extra"),
    "failOnErrors not a number": (
        {"schemas": [BULK], "Operations": [_op()], "failOnErrors": "all"},
        "failOnErrors",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_request_is_rejected_naming_the_problem(graph: Graph, case: str) -> None:
    body, target = MALFORMED[case]
    response = graph.upload(copy.deepcopy(body))
    assert response.status_code == 400, response.text
    code, message, details = _problem(response)
    assert code == "BadRequest"
    assert target in {d["target"] for d in details}
    assert message.startswith(details[0]["target"])
    assert response.json()["error"]["innerError"]["request-id"] == response.headers["request-id"]


def test_missing_content_type_is_400(graph: Graph) -> None:
    response = graph.upload(bulk(user("1")), content_type=None)
    assert response.status_code == 400
    assert "application/scim+json" in response.json()["error"]["message"]


def test_plain_json_content_type_is_400(graph: Graph) -> None:
    response = graph.upload(bulk(user("1")), content_type="application/json")
    assert response.status_code == 400
    assert "Content-Type" in response.json()["error"]["message"]


def test_content_type_with_charset_is_accepted(graph: Graph) -> None:
    assert (
        graph.upload(bulk(user("1")), content_type="application/scim+json; charset=utf-8").status_code == 202
    )


@pytest.mark.parametrize(
    ("raw", "needle"),
    [(b"{not json", "not valid JSON"), (b"[]", "JSON object"), (b"", "empty")],
    ids=["unparseable", "array", "empty"],
)
def test_unparseable_body_is_400(graph: Graph, raw: bytes, needle: str) -> None:
    response = graph.upload(None, raw=raw)
    assert response.status_code == 400
    assert needle in response.json()["error"]["message"]


def test_fifty_operations_are_accepted(graph: Graph) -> None:
    response = graph.upload(bulk(*[user(str(i)) for i in range(50)]))
    assert response.status_code == 202


def test_rejected_requests_queue_nothing(graph: Graph) -> None:
    assert graph.upload(_with_data(externalId=_DROP)).status_code == 400
    stats = graph.emu.stats()
    assert stats["uploads_rejected"] == 1
    assert stats["uploads_accepted"] == 0
    assert stats["operations_received"] == 0


def test_duplicate_external_ids_can_be_rejected_by_option(graph: Graph) -> None:
    body = bulk(user("7"), user("7", "other7@contoso.com"))
    assert graph.upload(body).status_code == 202  # Microsoft documents nothing: accepted by default
    graph.emu.configure(reject_duplicate_external_ids=True)
    response = graph.upload(body)
    assert response.status_code == 400
    assert "Operations[1].data.externalId" in {d["target"] for d in response.json()["error"]["details"]}


def test_unknown_job_is_404(graph: Graph) -> None:
    graph.app = {**graph.app, "job_id": "API2AAD.0000.unknown"}
    response = graph.upload(bulk(user("1")))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "Request_ResourceNotFound"


def test_payload_over_the_size_cap_is_413(graph: Graph) -> None:
    graph.emu.configure(max_payload_bytes=1000)
    response = graph.upload(bulk(*[user(str(i)) for i in range(10)]))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "RequestEntityTooLarge"


def test_token_is_checked_before_the_job_exists(graph: Graph) -> None:
    graph.app = {**graph.app, "job_id": "API2AAD.0000.unknown"}
    response = graph.upload(bulk(user("1")), headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
