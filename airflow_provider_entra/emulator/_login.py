"""The identity routes: what login.microsoftonline.com and App Service's managed-identity endpoint serve.

``GET /{tenant}/v2.0/.well-known/openid-configuration``, ``GET /{tenant}/discovery/v2.0/keys``,
``GET /common/discovery/instance``, ``POST /{tenant}/oauth2/v2.0/token`` (client credentials: secret,
certificate or federated assertion, checked by :class:`~airflow_provider_entra.emulator._identity.Identity`)
and ``GET /msi/token``. Errors are Entra's (``AADSTS`` codes); ``docs/emulator.md`` lists them.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from airflow_provider_entra.emulator._core import Emulator
from airflow_provider_entra.emulator._http import base_url_of
from airflow_provider_entra.emulator._identity import GRAPH_RESOURCES, Identity, OAuthError, scope_resource
from airflow_provider_entra.emulator._pki import jwk
from airflow_provider_entra.emulator._protocol import GRAPH_RESOURCE, MANAGED_IDENTITY_API_VERSION


def add_login_routes(api: FastAPI, emulator: Emulator, identity: Identity, info: dict[str, Any]) -> None:
    """Add the identity routes to ``api``; ``info`` is the emulator.json content (``managed_identity``)."""
    tenant_id = emulator.tenant_id

    def _tenant(tenant: str) -> None:
        if tenant.lower() not in (tenant_id.lower(), emulator.domain.lower()):
            raise OAuthError(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
                "signing "
                f"into the correct cloud.",
            )

    @api.get("/{tenant}/v2.0/.well-known/openid-configuration")
    def openid_configuration(tenant: str, request: Request) -> JSONResponse:
        try:
            _tenant(tenant)
        except OAuthError as exc:
            return JSONResponse(exc.body(), status_code=400)
        base = base_url_of(request)
        return JSONResponse(
            {
                "token_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/{tenant_id}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/{tenant_id}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{base}/oidc/userinfo",
                "authorization_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "roles"],
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": request.url.netloc,
                "rbac_url": "https://pas.windows.net",
            }
        )

    @api.get("/{tenant}/discovery/v2.0/keys")
    def keys(tenant: str) -> JSONResponse:
        return JSONResponse({"keys": [jwk(identity._token_key, identity.token_kid)]})

    @api.get("/common/discovery/instance")
    def instance_discovery(request: Request) -> JSONResponse:
        base = base_url_of(request)
        host = request.url.netloc
        return JSONResponse(
            {
                "tenant_discovery_endpoint": f"{base}/{tenant_id}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            }
        )

    @api.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request) -> JSONResponse:
        _tenant(tenant)
        form = {k: str(v) for k, v in (await request.form()).items()}
        return await run_in_threadpool(_token, tenant, form, request)

    def _token(tenant: str, form: dict[str, str], request: Request) -> JSONResponse:
        with emulator.lock:
            apps = dict(emulator.apps)
        app = identity.authenticate(form, apps, f"/{tenant}/oauth2/v2.0/token")
        resource = scope_resource(form.get("scope"))
        if resource.rstrip("/") not in GRAPH_RESOURCES and not resource.startswith(base_url_of(request)):
            raise OAuthError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named {tenant_id}.",
            )
        lifetime = emulator.config.token_lifetime
        with emulator.lock:
            emulator.stats.tokens_issued[app.name] += 1
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": identity.issue(app, lifetime),
            },
            headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )

    @api.get("/msi/token")
    def managed_identity_token(request: Request) -> JSONResponse:
        mi = info.get("managed_identity") or {}
        header = request.headers.get("x-identity-header")
        if not header or header != mi.get("identity_header"):
            return JSONResponse(
                {"statusCode": 401, "message": "The X-IDENTITY-HEADER header is missing or wrong."},
                status_code=401,
            )
        params = request.query_params
        if params.get("api-version") != MANAGED_IDENTITY_API_VERSION:
            return JSONResponse(
                {"statusCode": 400, "message": f"api-version must be {MANAGED_IDENTITY_API_VERSION}."},
                status_code=400,
            )
        resource = (params.get("resource") or "").rstrip("/")
        if resource.endswith("/.default"):
            resource = resource[: -len("/.default")]
        if resource not in GRAPH_RESOURCES:
            return JSONResponse(
                {"statusCode": 500, "message": f"Unknown resource '{resource}'."},
                status_code=500,
            )
        with emulator.lock:
            app = emulator.apps.get(mi.get("client_id", ""))
        requested = params.get("client_id")
        if app is None or (requested and requested != app.client_id):
            return JSONResponse(
                {
                    "statusCode": 400,
                    "message": f"No managed identity found for specified ClientId '{requested}'.",
                },
                status_code=400,
            )
        lifetime = emulator.config.token_lifetime
        with emulator.lock:
            emulator.stats.tokens_issued[app.name] += 1
        return JSONResponse(
            {
                "access_token": identity.issue(app, lifetime),
                "expires_on": str(int(time.time()) + lifetime),
                "resource": GRAPH_RESOURCE,
                "token_type": "Bearer",
                "client_id": app.client_id,
            }
        )
