"""Whole-file reads and writes on a local path, an fsspec URL or an ``ObjectStoragePath``-like object.

One place for the path resolution the pure layers share (``provisioning.pipeline`` and ``.snapshot``).
Local files are replaced atomically (:func:`~airflow_provider_entra._atomic.atomic_write_bytes`), owner-only
(files ``0600``, folders created ``0700``: they hold personal data); on object stores an object is uploaded
whole. No Airflow import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from airflow_provider_entra._atomic import atomic_write_bytes

__all__ = ["exists", "fs_and_path", "is_local", "read_bytes", "write_bytes", "write_bytes_on"]


def fs_and_path(path: Any) -> tuple[Any, str]:
    """``(filesystem, path inside it)`` for a local path, a URL, or an object with ``fs`` and ``path``."""
    fs = getattr(path, "fs", None)
    if fs is not None and hasattr(path, "path"):
        return fs, str(path.path)
    import fsspec

    text = os.fspath(path)
    if "://" in text:
        return fsspec.core.url_to_fs(text)
    return fsspec.filesystem("file"), str(Path(text).expanduser().resolve())


def is_local(fs: Any) -> bool:
    """Whether ``fs`` is the local filesystem."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def read_bytes(path: Any) -> bytes:
    """The whole content of ``path``."""
    fs, inner = fs_and_path(path)
    with fs.open(inner, "rb") as handle:
        return handle.read()


def exists(path: Any) -> bool:
    """Whether ``path`` exists."""
    fs, inner = fs_and_path(path)
    return bool(fs.exists(inner))


def write_bytes(path: Any, data: bytes) -> None:
    """Write ``data`` to ``path`` whole: atomically and owner-only (``0600``) on a local disk, as one upload
    on an object store."""
    fs, inner = fs_and_path(path)
    write_bytes_on(fs, inner, data)


def write_bytes_on(fs: Any, inner: str, data: bytes) -> None:
    """:func:`write_bytes` on a filesystem already resolved (keeps the credentials an ``ObjectStoragePath``
    carries in its ``fs``).

    :param fs: the fsspec filesystem (:func:`fs_and_path`).
    :param inner: the path inside it.
    :param data: the complete content.
    """
    if not is_local(fs):
        parent = inner.rpartition("/")[0]
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(inner, "wb") as handle:
            handle.write(data)
        return
    atomic_write_bytes(Path(inner), data)
