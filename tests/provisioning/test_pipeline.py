"""provisioning.pipeline: the HR run's steps over staged files end to end, called without Airflow.

Runs the bundled sample (day one, unchanged, then the next day's export) through every step, with outcomes
taken as Entra would log them, on local paths and on an object-store URL.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd

from airflow_provider_entra import _fsio
from airflow_provider_entra.provisioning import pipeline
from airflow_provider_entra.provisioning.ledger import read_ledger


def ledger_ids(ledger) -> set[str]:
    return set(read_ledger(ledger).state["externalId"])


REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "dags" / "data"


def _changes() -> dict[str, list[str]]:
    spec = importlib.util.spec_from_file_location("generate_hr_sample", DATA / "generate_hr_sample.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("generate_hr_sample", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.build_samples().changes


def test_day_one_then_unchanged_then_next_day(tmp_path, steps):
    ledger = tmp_path / "ledger"
    current = tmp_path / "snapshot" / pipeline.HR_CURRENT_NAME

    transformed, planned = steps.run(DATA / "hr_employees.csv", tmp_path / "r1", ledger)
    assert transformed["input_rows"] == 300 and transformed["quarantined"] == 0
    assert planned["changes"]["joiner"] == 284 and planned["changes"]["inactive_new"] == 16
    assert planned["to_send"] == 300
    decision = pipeline.guard(planned)
    assert decision["proceed"] and not decision["tripped"]
    staged = pipeline.stages(planned["delta_path"], ledger, tmp_path / "r1")
    assert sum(staged["stage_sizes"]) == 300 and staged["stage_sizes"][0] == 1  # the CEO alone first
    committed = pipeline.commit(
        ledger,
        planned["delta_path"],
        steps.all_succeed(planned["delta_path"], tmp_path / "r1"),
        run_id="r1",
        normalised_path=transformed["normalised_path"],
        hr_current_path=current,
    )
    assert committed["verified"] == 300 and committed["active"] == 284
    assert len(pd.read_parquet(current)) == 300

    _, again = steps.run(DATA / "hr_employees.csv", tmp_path / "r2", ledger)
    assert again["to_send"] == 0 and again["changes"]["unchanged"] == 300
    staged = pipeline.stages(again["delta_path"], ledger, tmp_path / "r2")
    assert staged["stage_sizes"] == [] and len(pd.read_parquet(staged["known_ids_path"])) == 300

    expected = _changes()
    _, next_day = steps.run(DATA / "hr_employees_next_day.csv", tmp_path / "r3", ledger)
    changes = next_day["changes"]
    # The rehire was sent disabled on day one: now it is a rehire.
    assert changes["joiner"] == len(expected["joiners"])
    assert changes["rehire"] == len(expected["rehires"])
    assert changes["mover"] == len(expected["movers"])
    assert changes["leaver"] == len(expected["leavers"])
    assert changes["missing_disable"] == len(expected["missing"])
    delta = pd.read_parquet(next_day["delta_path"])
    assert set(delta["externalId"]) == {i for ids in expected.values() for i in ids}
    assert not delta.loc[delta["externalId"].isin(expected["leavers"] + expected["missing"]), "active"].any()
    assert next_day["disables"] == 4 and pipeline.guard(next_day)["proceed"]


def test_only_verified_records_are_committed(tmp_path, steps):
    ledger = tmp_path / "ledger"
    _, planned = steps.run(DATA / "hr_employees.csv", tmp_path / "r1", ledger)
    failed = tuple(pd.read_parquet(planned["delta_path"])["externalId"].head(3))
    summary = pipeline.commit(
        ledger,
        planned["delta_path"],
        steps.all_succeed(planned["delta_path"], tmp_path, fail=failed),
        run_id="r1",
    )
    assert summary["verified"] == 297 and summary["not_verified"] == 3 and summary["failed"] == 3
    assert not set(failed) & ledger_ids(ledger)
    _, again = steps.run(DATA / "hr_employees.csv", tmp_path / "r2", ledger)
    assert set(pd.read_parquet(again["delta_path"])["externalId"]) == set(failed)
    # No outcomes file (verification never ran): nothing changes.
    before = read_ledger(ledger).state
    pipeline.commit(ledger, again["delta_path"], tmp_path / "absent.parquet", run_id="r2")
    pd.testing.assert_frame_equal(read_ledger(ledger).state, before)


def test_truncated_export_trips_the_guard(tmp_path, steps):
    ledger = tmp_path / "ledger"
    _, planned = steps.run(DATA / "hr_employees.csv", tmp_path / "r1", ledger)
    pipeline.commit(
        ledger, planned["delta_path"], steps.all_succeed(planned["delta_path"], tmp_path), run_id="r1"
    )
    _, truncated = steps.run(DATA / "hr_employees_truncated.csv", tmp_path / "r2", ledger)
    assert truncated["disables"] == truncated["changes"]["missing_disable"] > 100
    decision = pipeline.guard(truncated, max_disable_count=50, max_disable_percent=10)
    assert decision["tripped"] and not decision["proceed"]
    assert decision["limits"] == ["max_disable_count=50", "max_disable_percent=10"]
    assert f"disable {truncated['disables']} account(s) out of 284 active" in decision["message"]
    approved = pipeline.guard(truncated, max_disable_count=50, max_disable_percent=10, approved=True)
    assert approved["proceed"] and approved["approved"]
    assert pipeline.guard(truncated, max_disable_count=None, max_disable_percent=None)["proceed"]


def test_staged_files_on_an_object_store_url(tmp_path, steps):
    root = "memory://entra-pipeline-test"
    run = pipeline.run_dir(root, "dag", "run-1")
    ledger = pipeline.ledger_path(root, "API2AAD.job")
    assert ledger == f"{root}/ledger/API2AAD.job"
    pipeline.extract_csv(DATA / "hr_employees.csv", pipeline.join(run, pipeline.RAW_NAME))
    transformed = pipeline.transform(
        pipeline.join(run, pipeline.RAW_NAME),
        DATA / "hr_mapping.yaml",
        run,
        upn_domain="contoso.com",
        ledger=ledger,
    )
    assert transformed["mapped_path"] == f"{root}/dag/run-1/mapped.parquet"
    planned = pipeline.plan(transformed["mapped_path"], ledger, run)
    outcomes = pd.DataFrame({"external_id": pipeline.read_frame(planned["delta_path"])["externalId"]})
    outcomes["status"] = "success"
    outcomes_path = pipeline.join(run, "outcomes.parquet")
    _fsio.write_frame(outcomes, outcomes_path)
    assert pipeline.commit(ledger, planned["delta_path"], outcomes_path, run_id="run-1")["verified"] == 300
    assert len(read_ledger(ledger).state) == 300
    summary = pipeline.write_run_summary(run, {"records_sent": 284})
    assert json.loads(_fsio.read_bytes(summary)) == {"records_sent": 284}
