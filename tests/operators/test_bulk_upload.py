"""EntraBulkUploadOperator against the emulator: pacing, managers first, resume after SIGKILL, inputs."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from _csv2scim import MAPPING
from airflow.models.xcom import XComModel
from airflow.sdk import ObjectStoragePath
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.utils.session import create_session
from airflow.utils.state import TaskInstanceState

from airflow_provider_entra._constants import BULK_REQUEST_SCHEMA, CORE_USER_SCHEMA
from airflow_provider_entra.exceptions import EntraPayloadRejectedError
from airflow_provider_entra.hooks.entra import EntraHook
from airflow_provider_entra.operators.bulk_upload import (
    EXTERNAL_IDS_NAME,
    MANIFEST_NAME,
    REFUSED_NAME,
    REJECTED_NAME,
    EntraBulkUploadOperator,
)
from airflow_provider_entra.operators.job_health import EntraJobHealthOperator
from airflow_provider_entra.scim import AttributeMapping, map_records
from airflow_provider_entra.staging import read_jsonl
from airflow_provider_entra.upload.progress import format_progress

CHILD = Path(__file__).with_name("_upload_child.py")


def hr_frame(n: int) -> pd.DataFrame:
    """Synthetic HR rows in CSV2SCIM layout: a 10-ary management tree under worker 1000 (CEO)."""
    return pd.DataFrame(
        {
            "WorkerID": [str(1000 + i) for i in range(n)],
            "WorkerStatus": ["Active"] * n,
            "UserID": [f"user{i}@contoso.com" for i in range(n)],
            "FirstName": [f"First{i}" for i in range(n)],
            "LastName": [f"Last{i}" for i in range(n)],
            "FullName": [f"First{i} Last{i}" for i in range(n)],
            "Department": ["Sales"] * n,
            "ManagerID": [""] + [str(1000 + (i - 1) // 10) for i in range(1, n)],
        }
    )


def stage(tmp_path: Path, frame: pd.DataFrame, name: str = "hr.parquet") -> Path:
    folder = tmp_path / "run"
    folder.mkdir(exist_ok=True)
    path = folder / name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path)
    return path


def upload(path: Path | str, run_id: str = "manual__test", **kwargs) -> dict:
    operator = EntraBulkUploadOperator(task_id="upload", input_path=str(path), **kwargs)
    return operator.execute({"run_id": run_id})


def bulk_uploads(emulator) -> int:
    """bulkUpload requests the emulator accepted (202)."""
    return emulator.stats()["status"].get("bulkUpload:202", 0)


# --- acceptance: dag.test() ---------------------------------------------------------------------------------


def test_5000_records_with_default_limits_no_429_every_record_provisioned(airflow_db, entra_env, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    emulator = entra_env
    records = 5000
    path = stage(tmp_path, hr_frame(records))
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = DagBag(dag_folder=str(folder / "entra_test_upload.py")).get_dag("entra_test_upload")

    started = time.monotonic()
    dag_run = dag.test(run_conf={"input_path": str(path), "mapping": MAPPING})
    elapsed = time.monotonic() - started

    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states == {"preflight": TaskInstanceState.SUCCESS, "upload": TaskInstanceState.SUCCESS}
    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dag_run.run_id, dag_ids=dag.dag_id, task_ids="upload", key="return_value"
            )
        ).one()
        summary = XComModel.deserialize_value(row)
    requests = 1 + 1 + 2 + 20 + 78  # per stage: ceil(stage size / 50)
    assert summary["records"] == records
    assert summary["requests"] == requests and summary["sent_requests"] == requests
    assert summary["stages"] == [1, 10, 100, 1000, 3889]
    assert summary["request_ids_total"] == requests and len(summary["request_ids"]) == requests
    assert len(json.dumps(summary)) < 10_000  # small XCom: no records in it

    stats = emulator.stats()
    assert stats["throttled_total"] == 0, stats["throttled"]
    assert stats["status"].get("bulkUpload:429", 0) == 0
    assert bulk_uploads(emulator) == requests
    emulator.process()
    users = emulator.users()
    assert len(users) == records
    assert {u["employeeId"] for u in users} == {str(1000 + i) for i in range(records)}
    # Managers first: every manager reference resolved in this one run.
    assert sum(1 for u in users if u["managerEmployeeId"]) == records - 1
    print(f"\n5,000 records: {requests} requests, 0 x 429, dag.test {elapsed:.1f} s")


# --- resume after SIGKILL -----------------------------------------------------------------------------------


def test_killed_upload_resumes_and_resends_at_most_one_request(entra_env, tmp_path):
    emulator = entra_env
    records = 3000
    path = stage(tmp_path, hr_frame(records))
    mapping_path = tmp_path / "mapping.json"
    mapping_path.write_text(json.dumps(MAPPING))
    manifest = path.parent / MANIFEST_NAME
    command = [sys.executable, str(CHILD), str(path), str(mapping_path), "manual__killed"]

    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    kill_after = 45  # of 1+1+2+20+38 = 62 requests: past the first burst, while paced at 8 calls/s
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if manifest.exists() and len(manifest.read_text().splitlines()) >= kill_after:
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert child.wait(30) == -signal.SIGKILL, "the upload finished before it could be killed"
    receipts_before = len(read_jsonl(manifest))
    assert kill_after <= receipts_before < 62

    retry = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert retry.returncode == 0, retry.stderr[-3000:]
    summary = json.loads(retry.stdout.strip().splitlines()[-1])

    assert summary["requests"] == 62
    assert summary["resumed_requests"] == receipts_before
    assert summary["sent_requests"] == 62 - receipts_before
    accepted = bulk_uploads(emulator)
    assert summary["requests"] <= accepted <= summary["requests"] + 1
    lines = read_jsonl(manifest)
    assert sorted(line["seq"] for line in lines) == list(range(62))  # each request recorded once
    emulator.process()
    assert len(emulator.users()) == records
    print(
        f"\nkilled after {receipts_before} receipts; emulator accepted {accepted} bulkUploads for 62 requests"
    )


def test_retried_task_with_a_complete_manifest_sends_nothing(entra_env, tmp_path):
    path = stage(tmp_path, hr_frame(120))
    first = upload(path, mapping=MAPPING)
    again = upload(path, mapping=MAPPING)
    # Stages of 1, 10, 100 and 9 records: 1 + 1 + 2 + 1 requests.
    assert first["sent_requests"] == 5 and again["sent_requests"] == 0 and again["resumed_requests"] == 5
    assert again["request_ids"] == first["request_ids"]
    assert again["first_submit"] == first["first_submit"]
    assert bulk_uploads(entra_env) == 5
    # Another run (another run id, so other bulkIds) is a new upload, not a resume.
    other = upload(path, run_id="manual__other", mapping=MAPPING)
    assert other["sent_requests"] == 5 and other["resumed_requests"] == 0


def test_acceptance_times_reach_the_manifest_the_summary_and_the_ids_file(entra_env, tmp_path):
    path = stage(tmp_path, hr_frame(120))
    before = datetime.now(timezone.utc).replace(microsecond=0)
    summary = upload(path, mapping=MAPPING)
    after = datetime.now(timezone.utc)
    lines = read_jsonl(path.parent / MANIFEST_NAME)
    accepted = {line["seq"]: datetime.fromisoformat(line["accepted_at"]) for line in lines}
    assert len(accepted) == 5
    assert all(before <= stamp <= after and stamp.tzinfo is not None for stamp in accepted.values())
    assert datetime.fromisoformat(summary["first_accepted"]) == min(accepted.values())
    assert datetime.fromisoformat(summary["last_accepted"]) == max(accepted.values())

    ids = pd.read_parquet(path.parent / EXTERNAL_IDS_NAME)
    assert str(ids["accepted_at"].dtype).startswith("datetime64") and ids["accepted_at"].notna().all()
    by_record = {
        ext: datetime.fromisoformat(line["accepted_at"]) for line in lines for ext in line["external_ids"]
    }
    assert len(ids) == 120
    for row in ids.itertuples(index=False):
        assert row.accepted_at.to_pydatetime() == by_record[row.externalId]

    # A retried task resumes: the acceptance times are the first try's, not the retry's clock.
    time.sleep(1.1)
    again = upload(path, mapping=MAPPING)
    assert again["sent_requests"] == 0
    assert (again["first_accepted"], again["last_accepted"]) == (
        summary["first_accepted"],
        summary["last_accepted"],
    )
    pd.testing.assert_frame_equal(pd.read_parquet(path.parent / EXTERNAL_IDS_NAME), ids)


def test_a_manifest_without_acceptance_times_leaves_them_unknown(entra_env, tmp_path):
    """Manifests written before acceptance times existed (or 202s without a Date) resume as unknown."""
    path = stage(tmp_path, hr_frame(12))
    upload(path, mapping=MAPPING)
    manifest = path.parent / MANIFEST_NAME
    lines = read_jsonl(manifest)
    manifest.write_text(
        "".join(json.dumps({k: v for k, v in line.items() if k != "accepted_at"}) + "\n" for line in lines)
    )
    again = upload(path, mapping=MAPPING)
    assert again["sent_requests"] == 0 and again["first_accepted"] is None and again["last_accepted"] is None
    ids = pd.read_parquet(path.parent / EXTERNAL_IDS_NAME)
    assert len(ids) == 12 and ids["accepted_at"].isna().all()


def test_a_torn_manifest_line_is_skipped_and_its_request_sent_again(entra_env, tmp_path):
    """A process killed while writing a manifest line leaves half a line: that request is sent again."""
    path = stage(tmp_path, hr_frame(120))
    upload(path, mapping=MAPPING)
    manifest = path.parent / MANIFEST_NAME
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:40])  # the last line cut mid-write

    again = upload(path, mapping=MAPPING)

    assert again["resumed_requests"] == 4 and again["sent_requests"] == 1
    assert sorted(line["seq"] for line in read_jsonl(manifest)) == [0, 1, 2, 3, 4]
    assert bulk_uploads(entra_env) == 6


# --- inputs -------------------------------------------------------------------------------------------


def test_bad_rows_are_set_aside_with_reasons_and_the_rest_proceed(entra_env, tmp_path):
    frame = hr_frame(30)
    frame.loc[5, "UserID"] = ""  # no userName
    frame.loc[7, "ManagerID"] = "1007"  # names itself
    frame.loc[[8, 9], "ManagerID"] = ["1009", "1008"]  # a management cycle
    path = stage(tmp_path, frame)

    summary = upload(path, mapping=MAPPING)

    assert summary["rejected"] == 4 and summary["records"] == 26
    rejected = pd.read_parquet(path.parent / REJECTED_NAME).set_index("externalId")
    assert "userName" in rejected.loc["1005", "reason"] and "UserID" in rejected.loc["1005", "reason"]
    assert rejected.loc["1007", "reason"].startswith("self-manager")
    assert "management cycle" in rejected.loc["1008", "reason"]
    entra_env.process()
    provisioned = {u["employeeId"] for u in entra_env.users()}
    assert len(provisioned) == 26 and not provisioned & {"1005", "1007", "1008", "1009"}
    sent = pd.read_parquet(path.parent / EXTERNAL_IDS_NAME)
    assert set(sent["externalId"]) == provisioned


def test_mapped_frame_is_detected_and_needs_no_mapping(entra_env, tmp_path):
    mapped = map_records(hr_frame(60), AttributeMapping(MAPPING))
    path = stage(tmp_path, mapped.frame, "mapped.parquet")
    summary = upload(path)
    assert summary["records"] == 60 and summary["stages"] == [1, 10, 49]
    entra_env.process()
    users = entra_env.users()
    assert len(users) == 60 and sum(1 for u in users if u["managerEmployeeId"]) == 59


def test_mapped_frame_gives_the_same_requests_as_the_hr_file(tmp_path):
    hr_path = stage(tmp_path, hr_frame(60))
    mapped_path = stage(
        tmp_path, map_records(hr_frame(60), AttributeMapping(MAPPING)).frame, "mapped.parquet"
    )
    from_hr = EntraBulkUploadOperator(task_id="u", input_path=str(hr_path), mapping=MAPPING).plan(
        {"run_id": "r"}
    )
    from_mapped = EntraBulkUploadOperator(task_id="u", input_path=str(mapped_path)).plan({"run_id": "r"})
    assert [r.payload for r in from_hr.requests] == [r.payload for r in from_mapped.requests]


def test_managers_already_provisioned_need_no_earlier_stage(tmp_path):
    path = stage(tmp_path, hr_frame(11), "hr.csv")  # the CEO and ten reports
    known = tmp_path / "known.csv"
    pd.DataFrame({"externalId": ["1000"]}).to_csv(known, index=False)

    def stages(**kwargs) -> list[int]:
        operator = EntraBulkUploadOperator(task_id="u", input_path=str(path), mapping=MAPPING, **kwargs)
        return operator.plan({"run_id": "r"}).stage_sizes

    assert stages() == [1, 10]
    assert stages(known_manager_ids_path=str(known)) == [11]  # the CEO exists: one stage, fewer requests
    assert stages(managers_first=False) == [11]


def test_native_values_are_taken_as_they_are(tmp_path):
    """A dict mapping, a None output_dir and a bool: native values, not text parsed back."""
    path = stage(tmp_path, hr_frame(11))
    operator = EntraBulkUploadOperator(
        task_id="u", input_path=str(path), mapping=MAPPING, output_dir=None, build_only=True
    )
    assert operator.plan({"run_id": "r"}).stage_sizes == [1, 10]
    summary = operator.execute({"run_id": "r"})
    assert summary["dry_run"] is True
    assert summary["manifest_path"] == f"file://{path.parent}/{MANIFEST_NAME}"


def test_values_rendered_as_text_are_refused_saying_what_to_pass(tmp_path):
    """A dict or list rendered to text is not parsed back: the task fails at once, naming the fix."""
    path = stage(tmp_path, hr_frame(11))
    with pytest.raises(AirflowFailException, match="pass the dict itself"):
        EntraBulkUploadOperator(task_id="u", input_path=str(path), mapping=str(MAPPING)).plan({"run_id": "r"})
    text = EntraBulkUploadOperator(
        task_id="u", payloads=json.dumps([{"externalId": "1"}]), output_dir=str(tmp_path)
    )
    with pytest.raises(
        AirflowFailException, match=r"payloads must be a list .* e\.g\. task\.output; got str"
    ):
        text.execute({"run_id": "r"})


def test_build_only_param_overrides_build_only_at_execute_time(entra_env, tmp_path):
    path = stage(tmp_path, hr_frame(11))
    operator = EntraBulkUploadOperator(
        task_id="u", input_path=str(path), mapping=MAPPING, build_only_param="dry_run"
    )
    built = operator.execute({"run_id": "r", "params": {"dry_run": True}})
    assert built["dry_run"] is True and built["sent_requests"] == 0 and bulk_uploads(entra_env) == 0
    assert callable(operator.dry_run)  # BaseOperator.dry_run() is no longer shadowed by a flag
    sent = operator.execute({"run_id": "r", "params": {"dry_run": False}})
    assert sent["dry_run"] is False and sent["sent_requests"] == 2 and bulk_uploads(entra_env) == 2
    with pytest.raises(AirflowFailException, match="'dry_run' must be true or false, got 'true'"):
        operator.execute({"run_id": "r", "params": {"dry_run": "true"}})
    with pytest.raises(AirflowFailException, match="build_only_param='dry_run' names no Param of this run"):
        operator.execute({"run_id": "r", "params": {"dryrun": True}})
    assert bulk_uploads(entra_env) == 2


def test_hr_csv_without_mapping_is_refused_with_what_to_do(tmp_path):
    path = stage(tmp_path, hr_frame(3), "hr.csv")
    with pytest.raises(AirflowException, match="HR-layout file .* pass mapping"):
        upload(path)


def test_payload_records_from_xcom_are_packed_managers_first(entra_env, tmp_path):
    ceo = {"externalId": "1", "userName": "ceo@contoso.com", "active": True, "displayName": "CEO"}
    report = {
        "externalId": "2",
        "userName": "vp@contoso.com",
        "active": True,
        "displayName": "VP",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "1"}},
    }
    summary = EntraBulkUploadOperator(
        task_id="upload", payloads=[report, ceo], output_dir=str(tmp_path)
    ).execute({"run_id": "manual__payloads"})
    assert summary["requests"] == 2 and summary["stages"] == [1, 1]
    manifest = read_jsonl(tmp_path / MANIFEST_NAME)
    assert [line["external_ids"] for line in manifest] == [["1"], ["2"]]  # CEO first
    entra_env.process()
    by_id = {u["employeeId"]: u for u in entra_env.users()}
    assert by_id["2"]["managerEmployeeId"] == "1"


def test_payloads_need_an_output_dir():
    operator = EntraBulkUploadOperator(task_id="upload", payloads=[{"externalId": "1"}])
    with pytest.raises(AirflowException, match="output_dir is required"):
        operator.execute({"run_id": "r"})


def test_object_storage_paths_work_end_to_end(entra_env):
    """Input and outputs in an fsspec store (memory://) rather than on a local disk."""
    folder = ObjectStoragePath("memory://entra-tests/run-1")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hr.parquet").write_bytes(hr_frame(40).to_parquet())
    summary = upload(folder / "hr.parquet", mapping=MAPPING)
    assert summary["manifest_path"] == "memory://entra-tests/run-1/upload-manifest.jsonl"
    assert len(read_jsonl(summary["manifest_path"])) == summary["requests"] == 3  # stages 1, 10, 29
    entra_env.process()
    assert len(entra_env.users()) == 40


# --- dry run and progress -----------------------------------------------------------------------------


def test_dry_run_writes_requests_and_summary_and_sends_nothing(entra_env, tmp_path):
    path = stage(tmp_path, hr_frame(75))
    summary = upload(path, mapping=MAPPING, build_only=True)
    assert summary["dry_run"] is True and summary["sent_requests"] == 0 and summary["requests"] == 4
    written = read_jsonl(path.parent / "dry-run-requests.jsonl")
    assert [len(r["Operations"]) for r in written] == [1, 10, 50, 14]  # stages of 1, 10 and 64
    assert json.loads((path.parent / "dry-run-summary.json").read_text())["records"] == 75
    assert not (path.parent / MANIFEST_NAME).exists()
    assert entra_env.stats()["calls"].get("bulkUpload", 0) == 0


def test_progress_line_format():
    assert format_progress(412, 2000, 7.9, 240) == "412/2,000 records (20%), 7.9 calls/s, ETA 4m"
    assert format_progress(0, 10, None, None) == "0/10 records (0%)"
    assert format_progress(10, 10, 8.0, 0) == "10/10 records (100%), 8.0 calls/s, ETA 0s"
    assert (
        format_progress(10, 10, 8.0, 0, 2) == "10/10 records (100%), 2 rejected by Graph, 8.0 calls/s, ETA 0s"
    )


def test_progress_is_logged_while_uploading(entra_env, tmp_path, capsys):
    path = stage(tmp_path, hr_frame(600))
    EntraBulkUploadOperator(
        task_id="upload", input_path=str(path), mapping=MAPPING, progress_every=5
    ).execute({"run_id": "manual__progress"})
    lines = [line for line in capsys.readouterr().out.splitlines() if " records (" in line]
    assert len(lines) >= 3
    assert "600/600 records (100%)" in lines[-1] and "calls/s" in lines[-1]


# --- records Graph rejects (400): split in halves, set aside, the rest proceeds ------------------------


def user_records(n: int, bad: Sequence[int] = ()) -> list[dict]:
    """SCIM User records without managers; those at ``bad`` have ``"active": "yes"``, which the SCIM
    builder never produces but a payload list can carry, and which Graph (the emulator) answers 400 to."""
    return [
        {
            "externalId": str(5000 + i),
            "userName": f"user{i}@contoso.com",
            "active": "yes" if i in bad else True,
            "displayName": f"User {i}",
        }
        for i in range(n)
    ]


def refused_uploads(emulator) -> int:
    return emulator.stats()["status"].get("bulkUpload:400", 0)


def test_records_graph_rejects_are_isolated_and_the_rest_provisioned(entra_env, tmp_path):
    bad = (10, 70)  # requests 1 and 2 of 50, 50, 20
    records = user_records(120, bad)
    operator = EntraBulkUploadOperator(task_id="upload", payloads=records, output_dir=str(tmp_path))
    summary = operator.execute({"run_id": "manual__graph_rejects"})

    accepted, refused = bulk_uploads(entra_env), refused_uploads(entra_env)
    # Each bad request: 1 refused whole, then 2 calls per halving 50 > 25 > 13 > 7 > 4 > 2 > 1.
    per_bad_request = 1 + 2 * 6
    assert accepted + refused <= 1 + 2 * per_bad_request
    assert refused == 2 * 7 and accepted == 1 + 2 * 6
    assert summary["rejected_by_graph"] == 2 and summary["rejected"] == 2
    assert summary["sent_records"] == 118
    assert summary["sent_records"] + summary["rejected"] == len(records)
    assert summary["sent_requests"] == accepted and summary["requests"] == 3

    rejected = pd.read_parquet(summary["rejected_path"].removeprefix("file://"))
    assert sorted(rejected["externalId"]) == ["5010", "5070"]
    assert set(rejected["stage"]) == {"upload"}
    assert sorted(rejected["row"].astype(int)) == list(bad)
    for reason in rejected["reason"]:
        assert reason.startswith("Graph rejected the record: BadRequest: ")
        assert "active: must be a boolean" in reason and "request-id" not in reason

    sent = pd.read_parquet(tmp_path / EXTERNAL_IDS_NAME)
    assert len(sent) == 118 and not {"5010", "5070"} & set(sent["externalId"])
    manifest = read_jsonl(tmp_path / MANIFEST_NAME)
    assert sum(len(line["external_ids"]) for line in manifest) == 118

    entra_env.process()
    provisioned = {u["employeeId"] for u in entra_env.users()}
    good = {r["externalId"] for r in records} - {"5010", "5070"}
    assert good <= provisioned and not {"5010", "5070"} & provisioned

    # A retried task resends nothing Graph accepted and re-probes nothing Graph refused: no call at all.
    again = EntraBulkUploadOperator(task_id="upload", payloads=records, output_dir=str(tmp_path)).execute(
        {"run_id": "manual__graph_rejects"}
    )
    assert bulk_uploads(entra_env) == accepted
    assert refused_uploads(entra_env) == refused
    assert again["sent_requests"] == 0 and again["resumed_requests"] == accepted
    assert again["sent_records"] == 118 and again["rejected_by_graph"] == 2
    again_rejected = pd.read_parquet(again["rejected_path"].removeprefix("file://"))
    assert (
        again_rejected.sort_values("externalId")
        .reset_index(drop=True)
        .equals(rejected.sort_values("externalId").reset_index(drop=True))
    )


def test_a_request_refused_whole_is_not_re_probed_on_retry(entra_env, tmp_path):
    """Every record bad (the issue's "bad email on every row"): the first try isolates them all, a retry
    reports them rejected again without a single call, and a new run probes afresh."""
    records = user_records(60, bad=range(60))
    kwargs = {"payloads": records, "output_dir": str(tmp_path), "max_rejected_records": None}
    first = EntraBulkUploadOperator(task_id="upload", **kwargs).execute({"run_id": "manual__all_bad"})
    calls = refused_uploads(entra_env)
    # 50 + 10 records: every node of both binary split trees is one refused call.
    assert calls == (2 * 50 - 1) + (2 * 10 - 1)
    assert first["rejected_by_graph"] == 60 and first["sent_records"] == 0 and bulk_uploads(entra_env) == 0
    refusals = read_jsonl(tmp_path / REFUSED_NAME)
    assert len(refusals) == calls and len({line["fingerprint"] for line in refusals}) == calls

    for _ in range(2):
        again = EntraBulkUploadOperator(task_id="upload", **kwargs).execute({"run_id": "manual__all_bad"})
        assert refused_uploads(entra_env) == calls and bulk_uploads(entra_env) == 0
        assert again["rejected_by_graph"] == 60 and again["sent_requests"] == 0
        rejected = pd.read_parquet(tmp_path / REJECTED_NAME)
        assert sorted(rejected["externalId"]) == sorted(r["externalId"] for r in records)
        assert rejected["reason"].str.contains("active: must be a boolean").all()
    assert len(read_jsonl(tmp_path / REFUSED_NAME)) == calls  # nothing new written down

    EntraBulkUploadOperator(task_id="upload", **kwargs).execute({"run_id": "manual__all_bad_2"})
    assert refused_uploads(entra_env) == 2 * calls  # another run: other bulkIds, probed again


def test_a_task_failed_on_too_many_rejections_fails_again_on_retry_without_calls(entra_env, tmp_path):
    records = user_records(8, bad=(1, 4, 6))
    kwargs = {"payloads": records, "output_dir": str(tmp_path), "max_rejected_records": 2}
    with pytest.raises(AirflowException, match="max_rejected_records=2"):
        EntraBulkUploadOperator(task_id="upload", **kwargs).execute({"run_id": "manual__systemic_retry"})
    refused, accepted = refused_uploads(entra_env), bulk_uploads(entra_env)
    with pytest.raises(AirflowException, match="Graph rejected 3 records"):
        EntraBulkUploadOperator(task_id="upload", **kwargs).execute({"run_id": "manual__systemic_retry"})
    assert (refused_uploads(entra_env), bulk_uploads(entra_env)) == (refused, accepted)


def test_more_records_rejected_than_allowed_fails_with_the_reasons(entra_env, tmp_path):
    records = user_records(8, bad=(1, 4, 6))
    operator = EntraBulkUploadOperator(
        task_id="upload", payloads=records, output_dir=str(tmp_path), max_rejected_records=2
    )
    with pytest.raises(AirflowException, match="max_rejected_records=2") as info:
        operator.execute({"run_id": "manual__systemic"})
    message = str(info.value)
    assert "Graph rejected 3 records" in message and "something systemic" in message
    assert "5001: Graph rejected the record: BadRequest:" in message and "must be a boolean" in message
    rejected = pd.read_parquet(tmp_path / REJECTED_NAME)
    assert sorted(rejected["externalId"]) == ["5001", "5004", "5006"]


def test_payload_rejections_that_are_not_400_are_not_split(entra_env, tmp_path):
    # A record too large for one request: Graph (the emulator) answers 413, which splitting cannot cure.
    huge = {"externalId": "1", "userName": "big@contoso.com", "active": True, "displayName": "x" * 1_100_000}
    operator = EntraBulkUploadOperator(task_id="upload", payloads=[huge], output_dir=str(tmp_path))
    with pytest.raises(AirflowFailException, match="bulkUpload of request 1/1 .* HTTP 413"):
        operator.execute({"run_id": "manual__too_large"})
    assert entra_env.stats()["status"].get("bulkUpload:413") == 1
    assert bulk_uploads(entra_env) == 0 and refused_uploads(entra_env) == 0


def test_a_payload_that_is_not_a_bulk_request_is_refused_before_any_call(entra_env, tmp_path):
    empty = {"schemas": [], "Operations": []}
    anonymous = {
        "schemas": [BULK_REQUEST_SCHEMA],
        "Operations": [
            {"method": "POST", "bulkId": "b1", "path": "/Users", "data": {"userName": "a@contoso.com"}}
        ],
    }
    for payload, reason in (
        (empty, r"payloads\[0\] is not a SCIM BulkRequest"),
        (anonymous, r"payloads\[0\]\.Operations\[0\] has no data\.externalId: every record needs one"),
    ):
        operator = EntraBulkUploadOperator(task_id="upload", payloads=[payload], output_dir=str(tmp_path))
        with pytest.raises(AirflowFailException, match=reason):
            operator.execute({"run_id": "manual__local"})
    assert entra_env.stats()["calls"].get("bulkUpload", 0) == 0


# --- errors retries cannot fix, Graph's message, lineage, XCom payloads -------------------------------------


def test_graph_message_code_and_status_are_on_the_exception(entra_env):
    body = json.dumps(
        {
            "schemas": [BULK_REQUEST_SCHEMA],
            "Operations": [
                {
                    "method": "POST",
                    "bulkId": "b",
                    "path": "/Users",
                    "data": {"schemas": [CORE_USER_SCHEMA], **user_records(1, bad=(0,))[0]},
                }
            ],
            "failOnErrors": None,
        }
    ).encode()
    with pytest.raises(EntraPayloadRejectedError) as caught:
        EntraHook().bulk_upload_bytes(body, operations=1)
    error = caught.value
    assert (error.status_code, error.error_code, error.retryable) == (400, "BadRequest", False)
    assert "active: must be a boolean" in error.graph_message
    assert "HTTP 400" not in error.graph_message and error.request_id not in error.graph_message
    with pytest.raises(EntraPayloadRejectedError, match="1 to 50 per request"):
        EntraHook().bulk_upload_bytes(body, operations=51)
    assert bulk_uploads(entra_env) == 0


def test_a_missing_permission_fails_the_task_without_retries(entra_env, tmp_path, monkeypatch):
    app = entra_env.create_app("logs-only", roles=["AuditLog.Read.All"])
    monkeypatch.setenv("AIRFLOW_CONN_ENTRA_LOGS_ONLY", json.dumps(app["airflow_conn"]))
    path = stage(tmp_path, hr_frame(3))
    with pytest.raises(AirflowFailException, match="HTTP 403 .*SynchronizationData-User.Upload.OwnedBy"):
        upload(path, mapping=MAPPING, entra_conn_id="entra_logs_only")
    with pytest.raises(AirflowFailException, match="403"):
        EntraJobHealthOperator(task_id="preflight", entra_conn_id="entra_logs_only").execute({})


def test_lineage_is_the_input_file_in_and_the_provisioning_job_out(entra_env, tmp_path):
    path = stage(tmp_path, hr_frame(3))
    operator = EntraBulkUploadOperator(task_id="upload", input_path=str(path), mapping=MAPPING)
    summary = operator.execute({"run_id": "manual__lineage"})
    job = summary["job_id"]
    assert operator.upload_lineage.inputs == [("file", str(path))]
    assert operator.upload_lineage.outputs == [(f"entra://{entra_env.info['tenant_id']}", job)]
    facets = operator.get_openlineage_facets_on_complete(None)
    if importlib.util.find_spec("airflow.providers.openlineage") is None:
        assert facets is None  # the OpenLineage provider is not installed: nothing to report to
    else:
        assert [(d.namespace, d.name) for d in facets.inputs] == operator.upload_lineage.inputs
        assert [(d.namespace, d.name) for d in facets.outputs] == operator.upload_lineage.outputs


PAYLOADS_DAG = """
from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_entra.operators.bulk_upload import EntraBulkUploadOperator

with DAG(dag_id="entra_test_upload_payloads", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):

    @task
    def select() -> list:
        return [{"externalId": "7", "userName": "seven@contoso.com", "active": True, "displayName": "Seven"}]

    EntraBulkUploadOperator(task_id="upload", payloads=select(), output_dir=OUTPUT_DIR)
"""


def test_payloads_from_a_task_output_arrive_as_a_list_without_native_rendering(
    airflow_db, entra_env, tmp_path
):
    from airflow.dag_processing.dagbag import DagBag

    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag_file = folder / "entra_test_upload_payloads.py"
    dag_file.write_text(PAYLOADS_DAG.replace("OUTPUT_DIR", repr(str(tmp_path))))
    try:
        dag = DagBag(dag_folder=str(dag_file)).get_dag("entra_test_upload_payloads")
        dag_run = dag.test()
    finally:
        dag_file.unlink()
    assert {ti.task_id: ti.state for ti in dag_run.get_task_instances()} == {
        "select": TaskInstanceState.SUCCESS,
        "upload": TaskInstanceState.SUCCESS,
    }
    assert [line["external_ids"] for line in read_jsonl(tmp_path / MANIFEST_NAME)] == [["7"]]


# --- the daily allowance ------------------------------------------------------------------------------------


def use_budget(emulator, monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    """``entra_default`` with ``daily_call_budget`` set (the process's and any child's)."""
    conn = json.loads(json.dumps(emulator.info["airflow_conn"]))
    conn["extra"]["daily_call_budget"] = budget
    monkeypatch.setenv("AIRFLOW_CONN_ENTRA_DEFAULT", json.dumps(conn))


def test_two_upload_tasks_in_two_processes_share_the_daily_allowance(entra_env, tmp_path, monkeypatch):
    """Budget 4: the first task (its own process) makes 3 calls, the second (another process) 1, then stops
    cleanly, before sending, and succeeds with the rest left for the next run."""
    use_budget(entra_env, monkeypatch, 4)
    monkeypatch.setenv("AIRFLOW_VAR_ENTRA_STAGING_PATH", str(tmp_path / "staging"))  # the children's root
    mapping_path = tmp_path / "mapping.json"
    mapping_path.write_text(json.dumps(MAPPING))
    summaries = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        path = stage(tmp_path / name, hr_frame(60))  # stages of 1, 10 and 49 records: 3 requests
        done = subprocess.run(
            [sys.executable, str(CHILD), str(path), str(mapping_path), f"manual__{name}"],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        summaries.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first, second = summaries
    assert (first["sent_requests"], first["unsent_records"]) == (3, 0)
    assert first["daily_quota"] | {"frees_at": None} == {
        "daily_call_budget": 4,
        "used_before": 0,
        "calls": 3,
        "left": 1,
        "stopped": None,
        "frees_at": None,
        "per_day": 4,
        "days_left": 0,
    }
    assert (second["sent_requests"], second["sent_records"]) == (1, 1)
    assert (second["unsent_records"], second["unsent_requests"]) == (59, 2)
    assert "daily allowance is spent" in second["stopped_by_quota"]
    quota = second["daily_quota"]
    assert (quota["used_before"], quota["calls"], quota["left"], quota["stopped"]) == (3, 1, 0, "allowance")
    assert quota["days_left"] == 1 and quota["frees_at"]
    assert entra_env.stats()["calls"]["bulkUpload"] == 4  # the fifth call was never made
    sent = pd.read_parquet(second["external_ids_path"])
    assert sent["externalId"].tolist() == ["1000"]  # only what was sent waits for the logs
    records = [read_jsonl(p) for p in sorted((tmp_path / "staging" / "quota").glob("*/*.jsonl"))]
    assert sorted(sum(line["calls"] for line in lines) for lines in records) == [1, 3]


def test_microsofts_daily_quota_429_stops_cleanly_and_holds_off_other_tasks(entra_env, tmp_path):
    """The connection allows 6,000 a day but the tenant only 2: the third call's 429 stops the upload (no
    failure, no retry) and the next task sends nothing until Microsoft's Retry-After has passed."""
    entra_env.configure(daily_quota=2)
    quota_dir = str(tmp_path / "quota")
    path = stage(tmp_path, hr_frame(60))
    summary = upload(path, mapping=MAPPING, quota_dir=quota_dir)
    assert (summary["sent_requests"], summary["sent_records"]) == (2, 11)
    assert (summary["unsent_records"], summary["unsent_requests"]) == (49, 1)
    assert "Microsoft answered 429" in summary["stopped_by_quota"]
    assert summary["daily_quota"]["stopped"] == "microsoft"
    assert (summary["daily_quota"]["per_day"], summary["daily_quota"]["days_left"]) == (2, 1)
    assert len(pd.read_parquet(path.parent / EXTERNAL_IDS_NAME)) == 11
    assert entra_env.stats()["calls"]["bulkUpload"] == 3

    (tmp_path / "other").mkdir()
    other = upload(
        stage(tmp_path / "other", hr_frame(60)), "manual__other", mapping=MAPPING, quota_dir=quota_dir
    )
    assert (other["sent_requests"], other["unsent_records"]) == (0, 60)
    assert other["daily_quota"]["stopped"] == "microsoft" and other["first_submit"] is None
    assert entra_env.stats()["calls"]["bulkUpload"] == 3  # Microsoft's word was kept: no call


def test_dags_with_their_own_staging_roots_share_one_count_through_entra_quota_path(
    entra_env, tmp_path, monkeypatch
):
    """Two DAGs on one tenant, each with its own staging root: the Variable entra_quota_path gives their
    uploads one record (budget 3: the first makes 3 calls, the second none)."""
    use_budget(entra_env, monkeypatch, 3)
    monkeypatch.setenv("AIRFLOW_VAR_ENTRA_QUOTA_PATH", str(tmp_path / "tenant-quota"))
    summaries = []
    for name in ("employees", "contractors"):
        (tmp_path / name).mkdir()
        operator = EntraBulkUploadOperator(
            task_id="upload", input_path=str(stage(tmp_path / name, hr_frame(60))), mapping=MAPPING
        )
        params = {"staging_path": str(tmp_path / name / "staging")}
        summaries.append(operator.execute({"run_id": f"manual__{name}", "params": params}))
    assert [s["daily_quota"]["calls"] for s in summaries] == [3, 0]
    assert summaries[1]["daily_quota"]["used_before"] == 3 and summaries[1]["unsent_records"] == 60
    assert len(list((tmp_path / "tenant-quota").glob("*/*.jsonl"))) == 1  # the second wrote nothing
    assert not (tmp_path / "employees" / "staging").exists()
    assert entra_env.stats()["calls"]["bulkUpload"] == 3


def test_an_upload_right_after_another_in_a_new_process_stays_in_the_tenants_burst_window(
    entra_env, tmp_path
):
    """Two uploads of 44 requests each, one right after the other, the second with a new process's empty
    limiters (``clear_pacing``): the shared record tells it what the first spent of the 5-second window, so
    the tenant never sees more than 40 calls in 5 s and Microsoft answers no 429. Without the record the
    second would start with 40 slots while the first's last calls still count."""
    from airflow_provider_entra.hooks._pacing import clear_pacing

    quota_dir = str(tmp_path / "quota")
    clear_pacing()
    summaries = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        path = stage(tmp_path / name, hr_frame(2100))  # stages of 1, 10, 100, 1,000 and 989: 44 requests
        summaries.append(upload(path, f"manual__{name}", mapping=MAPPING, quota_dir=quota_dir))
        clear_pacing()  # the next upload starts as a new task process does
    assert [s["sent_requests"] for s in summaries] == [44, 44]
    stats = entra_env.stats()
    assert stats["throttled_total"] == 0
    assert bulk_uploads(entra_env) == 88
    assert stats["peak_calls"]["bulkUpload_per_5s"] == 40  # the window was used to the full, never past it
