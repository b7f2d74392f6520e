"""The test controls (``/_emulator/...``) and the apps' entries in emulator.json.

The controls need no authentication: the emulator is a loopback developer tool.

``docs/emulator.md`` ("Test controls") documents each call.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from airflow_provider_entra.emulator._core import Emulator
from airflow_provider_entra.emulator._identity import App, b64_secret
from airflow_provider_entra.emulator._protocol import ALL_ROLES, iso


def add_control_routes(api: FastAPI, emulator: Emulator, *, base_url: str, info: dict[str, Any]) -> None:
    """Add the test controls to ``api``; new apps' answers use ``base_url`` and emulator.json's ``info``."""
    tenant_id = emulator.tenant_id

    @api.get("/_emulator/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "tenant_id": tenant_id}

    @api.get("/_emulator/users")
    def users() -> list[dict[str, Any]]:
        return emulator.public_users()

    @api.get("/_emulator/stats")
    def stats() -> dict[str, Any]:
        with emulator.lock:
            s = emulator.stats
            return {
                "calls": dict(s.calls),
                "calls_total": sum(v for k, v in s.calls.items() if k != "control"),
                "throttled": dict(s.throttled),
                "throttled_total": sum(s.throttled.values()),
                "status": dict(s.status),
                "faults": dict(s.faults),
                "operations_received": s.operations_received,
                "operations_processed": s.operations_processed,
                "uploads_accepted": s.uploads_accepted,
                "uploads_rejected": s.uploads_rejected,
                "uploads_processed": s.uploads_processed,
                "uploads_purged": s.uploads_purged,
                "uploads_failed": s.uploads_failed,
                "uploads_pending": len(emulator.pending),
                "tokens_issued": dict(s.tokens_issued),
                "users": len(emulator.directory.users),
                "log_entries": emulator.store.count_logs(),
                "daily_calls_used": emulator.daily_used(),
                "peak_calls": s.peak_calls(),
                "since": iso(s.started),
            }

    @api.get("/_emulator/requests")
    def request_log(endpoint: str | None = None) -> list[dict[str, Any]]:
        with emulator.lock:
            return [dict(r) for r in emulator.stats.requests if endpoint is None or r["endpoint"] == endpoint]

    @api.post("/_emulator/process")
    def process() -> dict[str, Any]:
        return emulator.process_due(force=True)

    @api.get("/_emulator/config")
    def get_config() -> dict[str, Any]:
        with emulator.lock:
            return emulator.public_config()

    @api.post("/_emulator/config")
    async def set_config(request: Request) -> JSONResponse:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object")
            return JSONResponse(emulator.configure(changes))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    @api.post("/_emulator/new-day")
    async def new_day(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
            hours = float(body.get("hours", 24)) if isinstance(body, dict) else None
        except (ValueError, TypeError):
            hours = None
        if hours is None or not 0 < hours <= 24:
            return JSONResponse({"error": 'the body must be {} or {"hours": 0 < h <= 24}'}, status_code=400)
        used = emulator.new_day(hours)
        return JSONResponse({"daily_calls_used": used, "daily_quota": emulator.config.daily_quota})

    @api.post("/_emulator/reset")
    def reset() -> dict[str, Any]:
        emulator.reset()
        return {"status": "reset"}

    @api.get("/_emulator/jobs")
    def jobs() -> list[dict[str, Any]]:
        with emulator.lock:
            return [
                {
                    **emulator.job_view(j),
                    "app": j.app_name,
                    "servicePrincipalId": j.service_principal_id,
                    "customAttributes": dict(j.custom_attributes),
                    "declaredAttributes": list(j.declared_attributes),
                    "held": len(j.held),
                }
                for j in emulator.jobs.values()
            ]

    @api.post("/_emulator/jobs/{job_id}")
    async def configure_job(job_id: str, request: Request) -> JSONResponse:
        body = await request.json()
        with emulator.lock:
            job = emulator.jobs.get(job_id)
            if job is None:
                return JSONResponse({"error": f"unknown job {job_id}"}, status_code=404)
            unknown = set(body) - {"delete_threshold", "custom_attributes", "status"}
            if unknown:
                return JSONResponse({"error": f"unknown key(s) {sorted(unknown)}"}, status_code=400)
            if "delete_threshold" in body:
                job.delete_threshold = int(body["delete_threshold"])
            if "custom_attributes" in body:
                if not isinstance(body["custom_attributes"], dict):
                    return JSONResponse({"error": "custom_attributes must be an object"}, status_code=400)
                job.custom_attributes = {str(k): str(v) for k, v in body["custom_attributes"].items()}
            if "status" in body:
                if body["status"] not in ("Active", "Paused"):
                    return JSONResponse({"error": "status must be Active or Paused"}, status_code=400)
                job.status = body["status"]
                job.quarantine = None
            emulator.save_registry()
            emulator.wakeup.notify_all()
            return JSONResponse({**emulator.job_view(job), "customAttributes": job.custom_attributes})

    @api.post("/_emulator/apps")
    async def create_app_route(request: Request) -> JSONResponse:
        body = await request.json()
        name = str(body.get("name") or f"app-{uuid.uuid4().hex[:8]}")
        roles = body.get("roles", ALL_ROLES)
        if not isinstance(roles, list):
            return JSONResponse({"error": "roles must be a list"}, status_code=400)
        with emulator.lock:
            default = emulator.app_by_name("default")
            own_job = bool(body.get("own_job", False))
            sp_id = str(uuid.uuid4()) if own_job else default.service_principal_id  # type: ignore[union-attr]
            job_id = emulator.new_job_id() if own_job else default.job_id  # type: ignore[union-attr]
            app = App(
                name=name,
                client_id=str(uuid.uuid4()),
                client_secret=b64_secret(),
                service_principal_id=sp_id,
                job_id=job_id,
                roles=[str(r) for r in roles],
                certificates=list(default.certificates) if body.get("certificate") and default else [],
            )
            emulator.add_app(app)
        return JSONResponse(app_info(app, base_url, info))


def app_info(app: App, base_url: str, info: dict[str, Any]) -> dict[str, Any]:
    """An app's entry in emulator.json, including the Airflow connection JSON for it."""
    return {
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "service_principal_id": app.service_principal_id,
        "job_id": app.job_id,
        "roles": list(app.roles),
        "airflow_conn": airflow_conn(app, base_url, info["tenant_id"], info["ca_bundle"]),
    }


def airflow_conn(app: App, base_url: str, tenant_id: str, ca_bundle: str) -> dict[str, Any]:
    return {
        "conn_type": "entra",
        "login": app.client_id,
        "password": app.client_secret,
        "extra": {
            "tenant_id": tenant_id,
            "service_principal_id": app.service_principal_id,
            "job_id": app.job_id,
            "authority_host": base_url,
            "graph_endpoint": base_url,
            "ca_bundle": ca_bundle,
            "api_version": "v1.0",
        },
    }
