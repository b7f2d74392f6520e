"""The one place files are read and written: a local path, an fsspec URL or an ``ObjectStoragePath``.

Every layer goes through here, the pure ones (``provisioning/``, ``upload/``) and the Airflow-bound ones
(operators, sensors, triggers, through :mod:`airflow_provider_entra.staging`), so a staged file is read and
written the same way everywhere, on one machine (``/data/entra/...``, ``file://...``) or across workers
that share an object store (``s3://``, ``abfs://``, ``gs://``...).

* :func:`fs_and_path` resolves a path to ``(filesystem, path inside it)``; :func:`local_path` says whether it
  is on this machine's disk.
* :func:`read_bytes`, :func:`write_bytes`, :func:`exists`: whole files. On a local disk a write goes to a
  temporary file beside the target, is fsync'd and renamed over it (:mod:`airflow_provider_entra._atomic`),
  so a reader never sees half a file; on an object store the object is uploaded whole (stores publish an
  object only once its upload completes).
* :func:`read_frame`, :func:`write_frame`: Parquet, or CSV as text (ids keep their leading zeros), by suffix.
* :func:`append_jsonl`, :func:`read_jsonl`, :func:`write_jsonl`: JSON Lines such as the upload manifest. A
  local append is fsync'd before it returns; object stores cannot append, so the object is rewritten whole.
  :func:`read_jsonl` skips a torn last line (a process killed mid-write) instead of failing.
* :func:`join`: ``base / part`` for each of those path forms, keeping the form.

Staged files hold personal data: on a local disk every file written here is ``0600`` and every folder
created on the way ``0700``, whatever the umask. Object stores have no such modes: restrict the bucket or
container instead (``docs/deployment.md``). No Airflow import.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from airflow_provider_entra._atomic import atomic_write_bytes, open_private_append

__all__ = [
    "FRAME_SUFFIXES",
    "LOCAL_PROTOCOLS",
    "append_jsonl",
    "exists",
    "fs_and_path",
    "is_local",
    "join",
    "local_path",
    "read_bytes",
    "read_columns",
    "read_frame",
    "read_jsonl",
    "read_rows",
    "write_bytes",
    "write_bytes_on",
    "write_frame",
    "write_jsonl",
]

log = logging.getLogger(__name__)

#: File suffixes :func:`read_frame` and :func:`write_frame` understand.
FRAME_SUFFIXES = (".parquet", ".csv")
#: Protocols (of an fsspec filesystem or an ``ObjectStoragePath``) that name this machine's disk.
LOCAL_PROTOCOLS = ("file", "local", "")


def fs_and_path(path: Any) -> tuple[Any, str]:
    """``(filesystem, path inside it)`` for a local path, a URL, or an object with ``fs`` and ``path``.

    An ``ObjectStoragePath`` whose scheme Airflow registers no filesystem for (``memory://``: its ``fs``
    raises) is resolved by fsspec from its URL.
    """
    try:
        fs = getattr(path, "fs", None)
    except ValueError:  # "No filesystem registered for scheme ..."
        fs = None
    import fsspec

    if fs is not None and hasattr(path, "path"):
        return fs, str(path.path)
    text = str(path) if hasattr(path, "path") else os.fspath(path)
    if "://" in text:
        return fsspec.core.url_to_fs(text)
    return fsspec.filesystem("file"), str(Path(text).expanduser().resolve())


def is_local(fs: Any) -> bool:
    """Whether the filesystem ``fs`` (:func:`fs_and_path`) is this machine's disk."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in LOCAL_PROTOCOLS


def local_path(path: Any) -> Path | None:
    """The local file behind ``path``, or ``None`` when it lives in an object store."""
    fs, inner = fs_and_path(path)
    return Path(inner) if is_local(fs) else None


def join(base: Any, *parts: str) -> Any:
    """``base / part / ...`` for a local path, a URL or an ``ObjectStoragePath`` (same type back: text for
    text, a ``Path`` for a ``Path``, an ``ObjectStoragePath`` for one)."""
    if isinstance(base, str):
        if "://" in base:
            return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
        return str(Path(base, *parts))
    if isinstance(base, os.PathLike) and not hasattr(base, "protocol"):
        return Path(base, *parts)
    out = base
    for part in parts:
        out = out / part
    return out


def exists(path: Any) -> bool:
    """Whether ``path`` exists."""
    fs, inner = fs_and_path(path)
    return bool(fs.exists(inner))


def read_bytes(path: Any) -> bytes:
    """The whole content of ``path``."""
    fs, inner = fs_and_path(path)
    with fs.open(inner, "rb") as handle:
        return handle.read()


def write_bytes(path: Any, data: bytes | Iterable[bytes]) -> Any:
    """Write ``data`` (bytes, or its pieces in order) to ``path`` whole: atomically and owner-only
    (``0600``) on a local disk, as one upload on an object store. Returns ``path``."""
    write_bytes_on(*fs_and_path(path), data)
    return path


def write_bytes_on(fs: Any, inner: str, data: bytes | Iterable[bytes]) -> None:
    """:func:`write_bytes` on a filesystem already resolved (keeps the credentials an ``ObjectStoragePath``
    carries in its ``fs``).

    :param fs: the fsspec filesystem (:func:`fs_and_path`).
    :param inner: the path inside it.
    :param data: the complete content, or its pieces in order (written as they come).
    """
    if is_local(fs):
        atomic_write_bytes(Path(inner), data)
        return
    parent = inner.rpartition("/")[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(inner, "wb") as handle:
        if isinstance(data, (bytes, bytearray, memoryview)):
            handle.write(data)
        else:
            for piece in data:
                handle.write(piece)


def _suffix(path: Any) -> str:
    name = str(path).rstrip("/").rpartition("/")[2].lower()
    suffix = os.path.splitext(name)[1]
    if suffix not in FRAME_SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {suffix or '(none)'}; use one of {FRAME_SUFFIXES}")
    return suffix


def _parquet_source(path: Any) -> Any:
    """What Arrow reads a Parquet file from: the local file itself (read as it is decoded: faster, and no
    copy of the whole file in memory), else the object's bytes."""
    local = local_path(path)
    return str(local) if local is not None else io.BytesIO(read_bytes(path))


def _read_parquet(
    path: Any, *, columns: list[str] | None = None, read_dictionary: list[str] | None = None
) -> pd.DataFrame:
    """A Parquet file as a frame, each column in one Arrow piece per row group (a million rows written by
    pandas: one piece), not in the reader's 128 Ki-row batches: a take from a column in pieces joins them
    first, so taking blocks of rows from a whole file would cost a copy of the column per block."""
    import pyarrow.parquet as pq

    source = _parquet_source(path)
    parquet = pq.ParquetFile(source)
    as_categories = [c for c in read_dictionary or () if c in parquet.schema_arrow.names]
    if as_categories:  # columns the file lacks are not asked for (the reader would refuse them)
        if isinstance(source, io.BytesIO):
            source.seek(0)
        parquet = pq.ParquetFile(source, read_dictionary=as_categories)
    return parquet.read(columns=columns).to_pandas()


def read_frame(path: Any, **kwargs: Any) -> pd.DataFrame:
    """Read a ``.parquet`` file, or a ``.csv`` file as text (``dtype=str``, empty cells stay empty text, a
    UTF-8 BOM is dropped), so ids such as ``00123`` keep their leading zeros.

    :param path: local path, URL or ``ObjectStoragePath``.
    :param kwargs: for Parquet ``columns`` and ``read_dictionary`` (see :class:`pyarrow.parquet.ParquetFile`);
        for CSV, passed to :func:`pandas.read_csv`.
    """
    suffix = _suffix(path)
    if suffix == ".parquet":
        return _read_parquet(path, **kwargs)
    data = io.BytesIO(read_bytes(path))
    options: dict[str, Any] = {"dtype": str, "keep_default_na": False, "encoding": "utf-8-sig"}
    options.update(kwargs)
    return pd.read_csv(data, **options)


def read_columns(path: Any, columns: Iterable[str]) -> pd.DataFrame:
    """Only the listed ``columns`` of a Parquet file, those it has (the others are not decoded at all).

    :param path: local path, URL or ``ObjectStoragePath`` of a ``.parquet`` file.
    :param columns: the columns wanted, in the order wanted.
    """
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(_parquet_source(path))
    present = set(parquet.schema_arrow.names)
    return parquet.read(columns=[c for c in columns if c in present]).to_pandas()


def read_rows(path: Any, positions: Any, *, batch_rows: int = 65_536) -> pd.DataFrame:
    """The rows at ``positions`` (0-based, increasing) of a Parquet file written without its index, every
    column, indexed by those positions; decoded a batch at a time, so memory holds one batch and the rows
    kept, not the whole file.

    :param path: local path, URL or ``ObjectStoragePath`` of a ``.parquet`` file.
    :param positions: the rows wanted, in increasing order.
    :param batch_rows: rows decoded at a time.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    wanted = np.asarray(positions, dtype=np.int64)
    parquet = pq.ParquetFile(_parquet_source(path))
    if len(wanted) == parquet.metadata.num_rows:  # every row: the file as it is
        frame = parquet.read().to_pandas()
        frame.index = pd.Index(wanted)
        return frame
    kept, start = [], 0
    batches = parquet.iter_batches(batch_size=batch_rows) if len(wanted) else iter(())
    for batch in batches:
        if start > wanted[-1]:
            break
        stop = start + batch.num_rows
        lo, hi = np.searchsorted(wanted, [start, stop])
        if hi - lo == batch.num_rows:  # every row of the batch: kept as decoded, no copy
            kept.append(batch)
        elif hi > lo:
            kept.append(batch.take(pa.array(wanted[lo:hi] - start)))
        start = stop
    table = pa.Table.from_batches(kept, schema=parquet.schema_arrow)
    frame = table.to_pandas()
    frame.index = pd.Index(wanted)
    return frame


def write_frame(frame: pd.DataFrame, path: Any, *, index: bool = False) -> Any:
    """Write ``frame`` as Parquet or CSV (by suffix; CSV in UTF-8 with ``\\n`` line ends) with
    :func:`write_bytes`. Returns ``path``.

    :param frame: the data.
    :param path: ``.parquet`` or ``.csv`` target.
    :param index: also write the index.
    """
    buffer = io.BytesIO()
    if _suffix(path) == ".parquet":
        frame.to_parquet(buffer, index=index)
    else:
        buffer.write(frame.to_csv(index=index, lineterminator="\n").encode("utf-8"))
    return write_bytes(path, buffer.getvalue())


def _dump(record: Mapping[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)


def append_jsonl(path: Any, records: Iterable[Mapping[str, Any]]) -> Any:
    """Append JSON records, one per line; on a local disk the lines are flushed and fsync'd before return,
    and a new file is created ``0600``. Returns ``path``.

    :param path: the JSON Lines file (created if missing).
    :param records: JSON-serialisable mappings.
    """
    data = "".join(_dump(record) + "\n" for record in records).encode("utf-8")
    fs, inner = fs_and_path(path)
    if not is_local(fs):
        existing = read_bytes(path) if fs.exists(inner) else b""
        if existing and not existing.endswith(b"\n"):
            existing += b"\n"
        write_bytes_on(fs, inner, existing + data)
        return path
    with open_private_append(Path(inner)) as handle:
        if handle.tell() > 0 and not _ends_with_newline(Path(inner)):
            # A torn line from a killed writer: finish it so the next record starts on its own line.
            handle.write(b"\n")
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def write_jsonl(path: Any, records: Iterable[Mapping[str, Any]]) -> Any:
    """Write JSON records, one per line, replacing the file (:func:`write_bytes`). Returns ``path``."""
    return write_bytes(path, "".join(_dump(record) + "\n" for record in records).encode("utf-8"))


def read_jsonl(path: Any, *, missing_ok: bool = False) -> list[Any]:
    """Read a JSON Lines file; blank lines and unparseable lines (a torn write) are skipped with a warning.

    :param path: the file.
    :param missing_ok: return ``[]`` when the file does not exist instead of raising ``FileNotFoundError``.
    """
    if missing_ok and not exists(path):
        return []
    records = []
    for number, line in enumerate(read_bytes(path).decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            log.warning("%s: skipping line %d, not valid JSON (a torn write?)", path, number)
    return records
