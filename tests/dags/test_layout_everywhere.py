"""The layout a mapping declares is used by every DAG: the HR run, on-demand runs and the admin accounts.

A Workday RaaS export (dags/data/examples): nothing but Params names the mapping; the on-demand DAG picks an
employee by the export's own id, and the admin DAG derives the admin account of the one systems administrator
from the feed the HR run committed (each role under its CSV2SCIM name whatever the export called it).
"""

from __future__ import annotations

import pandas as pd
from airflow.utils.state import DagRunState

EXAMPLES = "examples"


def test_on_demand_and_admin_accounts_follow_the_mapping_s_layout(dags, entra_env, tmp_path):
    emulator = entra_env
    export = dags.data / EXAMPLES / "workday_raas.csv"
    mapping = dags.data / EXAMPLES / "workday_raas_mapping.yaml"
    params = {"hr_path": str(export), "mapping_path": str(mapping)}
    staging = tmp_path / "staging"
    hr = pd.read_csv(export, dtype=str, keep_default_na=False).set_index("Employee_ID")

    # On demand first: the employee and the managers above them, by the export's own id column.
    worker = "21006"
    chain = [hr.at[worker, "Manager_Employee_ID"]]
    while hr.at[chain[-1], "Manager_Employee_ID"]:
        chain.append(hr.at[chain[-1], "Manager_Employee_ID"])
    on_demand = dags.run("entra_on_demand", staging, employee_ids=[worker], **params)
    assert on_demand.state == DagRunState.SUCCESS, dags.states(on_demand)
    assert dags.xcom(on_demand, "select")["managers_added"] == chain
    users = {u["employeeId"]: u for u in emulator.users()}
    assert set(users) == {worker, *chain} and users[worker]["managerEmployeeId"] == chain[0]

    run = dags.run("entra_hr_provisioning", staging, **params)
    assert run.state == DagRunState.SUCCESS, dags.states(run)
    plan = dags.xcom(run, "plan")
    assert plan["changes"]["joiner"] + plan["changes"]["inactive_new"] == len(hr) - 1 - len(chain)
    assert plan["changes"]["unchanged"] == 1 + len(chain)  # the ledger holds what the on-demand run proved

    admin = dags.run("entra_admin_accounts", staging)
    assert admin.state == DagRunState.SUCCESS, dags.states(admin)
    admin_job = emulator.info["apps"]["admin"]["job_id"]
    accounts = {u["employeeId"]: u for u in emulator.users() if admin_job in u["provisionedByJobs"]}
    administrators = set(hr.index[hr["Business_Title"] == "Systems Administrator"])
    assert administrators == {"21009"}
    assert {a.removeprefix("A") for a, u in accounts.items() if u["accountEnabled"]} == administrators
    assert accounts["A21009"]["userPrincipalName"].startswith("adm-")
