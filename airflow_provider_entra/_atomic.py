"""Atomic replacement of a local file: one implementation for staging, pipeline, report and snapshot.

A reader of the target sees either the previous content or the new content, never half a file, and a crash
leaves the previous file in place: the data goes to a temporary file beside the target (same directory, so
the same filesystem), is flushed and fsync'd, then renamed over the target with :func:`os.replace`. The
temporary file is removed if anything fails before the rename.

Pure standard library: no Airflow import, no network.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes"]


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Replace the local file ``target`` with ``data`` atomically; missing parent directories are created.

    The temporary file is created by :func:`tempfile.mkstemp` as ``.<name>.<random>.tmp`` in the target's
    directory, so the file written has mode ``0600`` (it may hold personal data).

    :param target: the local file to write.
    :param data: the complete new content.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
