"""A local stand-in for Microsoft Entra ID and Microsoft Graph's API-driven inbound provisioning.

Run it with ``entra-emulator`` (or ``python -m airflow_provider_entra.emulator``), or from Python with
:class:`~airflow_provider_entra.emulator.process.EmulatorProcess`. See ``docs/emulator.md``.
"""

from airflow_provider_entra.emulator.process import EmulatorError, EmulatorProcess

__all__ = ["EmulatorError", "EmulatorProcess"]
