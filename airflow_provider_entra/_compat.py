"""What differs between the Airflow lines this provider supports, kept in one place.

Names that moved between Airflow 2.11 and 3.x (``BaseHook``, ``BaseOperator``, the exceptions, ``Asset``...)
are imported from ``apache-airflow-providers-common-compat`` (``airflow.providers.common.compat.sdk``) where
they are used, as Airflow's own providers do. This module holds the few differences that layer leaves to
providers: a changed keyword, a renamed constructor, an operator that moved, a feature that some lines lack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow import __version__ as AIRFLOW_VERSION
from packaging.version import Version

if TYPE_CHECKING:
    from airflow.sdk import Asset

__all__ = [
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_VERSION",
    "EmptyOperator",
    "HITL_AVAILABLE",
    "asset_ref",
    "connection_form_helpers",
    "get_variable",
    "make_asset",
]

_BASE_VERSION = Version(Version(AIRFLOW_VERSION).base_version)
AIRFLOW_V_3_0_PLUS = Version("3.0.0") <= _BASE_VERSION
AIRFLOW_V_3_1_PLUS = Version("3.1.0") <= _BASE_VERSION

#: Human-in-the-loop approval (``ApprovalOperator``) arrived with Airflow 3.1 (standard provider).
HITL_AVAILABLE = AIRFLOW_V_3_1_PLUS

try:  # Airflow 3 and the standard provider
    from airflow.providers.standard.operators.empty import EmptyOperator
except ImportError:  # Airflow 2.11 without the standard provider
    from airflow.operators.empty import EmptyOperator  # type: ignore[no-redef]


def get_variable(key: str, default: Any = None) -> Any:
    """``Variable.get(key)`` or ``default``: the keyword is ``default`` on Airflow 3, ``default_var`` on 2."""
    from airflow.providers.common.compat.sdk import Variable

    if AIRFLOW_V_3_0_PLUS:
        return Variable.get(key, default=default)
    return Variable.get(key, default_var=default)  # type: ignore[call-arg]


def make_asset(*, name: str, uri: str) -> Asset:
    """An ``Asset`` named ``name`` at ``uri``; on Airflow 2.11 a ``Dataset`` (which has only a URI)."""
    from airflow.providers.common.compat.sdk import Asset

    if AIRFLOW_V_3_0_PLUS:
        return Asset(name=name, uri=uri)
    return Asset(uri=uri)


def _no_widget() -> None:
    return None


def asset_ref(*, name: str, uri: str) -> Any:
    """A schedule's reference to the Asset ``name``, which the producing DAG declares at ``uri``.

    Airflow 3 refers by name (``Asset.ref``); Airflow 2.11 matches Datasets by URI only, so there the
    reference is a ``Dataset`` at ``uri``.
    """
    from airflow.providers.common.compat.sdk import Asset

    if AIRFLOW_V_3_0_PLUS:
        return Asset.ref(name=name)
    return Asset(uri=uri)


def connection_form_helpers() -> tuple[Any, Any, Callable[[str], Any]]:
    """flask-appbuilder's text and password widgets and flask-babel's ``lazy_gettext`` for the connection form
    built from the hook's widgets (Airflow 3.0 and 3.1), or stand-ins where they are not installed.

    They come with the FAB provider, which a plain ``pip install apache-airflow`` 3.x does not have. The API
    server builds the form with its own stand-ins for wtforms' fields, so ``wtforms`` (a dependency of this
    provider) is all the form needs; without these two packages the fields keep wtforms' default widget.
    """
    try:
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    except ImportError:  # called like the widget classes; ``widget=None`` keeps wtforms' own widget
        BS3PasswordFieldWidget = BS3TextFieldWidget = _no_widget
    try:
        from flask_babel import lazy_gettext
    except ImportError:

        def lazy_gettext(text: str) -> str:
            return text

    return BS3TextFieldWidget, BS3PasswordFieldWidget, lazy_gettext
