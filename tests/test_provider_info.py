"""The provider registers with Airflow: valid metadata, listed by the CLI, form served by the API server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from importlib.metadata import distribution
from pathlib import Path
from unittest import mock

import airflow
import jsonschema
import pytest

from airflow_provider_entra.get_provider_info import CONN_FIELDS, get_provider_info
from airflow_provider_entra.hooks import EntraHook

SECRET_FIELDS = {"private_key", "private_key_passphrase"}


def test_provider_info_passes_airflow_schema():
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    # a package-name that differs from the distribution breaks provider discovery for every provider
    assert info["package-name"] == distribution("airflow-provider-entra").metadata["Name"]
    (conn,) = info["connection-types"]
    assert conn["connection-type"] == EntraHook.conn_type == "entra"
    assert conn["hook-class-name"] == f"{EntraHook.__module__}.{EntraHook.__qualname__}"
    assert conn["hook-name"] == EntraHook.hook_name == "Microsoft Entra Inbound Provisioning"
    integrations = {i["integration-name"] for i in info["integrations"]}
    for role in ("hooks", "operators", "sensors", "triggers"):
        for entry in info.get(role, []):
            assert entry["integration-name"] in integrations
            for module in entry["python-modules"]:
                assert module.startswith("airflow_provider_entra.")


def test_every_listed_module_and_link_imports():
    import importlib

    from airflow.sdk import BaseOperatorLink

    info = get_provider_info()
    for role in ("hooks", "operators", "sensors", "triggers"):
        for entry in info.get(role, []):
            for module in entry["python-modules"]:
                importlib.import_module(module)
    assert info["extra-links"]
    for path in info["extra-links"]:
        module, _, name = path.rpartition(".")
        assert issubclass(getattr(importlib.import_module(module), name), BaseOperatorLink)


def test_cli_lists_the_provider(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    airflow_cli = Path(sys.executable).parent / "airflow"
    result = subprocess.run(
        [str(airflow_cli), "providers", "list", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    listed = {p["package_name"]: p for p in json.loads(result.stdout)}
    assert "airflow-provider-entra" in listed
    assert listed["airflow-provider-entra"]["version"] == distribution("airflow-provider-entra").version


@pytest.mark.filterwarnings("ignore")  # starlette's TestClient deprecation, Airflow's short test JWT key
def test_api_server_serves_the_connection_form(airflow_db, monkeypatch):
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    client = TestClient(create_app(apps="core"))
    response = client.get("/ui/connections/hook_meta")
    assert response.status_code == 200, response.text
    (entra,) = [h for h in response.json() if h["connection_type"] == "entra"]
    assert entra["hook_name"] == "Microsoft Entra Inbound Provisioning"
    assert entra["hook_class_name"] == "airflow_provider_entra.hooks.entra.EntraHook"
    fields = entra["extra_fields"]
    assert set(fields) == set(CONN_FIELDS)
    for name in (
        "tenant_id",
        "service_principal_id",
        "job_id",
        "federated_token_file",
        "ca_bundle",
        "proxies",
    ):
        assert fields[name]["schema"]["type"] == ["string", "null"]
    assert fields["api_version"]["schema"]["enum"] == ["v1.0", "beta"]
    assert fields["cloud"]["schema"]["enum"] == ["global", "usgov", "usgov-dod", "china"]
    assert fields["managed_identity"]["schema"]["type"] == ["boolean", "null"]
    assert fields["daily_call_budget"]["value"] == 6000
    assert {n for n, f in fields.items() if f["schema"].get("format") == "password"} == SECRET_FIELDS
    standard = entra["standard_fields"]
    assert standard["login"]["title"] == "Client ID"
    assert standard["password"]["title"] == "Client secret"
    assert standard["host"]["hidden"] and standard["port"]["hidden"] and standard["url_schema"]["hidden"]


def test_airflow_3_0_form_methods_match_the_declarative_form():
    """Airflow 3.0/3.1 build the form from the hook methods (wtforms stubbed): it must equal conn-fields."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService as H
    from airflow.providers_manager import ProvidersManager

    stubs = {name: types.ModuleType(name) for name in ("wtforms", "wtforms.validators", "flask_babel")}
    stubs["flask_appbuilder"] = types.ModuleType("flask_appbuilder")
    stubs["flask_appbuilder.fieldwidgets"] = types.ModuleType("flask_appbuilder.fieldwidgets")
    stubs["wtforms"].__dict__.update(
        StringField=H.MockStringField,
        IntegerField=H.MockIntegerField,
        PasswordField=H.MockPasswordField,
        BooleanField=H.MockBooleanField,
        validators=stubs["wtforms.validators"],
    )
    stubs["wtforms.validators"].__dict__.update(Optional=H.MockOptional, any_of=H.MockEnum)
    stubs["flask_babel"].__dict__.update(lazy_gettext=lambda text: text)
    stubs["flask_appbuilder.fieldwidgets"].__dict__.update(
        BS3TextFieldWidget=H.MockAnyWidget, BS3PasswordFieldWidget=H.MockAnyWidget
    )
    with mock.patch.dict(sys.modules, stubs):
        widgets = EntraHook.get_connection_form_widgets()
    assert list(widgets) == list(CONN_FIELDS)
    for name, widget in widgets.items():
        param = widget.param.dump()
        declared = CONN_FIELDS[name]
        assert param["schema"]["title"] == declared["label"]
        assert param["schema"]["type"] == declared["schema"]["type"], name
        assert param["schema"].get("format") == declared["schema"].get("format"), name
        assert param["schema"].get("enum") == declared["schema"].get("enum"), name
    behaviour = EntraHook.get_ui_field_behaviour()
    ProvidersManager()._customized_form_fields_schema_validator.validate(behaviour)
    assert behaviour["relabeling"] == {"login": "Client ID", "password": "Client secret"}


@pytest.mark.parametrize("module", ["airflow_provider_entra.get_provider_info"])
def test_provider_info_module_is_cheap(module):
    """Airflow imports it in every process: it must not pull in Airflow or the hook."""
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith(('airflow', 'msal'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == ["airflow_provider_entra", module]  # noqa: S307 - our own printed list


@pytest.mark.filterwarnings("ignore")
def test_ui_test_button_acquires_a_token_and_reads_the_job(airflow_db, entra_env, monkeypatch):
    """``POST /api/v2/connections/test`` (the form's Test button) runs EntraHook.test_connection()."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    monkeypatch.setenv("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
    client = TestClient(create_app(apps="core"))
    conn = entra_env.info["airflow_conn"]
    form = {
        "connection_id": "entra_ui_test",
        "conn_type": "entra",
        "login": conn["login"],
        "password": conn["password"],
        "extra": json.dumps(conn["extra"]),
    }
    ok = client.post("/api/v2/connections/test", json=form).json()
    assert ok["status"] is True and "status Active" in ok["message"]
    bad = client.post("/api/v2/connections/test", json={**form, "password": "not-it"}).json()
    assert (
        bad["status"] is False and bad["message"].startswith("token: ") and "AADSTS7000215" in bad["message"]
    )
