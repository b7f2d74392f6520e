"""Check a run's inputs before anything reads them: every problem named after the Param that causes it.

A run's Params come from a form anybody with trigger rights can fill in, so an HR export path is only read
where the deployment allows (:func:`check_source_path`): without that, ``hr_path`` would open any file the
worker can read, and an error message could echo its first line. The allowed folders are a setting the
deployment controls (the example DAGs read the Variable ``entra_hr_source_roots``). Without it, the default
allows the example DAGs' ``data`` folder, ``$AIRFLOW_HOME/hr-exports`` and the staging root, and elsewhere
only files named like an export (``.csv``, ``.tsv``), outside hidden folders (``~/.ssh``, ``.aws``): a
credentials file, ``airflow.cfg`` or ``/etc/passwd`` is refused. Set the Variable to allow only your exports'
folders.

Pure standard library and fsspec: no Airflow import.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from airflow_provider_entra._fsio import fs_and_path, is_local

__all__ = [
    "InputError",
    "check_domain",
    "check_inputs",
    "check_source_path",
    "parse_roots",
]

#: A DNS name as Entra accepts for a UPN suffix: labels of letters, digits and hyphens, a letter TLD.
_DOMAIN = re.compile(r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class InputError(ValueError):
    """A run input (a Param) is unusable. ``param`` names it; the message says what to change."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"Param {param}: {message}")
        self.param = param


def parse_roots(value: str | Iterable[str] | None) -> list[str]:
    """Allowed roots from a setting: a JSON-ish list, or text separated by commas, semicolons or new lines."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip().strip("[]")
        parts = re.split(r"[,;\n]", text)
        return [p.strip().strip("'\"").strip() for p in parts if p.strip().strip("'\"").strip()]
    return [str(v).strip() for v in value if str(v).strip()]


def _canonical(path: Any) -> tuple[str, str]:
    """``(protocol, absolute path)``: local paths resolved (symlinks and ``..`` followed), URLs normalised."""
    fs, inner = fs_and_path(path)
    if is_local(fs):
        return "file", str(Path(inner).resolve())
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol, os.path.normpath("/" + str(inner).lstrip("/"))


#: Outside the allowed folders, the default lets through files named like an export, and only these.
EXPORT_SUFFIXES = (".csv", ".tsv")


def check_source_path(
    path: Any, roots: Iterable[Any], *, param: str = "hr_path", exports_elsewhere: bool = False
) -> None:
    """Refuse a source outside the allowed roots (compared after resolving symlinks and ``..``).

    :param path: the file asked for (local path, URL or ``ObjectStoragePath``).
    :param roots: the allowed folders (same forms).
    :param param: the Param named in the error.
    :param exports_elsewhere: also allow, anywhere, a file named like an export (:data:`EXPORT_SUFFIXES`)
        that is not in a hidden folder (the default when the deployment configured no roots).
    :raises InputError: when ``path`` is not allowed (the message lists the roots, never the file's content).
    """
    protocol, target = _canonical(path)
    allowed = [_canonical(root) for root in roots]
    for root_protocol, root in allowed:
        if root_protocol == protocol and (target == root or target.startswith(root.rstrip("/") + "/")):
            return
    parts = target.split("/")
    if (
        exports_elsewhere
        and target.lower().endswith(EXPORT_SUFFIXES)
        and not any(p.startswith(".") for p in parts[:-1] if p)
    ):
        return
    shown = ", ".join(f"{p}://{r}" if p != "file" else r for p, r in allowed) or "(none)"
    elsewhere = f", or a {'/'.join(EXPORT_SUFFIXES)} file outside hidden folders" if exports_elsewhere else ""
    raise InputError(
        param,
        f"{path} is not where HR exports may be read from ({shown}{elsewhere}). Put the export there, or "
        "ask the deployment's administrators to add its folder to the Variable entra_hr_source_roots.",
    )


def check_domain(domain: Any, *, param: str = "upn_domain") -> str:
    """The domain, lower-cased, or an :class:`InputError` naming the Param."""
    text = str(domain or "").strip().lower() if isinstance(domain, str) else ""
    if not _DOMAIN.match(text):
        raise InputError(param, f"{domain!r} is not a domain name like 'contoso.com'")
    return text


def _check_file(path: Any, param: str, what: str) -> None:
    fs, inner = fs_and_path(path)
    if not fs.exists(inner):
        raise InputError(param, f"{what} {path} does not exist")
    if fs.isdir(inner):
        raise InputError(param, f"{path} is a folder; give the {what} file itself")


def check_inputs(
    params: Mapping[str, Any],
    *,
    roots: Iterable[Any],
    source_params: Iterable[str] = ("hr_path",),
    file_params: Mapping[str, str] | None = None,
    domain_params: Iterable[str] = ("upn_domain",),
    exports_elsewhere: bool = False,
) -> None:
    """Check the Params a run reads files and names from; raise on the first unusable one.

    :param params: the run's Params.
    :param roots: the folders source files may be read from (:func:`check_source_path`).
    :param exports_elsewhere: see :func:`check_source_path`.
    :param source_params: Params naming an HR source file (checked against ``roots``, then as files).
    :param file_params: other Params naming a file that must exist, with what it is (``{"mapping_path":
        "attribute mapping"}``).
    :param domain_params: Params holding a UPN domain.
    :raises InputError: naming the Param and what to change.
    """
    roots = list(roots)
    for name in source_params:
        value = params.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise InputError(name, f"expected a path or URL, got {type(value).__name__}")
        check_source_path(value, roots, param=name, exports_elsewhere=exports_elsewhere)
        _check_file(value, name, "HR export")
    for name, what in (file_params or {}).items():
        value = params.get(name)
        if not isinstance(value, str) or not value.strip():
            raise InputError(name, f"expected the path of the {what}, got {value!r}")
        _check_file(value, name, what)
    for name in domain_params:
        if name in params:
            check_domain(params[name], param=name)
