"""Read an HR CSV export robustly: encoding, delimiter and header problems become clear errors or warnings.

HR systems and spreadsheet programs write "CSV" in many ways. :func:`read_hr_csv` accepts the common ones
and refuses the rest with a message that names the file and the problem, before any row is looked at:

==============================================  ==============================================================
input                                           result
==============================================  ==============================================================
UTF-8, with or without a byte-order mark        read
UTF-16 with a BOM (Excel "Unicode text")        read (usually tab-separated: the delimiter is detected)
not UTF-8 (Excel "CSV" on Windows: cp1252)      read as cp1252, else latin-1, with a warning naming the first
                                                byte that is not UTF-8; check accented names in the report
``;``, tab or ``|`` instead of ``,``            detected from the header line
header names with spaces around them            stripped, with a warning
empty file, whitespace only                     :class:`HrSourceError` "... is empty"
header but no data rows                         :class:`HrSourceError` "... has a header but no data rows"
repeated header name                            :class:`HrSourceError` naming the repeated column(s)
blank header name                               :class:`HrSourceError` naming its position
a row with more fields than the header          :class:`HrSourceError` naming the line
a quote that is never closed                    :class:`HrSourceError` naming where it starts
an Excel workbook, a zip, a PDF, a binary file  :class:`HrSourceError` saying what it looks like
UTF-16 without a BOM (NULs in the header line)  :class:`HrSourceError` saying so
a NUL byte inside one value                     read; the validator quarantines that row
==============================================  ==============================================================

Every value is read as text, and nothing is interpreted: ``NA``, ``null`` and ``007`` stay the strings
they are, and empty cells are empty strings (``normalise_hr`` turns them into missing values). Rows with
*fewer* fields than the header are read with the missing fields empty: the validator then quarantines
the row if a required value is missing, and every other row proceeds.

What was detected is kept in ``frame.attrs``: ``source``, ``encoding``, ``delimiter`` and ``warnings`` (the
texts also logged at WARNING).
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import os
import re
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from airflow_provider_entra._fsio import read_bytes
from airflow_provider_entra.provisioning._hr import HrSchemaError, describe_columns

__all__ = [
    "DELIMITERS",
    "HrSourceError",
    "as_text_frame",
    "decode_hr_bytes",
    "read_hr_csv",
    "read_hr_csv_bytes",
]

log = logging.getLogger(__name__)

#: Delimiters recognised in the header line, in order of preference on a tie.
DELIMITERS = (",", ";", "\t", "|")
#: Signatures of files that are not text at all, and what to tell the user.
_BINARY_SIGNATURES = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook?): save it as CSV (UTF-8) first"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls workbook: save it as CSV (UTF-8) first"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive: decompress it first"),
)
#: More NUL bytes than one in this many means the file is not 8-bit text.
_MAX_NUL_SHARE = 100
_ROW_RE = re.compile(r"starting at row (\d+)")
#: UTF-8 is checked this many bytes at a time (the decoded text is not kept: Arrow reads the bytes).
_CHECK_CHUNK = 1 << 24
_FIRST_LINE_SPAN = 1 << 20


class HrSourceError(HrSchemaError):
    """The HR export cannot be read as a CSV table; the message names the file and the problem."""


def _name(source: str | os.PathLike[str] | None) -> str:
    return f"HR export {os.fspath(source)}" if source is not None else "HR export"


def _check_bytes(data: bytes, source: str | None) -> None:
    """Refuse an empty file, a binary one, or one with NULs in its header line or all over it."""
    name = _name(source)
    if not data.strip(b" \t\r\n\x00") or data in (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise HrSourceError(f"{name} is empty ({len(data)} bytes): expected a header line and data rows")
    for signature, what in _BINARY_SIGNATURES:
        if data.startswith(signature):
            raise HrSourceError(f"{name} is not a CSV file: it looks like {what}")


def decode_hr_bytes(data: bytes, *, source: str | None = None) -> tuple[str, str, list[str]]:
    """Decode an export's bytes: UTF-8 (BOM or not), UTF-16 with a BOM, else cp1252 or latin-1.

    :param data: the file's bytes.
    :param source: the file name, for messages.
    :return: ``(text, encoding used, warnings)``.
    :raises HrSourceError: for an empty or binary file.
    """
    _check_bytes(data, source)
    name = _name(source)
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8", errors="strict"), "utf-8-sig", []
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16", []
        except UnicodeDecodeError as exc:
            raise HrSourceError(
                f"{name} starts with a UTF-16 byte-order mark but is not UTF-16: {exc}"
            ) from None
    nuls = data.count(b"\x00")
    first_nul = data.find(b"\x00")
    if nuls and (b"\x00" in data.split(b"\n", 1)[0] or nuls * _MAX_NUL_SHARE > len(data)):
        # A stray NUL inside a value is the validator's business (that row is quarantined); NULs in the
        # header line or all over the file mean this is not 8-bit text.
        raise HrSourceError(
            f"{name} is not UTF-8 or 8-bit text: it has {nuls} NUL bytes (first at byte {first_nul}), "
            "like UTF-16 without a byte-order mark or a binary file; export it as CSV (UTF-8)"
        )
    try:
        return data.decode("utf-8", errors="strict"), "utf-8", []
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        line = data.count(b"\n", 0, exc.start) + 1
        for encoding in ("cp1252", "latin-1"):
            try:
                text = data.decode(encoding, errors="strict")
            except UnicodeDecodeError:
                continue
            warning = (
                f"{name} is not UTF-8 (byte 0x{bad} at offset {exc.start}, line {line}); read it as "
                f"{encoding}. Check accented names in the report, and export UTF-8 next time"
            )
            return text, encoding, [warning]
        raise AssertionError("latin-1 decodes every byte") from exc  # pragma: no cover


def _delimiter(header: str) -> str:
    """The delimiter of a header line: the most frequent of :data:`DELIMITERS` outside quotes."""
    outside = re.sub(r'"[^"]*"', "", header)
    counts = Counter({d: outside.count(d) for d in DELIMITERS})
    best, count = counts.most_common(1)[0]
    return best if count else ","


def _first_line(text: str) -> str:
    """The first line that is not blank (looked for in the first MiB first: a header is short)."""
    head = text[:_FIRST_LINE_SPAN]
    lines = head.splitlines()
    for number, line in enumerate(lines):
        if line.strip() and (number < len(lines) - 1 or len(head) == len(text)):
            return line
    if len(head) == len(text):
        return ""
    return next((line for line in text.splitlines() if line.strip()), "")


def _utf8_body(data: bytes) -> tuple[memoryview, str] | None:
    """The bytes after a UTF-8 BOM and the encoding's name, when the whole file is UTF-8 without NUL bytes
    (checked a chunk at a time: no text copy of the file is made); ``None`` for anything else, which
    :func:`decode_hr_bytes` reads and explains."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in data:
        return None
    bom = data.startswith(codecs.BOM_UTF8)
    body = memoryview(data)[len(codecs.BOM_UTF8) if bom else 0 :]
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        for start in range(0, len(body), _CHECK_CHUNK):
            decoder.decode(body[start : start + _CHECK_CHUNK])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return None
    return body, ("utf-8-sig" if bom else "utf-8")


def _read_arrow(body: memoryview, delimiter: str, names: list[str]) -> pd.DataFrame | None:
    """Every row as text with Arrow's CSV reader (Arrow-backed columns, no Python string per value); ``None``
    when Arrow refuses the table (a ragged row, an unclosed quote...): pandas then reads it and says why."""
    try:
        table = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(body)),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, newlines_in_values=True, ignore_empty_lines=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={f"f{i}": pa.large_string() for i in range(len(names))},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowException:
        return None
    if table.num_columns != len(names):
        return None
    return table.slice(1).rename_columns(names).to_pandas()


def _parse_error(exc: Exception, name: str, delimiter: str, columns: int) -> HrSourceError:
    message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    shown = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}[delimiter]
    if "EOF inside string" in message or "unexpected end of data" in message:
        where = _ROW_RE.search(message)
        at = f" in record {int(where.group(1)) + 1} (the header is record 1)" if where else ""
        return HrSourceError(
            f"{name}: a quote is opened but never closed{at}; fix the quoting of that value ({message})"
        )
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if fields:
        expected, line, saw = fields.groups()
        return HrSourceError(
            f"{name}: line {line} has {saw} fields but the header has {expected} ({shown}-separated); "
            "a value probably contains an unquoted delimiter"
        )
    return HrSourceError(f"{name} cannot be read as {shown}-separated CSV with {columns} columns: {message}")


def _read_pandas(text: str, name: str, delimiter: str, names: list[str]) -> pd.DataFrame:
    """Every row as text with pandas' parser, whose errors :func:`_parse_error` explains."""
    try:
        # header=None: the header line is parsed as row 0, so the parser takes its field count from it and
        # refuses any longer row (with a header, pandas would quietly turn extra fields into an index).
        table = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            header=None,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=True,
            engine="c",
        )
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        raise _parse_error(exc, name, delimiter, len(names)) from None
    frame = table.iloc[1:].reset_index(drop=True)
    frame.columns = pd.Index(names)
    return frame.fillna("")


def read_hr_csv_bytes(data: bytes, *, source: str | None = None, allow_empty: bool = False) -> pd.DataFrame:
    """:func:`read_hr_csv` for bytes already in memory (from an object store, an API, a test).

    :param data: the file's bytes.
    :param source: the file name, for messages and ``attrs["source"]``.
    :param allow_empty: accept a header without data rows (an empty frame) instead of raising.
    """
    name = _name(source)
    _check_bytes(data, source)
    utf8 = _utf8_body(data)
    body: memoryview | None = None
    text: str | None = None
    if utf8 is not None:
        body, encoding = utf8
        warnings: list[str] = []
        head = bytes(body[:_FIRST_LINE_SPAN]).decode("utf-8", errors="ignore")
        header_line = _first_line(head)
    else:
        text, encoding, warnings = decode_hr_bytes(data, source=source)
        header_line = _first_line(text)
    delimiter = _delimiter(header_line)
    try:
        header = next(csv.reader([header_line], delimiter=delimiter))
    except csv.Error as exc:
        raise HrSourceError(f"{name}: the header line cannot be read: {exc}") from None
    stripped = [h.strip() for h in header]
    if stripped != header:
        padded = [h for h in header if h != h.strip()]
        warnings.append(f"{name}: spaces around header name(s) {padded!r} were removed")
    blanks = [i + 1 for i, h in enumerate(stripped) if not h]
    if blanks:
        raise HrSourceError(
            f"{name}: header column(s) {', '.join(map(str, blanks))} have no name "
            f"({describe_columns(h for h in stripped if h)})"
        )
    repeated = sorted(h for h, n in Counter(stripped).items() if n > 1)
    if repeated:
        raise HrSourceError(f"{name} has duplicate column name(s): {', '.join(repeated)}")
    frame = _read_arrow(body, delimiter, stripped) if body is not None else None
    if frame is None:
        text = text if text is not None else bytes(body or b"").decode("utf-8")
        frame = _read_pandas(text, name, delimiter, stripped)
    if frame.empty and not allow_empty:
        raise HrSourceError(
            f"{name} has a header but no data rows: refusing to treat it as 'nobody works here any more'"
        )
    for warning in warnings:
        log.warning("%s", warning)
    frame.attrs.update({"source": source, "encoding": encoding, "delimiter": delimiter, "warnings": warnings})
    return frame


def read_hr_csv(path: str | os.PathLike[str] | Any, *, allow_empty: bool = False) -> pd.DataFrame:
    """Read an HR CSV export as text, detecting encoding and delimiter (table in the module docstring).

    :param path: a local path, a URL or an ``ObjectStoragePath``.
    :param allow_empty: accept a header without data rows (an empty frame) instead of raising.
    :return: every column as text (``attrs``: ``source``, ``encoding``, ``delimiter``, ``warnings``).
    :raises HrSourceError: when the file cannot be read as a CSV table; the message says why.
    """
    source = str(path)
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        raise HrSourceError(f"{_name(source)} does not exist") from None
    except IsADirectoryError:
        raise HrSourceError(f"{_name(source)} is a directory, not a file") from None
    return read_hr_csv_bytes(data, source=source, allow_empty=allow_empty)


def as_text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column as text, missing values as empty text: the shape of a CSV export read by
    :func:`read_hr_csv`, for HR rows from elsewhere (a SQL query, an API). A column of whole numbers with gaps
    (``1513.0``) reads as those numbers (``1513``); datetimes as ISO 8601.
    """
    out = {}
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.StringDtype):  # text already (a CSV read by read_hr_csv): kept as is
            out[str(column)] = (values.fillna("") if values.hasnans else values).astype(str)
            continue
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            text = values.map(lambda v: v.isoformat(), na_action="ignore")
        elif pd.api.types.is_float_dtype(values.dtype):
            finite = values.dropna()
            whole = len(finite) > 0 and bool((finite == np.floor(finite)).all())
            text = values.astype("Int64").astype(object) if whole else values.astype(object)
        else:
            text = values.astype(object)
        out[str(column)] = text.where(pd.notna(text), "").astype(str)
    return pd.DataFrame(out)
