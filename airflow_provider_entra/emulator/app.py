"""The emulator's HTTP surface: a FastAPI app for login.microsoftonline.com, graph.microsoft.com and test
controls.

Routes (``{ver}`` is ``v1.0`` or ``beta``):

- ``GET /{tenant}/v2.0/.well-known/openid-configuration``, ``GET /{tenant}/discovery/v2.0/keys``,
  ``POST /{tenant}/oauth2/v2.0/token``, ``GET /msi/token`` (App Service managed identity): ``_login``;
- ``POST /{ver}/servicePrincipals/{sp}/synchronization/jobs/{job}/bulkUpload``,
  ``GET /{ver}/servicePrincipals/{sp}/synchronization/jobs[/{job}]``, ``POST .../{job}/start|pause|restart``,
  ``GET``/``PUT .../{job}/schema``, ``GET /{ver}/auditLogs/provisioning``: ``_graph``;
- ``/_emulator/...`` test controls (no authentication: a loopback developer tool): ``_controls``.

Every call passes through ``_http.StatsAndFaults`` (counts, request log, injected faults, ``Date``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp

from airflow_provider_entra.emulator._controls import add_control_routes
from airflow_provider_entra.emulator._core import Emulator
from airflow_provider_entra.emulator._graph import add_graph_routes
from airflow_provider_entra.emulator._http import GraphError, StatsAndFaults, error_body, graph_ids
from airflow_provider_entra.emulator._identity import Identity, OAuthError
from airflow_provider_entra.emulator._login import add_login_routes


def create_app(emulator: Emulator, identity: Identity, *, base_url: str, info: dict[str, Any]) -> ASGIApp:
    """Build the ASGI app: the FastAPI routes inside the stats and fault-injection middleware.

    :param emulator: the tenant state.
    :param identity: token issuer/verifier.
    :param base_url: the advertised ``https://host:port`` (used in emulator.json-style answers).
    :param info: the emulator.json content (``managed_identity`` settings are read from it).
    """
    api = FastAPI(title="Entra emulator", docs_url=None, redoc_url=None, openapi_url=None)

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

    add_login_routes(api, emulator, identity, info)
    add_graph_routes(api, emulator, identity)
    add_control_routes(api, emulator, base_url=base_url, info=info)
    return StatsAndFaults(api, emulator)
