"""The expression language for computed true/false values: results, empty cells, and what it refuses."""

from __future__ import annotations

import pyarrow as pa
import pytest

from airflow_provider_entra.scim import MappingError
from airflow_provider_entra.scim.expressions import parse_expression

COLUMNS = {
    "WorkerStatus": ["Active", "active", "Inactive", None, "Active"],
    "WorkerType": ["Employee", "Contractor", "Intern", "Employee", None],
    "Work Status": ["A", "B", None, "A", "B"],
    "Padded": [" Active ", "x", None, "  Active", "y"],
}


def run(expression: str) -> list[bool]:
    data = {k: pa.array(v, pa.large_string()) for k, v in COLUMNS.items()}
    result = parse_expression(expression).evaluate(data.__getitem__, 5)
    assert result.null_count == 0
    return result.to_pylist()


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('WorkerStatus == "Active"', [True, False, False, False, True]),
        ("WorkerStatus == 'Active'", [True, False, False, False, True]),
        ('WorkerStatus != "Active"', [False, True, True, True, False]),
        ('"Active" == WorkerStatus', [True, False, False, False, True]),
        # PowerShell's -eq ignores case, as in CSV2SCIM's AttributeMapping.psd1; -ceq does not
        ("$_.'WorkerStatus' -eq 'Active'", [True, True, False, False, True]),
        ("$_.WorkerStatus -eq 'ACTIVE'", [True, True, False, False, True]),
        ("$_.'WorkerStatus' -ne 'Active'", [False, False, True, True, False]),
        ("$_.'WorkerStatus' -ceq 'Active'", [True, False, False, False, True]),
        ("$_.'WorkerStatus' -cne 'Active'", [False, True, True, True, False]),
        ('WorkerType in ["Employee", "Intern"]', [True, False, True, True, False]),
        ('WorkerType in ("Employee")', [True, False, False, True, False]),
        ('WorkerType not in ["Employee", "Intern"]', [False, True, False, False, True]),
        ("$_.WorkerType -in 'employee'", [True, False, False, True, False]),
        ("$_.WorkerType -in 'employee', 'intern'", [True, False, True, True, False]),
        ("WorkerType -in ('employee', 'INTERN')", [True, False, True, True, False]),
        ("WorkerType -notin ('employee')", [False, True, True, False, True]),
        ('WorkerStatus == "Active" and WorkerType == "Employee"', [True, False, False, False, False]),
        ('WorkerStatus == "Active" or WorkerType == "Intern"', [True, False, True, False, True]),
        ('WorkerStatus == "Active" -and WorkerType -eq "employee"', [True, False, False, False, False]),
        ('not WorkerStatus == "Active"', [False, True, True, True, False]),
        ('-not (WorkerStatus == "Active")', [False, True, True, True, False]),
        ('!(WorkerStatus == "Active")', [False, True, True, True, False]),
        # and binds tighter than or
        (
            'WorkerType == "Intern" or WorkerStatus == "Active" and WorkerType == "Employee"',
            [True, False, True, False, False],
        ),
        (
            '(WorkerType == "Intern" or WorkerStatus == "Active") and WorkerType == "Employee"',
            [True, False, False, False, False],
        ),
        ("WorkerStatus is empty", [False, False, False, True, False]),
        ("WorkerStatus is not empty", [True, True, True, False, True]),
        ('WorkerStatus == ""', [False, False, False, True, False]),
        ('WorkerStatus != ""', [True, True, True, False, True]),
        ('`Work Status` == "A"', [True, False, False, True, False]),
        ('$_."Work Status" == "B"', [False, True, False, False, True]),
        ('lower(WorkerStatus) == "active"', [True, True, False, False, True]),
        ('upper(WorkerStatus) == "INACTIVE"', [False, False, True, False, False]),
        ('trim(Padded) == "Active"', [True, False, False, True, False]),
        ("WorkerStatus == WorkerStatus", [True, True, True, False, True]),
        ("true", [True] * 5),
        ('false or WorkerType == "Intern"', [False, False, True, False, False]),
        ('"a" == "a"', [True] * 5),
        ('"a" -eq "A"', [True] * 5),
        ('"a" in ["b"]', [False] * 5),
        ('"It\'s" == "It\'s"', [True] * 5),
    ],
)
def test_results(expression: str, expected: list[bool]) -> None:
    assert run(expression) == expected


def test_an_empty_cell_equals_nothing() -> None:
    # row 3 has no WorkerStatus: it is neither "Active" nor in any list, and differs from everything
    assert run('WorkerStatus == "Active"')[3] is False
    assert run('WorkerStatus in ["Active", "Inactive"]')[3] is False
    assert run('WorkerStatus not in ["Active"]')[3] is True
    assert run('WorkerStatus != "Active"')[3] is True


def test_columns_read() -> None:
    expression = parse_expression(
        'WorkerStatus == "Active" and (lower(WorkerType) in ["x"] or `Work Status` is empty)'
    )
    assert expression.columns == ("WorkerStatus", "WorkerType", "Work Status")
    assert parse_expression("$_.'WorkerStatus' -eq 'Active'").columns == ("WorkerStatus",)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("WorkerStatus", "needs a true/false test"),
        ("lower(WorkerStatus)", "needs a true/false test"),
        ('WorkerStatus == "Active" and WorkerType', "needs a true/false test"),
        ('__import__("os")', "unknown function '__import__'"),
        ('__import__("os").system("id")', "unexpected character '.'"),
        ('open("/etc/passwd")', "unknown function 'open'"),
        ("WorkerStatus.lower() == 'x'", "unexpected character '.'"),
        ("Level == 3", 'HR values are texts: write the number 3 as "3"'),
        ('WorkerStatus == "Active', "unexpected character '\"'"),
        ('WorkerStatus == "Active" "x"', "unexpected 'x'"),
        ('WorkerStatus == "A"; import os', "unexpected character ';'"),
        ("WorkerStatus in [WorkerType]", "list items must be quoted texts"),
        ("WorkerStatus in Active", "expected a list"),
        ('(WorkerStatus == "A"', "expected ')'"),
        ("WorkerStatus is full", "expected 'empty'"),
        ("", "must be a non-empty text"),
    ],
)
def test_refused(expression: str, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        parse_expression(expression)
    assert message in str(caught.value)
