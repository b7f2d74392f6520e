"""Worked examples (issue 12): HR exports in the layouts HR systems really produce, provisioned end to end.

Each example in ``dags/data/examples/`` is a small export (18 people: a CEO, managers and their reports, four
inactive workers) plus its mapping file, whose ``source`` block declares the export's own columns, status
values and date format. The DAG tests run ``entra_hr_provisioning`` under ``dag.test()`` against the emulator
with Params only (``hr_path``, ``mapping_path``, ``upn_domain``; ``hr_source``/``sql_conn_id``/``sql_query``
for the SQL source): run 1 provisions everyone, run 2 a changed export with one joiner, one mover and one
leaver (written in the system's own values), and must send exactly those three. Where each layout comes from
is in each mapping's ``source.layout`` and in ``docs/hr-layouts.md``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from airflow.utils.state import DagRunState

HR_DAG = "entra_hr_provisioning"
REPO_EXAMPLES = Path(__file__).resolve().parents[2] / "dags" / "data" / "examples"
DOMAIN = "contoso.com"


@dataclass(frozen=True)
class Layout:
    """One worked example: the sample's stem and the columns the tests change in the second export."""

    stem: str
    id: str
    status: str
    first: str
    last: str
    title: str
    manager: str
    hire: str
    termination: str | None
    active: str  # the system's own spelling of an active worker (the joiner)
    inactive: str  # ... and of a leaver
    upn_column: str | None = None  # the mapping takes the UPN from this column (else it is derived)
    joiner: dict[str, str] = field(default_factory=dict)  # more columns of the joiner's row ({id}: its id)
    mapping_file: str | None = None  # relative to the examples folder, when not <stem>_mapping.yaml

    @property
    def csv(self) -> str:
        return f"{self.stem}.csv"

    @property
    def mapping(self) -> str:
        return self.mapping_file or f"{self.stem}_mapping.yaml"


WORKDAY = Layout(
    stem="workday_raas",
    id="Employee_ID",
    status="Active_Status",
    first="Legal_First_Name",
    last="Legal_Last_Name",
    title="Business_Title",
    manager="Manager_Employee_ID",
    hire="Hire_Date",
    termination="Termination_Date",
    active="1",
    inactive="0",
    joiner={"Work_Email": "zoe.kim@contoso.com", "Preferred_First_Name": "", "On_Leave": "0"},
)
SUCCESSFACTORS = Layout(
    stem="successfactors_ec",
    id="personIdExternal",
    status="emplStatus",
    first="firstName",
    last="lastName",
    title="jobTitle",
    manager="managerId",
    hire="startDate",
    termination="endDate",
    active="Active",
    inactive="Terminated",
    joiner={
        "userId": "{id}",
        "username": "zkim",
        "displayName": "Zoe Kim",
        "preferredName": "",
        "emailAddress": "zoe.kim@contoso.com",
    },
)
BAMBOOHR = Layout(
    stem="bamboohr_report",
    id="Employee #",
    status="Status",
    first="First Name",
    last="Last Name",
    title="Job Title",
    manager="Supervisor EID",
    hire="Hire Date",
    termination="Termination Date",
    active="Active",
    inactive="Inactive",
    upn_column="Work Email",
    joiner={"Work Email": "zoe.kim@contoso.com", "Preferred Name": "", "Employment Status": "Full-Time"},
)
CSV2SCIM = Layout(
    stem="csv2scim_employees",
    id="WorkerID",
    status="WorkerStatus",
    first="FirstName",
    last="LastName",
    title="JobTitle",
    manager="ManagerID",
    hire="HireDate",
    termination=None,  # Microsoft's layout has no termination date
    active="Active",
    inactive="Inactive",
    joiner={"UserID": "EMP{id}", "FullName": "Zoe Kim", "OnLeave": "False"},
    mapping_file="../csv2scim_mapping.yaml",  # THE mapping of Microsoft's layout, one file in the repository
)
SQL = Layout(
    stem="sql_employees",
    id="employee_id",
    status="status",
    first="first_name",
    last="last_name",
    title="job_title",
    manager="manager_id",
    hire="hire_date",
    termination="termination_date",
    active="active",
    inactive="terminated",
    joiner={"email": "zoe.kim@contoso.com", "preferred_name": "", "employee_type": "employee"},
)
FILE_LAYOUTS = [WORKDAY, SUCCESSFACTORS, BAMBOOHR, CSV2SCIM]
ALL_LAYOUTS = [*FILE_LAYOUTS, SQL]


def layout_id(layout: Layout) -> str:
    return layout.stem


def source_block(layout: Layout, folder: Path = REPO_EXAMPLES) -> dict[str, Any]:
    return yaml.safe_load((folder / layout.mapping).read_text(encoding="utf-8"))["source"]


def read_sample(layout: Layout, folder: Path = REPO_EXAMPLES) -> pd.DataFrame:
    return pd.read_csv(folder / layout.csv, dtype=str, keep_default_na=False)


def status_values(source: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The mapping's own active and inactive spellings, lower-cased."""
    status = source["status"]
    return {v.lower() for v in status["active"]}, {v.lower() for v in status["inactive"]}


def date_text(layout: Layout, iso: str) -> str:
    """A date written the way this system's export writes it (the mapping's source.dates.format)."""
    return datetime.strptime(iso, "%Y-%m-%d").strftime(source_block(layout)["dates"]["format"])


def row_of(frame: pd.DataFrame, layout: Layout, first: str, last: str) -> int:
    hits = frame.index[(frame[layout.first] == first) & (frame[layout.last] == last)]
    assert len(hits) == 1, (first, last, list(hits))
    return int(hits[0])


def second_export(sample: pd.DataFrame, layout: Layout) -> tuple[pd.DataFrame, dict[str, str]]:
    """Day two: Zoe Kim joins under the engineering manager, Priya Nair is promoted, Rahul Singh leaves."""
    frame = sample.copy()
    manager = frame.at[row_of(frame, layout, "Jonas", "Müller"), layout.id]
    mover = row_of(frame, layout, "Priya", "Nair")
    leaver = row_of(frame, layout, "Rahul", "Singh")
    frame.at[mover, layout.title] = "Senior Software Engineer"
    frame.at[leaver, layout.status] = layout.inactive
    if layout.termination:
        frame.at[leaver, layout.termination] = date_text(layout, "2026-11-30")
    new_id = str(max(int(i) for i in frame[layout.id]) + 50)
    joiner = frame.loc[[mover]].assign(
        **{
            layout.id: new_id,
            layout.first: "Zoe",
            layout.last: "Kim",
            layout.status: layout.active,
            layout.title: "Software Engineer",
            layout.manager: manager,
            layout.hire: date_text(layout, "2025-11-03"),
            **({layout.termination: ""} if layout.termination else {}),
            **{column: value.format(id=new_id) for column, value in layout.joiner.items()},
        }
    )
    ids = {
        "joiner": new_id,
        "manager": manager,
        "mover": frame.at[mover, layout.id],
        "leaver": frame.at[leaver, layout.id],
    }
    return pd.concat([frame, joiner], ignore_index=True), ids


def directory(emulator) -> dict[str, dict]:
    return {u["employeeId"]: u for u in emulator.users()}


def enabled(emulator) -> set[str]:
    return {worker for worker, user in directory(emulator).items() if user["accountEnabled"]}


def sent(plan: dict[str, Any]) -> dict[str, int]:
    """The plan's non-zero change counts (``unchanged`` is counted, not sent)."""
    return {kind: n for kind, n in plan["changes"].items() if n}


def check_first_run(dags, run, emulator, layout: Layout, sample: pd.DataFrame) -> None:
    """Everyone provisioned, inactive workers disabled, managers resolved, UPNs as the mapping says."""
    assert run.state == DagRunState.SUCCESS, dags.states(run)
    active_values, _ = status_values(source_block(layout))
    ids = sample[layout.id]
    active = set(ids[sample[layout.status].str.lower().isin(active_values)])
    assert len(active) == 14 and len(ids) == 18  # the sample: 14 active, 4 inactive
    users = directory(emulator)
    assert set(users) == set(ids)
    assert enabled(emulator) == active
    managers = dict(zip(ids, sample[layout.manager], strict=True))
    assert {w: users[w]["managerEmployeeId"] or "" for w in ids} == managers
    assert sum(m == "" for m in managers.values()) == 1  # one CEO
    plan = dags.xcom(run, "plan")
    assert sent(plan) == {"joiner": 14, "inactive_new": 4} and plan["to_send"] == 18
    upns = {w: users[w]["userPrincipalName"] for w in ids}
    if layout.upn_column:  # taken from the export
        assert upns == dict(zip(ids, sample[layout.upn_column], strict=True))
    else:  # derived: first.last@domain, folded to ASCII
        ceo = ids[sample[layout.manager] == ""].iloc[0]
        lucia = ids[sample[layout.first] == "Lucía"].iloc[0]
        assert (upns[ceo], upns[lucia]) == ("amara.okafor@contoso.com", "lucia.fernandez@contoso.com")
    assert len(set(upns.values())) == len(upns)


def check_second_run(dags, run, emulator, ids: dict[str, str], active_before: set[str]) -> None:
    """Exactly the joiner, the mover and the leaver are sent, and the directory shows each change."""
    assert run.state == DagRunState.SUCCESS, dags.states(run)
    plan = dags.xcom(run, "plan")
    assert sent(plan) == {"joiner": 1, "mover": 1, "leaver": 1, "unchanged": 16} and plan["to_send"] == 3
    users = directory(emulator)
    joiner = users[ids["joiner"]]
    assert joiner["accountEnabled"] is True and joiner["managerEmployeeId"] == ids["manager"]
    assert joiner["userPrincipalName"] == "zoe.kim@contoso.com"
    assert users[ids["mover"]]["jobTitle"] == "Senior Software Engineer"
    assert users[ids["leaver"]]["accountEnabled"] is False
    assert enabled(emulator) == (active_before - {ids["leaver"]}) | {ids["joiner"]}


@pytest.mark.parametrize("layout", FILE_LAYOUTS, ids=layout_id)
def test_an_export_layout_is_provisioned_with_its_mapping_alone(dags, entra_env, tmp_path, layout):
    """Run 1 provisions the sample; run 2 (a joiner, a mover, a leaver) sends exactly those three."""
    emulator = entra_env
    staging = tmp_path / "staging"
    examples = dags.data / "examples"
    params = {"mapping_path": str(examples / layout.mapping), "upn_domain": DOMAIN}
    sample = read_sample(layout, examples)

    first = dags.run(HR_DAG, staging, hr_path=str(examples / layout.csv), **params)
    check_first_run(dags, first, emulator, layout, sample)
    active_before = enabled(emulator)

    changed, ids = second_export(sample, layout)
    path = tmp_path / f"{layout.stem}-day2.csv"
    changed.to_csv(path, index=False)
    second = dags.run(HR_DAG, staging, hr_path=str(path), **params)
    check_second_run(dags, second, emulator, ids, active_before)


def test_an_sql_source_with_snake_case_columns(dags, entra_env, tmp_path, monkeypatch):
    """hr_source sql: the rows come from a table (SQLite here) whose columns the mapping names."""
    emulator = entra_env
    staging = tmp_path / "staging"
    sample = read_sample(SQL, dags.data / "examples")
    database = tmp_path / "hr.db"
    with sqlite3.connect(database) as db:
        sample.to_sql("employees", db, index=False)
    monkeypatch.setenv("AIRFLOW_CONN_HR_DB", json.dumps({"conn_type": "sqlite", "host": str(database)}))
    params = {
        "hr_source": "sql",
        "sql_conn_id": "hr_db",
        "sql_query": "SELECT * FROM employees",
        "mapping_path": str(dags.data / "examples" / SQL.mapping),
        "upn_domain": DOMAIN,
    }

    first = dags.run(HR_DAG, staging, **params)
    extract = dags.xcom(first, "extract")
    assert extract["rows"] == len(sample) and "hr_db" in extract["source"]
    check_first_run(dags, first, emulator, SQL, sample)
    active_before = enabled(emulator)

    changed, ids = second_export(sample, SQL)
    with sqlite3.connect(database) as db:
        changed.to_sql("employees", db, index=False, if_exists="replace")
    second = dags.run(HR_DAG, staging, **params)
    assert dags.xcom(second, "extract")["rows"] == len(sample) + 1
    check_second_run(dags, second, emulator, ids, active_before)


# -- the examples themselves (no Airflow) -----------------------------------------------------------------


@pytest.mark.parametrize("layout", ALL_LAYOUTS, ids=layout_id)
def test_each_sample_is_a_small_realistic_org_its_mapping_declares(layout):
    """A CEO, managers and reports, inactive workers; every value the source block declares is in the file."""
    sample = read_sample(layout)
    source = source_block(layout)
    assert 10 <= len(sample) <= 20 and sample[layout.id].is_unique
    ids = set(sample[layout.id])
    managers = sample[layout.manager]
    assert (managers == "").sum() == 1  # the CEO
    assert set(managers[managers != ""]) <= ids and managers[managers != ""].nunique() >= 5

    named = [source[k] for k in source if isinstance(source[k], str) and k not in ("layout", "id_shape")]
    named += [source["id"], source["status"]["column"]]
    if source["upn"].get("from") == "column":
        named.append(source["upn"]["column"])
    assert set(named) <= set(sample.columns), set(named) - set(sample.columns)

    active_values, inactive_values = status_values(source)
    status = sample[source["status"]["column"]].str.lower()
    assert set(status) <= active_values | inactive_values
    assert status.isin(inactive_values).sum() >= 3
    assert layout.active.lower() in active_values and layout.inactive.lower() in inactive_values

    fmt = source["dates"]["format"]
    for key in ("hire_date", "termination_date"):
        if key in source:
            dates = sample[source[key]]
            parsed = [datetime.strptime(d, fmt) for d in dates[dates != ""]]
            assert parsed and max(parsed) < datetime(2026, 1, 1)  # no pre-hires in the samples
    if "termination_date" in source:  # inactive workers, and only they, carry a termination date
        ended = sample[source["termination_date"]] != ""
        assert (ended == status.isin(inactive_values)).all()


@pytest.mark.parametrize("layout", ALL_LAYOUTS, ids=layout_id)
def test_each_example_mapping_loads(layout):
    """The attributes load as a SCIM mapping, and the whole file (source block included) with the loader."""
    from airflow_provider_entra.scim import AttributeMapping

    path = REPO_EXAMPLES / layout.mapping
    mapping = AttributeMapping.from_file(path)
    assert mapping.to_dict()["attributes"]["externalId"] == source_block(layout)["id"]

    from airflow_provider_entra.mapping import load_mapping_file

    loaded = load_mapping_file(path)
    assert loaded.source.to_hr_schema().worker_id == layout.id
    assert set(loaded.source.columns()) <= set(read_sample(layout).columns)
