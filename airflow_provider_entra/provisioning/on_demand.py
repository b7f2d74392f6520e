"""Provision chosen employees now: pick them from the mapped export, then tell what Entra did with each.

Entra has no "provision on demand" for API-driven inbound apps; the ``entra_on_demand`` DAG is ours. A
manager reference resolves only against users the job has processed, so :func:`select_on_demand` adds every
manager up a chosen employee's chain that the job's ledger does not hold (managers first).
:func:`outcome_lines` and :func:`problems` turn the verification into one line per record and the reasons
the run fails. Pure pandas and fsspec: no Airflow import.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from airflow_provider_entra._fsio import join, read_frame, write_frame
from airflow_provider_entra.provisioning.ledger import read_ledger
from airflow_provider_entra.provisioning.paths import QUARANTINE_NAME, SELECTED_NAME
from airflow_provider_entra.provisioning.stages import SCIM_MANAGER_COLUMN

__all__ = ["outcome_lines", "problems", "select_on_demand"]

log = logging.getLogger(__name__)

#: Outcomes that leave a chosen record not provisioned (the run fails naming them).
NOT_PROVISIONED = ("failure", "missing")


def select_on_demand(
    mapped_path: Any,
    ledger: Any,
    out_dir: Any,
    employee_ids: Iterable[Any],
) -> dict[str, Any]:
    """Pick the requested employees' records, plus every manager up their chain that this job never sent.

    A manager reference resolves only against users the job has processed, so a manager who is not in the
    job's ledger is sent too (and, the same way, that manager's own manager), managers first.

    :param mapped_path: ``mapped.parquet`` from the transform step on the current HR export.
    :param ledger: the job's ledger (who Entra is proven to hold).
    :param out_dir: the run folder.
    :param employee_ids: the WorkerIDs asked for.
    :return: ``{"requested", "found", "unknown", "managers_added", "selected", "selected_path"}``: ``unknown``
        lists the ids not in the export (or quarantined there).
    """
    requested = list(dict.fromkeys(str(i).strip() for i in employee_ids if str(i).strip()))
    mapped = read_frame(mapped_path)
    sent_before = set(read_ledger(ledger).state["externalId"].astype(str))
    ids = mapped["externalId"].astype(str)
    by_id = dict(zip(ids, range(len(mapped)), strict=True))
    managers = (
        mapped[SCIM_MANAGER_COLUMN].astype(object).where(mapped[SCIM_MANAGER_COLUMN].notna(), None).tolist()
        if SCIM_MANAGER_COLUMN in mapped.columns
        else [None] * len(mapped)
    )
    found = [i for i in requested if i in by_id]
    unknown = [i for i in requested if i not in by_id]
    chosen: dict[str, None] = dict.fromkeys(found)
    added: list[str] = []
    for worker in found:
        manager = managers[by_id[worker]]
        while manager is not None:
            manager = str(manager).strip()
            if not manager or manager in chosen or manager in sent_before or manager not in by_id:
                break
            chosen[manager] = None
            added.append(manager)
            manager = managers[by_id[manager]]
    selected = mapped.iloc[[by_id[i] for i in chosen]].reset_index(drop=True)
    log.info(
        "Asked for %d employee(s) in %d mapped records: %d found, managers added %s, unknown %s",
        len(requested),
        len(mapped),
        len(found),
        added or "none",
        unknown or "none",
    )
    return {
        "requested": requested,
        "found": found,
        "unknown": unknown,
        "managers_added": added,
        "selected": len(selected),
        "selected_path": str(write_frame(selected, join(out_dir, SELECTED_NAME))),
    }


def outcome_lines(outcomes: pd.DataFrame, managers_added: Iterable[str] = ()) -> list[str]:
    """One line per record: ``EMP 1513: success (create) upn=ginnie.fadiman@contoso.com``, with Entra's error
    for a failed or skipped record and a note on managers sent along.

    :param outcomes: the verification's outcomes (``external_id``, ``status``, ``action``, ``upn``,
        ``error_code``, ``reason``).
    :param managers_added: the managers :func:`select_on_demand` added.
    """
    managers = set(managers_added)
    frame = outcomes.astype(object).where(outcomes.notna(), None)
    lines = []
    for row in frame.itertuples(index=False):
        note = " [manager, never sent before]" if row.external_id in managers else ""
        error = f" error={row.error_code}: {row.reason}" if row.status in ("failure", "skipped") else ""
        action = row.action or "no log entry"
        lines.append(f"EMP {row.external_id}: {row.status} ({action}) upn={row.upn}{error}{note}")
    return lines


def problems(selected: Mapping[str, Any], outcomes: pd.DataFrame | None) -> str | None:
    """Why an on-demand run fails: records that failed or have no log entry, ids not in the export. ``None``
    when every chosen employee was provisioned.

    :param selected: what :func:`select_on_demand` returned, with the run folder as ``run_dir``.
    :param outcomes: the verification's outcomes (``None`` when nothing was verified: a dry run).
    """
    found = []
    if outcomes is not None and len(outcomes):
        failed = outcomes.loc[outcomes["status"].isin(NOT_PROVISIONED), "external_id"].tolist()
        if failed:
            found.append(f"record(s) {', '.join(failed)} failed or have no log entry")
    if selected["unknown"]:
        quarantine = join(selected["run_dir"], QUARANTINE_NAME)
        found.append(
            f"employee id(s) not in the HR export (or quarantined there, see {quarantine}): "
            f"{', '.join(selected['unknown'])}"
        )
    return "; ".join(found) + ". The others were sent." if found else None
