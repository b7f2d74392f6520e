"""Hooks of the Entra provider: :class:`EntraHook` and its upload receipt."""

from __future__ import annotations

from airflow_provider_entra.hooks.entra import BulkUploadReceipt, EntraHook, clear_msal_apps

__all__ = ["BulkUploadReceipt", "EntraHook", "clear_msal_apps"]
