"""Crash and resume: the upload task SIGKILLed (twice), and the emulator restarted or killed mid-run.

A retried upload task reads its manifest and sends only what is not in it; the one request that can be
resent is the one accepted just before the kill, whose manifest line was not yet written. The emulator keeps
its state in its data dir, so the hook's retries bridge a restart and nothing accepted is lost.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_entra.operators.bulk_upload import MANIFEST_NAME, EntraBulkUploadOperator
from airflow_provider_entra.staging import read_jsonl

CHILD = Path(__file__).with_name("_upload_child.py")
RECORDS = 3000


def _run_until_manifest_has(command: list[str], manifest: Path, lines: int) -> int:
    """Start the upload, SIGKILL it once the manifest has ``lines`` lines; return the lines it had."""
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if manifest.exists() and len(manifest.read_bytes().splitlines()) >= lines:
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        if child.poll() is None and time.monotonic() >= deadline:
            child.kill()
    assert child.wait(30) == -signal.SIGKILL, "the upload ended before it could be killed"
    return len(read_jsonl(manifest))


@pytest.mark.slow
def test_upload_killed_twice_resumes_from_its_manifest_resending_at_most_one_request_per_kill(
    private_emulator, support, monkeypatch, tmp_path
):
    emu = private_emulator(processing_delay=0.5)
    support.use_emulator(monkeypatch, emu)
    hr = support.hr_frame(RECORDS, managers=True)  # managers-first stages: 1, 20, 400, 2579 records
    path = support.stage_hr(tmp_path / "run", hr)
    mapping_path = tmp_path / "mapping.json"
    mapping_path.write_text(json.dumps(support.MAPPING))
    out = tmp_path / "run" / "out"
    manifest = out / MANIFEST_NAME
    command = [sys.executable, str(CHILD), str(path), str(mapping_path), str(out)]
    requests = 1 + 1 + 8 + 52

    duplicates_after: list[int] = []
    kept = []
    for kill_at in (5, 45):  # in the first burst (stages 0-2), then while paced at 8 calls/s (stage 3)
        kept.append(_run_until_manifest_has(command, manifest, kill_at))
        duplicates_after.append(sum(n - 1 for n in support.accepted_digests(emu).values()))
    finished = subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)
    summary = json.loads(finished.stdout.strip().splitlines()[-1])

    assert kept[0] >= 5 and kept[1] >= 45 and kept[1] < requests
    assert summary["requests"] == requests
    assert summary["resumed_requests"] == kept[1]
    assert summary["sent_requests"] == requests - kept[1]
    # Each request is in the manifest once.
    assert sorted(line["seq"] for line in read_jsonl(manifest)) == list(range(requests))
    # Every distinct request was accepted; at most one was accepted twice per kill.
    accepted = support.accepted_digests(emu)
    assert len(accepted) == requests
    duplicates = sum(n - 1 for n in accepted.values())
    assert duplicates <= 2, accepted.most_common(3)
    assert duplicates_after[0] == 0  # nothing resent before the first retry
    assert duplicates - duplicates_after[1] <= 1  # the last retry resent at most one request

    emu.process()
    users = emu.users()
    assert {u["employeeId"] for u in users} == set(hr["WorkerID"])
    assert sum(1 for u in users if u["managerEmployeeId"]) == RECORDS - 1  # managers first, across resumes
    print(f"\nkilled at {kept} manifest lines of {requests}; {duplicates} request(s) resent in all")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["restart", "crash"])
def test_emulator_restart_mid_upload_is_bridged_by_retries_and_state_survives(
    private_emulator, support, monkeypatch, tmp_path, how
):
    emu = private_emulator(processing_delay=60.0)  # nothing is processed unless the test asks
    support.use_emulator(monkeypatch, emu)
    hr = support.hr_frame(RECORDS)
    path = support.stage_hr(tmp_path / "run", hr)
    outcome: dict = {}

    def upload() -> None:
        try:
            outcome["summary"] = EntraBulkUploadOperator(
                task_id="upload", input_path=str(path), mapping=support.MAPPING, bulk_id_prefix="restart-"
            ).execute({"run_id": "manual__restart"})
        except BaseException as exc:  # reported by the assertion below
            outcome["error"] = exc

    worker = threading.Thread(target=upload, daemon=True)
    worker.start()

    def wait_accepted(count: int) -> None:
        deadline = time.monotonic() + 60
        while emu.stats()["uploads_accepted"] < count and time.monotonic() < deadline:
            time.sleep(0.05)

    wait_accepted(20)
    emu.process()  # some users in the directory...
    users_before = {u["employeeId"] for u in emu.users()}
    # ...and at least one upload accepted after that, not yet processed.
    wait_accepted(emu.stats()["uploads_accepted"] + 1)
    before = emu.stats()
    if how == "restart":
        emu.restart()  # SIGTERM, then start on the same port and data dir
    else:
        emu.kill()  # SIGKILL: no graceful shutdown
        emu.start()
    pending_after = emu.stats()["uploads_pending"]
    worker.join(120)
    assert not worker.is_alive(), "the upload hung"
    assert "error" not in outcome, outcome.get("error")

    summary = outcome["summary"]
    assert summary["requests"] == summary["sent_requests"] == RECORDS // 50
    assert before["uploads_pending"] >= 1 and before["users"] < RECORDS  # restarted mid-run
    # Users processed before the restart are still there; uploads accepted but not yet processed were kept.
    assert len(users_before) >= 20 * 50
    assert users_before <= {u["employeeId"] for u in emu.users()}
    assert pending_after >= before["uploads_pending"]  # every upload accepted before is still there
    emu.process()
    assert {u["employeeId"] for u in emu.users()} == set(hr["WorkerID"])
    print(f"\n{how}: {before['uploads_accepted']} uploads accepted before, {pending_after} pending after")
