"""``entra-emulator`` / ``python -m airflow_provider_entra.emulator``: run the Entra emulator over HTTPS.

Every option also reads an environment variable (``--port`` <- ``ENTRA_EMULATOR_PORT``, ...); the command
line wins.
On start it writes ``<data-dir>/emulator.json`` (URLs, ids, credentials, CA path, Airflow connection JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import uvicorn

from airflow_provider_entra.emulator._config import Config, parse_rate
from airflow_provider_entra.emulator._controls import airflow_conn, app_info
from airflow_provider_entra.emulator._core import Emulator
from airflow_provider_entra.emulator._identity import App, Identity, b64_secret
from airflow_provider_entra.emulator._pki import Pki, ensure_pki, thumbprints
from airflow_provider_entra.emulator._protocol import ALL_ROLES, DEFAULT_DAILY_QUOTA, DEFAULT_RATE_LIMIT
from airflow_provider_entra.emulator._store import Store
from airflow_provider_entra.emulator.app import create_app

log = logging.getLogger("entra_emulator")
ENV_PREFIX = "ENTRA_EMULATOR_"
FEDERATED_SUBJECT = "system:serviceaccount:airflow:airflow-worker"
_FEDERATED_REFRESH_SECONDS = 3600


def _env(name: str, default: Any) -> Any:
    return os.environ.get(ENV_PREFIX + name.upper().replace("-", "_"), default)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="entra-emulator",
        description="Local Microsoft Entra ID + Graph emulator for API-driven inbound provisioning (HTTPS).",
    )
    p.add_argument("--host", default=_env("host", "127.0.0.1"), help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(_env("port", 0)), help="port; 0 picks a free one")
    p.add_argument(
        "--data-dir", default=_env("data_dir", None), help="state, CA and emulator.json (default: temp)"
    )
    p.add_argument("--advertise-host", default=_env("advertise_host", None), help="host name clients use")
    p.add_argument(
        "--tenant-id", default=_env("tenant_id", None), help="tenant GUID (default: generated once)"
    )
    p.add_argument(
        "--apps-file", default=_env("apps_file", None), help="JSON list of apps with fixed credentials"
    )
    p.add_argument(
        "--processing-delay",
        type=float,
        default=float(_env("processing_delay", 1.0)),
        help="seconds before processing",
    )
    p.add_argument(
        "--rate-limit", default=_env("rate_limit", DEFAULT_RATE_LIMIT), help="bulkUpload calls/seconds"
    )
    p.add_argument("--daily-quota", type=int, default=int(_env("daily_quota", DEFAULT_DAILY_QUOTA)))
    p.add_argument("--token-lifetime", type=int, default=int(_env("token_lifetime", 3600)), help="seconds")
    p.add_argument(
        "--fault-rate", type=float, default=float(_env("fault_rate", 0.0)), help="random 500/503 share"
    )
    p.add_argument("--log-page-size", type=int, default=int(_env("log_page_size", 100)), help="default $top")
    p.add_argument("--log-level", default=_env("log_level", "warning"))
    return p


def _load_apps_file(path: str) -> list[dict[str, Any]]:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, list):
        raise SystemExit(f"--apps-file {path}: expected a JSON list of apps")
    required = {"name", "client_id", "client_secret", "service_principal_id", "job_id"}
    for i, item in enumerate(data):
        missing = required - set(item)
        if missing:
            raise SystemExit(f"--apps-file {path}: app #{i} lacks {sorted(missing)}")
    return data


def _register_apps(emulator: Emulator, pki: Pki, apps_file: str | None, issuer: str) -> None:
    """Make sure the default, admin, managed-identity and federated apps exist (apps-file entries win)."""
    client_pem = (pki.client_cert_path).read_text()
    fixed = {a["name"]: a for a in (_load_apps_file(apps_file) if apps_file else [])}
    for name in ("default", "admin", *[n for n in fixed if n not in ("default", "admin")]):
        spec = fixed.get(name)
        existing = emulator.app_by_name(name)
        if spec:
            app = App(
                name=name,
                client_id=spec["client_id"],
                client_secret=spec["client_secret"],
                service_principal_id=spec["service_principal_id"],
                job_id=spec["job_id"],
                roles=list(spec.get("roles") or ALL_ROLES),
            )
        elif existing:
            app = existing
        else:
            app = App(
                name=name,
                client_id=str(uuid.uuid4()),
                client_secret=b64_secret(),
                service_principal_id=str(uuid.uuid4()),
                job_id=emulator.new_job_id(),
                roles=list(ALL_ROLES),
            )
        if name == "default" and client_pem not in app.certificates:
            app.certificates = [*app.certificates, client_pem]
        emulator.add_app(app)
    default = emulator.app_by_name("default")
    assert default is not None
    for name, kind in (("managed-identity", "managed_identity"), ("federated", "federated")):
        identity = emulator.app_by_name(name) or App(
            name=name,
            client_id=str(uuid.uuid4()),
            client_secret=None,
            service_principal_id=str(uuid.uuid4()),
            job_id=default.job_id,
            roles=list(ALL_ROLES),
            kind=kind,
        )
        identity.job_id = default.job_id
        if kind == "federated":
            identity.federated = [
                {"issuer": issuer, "subject": FEDERATED_SUBJECT, "audience": "api://AzureADTokenExchange"}
            ]
        emulator.add_app(identity)


class _Server(uvicorn.Server):
    """uvicorn, but idle keep-alive TLS connections are dropped at shutdown.

    A graceful TLS close waits for the client's close_notify, which an idle pooled client never sends, so
    without this a SIGTERM would hang until the SSL shutdown timeout.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for connection in list(self.server_state.connections):
            cycle = getattr(connection, "cycle", None)
            transport = getattr(connection, "transport", None)
            if transport is not None and (cycle is None or cycle.response_complete):
                transport.abort()
        await super().shutdown(sockets)


def _pick_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    # Readable by other local users/containers (umask): it holds the emulated tenant's client credentials,
    # which the Airflow containers of docker-compose read; the emulator's own signing keys stay owner-only.
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def _processor(emulator: Emulator, stop: threading.Event) -> None:
    """Process uploads as they fall due; woken early by new uploads and config changes."""
    while not stop.is_set():
        try:
            emulator.process_due()
        except Exception:  # keep the emulator serving; the failure is logged
            log.exception("processing failed")
        with emulator.wakeup:
            due = emulator.next_due()
            timeout = 0.5 if due is None else max(0.0, min(0.5, due - time.time()))
            if timeout > 0:
                emulator.wakeup.wait(timeout)


def _federated_refresher(identity: Identity, path: Path, stop: threading.Event) -> None:
    while not stop.wait(_FEDERATED_REFRESH_SECONDS):
        identity.write_federated_token(path, FEDERATED_SUBJECT)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parse_rate(args.rate_limit)
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="entra-emulator-")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    info_path = data_dir / "emulator.json"
    info_path.unlink(missing_ok=True)

    sock = _pick_socket(args.host, args.port)
    port = sock.getsockname()[1]
    wildcard = args.host in ("0.0.0.0", "::", "")  # noqa: S104
    public_host = args.advertise_host or ("127.0.0.1" if wildcard else args.host)
    base_url = f"https://{public_host}:{port}"
    pki = ensure_pki(data_dir, [h for h in (args.host, args.advertise_host) if h])

    config = Config(
        processing_delay=args.processing_delay,
        rate_limit=args.rate_limit,
        daily_quota=args.daily_quota,
        token_lifetime=args.token_lifetime,
        fault_rate=args.fault_rate,
        log_page_size=args.log_page_size,
    )
    probe = Store(data_dir / "emulator.sqlite3")
    meta = probe.get("meta") or {}
    probe.close()
    tenant_id = args.tenant_id or meta.get("tenant_id") or str(uuid.uuid4())
    mi_header = meta.get("identity_header") or uuid.uuid4().hex
    emulator = Emulator(data_dir, tenant_id=tenant_id, config=config)
    emulator.store.put("meta", {"tenant_id": tenant_id, "identity_header": mi_header})
    issuer = f"{base_url}/federation"
    identity = Identity(tenant_id, pki.token_key, pki.token_kid, pki.issuer_key, pki.issuer_kid, issuer)
    _register_apps(emulator, pki, args.apps_file, issuer)
    federated_token = data_dir / "federated-token.jwt"
    identity.write_federated_token(federated_token, FEDERATED_SUBJECT)

    default = emulator.app_by_name("default")
    mi_app = emulator.app_by_name("managed-identity")
    fed_app = emulator.app_by_name("federated")
    assert default and mi_app and fed_app
    sha1, _ = thumbprints(pki.client_cert)
    info: dict[str, Any] = {
        "authority_host": base_url,
        "graph_endpoint": base_url,
        "tenant_id": tenant_id,
        "client_id": default.client_id,
        "client_secret": default.client_secret,
        "service_principal_id": default.service_principal_id,
        "job_id": default.job_id,
        "ca_bundle": str(pki.ca_path),
        "control_url": f"{base_url}/_emulator",
        "pid": os.getpid(),
        "port": port,
    }
    info["certificate"] = {
        "client_id": default.client_id,
        "certificate_path": str(pki.client_cert_path),
        "private_key_path": str(pki.client_key_path),
        "thumbprint": sha1,
    }
    info["managed_identity"] = {
        "identity_endpoint": f"{base_url}/msi/token",
        "identity_header": mi_header,
        "client_id": mi_app.client_id,
    }
    info["federated"] = {"client_id": fed_app.client_id, "token_file": str(federated_token), "issuer": issuer}
    info["airflow_conn"] = airflow_conn(default, base_url, tenant_id, str(pki.ca_path))
    info["apps"] = {a.name: app_info(a, base_url, info) for a in emulator.apps.values() if a.kind == "client"}

    api = create_app(emulator, identity, base_url=base_url, info=info)
    ssl_ctx_cfg = uvicorn.Config(
        api,
        log_level=args.log_level.lower(),
        ssl_certfile=str(pki.server_cert_path),
        ssl_keyfile=str(pki.server_key_path),
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
        access_log=args.log_level.lower() in ("debug", "info"),
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
        lifespan="off",
        # The app sets an exact Date on every response (create_app); uvicorn's own is cached per second.
        date_header=False,
    )
    server = _Server(ssl_ctx_cfg)
    stop = threading.Event()
    threading.Thread(target=_processor, args=(emulator, stop), name="entra-processor", daemon=True).start()
    threading.Thread(
        target=_federated_refresher,
        args=(identity, federated_token, stop),
        name="entra-federated",
        daemon=True,
    ).start()

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.02)
        info["started_at"] = time.time()
        _write_json(info_path, info)
        print(f"Entra emulator on {base_url} (data dir {data_dir})", file=sys.stderr, flush=True)

    async def run() -> None:
        task = asyncio.create_task(announce())
        await server.serve(sockets=[sock])
        task.cancel()

    try:
        asyncio.run(run())
    finally:
        stop.set()
        emulator.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
