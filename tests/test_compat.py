"""``airflow_provider_entra._compat``: what differs between Airflow lines, checked on the one installed here.

The other lines run in the compatibility job (``.ci/compat.py``); these tests pin the behaviour the job relies
on where it can be seen on Airflow 3.3 too: the connection form built without the FAB provider, as Airflow
3.0/3.1 build it.
"""

from __future__ import annotations

import importlib.util
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import Asset
from wtforms import BooleanField, IntegerField, PasswordField, StringField

from airflow_provider_entra._compat import asset_ref, connection_form_helpers, make_asset
from airflow_provider_entra.get_provider_info import CONN_FIELDS
from airflow_provider_entra.hooks.entra import EntraHook


@pytest.fixture
def without_fab() -> None:
    """A plain ``pip install apache-airflow`` 3.x: no flask-appbuilder, no flask-babel."""
    if importlib.util.find_spec("flask_appbuilder") or importlib.util.find_spec("flask_babel"):
        pytest.fail("this venv has the FAB provider's packages; the test needs a plain Airflow install")


def test_form_helpers_stand_in_for_fab(without_fab: None) -> None:
    text_widget, password_widget, gettext = connection_form_helpers()
    assert text_widget() is None and password_widget() is None  # wtforms keeps its own widget
    assert gettext("Tenant ID") == "Tenant ID"


def test_form_widgets_are_real_wtforms_fields_without_fab(without_fab: None) -> None:
    """What `airflow providers widgets` and Airflow 3.0/3.1's providers manager accept."""
    widgets = EntraHook.get_connection_form_widgets()
    assert list(widgets) == list(CONN_FIELDS)
    assert {w.field_class for w in widgets.values()} <= {
        BooleanField,
        IntegerField,
        PasswordField,
        StringField,
    }
    assert widgets["private_key"].field_class is PasswordField
    assert widgets["managed_identity"].field_class is BooleanField
    assert widgets["daily_call_budget"].field_class is IntegerField


def test_form_as_the_3_0_api_server_builds_it_without_fab(without_fab: None) -> None:
    """Airflow 3.0/3.1's API server swaps wtforms' fields for its own (it patches only what is installed)."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService as H

    with (
        mock.patch("wtforms.StringField", H.MockStringField),
        mock.patch("wtforms.IntegerField", H.MockIntegerField),
        mock.patch("wtforms.PasswordField", H.MockPasswordField),
        mock.patch("wtforms.BooleanField", H.MockBooleanField),
        mock.patch("wtforms.validators.Optional", H.MockOptional),
        mock.patch("wtforms.validators.any_of", H.MockEnum),
    ):
        widgets = EntraHook.get_connection_form_widgets()
    assert list(widgets) == list(CONN_FIELDS)
    for name, widget in widgets.items():
        schema = widget.param.dump()["schema"]
        assert schema["title"] == CONN_FIELDS[name]["label"]
        assert schema["type"] == CONN_FIELDS[name]["schema"]["type"], name
        assert schema.get("enum") == CONN_FIELDS[name]["schema"].get("enum"), name


def test_assets_by_name_on_airflow_3() -> None:
    asset = make_asset(name="entra_hr_snapshot", uri="file:///staging/snapshot.parquet")
    assert isinstance(asset, Asset)
    assert (asset.name, asset.uri) == ("entra_hr_snapshot", "file:///staging/snapshot.parquet")
    assert asset_ref(name="entra_hr_snapshot", uri="ignored on Airflow 3").name == "entra_hr_snapshot"
