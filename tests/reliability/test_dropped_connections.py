"""Connections dropped by the server are retried, whichever way the drop surfaces on the client.

A drop while a large body is still being written shows up as a TLS EOF (``SSLEOFError``) rather than as
``RemoteDisconnected``; urllib3 does not count it as a read error, so the hook has to.
"""

from __future__ import annotations

import logging

from airflow_provider_entra.emulator.testing import bulk, user
from airflow_provider_entra.hooks.entra import EntraHook

DROPS = 8


def test_dropped_connections_during_large_uploads_are_retried_once(
    private_emulator, support, monkeypatch, caplog
):
    emu = private_emulator(processing_delay=0.2)
    support.use_emulator(monkeypatch, emu)
    hook = EntraHook()
    records = [user(str(500_000 + i), display_name="N" * 200) for i in range(50)]  # about 15 kB per request
    caplog.set_level(logging.WARNING, logger="urllib3")

    for _ in range(DROPS):
        emu.configure(faults=[{"kind": "drop", "endpoint": "bulkUpload", "count": 1}])
        assert hook.bulk_upload(bulk(*records)).status_code == 202

    arrivals = support.arrivals_per_request(emu)
    assert sorted(arrivals.values()) == [2] * DROPS
    assert emu.stats()["faults"] == {"drop": DROPS}
    retried_after = caplog.text
    assert "SSLEOFError" in retried_after, "no drop surfaced as a TLS EOF this time"
