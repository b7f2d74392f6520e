"""AttributeMapping: loading (YAML, JSON, Python), the psd1-like nested form, and every refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_entra.scim import AttributeMapping, MappingError

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CONTOSO = "urn:ietf:params:scim:schemas:extension:contoso:1.0:User"
MINIMAL = {"externalId": "WorkerID", "userName": "UserID", "active": {"expr": 'WorkerStatus == "Active"'}}

# Microsoft's AttributeMapping.psd1, attribute by attribute, in the flat form with full SCIM paths
PSD1_FLAT = {
    "externalId": "WorkerID",
    "name.familyName": "LastName",
    "name.givenName": "FirstName",
    "active": {"expr": "$_.'WorkerStatus' -eq 'Active'"},
    "userName": "UserID",
    "displayName": "FullName",
    "nickName": "UserID",
    "userType": "WorkerType",
    "title": "JobTitle",
    'addresses[type eq "work"].streetAddress': "StreetAddress",
    'addresses[type eq "work"].locality': "City",
    'addresses[type eq "work"].postalCode': "ZipCode",
    'addresses[type eq "work"].country': "CountryCode",
    'phoneNumbers[type eq "work"].value': "OfficePhone",
    f"{ENTERPRISE}:employeeNumber": "WorkerID",
    f"{ENTERPRISE}:costCenter": "CostCenter",
    f"{ENTERPRISE}:organization": "Company",
    f"{ENTERPRISE}:division": "Division",
    f"{ENTERPRISE}:department": "Department",
    f"{ENTERPRISE}:manager.value": "ManagerID",
}


def mapping_with(**extra: Any) -> dict[str, Any]:
    return {**MINIMAL, **extra}


def test_the_bundled_psd1_equivalent_is_microsofts_mapping(scim_paths: dict[str, Path]) -> None:
    loaded = AttributeMapping.from_file(scim_paths["sample"] / "microsoft_sample_mapping.yaml")
    assert loaded == AttributeMapping(PSD1_FLAT)
    assert loaded.paths == list(PSD1_FLAT)
    # every psd1 attribute is there (the psd1 lists 21 values; its two type = { 'work' } are filters here)
    psd1 = (scim_paths["microsoft"] / "AttributeMapping.psd1").read_text()
    for column in {v for v in PSD1_FLAT.values() if isinstance(v, str)}:
        assert f"'{column}'" in psd1
    assert "$_.'WorkerStatus' -eq 'Active'" in psd1


def test_the_contractor_variant_with_untyped_entries_is_expressible(scim_paths: dict[str, Path]) -> None:
    # Sample1-AttributeMapping.Contractor.psd1: entries without a type, and active read from a column
    mapping = AttributeMapping(
        {
            "externalId": "externalId",
            "name": {"familyName": "familyName", "givenName": "givenName"},
            "active": "active",
            "userName": "userName",
            "emails": [{"value": "email"}],
            "addresses": [{"streetAddress": "streetAddress", "locality": "locality"}],
            "phoneNumbers": [{"value": "phoneNumber"}],
            ENTERPRISE: {"manager": {"value": "manager"}},
        }
    )
    assert "emails.value" in mapping.paths and "addresses.locality" in mapping.paths
    assert mapping["active"].value_type == "boolean"


def test_flat_and_nested_forms_are_the_same_mapping() -> None:
    nested = AttributeMapping(
        {
            **MINIMAL,
            "name": {"givenName": "FirstName"},
            "emails": [{"type": "work", "value": "Email", "primary": True}],
            ENTERPRISE: {"department": "Department", "manager": {"value": "ManagerID"}},
            CONTOSO: {"HireDate": {"column": "HireDate", "type": "datetime"}},
        }
    )
    flat = AttributeMapping(
        {
            **MINIMAL,
            "name.givenName": "FirstName",
            'emails[type eq "work"].value': "Email",
            'emails[type eq "work"].primary': {"constant": True},
            f"{ENTERPRISE}:department": "Department",
            f"{ENTERPRISE}:manager.value": "ManagerID",
            f"{CONTOSO}:HireDate": {"column": "HireDate", "type": "datetime"},
        }
    )
    assert nested == flat


def test_source_columns_and_schemas() -> None:
    mapping = AttributeMapping.from_dict(
        {
            "schemas": [CONTOSO, ENTERPRISE],
            "attributes": mapping_with(
                displayName={"join": ["FirstName", "LastName"]},
                title={"template": "{JobTitle} ({Department})"},
                **{f"{CONTOSO}:HireDate": {"column": "HireDate", "type": "datetime"}},
            ),
        }
    )
    assert mapping.source_columns == [
        "WorkerID",
        "UserID",
        "WorkerStatus",
        "FirstName",
        "LastName",
        "JobTitle",
        "Department",
        "HireDate",
    ]
    assert mapping.custom_schemas == [CONTOSO]  # built-in schemas are always listed, never "custom"
    derived = AttributeMapping(mapping_with(**{f"{CONTOSO}:HireDate": "HireDate"}))
    assert derived.custom_schemas == [CONTOSO]
    assert AttributeMapping(MINIMAL).custom_schemas == []


def test_to_dict_round_trips_through_json_and_yaml(tmp_path: Path) -> None:
    original = AttributeMapping.from_dict(
        {
            "schemas": [CONTOSO],
            "attributes": mapping_with(
                displayName={"join": ["FirstName", "LastName"], "sep": ", "},
                userType={"column": "WorkerType", "map": {"E": "Employee"}, "default": "Employee"},
                title={"column": "JobTitle", "max_length": None},
                **{
                    f"{CONTOSO}:HireDate": {
                        "column": "HireDate",
                        "type": "datetime",
                        "timezone": "Europe/Oslo",
                    }
                },
            ),
        }
    )
    data = original.to_dict()
    assert AttributeMapping.from_dict(data) == original
    assert data["attributes"]["externalId"] == "WorkerID"  # a bare column stays bare
    json_file = tmp_path / "mapping.json"
    json_file.write_text(json.dumps(data))
    assert AttributeMapping.from_file(json_file) == original
    import yaml

    yaml_file = tmp_path / "mapping.yml"
    yaml_file.write_text(yaml.safe_dump(data, allow_unicode=True))
    assert AttributeMapping.from_file(yaml_file) == original


def test_bare_attributes_block_and_python_values() -> None:
    # psd1 users may drop the "attributes:" level; bare true/false/numbers are constants
    mapping = AttributeMapping.from_dict(
        {**MINIMAL, "active": True, "schemas": [CONTOSO], f"{CONTOSO}:Level": 3}
    )
    assert mapping["active"].source.value is True
    assert mapping[f"{CONTOSO}:Level"].source.value == 3


def test_limits_come_from_entra_and_can_be_overridden() -> None:
    mapping = AttributeMapping(
        mapping_with(
            displayName="FullName",
            title={"column": "JobTitle", "max_length": 40},
            nickName={"column": "UserID", "max_length": None},
            **{f"{CONTOSO}:Note": "Note"},
        )
    )
    assert mapping["externalId"].max_length == 16  # employeeId
    assert mapping["userName"].max_length == 113  # userPrincipalName
    assert mapping["displayName"].max_length == 256
    assert mapping["title"].max_length == 40
    assert mapping["nickName"].max_length is None
    assert mapping[f"{CONTOSO}:Note"].max_length == 256  # directory extension strings


def test_lookup_accepts_any_spelling() -> None:
    mapping = AttributeMapping(mapping_with(**{"emails[type eq 'work'].value": "Email"}))
    assert 'EMAILS[TYPE EQ "work"].VALUE' in mapping
    assert mapping['emails[type eq "work"].value'].columns == ("Email",)
    assert "displayName" not in mapping and "not a path" not in mapping


@pytest.mark.parametrize(
    ("attributes", "path", "message"),
    [
        (
            {"userName": "U", "active": True},
            "externalId",
            "the mapping must set externalId; e.g. externalId: WorkerID",
        ),
        ({"externalId": "W"}, "userName", "the mapping must set userName, active"),
        (
            mapping_with(externalId={"constant": "1"}),
            "externalId",
            "a constant would give every employee the same key",
        ),
        (
            mapping_with(displayName={"expr": 'A == "b"'}),
            "displayName",
            "an expr gives true/false, but this is a string attribute",
        ),
        (mapping_with(active={"constant": "yes"}), "active", "constant 'yes' is not a boolean"),
        (mapping_with(active={"constant": 1}), "active", "constant 1 is not a boolean"),
        (
            mapping_with(title={"constant": 1.5}),
            "title",
            "constant must be a text, true/false or a whole number",
        ),
        (
            mapping_with(title={"column": "A", "constant": "B"}),
            "title",
            "give exactly one of column, constant, expr, join, template; got column, constant",
        ),
        (
            mapping_with(title={"sep": " "}),
            "title",
            "give exactly one of column, constant, expr, join, template; got none",
        ),
        (mapping_with(title={"column": "A", "colour": "B"}), "title", "unknown option(s) 'colour'"),
        (mapping_with(title={"column": "A", "sep": "-"}), "title", "sep only goes with join"),
        (mapping_with(title={"column": ""}), "title", "column must be a non-empty column name"),
        (mapping_with(title={"join": []}), "title", "join takes a list of columns"),
        (mapping_with(title={"join": ["A", 3]}), "title", "each join item must be a non-empty column name"),
        (mapping_with(title={"template": "fixed"}), "title", "template uses no column"),
        (mapping_with(title={"template": "{A!r}"}), "title", "template placeholders take a bare column name"),
        (mapping_with(title={"template": "{}"}), "title", "template placeholders need a column name"),
        (mapping_with(title={"template": "{A"}), "title", "is malformed"),
        (
            mapping_with(title={"column": "A", "type": "datetime"}),
            "title",
            "is a string attribute of the SCIM schema and cannot be sent as datetime",
        ),
        (
            mapping_with(title={"column": "A", "type": "date"}),
            "title",
            "type must be one of string, boolean, integer, datetime",
        ),
        (
            mapping_with(title={"column": "A", "timezone": "+01:00"}),
            "title",
            "timezone and date_format only apply to datetime values",
        ),
        (
            mapping_with(**{f"{CONTOSO}:D": {"column": "D", "type": "datetime", "timezone": "Mars/Olympus"}}),
            f"{CONTOSO}:D",
            "unknown timezone 'Mars/Olympus'",
        ),
        (
            mapping_with(
                **{f"{CONTOSO}:D": {"column": "D", "type": "datetime", "date_format": "dd/mm/yyyy"}}
            ),
            f"{CONTOSO}:D",
            "date_format is a strftime format",
        ),
        (
            mapping_with(active={"column": "A", "max_length": 5}),
            "active",
            "max_length only applies to text values",
        ),
        (
            mapping_with(title={"column": "A", "max_length": 0}),
            "title",
            "max_length must be a positive whole number or null",
        ),
        (
            mapping_with(title={"column": "A", "max_length": True}),
            "title",
            "max_length must be a positive whole number or null",
        ),
        (
            mapping_with(title={"constant": "A", "map": {"a": "b"}}),
            "title",
            "map only goes with column, join or template",
        ),
        (mapping_with(title={"column": "A", "map": []}), "title", "map takes HR value -> SCIM value pairs"),
        (
            mapping_with(title={"constant": "A", "default": "B"}),
            "title",
            "default only goes with column, join or template",
        ),
        (mapping_with(active={"column": "A", "default": "yes"}), "active", "default 'yes' is not a boolean"),
        (mapping_with(title={"column": "A", "required": "yes"}), "title", "required must be true or false"),
        (mapping_with(userName={"column": "U", "required": False}), "userName", "is always required"),
        (mapping_with(title=None), "title", "has no value"),
        (mapping_with(title=["A"]), "title", "each entry of a multi-valued attribute is a block"),
        (mapping_with(**{"Title": "A", "title": "B"}), "title", "'title' is mapped twice"),
        (
            mapping_with(**{'emails[type eq "work"].value': "A", "emails[type eq 'work'].Value": "B"}),
            'emails[type eq "work"].value',
            "is mapped twice",
        ),
        (
            mapping_with(emails=[{"type": {"column": "T"}, "value": "E"}]),
            "emails",
            "the type of an entry is a fixed text such as 'work'",
        ),
        (
            mapping_with(emails=[{"type": "work", "value": "E"}, {"type": "work", "display": "D"}]),
            "emails",
            "two entries have the type 'work'",
        ),
        (
            mapping_with(emails=[{"type": "work", "primary": True}]),
            'emails[type eq "work"].primary',
            "an entry needs a value besides 'primary'",
        ),
        (mapping_with(**{ENTERPRISE: "Department"}), ENTERPRISE, "a schema URN takes a block of attributes"),
        (
            mapping_with(emial="Email"),
            "emial",
            "unknown attribute 'emial' in the core User schema (did you mean 'emails'?)",
        ),
        (
            mapping_with(emails="Email"),
            "emails",
            "'emails' is multi-valued, so it cannot take a single value",
        ),
    ],
)
def test_refusals_name_the_path(attributes: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        AttributeMapping(attributes)
    assert message in str(caught.value)
    assert caught.value.path == path


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"attributes": MINIMAL, "extra": 1}, "unknown top-level key(s) 'extra'"),
        ({"attributes": {}}, "a mapping needs a non-empty block of attributes"),
        ({"attributes": MINIMAL, "schemas": CONTOSO}, "schemas is a list of custom namespace URNs"),
        ({"attributes": MINIMAL, "schemas": ["urn:example:x"]}, "'urn:example:x' is not a namespace URN"),
        (
            {
                "attributes": mapping_with(**{f"{CONTOSO}:X": "X"}),
                "schemas": ["urn:ietf:params:scim:schemas:extension:fabrikam:1.0:User"],
            },
            f"'{CONTOSO}:X' uses the namespace '{CONTOSO}', which is not in schemas",
        ),
        ([1, 2], "a mapping is a block of settings, got list"),
    ],
)
def test_document_refusals(document: Any, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        AttributeMapping.from_dict(document)
    assert message in str(caught.value)


def test_file_refusals(tmp_path: Path) -> None:
    duplicate = tmp_path / "duplicate.yaml"
    duplicate.write_text("attributes:\n  externalId: A\n  userName: B\n  active: true\n  userName: C\n")
    with pytest.raises(MappingError, match=r"duplicate\.yaml: duplicate key 'userName' \(line 5\)"):
        AttributeMapping.from_file(duplicate)
    duplicate_json = tmp_path / "duplicate.json"
    duplicate_json.write_text('{"attributes": {"externalId": "A", "externalId": "B"}}')
    with pytest.raises(MappingError, match="duplicate key 'externalId'"):
        AttributeMapping.from_file(duplicate_json)
    broken = tmp_path / "broken.yaml"
    broken.write_text("attributes: [unclosed\n")
    with pytest.raises(MappingError, match=r"broken\.yaml: not valid YAML"):
        AttributeMapping.from_file(broken)
    bad = tmp_path / "bad.yaml"
    bad.write_text("attributes:\n  externalId: A\n  userName: B\n  active: true\n  name: Full\n")
    with pytest.raises(MappingError, match=r"bad\.yaml: 'name': 'name' is complex") as caught:
        AttributeMapping.from_file(bad)
    assert caught.value.path == "name"


def test_yaml_cannot_run_code(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("attributes: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(MappingError, match="not valid YAML"):
        AttributeMapping.from_file(evil)


def test_check_columns_names_every_missing_column_and_its_attributes() -> None:
    mapping = AttributeMapping(mapping_with(displayName={"join": ["FirstName", "LastName"]}))
    mapping.check_columns(["WorkerID", "UserID", "WorkerStatus", "FirstName", "LastName", "Other"])
    with pytest.raises(MappingError) as caught:
        mapping.check_columns(["WorkerID", "UserID", "FirstName"])
    assert str(caught.value) == (
        "the HR data has no column 'WorkerStatus' (used by active); 'LastName' (used by displayName)"
    )
    assert caught.value.path == "active"
