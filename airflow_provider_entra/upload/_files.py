"""Whole-file access for the upload layer: :mod:`airflow_provider_entra._fsio`, plus paths whose scheme
Airflow registers no filesystem for (an ``ObjectStoragePath("memory://...")`` raises on ``.fs``), which
fsspec resolves from their URL."""

from __future__ import annotations

from typing import Any

from airflow_provider_entra._fsio import fs_and_path, is_local, write_bytes_on

__all__ = ["exists", "is_local", "read_bytes", "resolve", "write_bytes", "write_bytes_on"]


def resolve(path: Any) -> tuple[Any, str]:
    """``(filesystem, path inside it)``; see :func:`airflow_provider_entra._fsio.fs_and_path`."""
    try:
        return fs_and_path(path)
    except ValueError:  # "No filesystem registered for scheme ...": fsspec knows it by the URL
        import fsspec

        return fsspec.core.url_to_fs(str(path))


def exists(path: Any) -> bool:
    """Whether ``path`` exists."""
    fs, inner = resolve(path)
    return bool(fs.exists(inner))


def read_bytes(path: Any) -> bytes:
    """The whole content of ``path``."""
    fs, inner = resolve(path)
    with fs.open(inner, "rb") as handle:
        return handle.read()


def write_bytes(path: Any, data: bytes) -> None:
    """Write ``data`` whole: atomically and owner-only on a local disk, as one upload on an object store."""
    write_bytes_on(*resolve(path), data)
