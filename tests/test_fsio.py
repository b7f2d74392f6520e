"""The one I/O module: local paths, URLs and ObjectStoragePath alike; atomic, owner-only on a local disk."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_entra import _fsio


@pytest.fixture(params=["local", "file-url", "memory-url", "object-storage-path"])
def folder(request: pytest.FixtureRequest, tmp_path: Path):
    """One folder in each form the staging root may take."""
    if request.param == "local":
        return str(tmp_path / "run")
    if request.param == "file-url":
        return f"file://{tmp_path}/run"
    if request.param == "memory-url":
        return f"memory://fsio-test/{tmp_path.name}/run"
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    return ObjectStoragePath(f"memory://fsio-test/{tmp_path.name}/osp")  # its .fs raises: fsspec resolves it


def test_frames_round_trip_in_every_path_form(folder) -> None:
    frame = pd.DataFrame({"WorkerID": ["00123", "9"], "n": [1, 2]})
    parquet = _fsio.write_frame(frame, _fsio.join(folder, "a.parquet"))
    pd.testing.assert_frame_equal(_fsio.read_frame(parquet), frame)
    csv = _fsio.write_frame(frame, _fsio.join(folder, "a.csv"))
    assert _fsio.read_frame(csv)["WorkerID"].tolist() == ["00123", "9"]  # text: leading zeros kept
    assert _fsio.read_bytes(csv).startswith(b"WorkerID,n\n")
    with pytest.raises(ValueError, match="unsupported file type .xlsx"):
        _fsio.read_frame(_fsio.join(folder, "a.xlsx"))


def test_json_lines_append_and_skip_a_torn_line(folder) -> None:
    path = _fsio.join(folder, "manifest.jsonl")
    assert _fsio.read_jsonl(path, missing_ok=True) == []
    _fsio.append_jsonl(path, [{"seq": 0}])
    _fsio.write_bytes(path, _fsio.read_bytes(path) + b'{"seq": 1, "torn')  # a writer killed mid-line
    _fsio.append_jsonl(path, [{"seq": 2}])
    assert _fsio.read_jsonl(path) == [{"seq": 0}, {"seq": 2}]
    _fsio.write_jsonl(path, [{"seq": 3}])
    assert json.loads(_fsio.read_bytes(path)) == {"seq": 3}


def test_join_keeps_the_form_of_the_base(tmp_path: Path) -> None:
    assert _fsio.join("s3://b/root/", "d", "/r/") == "s3://b/root/d/r"
    assert _fsio.join(str(tmp_path), "d") == str(tmp_path / "d")
    assert _fsio.join(tmp_path, "d") == tmp_path / "d"
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    joined = _fsio.join(ObjectStoragePath(f"file://{tmp_path}"), "d", "e")
    assert isinstance(joined, ObjectStoragePath) and str(joined) == f"file://{tmp_path}/d/e"


def test_local_path_tells_this_machine_from_an_object_store(tmp_path: Path) -> None:
    assert _fsio.local_path(f"file://{tmp_path}/x") == tmp_path / "x"
    assert _fsio.local_path(tmp_path / "x") == tmp_path / "x"
    assert _fsio.local_path("memory://bucket/x") is None


def test_local_writes_are_atomic_and_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "file.parquet"
    _fsio.write_frame(pd.DataFrame({"a": [1]}), f"file://{target}")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert [p.name for p in target.parent.iterdir()] == ["file.parquet"]  # no temporary file left


def test_bytes_written_in_pieces_and_columns_read_alone(folder) -> None:
    path = _fsio.join(folder, "requests.jsonl")
    _fsio.write_bytes(path, (piece for line in (b"{}", b"[]") for piece in (line, b"\n")))
    assert _fsio.read_bytes(path) == b"{}\n[]\n"
    frame_path = _fsio.join(folder, "delta.parquet")
    _fsio.write_frame(pd.DataFrame({"a": ["1"], "b": ["2"], "c": ["3"]}), frame_path)
    assert _fsio.read_columns(frame_path, ["c", "missing", "a"]).to_dict("list") == {"c": ["3"], "a": ["1"]}


def test_rows_are_read_a_batch_at_a_time(folder) -> None:
    path = _fsio.join(folder, "mapped.parquet")
    frame = pd.DataFrame({"id": [str(n) for n in range(10)], "on": [n % 2 == 0 for n in range(10)]})
    _fsio.write_frame(frame.astype({"on": "boolean"}), path)
    rows = _fsio.read_rows(path, [1, 4, 5, 9], batch_rows=3)
    assert rows.index.tolist() == [1, 4, 5, 9] and rows["id"].tolist() == ["1", "4", "5", "9"]
    assert rows.dtypes.to_dict() == _fsio.read_frame(path).dtypes.to_dict()
    assert _fsio.read_rows(path, []).columns.tolist() == ["id", "on"]
    assert _fsio.read_rows(path, range(10)).equals(_fsio.read_frame(path))
