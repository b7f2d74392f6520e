"""Owner-only, atomic writes of local files: one implementation for staging, pipeline, report and snapshot.

A reader of the target sees either the previous content or the new content, never half a file, and a crash
leaves the previous file in place: the data goes to a temporary file beside the target (same directory, so
the same filesystem), is flushed and fsync'd, then renamed over the target with :func:`os.replace`. The
temporary file is removed if anything fails before the rename.

Staged files hold personal data (names, addresses, phone numbers), so whatever the process umask, the files
written here are ``0600`` and the folders created on the way ``0700`` (:data:`PRIVATE_FILE_MODE`,
:data:`PRIVATE_DIR_MODE`). Folders that already exist are left as they are: tightening a folder the process
did not create (``/tmp``, a shared mount) is not this module's call.

Pure standard library: no Airflow import, no network.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "atomic_write_bytes",
    "open_private_append",
    "private_mkdir",
]

#: Mode of every staged file: read and write for the owner only.
PRIVATE_FILE_MODE = 0o600
#: Mode of every folder the staging helpers create: the owner only.
PRIVATE_DIR_MODE = 0o700


def private_mkdir(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each with mode ``0700`` whatever the umask.

    Existing folders keep their mode. Safe against a concurrent creator (``FileExistsError`` is ignored).

    :param folder: the local folder that must exist.
    """
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, PRIVATE_DIR_MODE)
        except FileExistsError:
            if not path.is_dir():
                raise
            continue
        # The umask may have removed owner bits from the mode asked for; set it exactly.
        if stat.S_IMODE(os.stat(path).st_mode) != PRIVATE_DIR_MODE:
            os.chmod(path, PRIVATE_DIR_MODE)


def atomic_write_bytes(target: Path, data: bytes | Iterable[bytes]) -> None:
    """Replace the local file ``target`` with ``data`` atomically; missing parent folders are created.

    The temporary file is created by :func:`tempfile.mkstemp` as ``.<name>.<random>.tmp`` in the target's
    folder, so the file written has mode ``0600`` (it may hold personal data); missing parent folders are
    created ``0700`` (:func:`private_mkdir`).

    :param target: the local file to write.
    :param data: the complete new content, or its pieces in order (written as they come: a large file need
        not be held in memory whole).
    """
    private_mkdir(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, (bytes, bytearray, memoryview)):
                handle.write(data)
            else:
                handle.writelines(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def open_private_append(target: Path) -> IO[bytes]:
    """Open the local file ``target`` for appending, creating it (and its folders) owner-only.

    A new file is created with mode ``0600`` whatever the umask; an existing file of this user that is
    readable by others (written by an older version) is narrowed to ``0600``.

    :param target: the local file.
    :return: a binary file object positioned at the end; the caller closes it.
    """
    private_mkdir(target.parent)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        info = os.fstat(fd)
        if stat.S_IMODE(info.st_mode) & 0o077 and info.st_uid == os.getuid():
            os.fchmod(fd, stat.S_IMODE(info.st_mode) & 0o700)
        return os.fdopen(fd, "ab")
    except BaseException:
        os.close(fd)
        raise
