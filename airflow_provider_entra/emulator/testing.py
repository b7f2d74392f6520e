"""A plain-requests Graph client and SCIM builders for exercising the emulator (tests, demos, benchmarks).

It talks to the emulator exactly as any Graph client would: HTTPS verified with the emulator's CA only,
tokens from the token endpoint, no mocks.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from airflow_provider_entra.emulator._protocol import BULK_REQUEST_SCHEMA as BULK
from airflow_provider_entra.emulator._protocol import CORE_USER_SCHEMA as CORE
from airflow_provider_entra.emulator._protocol import ENTERPRISE_USER_SCHEMA as ENTERPRISE
from airflow_provider_entra.emulator._protocol import SCIM_CONTENT_TYPE as SCIM_JSON
from airflow_provider_entra.emulator.process import EmulatorProcess

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
__all__ = ["BULK", "CORE", "ENTERPRISE", "GRAPH_SCOPE", "SCIM_JSON", "Graph", "bulk", "user"]


def user(
    ext: str,
    upn: str | None = None,
    *,
    manager: str | None = None,
    active: bool | None = True,
    display_name: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A SCIM user record as the provider sends it."""
    data: dict[str, Any] = {
        "schemas": [CORE, ENTERPRISE],
        "externalId": ext,
        "userName": upn or f"user{ext}@contoso.com",
        "displayName": display_name or f"User {ext}",
        "name": {"givenName": "Given", "familyName": f"Family{ext}"},
        "title": "Engineer",
        ENTERPRISE: {"department": "R&D"},
    }
    if active is not None:
        data["active"] = active
    if manager:
        data[ENTERPRISE]["manager"] = {"value": manager}
    data.update(extra)
    return data


def bulk(*records: dict[str, Any]) -> dict[str, Any]:
    """A BulkRequest with one POST /Users operation per record."""
    return {
        "schemas": [BULK],
        "Operations": [
            {"method": "POST", "bulkId": f"b{i}", "path": "/Users", "data": record}
            for i, record in enumerate(records)
        ],
        "failOnErrors": None,
    }


class Graph:
    """A minimal Graph client over plain requests, verifying TLS with the emulator's CA only."""

    def __init__(self, emu: EmulatorProcess, app: dict[str, Any] | None = None) -> None:
        self.emu = emu
        self.info = emu.info
        self.app = app or {
            "client_id": emu.info["client_id"],
            "client_secret": emu.info["client_secret"],
            "service_principal_id": emu.info["service_principal_id"],
            "job_id": emu.info["job_id"],
        }
        self.ca = emu.ca_bundle
        self.base = emu.info["graph_endpoint"]
        self.session = requests.Session()
        self._token: str | None = None

    @property
    def job_url(self) -> str:
        return (
            f"{self.base}/v1.0/servicePrincipals/{self.app['service_principal_id']}"
            f"/synchronization/jobs/{self.app['job_id']}"
        )

    def token_response(self, **form: str) -> requests.Response:
        data = {
            "grant_type": "client_credentials",
            "client_id": self.app["client_id"],
            "client_secret": self.app["client_secret"],
            "scope": GRAPH_SCOPE,
        }
        data.update(form)
        url = f"{self.info['authority_host']}/{self.info['tenant_id']}/oauth2/v2.0/token"
        return self.session.post(url, data={k: v for k, v in data.items() if v is not None}, verify=self.ca)

    @property
    def token(self) -> str:
        if self._token is None:
            response = self.token_response()
            assert response.status_code == 200, response.text
            self._token = response.json()["access_token"]
        return self._token

    def request(self, method: str, url: str, *, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {token or self.token}"
        return self.session.request(method, url, headers=headers, verify=self.ca, timeout=30, **kwargs)

    def upload(
        self,
        body: Any,
        *,
        content_type: str | None = SCIM_JSON,
        version: str = "v1.0",
        raw: bytes | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if content_type:
            headers["Content-Type"] = content_type
        url = self.job_url.replace("/v1.0/", f"/{version}/") + "/bulkUpload"
        data = raw if raw is not None else json.dumps(body).encode()
        return self.request("POST", url, data=data, headers=headers, **kwargs)

    def logs(self, version: str = "v1.0", **params: Any) -> requests.Response:
        return self.request("GET", f"{self.base}/{version}/auditLogs/provisioning", params=params)

    def all_logs(self, filter: str | None = None, **params: Any) -> list[dict[str, Any]]:
        """Every entry matching ``filter``, following @odata.nextLink."""
        if filter:
            params["$filter"] = filter
        response = self.logs(**params)
        entries: list[dict[str, Any]] = []
        while True:
            assert response.status_code == 200, response.text
            body = response.json()
            entries.extend(body["value"])
            next_link = body.get("@odata.nextLink")
            if not next_link:
                return entries
            response = self.request("GET", next_link)

    def job_logs(self, *clauses: str) -> list[dict[str, Any]]:
        return self.all_logs(" and ".join([f"jobid eq '{self.app['job_id']}'", *clauses]))

    def job(self) -> dict[str, Any]:
        response = self.request("GET", self.job_url)
        assert response.status_code == 200, response.text
        return response.json()

    def job_action(self, action: str, body: dict[str, Any] | None = None) -> requests.Response:
        return self.request("POST", f"{self.job_url}/{action}", json=body)
