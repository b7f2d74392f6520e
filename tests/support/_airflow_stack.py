"""What the browser test's and the distributed test's Airflow stacks share: ports, log tails, stopping process
groups, bounded waits that fail with the logs, and the REST API's health and DAG listing.

Each stack (``tests/browser/conftest.py``, ``tests/distributed/conftest.py``) starts its own processes into
``procs`` (each in its own process group) with their logs in ``logs``, sets ``base_url`` and ``session``, and
says how its ``api`` calls fail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import requests

T = TypeVar("T")


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, chars: int) -> str:
    """The last ``chars`` characters of a log, or why there is none."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"(no log: {exc})"


class ProcessStack:
    """Processes of one Airflow deployment under test, their logs, and bounded waits on them."""

    #: Raised with the log tails when a process died or a wait ran out.
    error_type: ClassVar[type[AssertionError]] = AssertionError
    #: Errors a probe may raise while the stack is still coming up (retried until the wait runs out).
    probe_errors: ClassVar[tuple[type[Exception], ...]] = (requests.RequestException, ValueError, KeyError)
    #: Processes expected to exit (one-off set-up steps).
    one_off: ClassVar[frozenset[str]] = frozenset()
    #: Default characters of each log in a failure message.
    tail_chars: ClassVar[int] = 3000

    base_url: str
    procs: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, Path]
    session: requests.Session

    def where(self) -> str:
        """The folder that holds everything, for failure messages."""
        raise NotImplementedError

    # -- processes -------------------------------------------------------------------------------------------
    def stop_processes(self) -> None:
        """SIGTERM every process group (the last started first), then SIGKILL what is left after a grace
        period; close the API session."""
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                self._signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            self._signal_group(proc, signal.SIGKILL)  # the group may outlive its leader (task processes)
            if proc.poll() is None:
                proc.wait(10)
        self.session.close()

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    # -- diagnostics -----------------------------------------------------------------------------------------
    def log_tails(self, chars: int | None = None) -> str:
        """The end of each process's log (with its exit code once it exited), for failure messages."""
        chars = chars or self.tail_chars
        parts = []
        for name, path in self.logs.items():
            proc = self.procs.get(name)
            state = f" (exit code {proc.returncode})" if proc is not None and proc.poll() is not None else ""
            parts.append(f"----- {name}{state}: {path} -----\n{tail(path, chars)}")
        return "\n".join(parts)

    def error(self, message: str) -> AssertionError:
        return self.error_type(f"{message}\n({self.where()})\n{self.log_tails()}")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None and name not in self.one_off:
                raise self.error(f"{name} exited with code {proc.returncode}")

    def wait_for(
        self,
        probe: Callable[[], T | None],
        timeout: float,
        what: str,
        interval: float = 1.0,
        errors: tuple[type[Exception], ...] = (),
    ) -> T:
        """Call ``probe`` until it returns something truthy; fail with the log tails after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            self.check_alive()
            try:
                value = probe()
                if value:
                    return value
            except (*self.probe_errors, *errors) as exc:
                last_error = exc
            if time.monotonic() >= deadline:
                detail = f" (last error: {last_error!r})" if last_error else ""
                raise self.error(f"timed out after {timeout} s waiting for {what}{detail}")
            time.sleep(interval)

    # -- REST API --------------------------------------------------------------------------------------------
    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """``/api/v2/<path>`` (no login: all users are admins), decoded; each stack says how it fails."""
        raise NotImplementedError

    def _healthy(self) -> bool:
        health = self.session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).json()
        return all(
            health.get(component, {}).get("status") == "healthy"
            for component in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    def dag_ids(self) -> set[str]:
        return {dag["dag_id"] for dag in self.api("GET", "dags", params={"limit": 100})["dags"]}

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.api("GET", "importErrors", params={"limit": 100})["import_errors"])

    def wait_for_dags(self, dag_ids: set[str], timeout: float, interval: float = 1.0) -> None:
        """Wait until the DAG processor has serialized ``dag_ids``; fail at once on import errors."""

        def parsed() -> bool:
            if errors := self.import_errors():
                raise self.error(
                    "the DAG processor reported import errors:\n"
                    + "\n".join(f"{e['filename']}:\n{e['stacktrace']}" for e in errors)
                )
            return dag_ids <= self.dag_ids()

        self.wait_for(parsed, timeout, f"the DAG processor to parse {sorted(dag_ids)}", interval=interval)
