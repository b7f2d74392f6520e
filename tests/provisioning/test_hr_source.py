"""read_hr_csv: encodings, delimiters and whole-file problems (tests/data/bad_inputs has many more)."""

from __future__ import annotations

import codecs
import logging

import pytest

from airflow_provider_entra.provisioning.hr_source import HrSourceError, read_hr_csv, read_hr_csv_bytes

HEADER = "WorkerID,FirstName,LastName\n"


def test_utf8_values_are_text_and_nothing_is_interpreted():
    frame = read_hr_csv_bytes((HEADER + "007,NA,null\n1,,\n").encode(), source="hr.csv")
    assert frame.to_dict("records") == [
        {"WorkerID": "007", "FirstName": "NA", "LastName": "null"},
        {"WorkerID": "1", "FirstName": "", "LastName": ""},
    ]
    assert frame.attrs == {"source": "hr.csv", "encoding": "utf-8", "delimiter": ",", "warnings": []}


def test_bom_is_dropped_from_the_first_column_name():
    frame = read_hr_csv_bytes(codecs.BOM_UTF8 + (HEADER + "1,Zoë,Ødegård\n").encode())
    assert list(frame.columns) == ["WorkerID", "FirstName", "LastName"]
    assert frame.attrs["encoding"] == "utf-8-sig"


def test_cp1252_is_read_with_a_warning_naming_the_byte_and_line(caplog):
    data = (HEADER + "1,José,Müller\n").encode("cp1252")
    with caplog.at_level(logging.WARNING):
        frame = read_hr_csv_bytes(data, source="hr.csv")
    assert frame.loc[0, "FirstName"] == "José" and frame.attrs["encoding"] == "cp1252"
    assert "byte 0xe9" in caplog.text and "line 2" in caplog.text and "hr.csv" in caplog.text


def test_utf16_with_bom_and_tabs():
    frame = read_hr_csv_bytes("WorkerID\tFirstName\n1\tZoë\n".encode("utf-16"))
    assert frame.to_dict("records") == [{"WorkerID": "1", "FirstName": "Zoë"}]
    assert frame.attrs["delimiter"] == "\t"


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_delimiter_is_detected_from_the_header(delimiter):
    text = HEADER.replace(",", delimiter) + delimiter.join(["1", "Ana", "Costa, Jr."]) + "\n"
    frame = read_hr_csv_bytes(text.encode())
    assert frame.loc[0, "LastName"] == "Costa, Jr."


def test_a_comma_inside_quotes_does_not_fool_the_delimiter_detection():
    frame = read_hr_csv_bytes(b'"Worker;ID",First\n1,Ana\n')
    assert list(frame.columns) == ["Worker;ID", "First"]


def test_a_short_row_is_read_with_empty_fields_for_the_validator():
    frame = read_hr_csv_bytes((HEADER + "1,Ana\n").encode())
    assert frame.loc[0, "LastName"] == ""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty (0 bytes)"),
        (b"\r\n\r\n", "is empty"),
        (HEADER.encode(), "has a header but no data rows"),
        (b"WorkerID,Name,WorkerID\n1,a,1\n", "duplicate column name(s): WorkerID"),
        (b"WorkerID,,Name\n1,2,3\n", "header column(s) 2 have no name"),
        ((HEADER + "1,a,b,c\n").encode(), "line 2 has 4 fields but the header has 3"),
        ((HEADER + '1,"a,b\n2,c,d\n').encode(), "a quote is opened but never closed"),
        (b"PK\x03\x04rest", "Excel .xlsx"),
        (b"\xd0\xcf\x11\xe0rest", ".xls"),
        (b"%PDF-1.7", "PDF"),
        (HEADER.encode("utf-16-le") + b"1\x00", "UTF-16 without a byte-order mark"),
    ],
)
def test_whole_file_problems_are_clear_errors_naming_the_file(data, message):
    with pytest.raises(HrSourceError) as raised:
        read_hr_csv_bytes(data, source="exports/hr.csv")
    assert message in str(raised.value)
    assert "exports/hr.csv" in str(raised.value)


def test_is_an_hr_schema_error_so_callers_catch_one_type():
    from airflow_provider_entra.provisioning.validate import HrSchemaError

    assert issubclass(HrSourceError, HrSchemaError)


def test_header_only_can_be_allowed_explicitly():
    frame = read_hr_csv_bytes(HEADER.encode(), allow_empty=True)
    assert frame.empty and list(frame.columns) == ["WorkerID", "FirstName", "LastName"]


def test_local_paths_and_object_storage_paths(tmp_path):
    from airflow.sdk import ObjectStoragePath

    path = tmp_path / "hr.csv"
    path.write_bytes((HEADER + "1,Ana,Costa\n").encode())
    assert len(read_hr_csv(path)) == 1
    assert len(read_hr_csv(str(path))) == 1
    assert read_hr_csv(ObjectStoragePath(f"file://{path}")).loc[0, "FirstName"] == "Ana"


def test_missing_file_and_directory_are_clear_errors(tmp_path):
    with pytest.raises(HrSourceError, match="does not exist"):
        read_hr_csv(tmp_path / "nope.csv")
    with pytest.raises(HrSourceError, match="is a directory"):
        read_hr_csv(tmp_path)
