"""Fixtures for the emulator's own tests: the session emulator, reset per test, and a plain Graph client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_entra.emulator.process import EmulatorProcess
from airflow_provider_entra.emulator.testing import Graph


@pytest.fixture
def emu(emulator: EmulatorProcess) -> Iterator[EmulatorProcess]:
    """The session emulator, reset; the 5-per-10-s log limit is lifted (one test puts it back)."""
    emulator.reset()
    emulator.configure(log_rate_limit="1000/1")
    yield emulator
    emulator.reset()


@pytest.fixture
def graph(emu: EmulatorProcess) -> Graph:
    """A Graph client for the default app."""
    return Graph(emu)
