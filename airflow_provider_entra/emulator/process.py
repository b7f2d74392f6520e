"""Run the emulator as a subprocess and talk to its ``/_emulator`` controls (used by tests, the demo and
bench).

Example::

    with EmulatorProcess(tmp_path, processing_delay=0.2) as emu:
        conn = emu.info["airflow_conn"]
        ...
        emu.process()
        users = emu.users()
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests


class EmulatorError(RuntimeError):
    """The emulator did not start, or a control call failed."""


class EmulatorProcess:
    """A local Entra emulator in a subprocess.

    :param data_dir: state, CA and ``emulator.json`` live here; reused across :meth:`restart`.
    :param host: interface to bind.
    :param port: 0 picks a free port on first start; :meth:`restart` keeps the port.
    :param processing_delay: seconds between receipt of an upload and its processing.
    :param rate_limit: bulkUpload burst limit, ``"calls/seconds"``.
    :param daily_quota: bulkUpload calls per 24 h.
    :param token_lifetime: access-token lifetime in seconds.
    :param fault_rate: share of Graph calls answered with a random 500/503.
    :param log_page_size: default ``$top`` of the provisioning-logs API.
    :param extra_args: more command-line options (``--advertise-host``, ``--apps-file``, ...).
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        processing_delay: float = 1.0,
        rate_limit: str = "40/5",
        daily_quota: int = 6000,
        token_lifetime: int = 3600,
        fault_rate: float = 0.0,
        log_page_size: int = 100,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port
        self.processing_delay = processing_delay
        self.rate_limit = rate_limit
        self.daily_quota = daily_quota
        self.token_lifetime = token_lifetime
        self.fault_rate = fault_rate
        self.log_page_size = log_page_size
        self.extra_args = list(extra_args)
        self.info: dict[str, Any] = {}
        self._proc: subprocess.Popen | None = None
        self._session: requests.Session | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    @property
    def info_path(self) -> Path:
        return self.data_dir / "emulator.json"

    @property
    def ca_bundle(self) -> str:
        return self.info["ca_bundle"]

    @property
    def control_url(self) -> str:
        return f"https://127.0.0.1:{self.info['port']}/_emulator"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "airflow_provider_entra.emulator",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--processing-delay",
            str(self.processing_delay),
            "--rate-limit",
            self.rate_limit,
            "--daily-quota",
            str(self.daily_quota),
            "--token-lifetime",
            str(self.token_lifetime),
            "--fault-rate",
            str(self.fault_rate),
            "--log-page-size",
            str(self.log_page_size),
            *self.extra_args,
        ]

    def start(self, timeout: float = 30) -> EmulatorProcess:
        """Start the subprocess; wait for a fresh emulator.json and a healthy answer."""
        if self._proc and self._proc.poll() is None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.info_path.unlink(missing_ok=True)
        log_path = self.data_dir / "emulator.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENTRA_EMULATOR_")}
        with open(log_path, "ab") as log_file:
            self._proc = subprocess.Popen(self.command(), stdout=log_file, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise EmulatorError(f"the emulator exited with code {self._proc.returncode}:\n{tail}")
            info = self._read_info()
            if info and info.get("pid") == self._proc.pid:
                self.info = info
                self.port = int(info["port"])
                self._session = requests.Session()
                try:
                    self.control("GET", "health")
                    return self
                except (requests.RequestException, EmulatorError):
                    pass
            time.sleep(0.05)
        self.kill()
        raise EmulatorError(f"the emulator did not become ready within {timeout} s (see {log_path})")

    def _read_info(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.info_path.read_text())
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 15) -> None:
        """Stop gracefully (SIGTERM); state is persisted in the data dir."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._close_session()
        self._proc = None

    def kill(self) -> None:
        """Stop at once (SIGKILL)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
        self._close_session()
        self._proc = None

    def restart(self) -> None:
        """Stop and start again on the same port with the same data dir (state survives)."""
        self.stop()
        self.start()

    def _close_session(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- controls --------------------------------------------------------------------------------------------
    def control(self, method: str, path: str, json: dict | None = None) -> Any:
        """Call ``/_emulator/<path>`` and return the decoded JSON answer."""
        if self._session is None:
            raise EmulatorError("the emulator is not running")
        # verify= per request: a Session's own verify loses to REQUESTS_CA_BUNDLE when that is set.
        response = self._session.request(
            method, f"{self.control_url}/{path.lstrip('/')}", json=json, timeout=60, verify=self.ca_bundle
        )
        if response.status_code >= 400:
            raise EmulatorError(
                f"{method} /_emulator/{path} answered {response.status_code}: {response.text}"
            )
        return response.json() if response.content else None

    def users(self) -> list[dict]:
        """The directory (``GET /_emulator/users``)."""
        return self.control("GET", "users")

    def stats(self) -> dict:
        """Counters of calls, 429s, operations (``GET /_emulator/stats``)."""
        return self.control("GET", "stats")

    def request_log(self, endpoint: str | None = None) -> list[dict]:
        """Every Graph/token call received since the last reset, oldest first (``GET /_emulator/requests``).

        Each entry has ``seq``, ``time``, ``endpoint``, ``method``, ``client_request_id``, ``fault`` (the
        injected fault or ``None``), ``status`` (``None`` when the connection was dropped) and, for an
        accepted bulkUpload, ``upload``: ``seq``, ``operations`` and ``bulk_ids_sha256`` (same bulkIds, same
        digest), so a test can count how often each request arrived.

        :param endpoint: only this bucket (``bulkUpload``, ``provisioningLogs``, ``job``, ``token``, ...).
        """
        return self.control("GET", "requests" + (f"?endpoint={endpoint}" if endpoint else ""))

    def process(self) -> dict:
        """Process every pending upload of Active jobs now (``POST /_emulator/process``)."""
        return self.control("POST", "process")

    def configure(self, **cfg: Any) -> dict:
        """Change runtime options (``POST /_emulator/config``); returns the resulting config."""
        return self.control("POST", "config", json=cfg)

    def new_day(self, hours: float = 24) -> dict:
        """Move the tenant's daily quota window ``hours`` on (``POST /_emulator/new-day``): the bulkUpload
        calls counted so far look that much older, so the next day's quota is free without waiting a day.

        :return: ``{"daily_calls_used", "daily_quota"}`` after the move.
        """
        return self.control("POST", "new-day", json={"hours": hours})

    def reset(self) -> None:
        """Clear directory, logs, uploads, stats, quotas and faults; restore start-up options; keep apps."""
        self.control("POST", "reset")

    def configure_job(self, job_id: str, **settings: Any) -> dict:
        """Change a job's ``delete_threshold``, ``custom_attributes`` or ``status``.

        Calls ``POST /_emulator/jobs/<id>``.
        """
        return self.control("POST", f"jobs/{job_id}", json=settings)

    def create_app(self, name: str, roles: Sequence[str], **options: Any) -> dict:
        """Register an app with chosen roles (for 403 tests); returns its credentials and ``airflow_conn``."""
        return self.control("POST", "apps", json={"name": name, "roles": list(roles), **options})
