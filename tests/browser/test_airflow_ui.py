"""The real Airflow UI in headless Chromium: example DAGs, the ``entra`` connection form, a UI trigger.

One Airflow (api-server, scheduler, dag-processor, triggerer) and one emulator serve every test in this module
(see ``conftest.py``); screenshots of each step are saved in ``artifacts/browser/``.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_entra.get_provider_info import CONN_FIELDS, INTEGRATION_NAME

pytestmark = pytest.mark.browser

EXAMPLE_DAGS = {
    "entra_quickstart",
    "entra_hr_provisioning",
    "entra_admin_accounts",
    "entra_on_demand",
    "entra_provisioning_review",
}
ON_DEMAND = "entra_on_demand"
HR_EXPORT = Path(__file__).resolve().parents[2] / "dags" / "data" / "hr_employees.csv"
RUN_TIMEOUT = 150
# A connection created through the form; the DAG runs use entra_default (from the environment) instead.
UI_CONN_ID = "entra_from_ui"
UI_CONN_EXTRAS = (
    "tenant_id",
    "service_principal_id",
    "job_id",
    "authority_host",
    "graph_endpoint",
    "ca_bundle",
)


def shot(page: Any, artifacts: Path, name: str) -> None:
    """Save a full-page screenshot as ``artifacts/browser/<name>.png``."""
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def field(scope: Any, label: str) -> Any:
    """The input of the form field labelled ``label`` (Airflow's labels are not tied to their inputs by id).

    A label reads "<label>" or, for a required field, "<label> *".
    """
    text = re.compile(rf"^\s*{re.escape(label)}\s*\*?\s*$")
    return scope.get_by_role("group").filter(has=scope.page.get_by_text(text)).locator("input, textarea")


def test_dag_list_shows_the_example_dags_without_import_errors(airflow_stack, page, artifacts):
    from playwright.sync_api import expect

    airflow_stack.wait_for_dags(EXAMPLE_DAGS)
    assert airflow_stack.import_errors() == []

    page.goto(f"{airflow_stack.base_url}/")
    for component in ("MetaDatabase", "Scheduler", "Triggerer", "Dag Processor"):
        expect(page.get_by_text(component, exact=True)).to_be_visible()
    expect(page.get_by_text("Failed Dags")).to_be_visible()
    # The dashboard shows a "Dag Import Error(s)" badge beside its stats when the DAG processor reports any;
    # once its queries have settled, there must be none.
    page.wait_for_load_state("networkidle")
    expect(page.get_by_text(re.compile("Dag Import Error"))).to_have_count(0)
    shot(page, artifacts, "01-home-health-no-import-errors")

    page.goto(f"{airflow_stack.base_url}/dags")
    expect(page.get_by_text(f"{len(EXAMPLE_DAGS)} Dags", exact=True)).to_be_visible()
    for dag_id in sorted(EXAMPLE_DAGS):
        expect(page.get_by_role("link", name=dag_id, exact=True)).to_be_visible()
    shot(page, artifacts, "02-dag-list")


def test_connection_form_shows_the_entra_fields(airflow_stack, browser_emulator, page, artifacts):
    from playwright.sync_api import expect

    page.goto(f"{airflow_stack.base_url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    field(dialog, "Connection ID").fill(UI_CONN_ID)
    dialog.get_by_role("combobox", name="Connection Type").fill("Entra")
    page.get_by_role("option", name=INTEGRATION_NAME, exact=True).click()
    # Our relabelled standard fields; host, schema and port are hidden for this type.
    for label in ("Client ID", "Client secret"):
        expect(dialog.get_by_text(label, exact=True)).to_be_visible()
    for hidden in ("Host", "Schema", "Port"):
        expect(dialog.get_by_text(hidden, exact=True)).to_have_count(0)
    conn = browser_emulator.info["airflow_conn"]
    field(dialog, "Client ID").fill(conn["login"])
    field(dialog, "Client secret").fill(conn["password"])

    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    for spec in CONN_FIELDS.values():
        expect(dialog.get_by_text(spec["label"], exact=True)).to_be_visible()
    typed = {name: conn["extra"][name] for name in UI_CONN_EXTRAS}
    for name, value in typed.items():
        field(dialog, CONN_FIELDS[name]["label"]).fill(value)
    # A viewport tall enough for the whole dialog, so the screenshot shows every field.
    page.set_viewport_size({"width": 1440, "height": 3400})
    shot(page, artifacts, "03-connection-form-entra")

    dialog.get_by_role("button", name="Save").click()
    expect(page.get_by_role("cell", name=UI_CONN_ID, exact=True)).to_be_visible()
    page.set_viewport_size({"width": 1440, "height": 900})
    shot(page, artifacts, "04-connection-saved")

    saved = airflow_stack.api("GET", f"connections/{UI_CONN_ID}")
    assert saved["conn_type"] == "entra"
    assert saved["login"] == conn["login"]
    assert saved["password"] != conn["password"], "the API must not hand the client secret back"
    extra = json.loads(saved["extra"])
    # Each form field lands in Connection.extra under its plain name; untouched ones keep their defaults.
    assert {name: extra[name] for name in typed} == typed
    assert extra["api_version"] == "v1.0" and extra["cloud"] == "global"
    assert extra["calls_per_window"] == 40 and extra["managed_identity"] is False


def test_trigger_on_demand_from_the_ui_provisions_two_employees(
    airflow_stack, browser_emulator, page, artifacts
):
    from playwright.sync_api import expect

    employees = two_active_employees()
    airflow_stack.wait_for_dags({ON_DEMAND})
    page.goto(f"{airflow_stack.base_url}/dags/{ON_DEMAND}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name=re.compile(f"Trigger Dag.*{ON_DEMAND}"))).to_be_visible()
    labels = param_labels(airflow_stack)
    field(dialog, labels["employee_ids"]).fill("\n".join(employees))
    # The emulator writes its log entries seconds after an upload: poll every 2 s, settle briefly.
    field(dialog, labels["verify_poke_interval"]).fill("2")
    field(dialog, labels["verify_settle_seconds"]).fill("2")
    expect(dialog.get_by_role("checkbox", name=f"Unpause {ON_DEMAND} on trigger")).to_be_checked()
    page.set_viewport_size({"width": 1440, "height": 1800})
    shot(page, artifacts, "05-trigger-form-params")
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    # The toast can be rendered twice while it animates in.
    expect(page.get_by_text("Dag Run Triggered").first).to_be_visible()
    page.set_viewport_size({"width": 1440, "height": 900})

    run = airflow_stack.wait_for(
        lambda: finished_manual_run(airflow_stack), RUN_TIMEOUT, f"the triggered {ON_DEMAND} run to finish"
    )
    run_id = run["dag_run_id"]
    states = task_states(airflow_stack, run_id)
    if run["state"] != "success":
        raise airflow_stack.error(f"{ON_DEMAND} run {run_id} ended {run['state']}; task states {states}")
    assert run["conf"]["employee_ids"] == employees, run["conf"]
    assert run["conf"]["verify_poke_interval"] == 2, run["conf"]
    assert states == dict.fromkeys(
        ("preflight", "select", "upload", "verify", "commit", "outcomes", "cleanup"), "success"
    )

    # The UI shows the run as a success: the DAG page's latest run, and the runs list.
    page.goto(f"{airflow_stack.base_url}/dags/{ON_DEMAND}")
    expect(page.get_by_role("link", name=re.compile(r"\bsuccess$")).first).to_be_visible()
    shot(page, artifacts, "06-dag-grid-run-success")
    page.goto(f"{airflow_stack.base_url}/dags/{ON_DEMAND}/runs")
    expect(page.get_by_role("row").filter(has_text=run_id)).to_contain_text("Success")
    shot(page, artifacts, "07-runs-list-success")

    # The log check was deferred to the real triggerer, and resumed on its event.
    verify_log = task_log(airflow_stack, run_id, "verify")
    for step in ("Pausing task as DEFERRED", "Trigger fired event", "Verified"):
        assert step in verify_log, f"{step!r} missing from the verify task's log:\n{verify_log}"
    page.goto(f"{airflow_stack.base_url}/dags/{ON_DEMAND}/runs/{run_id}/tasks/verify")
    expect(page.get_by_text(re.compile("Trigger fired event")).first).to_be_visible()
    shot(page, artifacts, "08-verify-log-deferred")

    page.goto(f"{airflow_stack.base_url}/dags/{ON_DEMAND}/runs/{run_id}/tasks/outcomes")
    # Log lines can be filed after the collapsed "Post Execute" group: expand every group (the log viewer's
    # "e" shortcut) before looking for them.
    expect(page.get_by_text(re.compile("Post Execute")).first).to_be_visible()
    page.keyboard.press("e")
    for worker_id in employees:
        expect(page.get_by_text(re.compile(rf"EMP {worker_id}: success")).first).to_be_visible()
    shot(page, artifacts, "09-outcomes-log")

    directory = {user.get("employeeId"): user for user in browser_emulator.users()}
    for worker_id in employees:
        assert worker_id in directory, f"{worker_id} is not in the emulator's directory: {sorted(directory)}"
        assert directory[worker_id]["accountEnabled"] is True, directory[worker_id]


def two_active_employees() -> list[str]:
    """The first two active WorkerIDs of the sample HR export the DAG reads by default."""
    with HR_EXPORT.open(newline="", encoding="utf-8") as handle:
        active = [row["WorkerID"] for row in csv.DictReader(handle) if row["WorkerStatus"] == "Active"]
    assert len(active) >= 2, f"{HR_EXPORT} has fewer than two active employees"
    return active[:2]


def param_labels(stack: Any) -> dict[str, str]:
    """How the trigger form labels each Param of the on-demand DAG: its title if it has one, else its name."""
    params = stack.api("GET", f"dags/{ON_DEMAND}/details")["params"]
    return {name: (param.get("schema") or {}).get("title") or name for name, param in params.items()}


def finished_manual_run(stack: Any) -> dict | None:
    """The first manual run of the on-demand DAG that reached a final state, if any."""
    runs = stack.api("GET", f"dags/{ON_DEMAND}/dagRuns", params={"run_type": "manual"})["dag_runs"]
    return next((run for run in runs if run["state"] in ("success", "failed")), None)


def task_states(stack: Any, run_id: str) -> dict[str, str]:
    instances = stack.api("GET", f"dags/{ON_DEMAND}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return {ti["task_id"]: ti["state"] for ti in instances}


def task_log(stack: Any, run_id: str, task_id: str) -> str:
    """The events of a task's first try, as the UI reads them (task runner and triggerer parts)."""
    content = stack.api("GET", f"dags/{ON_DEMAND}/dagRuns/{run_id}/taskInstances/{task_id}/logs/1")["content"]
    return "\n".join(str(entry.get("event", "")) for entry in content)
