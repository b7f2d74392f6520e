"""Load a mapping file: parse it, check it against the models, build the attribute mapping.

Every problem is located: the file, the key path (``source.dates.format``) and the line it is written on.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from airflow_provider_entra._fsio import read_bytes
from airflow_provider_entra.mapping._lines import KeyLines, key_lines
from airflow_provider_entra.mapping.models import (
    DatesSpec,
    MappingFileModel,
    SourceSpec,
    StatusSpec,
    UpnSpec,
    ValueSpec,
    unknown_key_message,
)
from airflow_provider_entra.provisioning.normalise import HrSchema
from airflow_provider_entra.scim.errors import MappingError
from airflow_provider_entra.scim.mapping import (
    AttributeMapping,
    _flatten,
    _NoDuplicatesLoader,
    _parse_spec,
    _reject_duplicate_json_keys,
)
from airflow_provider_entra.scim.paths import parse_path

__all__ = ["MappingFile", "MappingFileError", "MappingProblem", "load_mapping_file"]

#: Tags of the attribute value forms (models.AttributeValue): pydantic puts them in error locations.
_TAGS = frozenset(
    {
        "<column name>",
        "<boolean constant>",
        "<integer constant>",
        "<value spec>",
        "<block>",
        "<entries>",
        "[key]",
    }
)
_CORE_PREFIX = "urn:ietf:params:scim:schemas:core:2.0:user:"
_FILTER = re.compile(r"\[[^\]]*\]")


@dataclass(frozen=True)
class MappingProblem:
    """One thing wrong with a mapping file.

    :param file: the mapping file, as given.
    :param key: where in the file (``source.first_name``, ``attributes.name.givenName``).
    :param line: the 1-based line of that key, when the file has it.
    :param message: what is wrong and how to fix it.
    """

    file: str
    key: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class MappingFileError(MappingError):
    """A mapping file that cannot be used; the message lists every problem found, one a line.

    :param problems: what is wrong, at least one.
    :ivar file: the mapping file.
    :ivar path: the key path of the first problem (``source.first_name``).
    :ivar line: the line of the first problem, when known.
    :ivar problems: every problem.
    """

    def __init__(self, problems: Sequence[MappingProblem]) -> None:
        if not problems:
            raise ValueError("a MappingFileError needs at least one problem")
        first = problems[0]
        super().__init__("\n".join(str(p) for p in problems), path=first.key)
        self.file = first.file
        self.line = first.line
        self.problems = tuple(problems)


def _display(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _normalise_scim(text: str) -> str:
    text = text.lower()
    if text.startswith(_CORE_PREFIX):
        text = text[len(_CORE_PREFIX) :]
    return _FILTER.sub("", text).replace(":", ".")


@dataclass(frozen=True)
class MappingFile:
    """A loaded mapping file: the HR export's layout and the SCIM attributes.

    :param source: the ``source`` block (Microsoft's CSV2SCIM layout when the file has none).
    :param attributes: the ``attributes`` block, checked against the SCIM schemas.
    :param path: the file, as given.
    :param description: the file's ``description``.
    :param has_source: whether the file declares a ``source`` block.
    """

    source: SourceSpec
    attributes: AttributeMapping
    path: str
    description: str | None = None
    has_source: bool = False
    _lines: KeyLines = field(default_factory=KeyLines, repr=False, compare=False)

    def line_of(self, key: Sequence[str | int]) -> int | None:
        """The line where ``key`` (``("source", "first_name")``) or its nearest parent is written."""
        return self._lines.line(key)

    def attribute_line(self, scim_path: str) -> int | None:
        """The line of an attribute, whichever form (flat or nested) it is written in."""
        return _attribute_line(self._lines, scim_path)

    def column_problems(self, columns: Iterable[str]) -> list[MappingProblem]:
        """Every column the mapping reads that ``columns`` (an export's header) lacks, with the nearest
        names the export has.

        The columns the pipeline adds (``UserPrincipalName``, ``MailNickname``) are not looked for.
        """
        available = list(dict.fromkeys(str(c) for c in columns))
        present = set(available)
        problems: list[MappingProblem] = []
        for key, column in self.source.column_fields().items():
            if column in present:
                continue
            parts: list[str | int] = ["source", *(int(p) if p.isdigit() else p for p in key.split("."))]
            if key == "status" and self.line_of(("source", "status", "column")) is not None:
                parts.append("column")
            message = f"the export has no column {column!r}{_nearest(column, available)}"
            if not self.has_source:
                message += (
                    " (this file has no source block, so the export is read in Microsoft's CSV2SCIM layout; "
                    "add source: {id: <your id column>, ...})"
                )
            problems.append(MappingProblem(self.path, _display(parts), self.line_of(parts), message))
        defaults = HrSchema()
        added = {defaults.upn, defaults.mail_nickname}
        for spec in self.attributes.attributes:
            for column in spec.columns:
                if column in present or column in added:
                    continue
                problems.append(
                    MappingProblem(
                        self.path,
                        f"attributes.{spec.path}",
                        self.attribute_line(str(spec.path)),
                        f"the export has no column {column!r}{_nearest(column, available)}",
                    )
                )
        return problems

    def check_columns(self, columns: Iterable[str]) -> None:
        """Raise :class:`MappingFileError` listing every column the mapping reads that ``columns`` lacks.

        :param columns: the export's header.
        """
        problems = self.column_problems(columns)
        if problems:
            raise MappingFileError(problems)


def _nearest(column: str, available: Sequence[str]) -> str:
    same_case = [c for c in available if c.lower() == column.lower()]
    near = same_case + [
        c for c in difflib.get_close_matches(column, available, n=3, cutoff=0.6) if c not in same_case
    ]
    if not near:
        lowered = {c.lower(): c for c in available}
        near = [lowered[c] for c in difflib.get_close_matches(column.lower(), list(lowered), n=3, cutoff=0.6)]
    return f"; nearest: {', '.join(map(repr, near[:3]))}" if near else ""


def _attribute_line(lines: KeyLines, scim_path: str) -> int | None:
    target = _normalise_scim(scim_path)
    best: tuple[int, int] | None = None  # (depth, line)
    for rel, line in lines.under(("attributes",)):
        written = ".".join(str(p) for p in rel if not isinstance(p, int))
        if _normalise_scim(written) == target and (best is None or len(rel) > best[0]):
            best = (len(rel), line)
    return best[1] if best is not None else lines.line(("attributes",))


def _parse(text: str, name: str) -> Any:
    if name.lower().endswith(".json"):
        return json.loads(text, object_pairs_hook=_reject_duplicate_json_keys)
    return yaml.load(text, Loader=_NoDuplicatesLoader)  # noqa: S506 - a SafeLoader subclass


def _pydantic_problems(file: str, exc: ValidationError, lines: KeyLines) -> list[MappingProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc: list[str | int] = [p for p in error["loc"] if not (isinstance(p, str) and p in _TAGS)]
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            model = _model_at(error["loc"][:-1])
            message = unknown_key_message(model, str(loc[-1])) if model is not None else "unknown key"
        elif error["type"] == "missing":
            message = "is required"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        line = lines.line(loc)
        problems.append(MappingProblem(file, _display(loc), line, message))
    return problems


def _attribute_problems(file: str, block: Mapping[str, Any], lines: KeyLines) -> list[MappingProblem]:
    """Check each attribute against the SCIM schemas on its own, so that every bad one is reported (the
    checks across attributes, such as the required ones, follow in :class:`AttributeMapping`)."""
    problems = []
    for key, value in block.items():
        try:
            for raw_path, raw_spec in _flatten({key: value}):
                _parse_spec(parse_path(raw_path), raw_spec)
        except MappingError as exc:
            problems.append(_scim_problem(file, exc, lines))
    return problems


def _scim_problem(file: str, exc: MappingError, lines: KeyLines) -> MappingProblem:
    """Locate what :class:`AttributeMapping` refused: an attribute by its SCIM path, else the block."""
    message = str(exc)
    scim_path = exc.path
    if scim_path and message.startswith(f"{scim_path!r}: "):
        return MappingProblem(
            file,
            f"attributes.{scim_path}",
            _attribute_line(lines, scim_path),
            message[len(f"{scim_path!r}: ") :],
        )
    if message.startswith("schemas"):
        return MappingProblem(file, "schemas", lines.line(("schemas",)), message)
    return MappingProblem(file, "attributes", lines.line(("attributes",)), message)


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model of the block at ``loc`` in a pydantic error location (tags kept)."""
    if loc and loc[-1] == "<value spec>":
        return ValueSpec
    return _BLOCKS.get(tuple(loc))


_BLOCKS: dict[tuple[str | int, ...], type[BaseModel]] = {
    (): MappingFileModel,
    ("source",): SourceSpec,
    ("source", "status"): StatusSpec,
    ("source", "dates"): DatesSpec,
    ("source", "upn"): UpnSpec,
}


def parse_mapping_text(text: str, file: str) -> tuple[Any, KeyLines]:
    """Parse a mapping file's text; raise :class:`MappingFileError` for a file that does not parse.

    :param text: the file's content.
    :param file: its name or path (JSON when it ends in ``.json``, else YAML).
    :return: the plain data and where its keys are written.
    """
    lines = key_lines(text)
    if lines.duplicates:
        raise MappingFileError(
            [
                MappingProblem(
                    file, _display(d.path), d.line, f"duplicate key (first written on line {d.first_line})"
                )
                for d in lines.duplicates
            ]
        )
    kind = "JSON" if file.lower().endswith(".json") else "YAML"
    try:
        data = _parse(text, file)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else getattr(exc, "lineno", None)
        raise MappingFileError([MappingProblem(file, "", line, f"not valid {kind}: {exc}")]) from exc
    except MappingError as exc:
        raise MappingFileError([MappingProblem(file, exc.path or "", None, str(exc))]) from exc
    if isinstance(data, Mapping) and "attributes" not in data:
        lines.bare = True
    return data, lines


def validate_mapping_data(data: Any, file: str, lines: KeyLines | None = None) -> MappingFile:
    """Check parsed mapping data against the models and the SCIM schemas.

    A file without an ``attributes`` key is read as its attributes block (the psd1-like form).

    :param data: the parsed file.
    :param file: the file's name, for messages.
    :param lines: where the keys are written (:func:`parse_mapping_text`).
    :raises MappingFileError: listing every problem of the structure, or the first the SCIM schemas find.
    """
    lines = lines if lines is not None else KeyLines()
    if data is None:
        raise MappingFileError([MappingProblem(file, "", None, "the file is empty")])
    if not isinstance(data, Mapping):
        raise MappingFileError(
            [MappingProblem(file, "", 1, f"a mapping file is a block of keys, got {type(data).__name__}")]
        )
    if "attributes" not in data:
        lines.bare = True
        data = {
            **{k: data[k] for k in ("description", "schemas") if k in data},
            "attributes": {k: v for k, v in data.items() if k not in ("description", "schemas")},
        }
    problems: list[MappingProblem] = []
    model: MappingFileModel | None = None
    try:
        model = MappingFileModel.model_validate(data)
    except ValidationError as exc:
        problems = _pydantic_problems(file, exc, lines)
    attributes: AttributeMapping | None = None
    if not any(p.key.startswith(("attributes", "schemas")) for p in problems):
        problems.extend(_attribute_problems(file, data["attributes"], lines))
        if not problems:
            try:
                attributes = AttributeMapping(data["attributes"], schemas=data.get("schemas"))
            except MappingError as exc:
                problems.append(_scim_problem(file, exc, lines))
    if problems or model is None or attributes is None:
        problems.sort(key=lambda p: p.line if p.line is not None else 0)
        raise MappingFileError(problems)
    source = model.source if model.source is not None else SourceSpec.csv2scim()
    return MappingFile(
        source=source,
        attributes=attributes,
        path=file,
        description=model.description,
        has_source=model.source is not None,
        _lines=lines,
    )


def load_mapping_file(path: str | os.PathLike[str] | Any) -> MappingFile:
    """Load and check a mapping file (YAML, or JSON when its name ends in ``.json``).

    :param path: a local path, an fsspec URL (``s3://bucket/hr_mapping.yaml``) or an ``ObjectStoragePath``.
    :return: the file's source block (or the CSV2SCIM layout) and its attribute mapping.
    :raises MappingFileError: (a :class:`~airflow_provider_entra.scim.MappingError`) naming the file, the
        key and its line, for every problem of the file's structure.
    :raises FileNotFoundError: when there is no such file.

    >>> mapping = load_mapping_file("dags/data/hr_mapping.yaml")  # doctest: +SKIP
    >>> mapping.source.to_hr_schema().worker_id  # doctest: +SKIP
    'WorkerID'
    """
    name = str(path)
    data_bytes = read_bytes(path)
    try:
        text = data_bytes.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MappingFileError([MappingProblem(name, "", None, f"not UTF-8 text: {exc}")]) from exc
    data, lines = parse_mapping_text(text, name)
    return validate_mapping_data(data, name, lines)
