"""load_mapping_file: located errors (file, key, line), columns checked against an export's header."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import fsspec
import pytest

from airflow_provider_entra.mapping import MappingFileError, load_mapping_file
from airflow_provider_entra.scim import AttributeMapping, MappingError

REPO = Path(__file__).resolve().parents[2]
#: A mapping file without a source block: Microsoft's psd1 written in this format.
PSD1_MAPPING = REPO / "dags" / "data" / "microsoft_sample_mapping.yaml"
HR_MAPPING = REPO / "dags" / "data" / "hr_mapping.yaml"

WORKDAY = textwrap.dedent(
    """\
    description: Workday custom report
    source:
      id: Employee_ID
      status: {column: Worker_Status, active: [Active, On Leave]}
      first_name: Legal_First_Name
      last_name: Legal_Last_Name
      manager: Manager_Employee_ID
      dates:
        format: "%m/%d/%Y"
      upn:
        overrides: {"100234": "jane.doe2@contoso.com"}
    attributes:
      externalId: Employee_ID
      userName: UserPrincipalName
      active: {expr: 'Worker_Status == "Active"'}
      name:
        givenName: Legal_First_Name
        familyName: Legal_Last_Name
      'emails[type eq "work"].value': Work_Email
      urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value: Manager_Employee_ID
    """
)
EXPORT = [
    "Employee_ID",
    "Worker_Status",
    "Legal_First_Name",
    "Legal_Last_Name",
    "Manager_Employee_ID",
    "Work_Email",
    "Hire_Date",
]


def _write(tmp_path: Path, text: str, name: str = "mapping.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _line(text: str, needle: str) -> int:
    """The 1-based line of the first line containing ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_file_without_source_reads_the_csv2scim_layout() -> None:
    mapping = load_mapping_file(PSD1_MAPPING)
    assert not mapping.has_source
    assert mapping.source.id == "WorkerID"
    assert mapping.attributes == AttributeMapping.from_file(PSD1_MAPPING)
    assert mapping.path == str(PSD1_MAPPING)


def test_a_source_block_is_read_and_the_attributes_built(tmp_path: Path) -> None:
    path = _write(tmp_path, WORKDAY)
    mapping = load_mapping_file(path)
    assert mapping.has_source
    assert mapping.description == "Workday custom report"
    schema = mapping.source.to_hr_schema()
    assert (schema.worker_id, schema.status, schema.date_format) == (
        "Employee_ID",
        "Worker_Status",
        "%m/%d/%Y",
    )
    assert mapping.attributes.paths[:3] == ["externalId", "userName", "active"]
    # the attribute mapping alone ignores the source block
    assert AttributeMapping.from_file(path) == mapping.attributes
    assert mapping.check_columns(EXPORT) is None


def test_every_structure_problem_is_listed_with_its_line(tmp_path: Path) -> None:
    text = (
        WORKDAY.replace("  first_name:", "  frist_name:")
        .replace('"%m/%d/%Y"', '"MM/DD/YYYY"')
        .replace("{column: Worker_Status,", "{colum: Worker_Status,")
    )
    path = _write(tmp_path, text)
    with pytest.raises(MappingFileError) as excinfo:
        load_mapping_file(path)
    error = excinfo.value
    assert isinstance(error, MappingError)
    by_key = {p.key: p for p in error.problems}
    assert by_key["source.frist_name"].line == _line(text, "frist_name")
    assert "did you mean 'first_name'?" in by_key["source.frist_name"].message
    assert by_key["source.dates.format"].line == _line(text, "MM/DD/YYYY")
    assert by_key["source.status.colum"].line == _line(text, "colum:")
    assert "did you mean 'column'?" in by_key["source.status.colum"].message
    assert [p.line for p in error.problems] == sorted(p.line for p in error.problems)
    assert error.file == str(path)
    assert (error.path, error.line) == (error.problems[0].key, error.problems[0].line)
    assert f"{path}:{_line(text, 'frist_name')}: source.frist_name: unknown key" in str(error)


def test_a_scim_problem_names_the_attribute_and_its_line(tmp_path: Path) -> None:
    text = WORKDAY.replace("    familyName: Legal_Last_Name", "    famlyName: Legal_Last_Name")
    path = _write(tmp_path, text)
    with pytest.raises(MappingFileError) as excinfo:
        load_mapping_file(path)
    problem = excinfo.value.problems[0]
    assert problem.key == "attributes.name.famlyName"
    assert problem.line == _line(text, "famlyName")
    assert "familyName" in problem.message  # AttributeMapping's "did you mean"


def test_duplicate_keys_are_each_located(tmp_path: Path) -> None:
    text = WORKDAY + "  externalId: Other\n"
    with pytest.raises(MappingFileError) as excinfo:
        load_mapping_file(_write(tmp_path, text))
    (problem,) = excinfo.value.problems
    assert problem.key == "attributes.externalId"
    assert problem.line == len(text.splitlines())
    assert f"first written on line {_line(text, 'externalId')}" in problem.message


def test_yaml_that_does_not_parse_names_the_line(tmp_path: Path) -> None:
    text = WORKDAY.replace("  userName: UserPrincipalName", "  userName: [UserPrincipalName")
    with pytest.raises(MappingFileError, match="not valid YAML") as excinfo:
        load_mapping_file(_write(tmp_path, text))
    assert excinfo.value.line is not None


def test_missing_columns_name_the_nearest_ones_and_the_line(tmp_path: Path) -> None:
    text = WORKDAY.replace("givenName: Legal_First_Name", "givenName: Legal_Frist_Name")
    mapping = load_mapping_file(_write(tmp_path, text))
    export = [c for c in EXPORT if c != "Manager_Employee_ID"] + ["Manager_ID"]
    with pytest.raises(MappingFileError) as excinfo:
        mapping.check_columns(export)
    problems = {p.key: p for p in excinfo.value.problems}
    assert set(problems) == {
        "source.manager",
        "attributes.name.givenName",
        "attributes.urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    }
    given = problems["attributes.name.givenName"]
    assert given.line == _line(text, "Legal_Frist_Name")
    assert "no column 'Legal_Frist_Name'; nearest: 'Legal_First_Name'" in given.message
    assert problems["source.manager"].line == _line(text, "manager: Manager_Employee_ID")
    assert "'Manager_ID'" in problems["source.manager"].message
    # the column the pipeline adds is not looked for in the export
    assert not any("UserPrincipalName" in p.message for p in excinfo.value.problems)


def test_a_misspelt_status_column_points_at_its_column_key(tmp_path: Path) -> None:
    mapping = load_mapping_file(_write(tmp_path, WORKDAY))
    export = [c for c in EXPORT if c != "Worker_Status"] + ["worker_status"]
    with pytest.raises(MappingFileError) as excinfo:
        mapping.check_columns(export)
    first = excinfo.value.problems[0]
    assert first.key == "source.status.column"
    assert first.line == _line(WORKDAY, "status:")
    assert "nearest: 'worker_status'" in first.message


def test_without_a_source_block_the_message_says_which_layout_was_assumed() -> None:
    mapping = load_mapping_file(PSD1_MAPPING)
    problems = mapping.column_problems(["EmpNo", "GivenName"])
    assert problems[0].key == "source.id"
    assert "no column 'WorkerID'" in problems[0].message
    assert "CSV2SCIM layout" in problems[0].message


def test_json_files_are_located_too(tmp_path: Path) -> None:
    data = {
        "source": {"id": "EmpNo", "last_nam": "Surname"},
        "attributes": {"externalId": "EmpNo", "userName": "UserPrincipalName", "active": True},
    }
    text = json.dumps(data, indent=2)
    with pytest.raises(MappingFileError) as excinfo:
        load_mapping_file(_write(tmp_path, text, "mapping.json"))
    (problem,) = excinfo.value.problems
    assert (problem.key, problem.line) == ("source.last_nam", _line(text, "last_nam"))


def test_a_bare_attributes_block_still_loads(tmp_path: Path) -> None:
    text = "externalId: WorkerID\nuserName: UserID\nactive: {constant: true}\ndisplayNme: FullName\n"
    with pytest.raises(MappingFileError) as excinfo:
        load_mapping_file(_write(tmp_path, text))
    assert excinfo.value.line == 4
    mapping = load_mapping_file(_write(tmp_path, text.replace("displayNme", "displayName")))
    assert "displayName" in mapping.attributes


def test_fsspec_urls(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    with fs.open("/mappings/workday.yaml", "wb") as handle:
        handle.write(WORKDAY.encode("utf-8"))
    try:
        mapping = load_mapping_file("memory://mappings/workday.yaml")
        assert mapping.source.id == "Employee_ID"
    finally:
        fs.rm("/mappings", recursive=True)
    with pytest.raises(FileNotFoundError):
        load_mapping_file(tmp_path / "absent.yaml")


def test_the_complete_file_of_the_docs_loads(tmp_path: Path) -> None:
    docs = (REPO / "docs" / "mapping.md").read_text(encoding="utf-8")
    section = docs[docs.index("## A complete file") :]
    start = section.index("```yaml\n") + len("```yaml\n")
    block = section[start : section.index("\n```", start)]
    mapping = load_mapping_file(_write(tmp_path, block))
    assert mapping.source.layout is not None
    assert mapping.source.to_hr_schema().worker_id == "Employee_ID"
    assert "urn:ietf:params:scim:schemas:extension:contoso:1.0:User:HireDate" in mapping.attributes


@pytest.mark.parametrize(
    ("text", "key", "needle"),
    [
        ("", "", "the file is empty"),
        ("- a\n- b\n", "", "a block of keys"),
        ("attributes:\n  externalId: WorkerID\n", "attributes", "must set userName, active"),
        (
            "schemas: [urn:nope]\nattributes:\n  externalId: W\n  userName: U\n  active: true\n",
            "schemas",
            "not a namespace URN",
        ),
    ],
)
def test_whole_file_problems(tmp_path: Path, text: str, key: str, needle: str) -> None:
    with pytest.raises(MappingFileError) as excinfo:
        load_mapping_file(_write(tmp_path, text))
    (problem,) = excinfo.value.problems
    assert problem.key == key
    assert needle in problem.message


def test_every_bad_attribute_and_the_source_are_reported_together(tmp_path: Path) -> None:
    text = (
        WORKDAY.replace("  last_name: Legal_Last_Name", "  last_nme: Legal_Last_Name")
        .replace("    familyName: Legal_Last_Name", "    famlyName: Legal_Last_Name")
        .replace("  'emails[type eq \"work\"].value': Work_Email", "  emails: Work_Email")
    )
    with pytest.raises(MappingFileError) as excinfo:
        load_mapping_file(_write(tmp_path, text))
    assert [(p.key, p.line) for p in excinfo.value.problems] == [
        ("source.last_nme", _line(text, "last_nme")),
        ("attributes.name.famlyName", _line(text, "famlyName")),
        ("attributes.emails", _line(text, "emails:")),
    ]
