"""The mapping format's models: structure and types, and what the source block gives the pipeline."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from airflow_provider_entra.mapping.models import (
    MappingFileModel,
    SourceSpec,
    UpnSpec,
    ValueSpec,
    unknown_key_message,
)
from airflow_provider_entra.provisioning.normalise import HrSchema

#: The source block of the design (Workday custom report), as a YAML file would give it.
WORKDAY = {
    "layout": "Workday RaaS custom report",
    "id": "Employee_ID",
    "status": {"column": "Worker_Status", "active": ["Active", "On Leave"], "inactive": ["Terminated"]},
    "manager": "Manager_Employee_ID",
    "first_name": "Legal_First_Name",
    "last_name": "Legal_Last_Name",
    "full_name": "Preferred_Name",
    "email": "Work_Email",
    "user_id": "User_Name",
    "department": "Cost_Center",
    "job_title": "Business_Title",
    "office_phone": "Work_Phone",
    "hire_date": "Hire_Date",
    "termination_date": "Termination_Date",
    "on_leave": "On_Leave",
    "dates": {"format": "%m/%d/%Y", "timezone": "-05:00", "columns": ["Original_Hire_Date"]},
    "flags": ["Is_Rehire"],
    "id_shape": "digits:6",
    "upn": {
        "from": "derive",
        "domain": "contoso.com",
        "overrides": {"100234": "jane.doe2@contoso.com"},
        "collisions": "fail",
    },
}


def test_no_source_block_is_the_csv2scim_layout() -> None:
    assert SourceSpec.csv2scim().to_hr_schema() == HrSchema()


def test_only_the_declared_columns_change() -> None:
    schema = SourceSpec.model_validate({"id": "EmpNo", "first_name": "GivenName"}).to_hr_schema()
    assert (schema.worker_id, schema.first_name) == ("EmpNo", "GivenName")
    assert schema.last_name == HrSchema().last_name
    assert schema.status == HrSchema().status


def test_the_design_example_reaches_every_hr_schema_field() -> None:
    schema = SourceSpec.model_validate(WORKDAY).to_hr_schema()
    assert schema.worker_id == "Employee_ID"
    assert schema.status == "Worker_Status"
    assert schema.active_values == ("active", "on leave")
    assert schema.inactive_values == ("terminated",)
    assert schema.manager_id == "Manager_Employee_ID"
    assert (schema.first_name, schema.last_name, schema.full_name) == (
        "Legal_First_Name",
        "Legal_Last_Name",
        "Preferred_Name",
    )
    assert (schema.email, schema.user_id, schema.department, schema.job_title, schema.office_phone) == (
        "Work_Email",
        "User_Name",
        "Cost_Center",
        "Business_Title",
        "Work_Phone",
    )
    assert (schema.hire_date, schema.termination_date, schema.on_leave) == (
        "Hire_Date",
        "Termination_Date",
        "On_Leave",
    )
    assert schema.date_format == "%m/%d/%Y"
    assert schema.extra_date_columns == ("Original_Hire_Date",)
    assert schema.extra_boolean_columns == ("Is_Rehire",)
    # the fields the lead adds to HrSchema for issue 12
    assert schema.timezone == "-05:00"
    assert schema.id_shape == "digits:6"
    assert schema.upn_from == "derive"
    assert schema.upn_domain == "contoso.com"
    assert schema.upn_overrides == (("100234", "jane.doe2@contoso.com"),)
    assert schema.upn_collisions == "fail"


def test_upn_taken_from_a_column() -> None:
    spec = SourceSpec.model_validate({"id": "EmpNo", "upn": {"from": "column", "column": "Login"}})
    schema = spec.to_hr_schema()
    assert (schema.upn_from, schema.upn_column) == ("column", "Login")
    assert "Login" in spec.columns()


def test_status_shorthand_is_the_column() -> None:
    spec = SourceSpec.model_validate({"id": "EmpNo", "status": "State"})
    assert spec.status is not None and spec.status.column == "State"
    assert spec.to_hr_schema().active_values == HrSchema().active_values


def test_columns_lists_what_the_export_must_have() -> None:
    spec = SourceSpec.model_validate(WORKDAY)
    columns = spec.columns()
    assert columns[:2] == ("Employee_ID", "Worker_Status")
    assert {"Original_Hire_Date", "Is_Rehire", "Manager_Employee_ID"} <= set(columns)
    assert len(columns) == len(set(columns))
    # undeclared columns every export needs keep their CSV2SCIM names; optional ones are not required
    minimal = SourceSpec(id="EmpNo")
    assert minimal.columns() == ("EmpNo", "WorkerStatus", "FirstName", "LastName")


@pytest.mark.parametrize(
    ("block", "needle"),
    [
        ({}, "id"),
        ({"id": ""}, "id"),
        (
            {"id": "X", "status": {"column": "S", "active": ["A"], "inactive": ["a"]}},
            "both active and inactive",
        ),
        ({"id": "X", "dates": {"format": "MM/DD/YYYY"}}, "strptime format"),
        ({"id": "X", "dates": {"timezone": "Europe/Paris"}}, "fixed UTC offset"),
        ({"id": "X", "id_shape": "numbers"}, "id_shape"),
        ({"id": "X", "upn": {"from": "column"}}, "needs column"),
        ({"id": "X", "upn": {"column": "Login"}}, "from: column"),
        ({"id": "X", "upn": {"collisions": "rename"}}, "'suffix' or 'fail'"),
        ({"id": "X", "upn": {"overrides": {100234: "a@b.com"}}}, "in quotes"),
        ({"id": "X", "upn": {"overrides": {"100234": "not an upn"}}}, "overrides"),
        ({"id": "X", "flags": "Is_Rehire"}, "flags"),
    ],
)
def test_source_block_refusals(block: dict, needle: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        SourceSpec.model_validate(block)
    assert needle in str(excinfo.value)


def test_unknown_keys_are_refused_with_the_nearest_valid_one() -> None:
    with pytest.raises(ValidationError) as excinfo:
        SourceSpec.model_validate({"id": "X", "frist_name": "Given"})
    assert excinfo.value.errors()[0]["type"] == "extra_forbidden"
    assert "did you mean 'first_name'?" in unknown_key_message(SourceSpec, "frist_name")
    assert "did you mean 'from'?" in unknown_key_message(UpnSpec, "form")
    assert "did you mean" not in unknown_key_message(UpnSpec, "zzz")


def test_value_spec_takes_exactly_one_source() -> None:
    assert ValueSpec.model_validate({"column": "HireDate", "type": "datetime"}).column == "HireDate"
    for bad in ({"type": "datetime"}, {"column": "A", "constant": "B"}):
        with pytest.raises(ValidationError, match="exactly one of"):
            ValueSpec.model_validate(bad)


def test_attribute_values_in_every_documented_form() -> None:
    model = MappingFileModel.model_validate(
        {
            "attributes": {
                "externalId": "WorkerID",
                "active": {"expr": 'WorkerStatus == "Active"'},
                "urn:ietf:params:scim:schemas:extension:contoso:1.0:User:Flag": True,
                "urn:ietf:params:scim:schemas:extension:contoso:1.0:User:Level": 3,
                "userType": {
                    "column": "WorkerType",
                    "map": {"E": "Employee", 1: "One"},
                    "default": "Employee",
                },
                "name": {"givenName": "FirstName", "familyName": {"column": "LastName", "max_length": None}},
                "addresses": [{"type": "work", "locality": "City"}, {"type": {"constant": "home"}, "x": "Y"}],
            }
        }
    )
    assert model.source is None
    assert set(model.attributes) >= {"externalId", "name", "addresses"}


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        None,
        {"column": "A", "tyep": "string"},
        {"givenName": {"column": "A", "sep": 3}},
        [],
        ["City"],
    ],
)
def test_attribute_value_refusals(value: object) -> None:
    with pytest.raises(ValidationError):
        MappingFileModel.model_validate({"attributes": {"x": value}})


def test_the_file_needs_attributes_and_refuses_unknown_top_level_keys() -> None:
    with pytest.raises(ValidationError, match="attributes"):
        MappingFileModel.model_validate({"source": {"id": "X"}})
    with pytest.raises(ValidationError) as excinfo:
        MappingFileModel.model_validate({"attributes": {"externalId": "X"}, "sources": {"id": "X"}})
    assert excinfo.value.errors()[0]["loc"] == ("sources",)
