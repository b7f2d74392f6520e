"""The deletion guard: stop before anything is sent when a plan would disable too many accounts.

A truncated HR export looks exactly like a mass departure: everybody missing from the file becomes a disable.
Entra's own accidental-deletion threshold only acts after the records arrive (and then quarantines the whole
job); this guard acts before the upload, so nothing is sent until a person confirms.

Both limits are on by default. The percentage is of the accounts that are active in the snapshot; on a first
run there is no snapshot, nothing can be disabled, and the percentage limit cannot trip (the count limit still
applies to whatever plan it is given).

The data-quality gate (:func:`check_quarantine_gate`) stops a run in which too many HR rows were quarantined.
:func:`decide` applies both to a run's plan and transform summaries (what the example DAGs' ``guard`` task
does), and :func:`stop_notice` says what a person does to go ahead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral
from typing import Any

__all__ = [
    "DEFAULT_MAX_DISABLE_COUNT",
    "DEFAULT_MAX_DISABLE_PERCENT",
    "DEFAULT_MAX_QUARANTINE_COUNT",
    "DEFAULT_MAX_QUARANTINE_PERCENT",
    "GuardDecision",
    "QualityDecision",
    "check_deletion_guard",
    "check_quarantine_gate",
    "decide",
    "guard_limits",
    "stop_notice",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_DISABLE_COUNT = 50
DEFAULT_MAX_DISABLE_PERCENT = 10.0


@dataclass(frozen=True)
class GuardDecision:
    """The guard's verdict.

    :param tripped: ``True`` when a limit is exceeded and the run must stop before sending.
    :param disables: how many accounts the plan would disable.
    :param active: how many accounts are active now (snapshot).
    :param percent: ``disables`` as a percentage of ``active`` (``None`` when ``active`` is 0).
    :param limits: the limits exceeded, e.g. ``("max_disable_count=50", "max_disable_percent=10.0")``.
    :param message: a sentence for the task log / approval screen.
    """

    tripped: bool
    disables: int
    active: int
    percent: float | None
    limits: tuple[str, ...]
    message: str


def check_deletion_guard(
    plan: Any,
    active_count: int,
    *,
    max_disable_count: int | None = DEFAULT_MAX_DISABLE_COUNT,
    max_disable_percent: float | None = DEFAULT_MAX_DISABLE_PERCENT,
) -> GuardDecision:
    """Decide whether a plan disables more accounts than allowed.

    The guard trips when the number of disables is greater than ``max_disable_count``, or greater than
    ``max_disable_percent`` percent of ``active_count``. ``None`` switches a limit off.

    :param plan: a :class:`~airflow_provider_entra.provisioning.plan.DeltaPlan` (its ``disables``), or the
        number of disables.
    :param active_count: accounts active in the snapshot
        (:func:`~airflow_provider_entra.provisioning.snapshot.active_count`).
    :param max_disable_count: most disables allowed in one run.
    :param max_disable_percent: most disables allowed, as a percentage of ``active_count``.
    :return: :class:`GuardDecision`.
    """
    if max_disable_count is not None and max_disable_count < 0:
        raise ValueError(f"max_disable_count must be 0 or more, got {max_disable_count}")
    if max_disable_percent is not None and not 0 <= max_disable_percent <= 100:
        raise ValueError(f"max_disable_percent must be between 0 and 100, got {max_disable_percent}")
    disables = int(plan) if isinstance(plan, Integral) else len(plan.disables)
    active = max(int(active_count), 0)
    percent = round(100.0 * disables / active, 2) if active else None

    limits: list[str] = []
    if max_disable_count is not None and disables > max_disable_count:
        limits.append(f"max_disable_count={max_disable_count}")
    if max_disable_percent is not None and percent is not None and percent > max_disable_percent:
        limits.append(f"max_disable_percent={max_disable_percent:g}")

    share = f" ({percent:g}% of them)" if percent is not None else ""
    if limits:
        message = (
            f"Deletion guard tripped: this run would disable {disables} account(s) out of {active} active"
            f"{share}, above {' and '.join(limits)}. Nothing has been sent. Check that the HR export is "
            "complete (a truncated file looks like a mass departure); if these disables are expected, "
            "approve this run, or run again with a higher max_disable_count/max_disable_percent."
        )
    else:
        message = f"Deletion guard passed: {disables} account(s) to disable out of {active} active{share}."
    return GuardDecision(
        tripped=bool(limits),
        disables=disables,
        active=active,
        percent=percent,
        limits=tuple(limits),
        message=message,
    )


#: Default data-quality gate: stop when more rows than this were quarantined ...
DEFAULT_MAX_QUARANTINE_COUNT = 500
#: ... or more than this percentage of the export's rows. Microsoft's own Sample1 export (332 rows, 44
#: WorkerIDs repeated with conflicting values) quarantines 28% and passes; a mass formatting problem does not.
DEFAULT_MAX_QUARANTINE_PERCENT = 30.0


@dataclass(frozen=True)
class QualityDecision:
    """The data-quality gate's verdict.

    :param tripped: a limit is exceeded: the run stops before sending unless a person approves.
    :param quarantined: rows quarantined this run.
    :param rows: rows in the export.
    :param percent: ``quarantined`` as a percentage of ``rows`` (``None`` for an empty export).
    :param limits: the limits exceeded.
    :param nothing_valid: every row was rejected: nothing can be sent, so the run fails whatever is approved.
    :param message: a sentence for the task log / approval screen.
    """

    tripped: bool
    quarantined: int
    rows: int
    percent: float | None
    limits: tuple[str, ...]
    nothing_valid: bool
    message: str


def check_quarantine_gate(
    quarantined: int,
    rows: int,
    valid: int,
    *,
    max_quarantine_count: int | None = DEFAULT_MAX_QUARANTINE_COUNT,
    max_quarantine_percent: float | None = DEFAULT_MAX_QUARANTINE_PERCENT,
) -> QualityDecision:
    """Decide whether too many HR rows were quarantined for the run to go on unattended.

    A quarantined person is held at the last proven state, so nothing is lost by going on; but a file in
    which many rows fail (a changed date format, a re-save that mangled a column) is a problem a person should
    see before the rest is sent. A run in which *every* row was rejected never proceeds.

    :param quarantined: rows quarantined.
    :param rows: rows in the export.
    :param valid: rows that can be sent.
    :param max_quarantine_count: most quarantined rows allowed (``None``: no count limit).
    :param max_quarantine_percent: most quarantined rows allowed, as a percentage of ``rows``.
    :return: :class:`QualityDecision`.
    """
    if max_quarantine_count is not None and max_quarantine_count < 0:
        raise ValueError(f"max_quarantine_count must be 0 or more, got {max_quarantine_count}")
    if max_quarantine_percent is not None and not 0 <= max_quarantine_percent <= 100:
        raise ValueError(f"max_quarantine_percent must be between 0 and 100, got {max_quarantine_percent}")
    percent = round(100.0 * quarantined / rows, 2) if rows else None
    limits: list[str] = []
    if max_quarantine_count is not None and quarantined > max_quarantine_count:
        limits.append(f"max_quarantine_count={max_quarantine_count}")
    if max_quarantine_percent is not None and percent is not None and percent > max_quarantine_percent:
        limits.append(f"max_quarantine_percent={max_quarantine_percent:g}")
    nothing_valid = rows > 0 and valid == 0
    share = f" ({percent:g}%)" if percent is not None else ""
    if nothing_valid:
        message = (
            f"Every one of the {rows} HR row(s) was quarantined: nothing can be sent. See quarantine.csv for "
            "the reasons, fix the export (or the mapping) and run again."
        )
    elif limits:
        message = (
            f"Data-quality gate tripped: {quarantined} of {rows} HR row(s) quarantined{share}, above "
            f"{' and '.join(limits)}. Nothing has been sent. See quarantine.csv; if the rest should go ahead "
            "anyway (the quarantined people stay as Entra holds them), approve this run."
        )
    else:
        message = f"Data-quality gate passed: {quarantined} of {rows} HR row(s) quarantined{share}."
    return QualityDecision(
        tripped=bool(limits) or nothing_valid,
        quarantined=int(quarantined),
        rows=int(rows),
        percent=percent,
        limits=tuple(limits),
        nothing_valid=nothing_valid,
        message=message,
    )


def decide(
    plan_summary: Mapping[str, Any],
    *,
    max_disable_count: int | None = DEFAULT_MAX_DISABLE_COUNT,
    max_disable_percent: float | None = DEFAULT_MAX_DISABLE_PERCENT,
    approved: bool = False,
    transform_summary: Mapping[str, Any] | None = None,
    max_quarantine_count: int | None = DEFAULT_MAX_QUARANTINE_COUNT,
    max_quarantine_percent: float | None = DEFAULT_MAX_QUARANTINE_PERCENT,
    quarantine_approved: bool = False,
) -> dict[str, Any]:
    """The deletion guard's and the data-quality gate's decision for a run (JSON-safe).

    :param plan_summary: what the plan step returned (``disables`` and ``active`` are read).
    :param max_disable_count: most disables allowed in one run (``None``: no count limit).
    :param max_disable_percent: most disables allowed, as a percentage of the active accounts.
    :param approved: a person approved this run's disables (the ``approve_disables`` Param or the UI).
    :param transform_summary: what the transform step returned (``input_rows``, ``quarantined``,
        ``mapped``); ``None``: no data-quality gate.
    :param max_quarantine_count: most quarantined rows allowed before the run stops (``None``: no limit).
    :param max_quarantine_percent: most quarantined rows allowed, as a percentage of the export's rows.
    :param quarantine_approved: a person approved going ahead despite the quarantined rows.
    :return: ``{"tripped", "approved", "proceed", "disables", "active", "percent", "limits", "message",
        "guard_tripped", "quality": {...}}``; ``proceed`` is false when the guard or the gate tripped and
        nobody approved. ``quality`` has ``tripped``, ``approved``, ``quarantined``, ``rows``, ``percent``,
        ``limits``, ``message``, ``nothing_valid`` (every row was rejected: the run cannot go on, approved or
        not).
    """
    decision = check_deletion_guard(
        int(plan_summary["disables"]),
        int(plan_summary["active"]),
        max_disable_count=max_disable_count,
        max_disable_percent=max_disable_percent,
    )
    quality = (
        check_quarantine_gate(
            int(transform_summary.get("quarantined") or 0),
            int(transform_summary.get("input_rows") or 0),
            int(transform_summary.get("mapped") or 0),
            max_quarantine_count=max_quarantine_count,
            max_quarantine_percent=max_quarantine_percent,
        )
        if transform_summary is not None
        else None
    )
    quality_tripped = quality is not None and quality.tripped
    message = " ".join(
        [decision.message] + ([quality.message] if quality is not None and quality.tripped else [])
    )
    log.info("%s", message)
    guard_ok = not decision.tripped or bool(approved)
    quality_ok = quality is None or (
        not quality.nothing_valid and (not quality.tripped or bool(quarantine_approved))
    )
    return {
        "tripped": decision.tripped or quality_tripped,
        "approved": guard_ok
        and (not quality_tripped or bool(quarantine_approved))
        and (decision.tripped or quality_tripped),
        "proceed": guard_ok and quality_ok,
        "disables": decision.disables,
        "active": decision.active,
        "percent": decision.percent,
        "limits": list(decision.limits) + (list(quality.limits) if quality is not None else []),
        "message": message,
        "guard_tripped": decision.tripped,
        "quality": None
        if quality is None
        else {
            "tripped": quality.tripped,
            "approved": bool(quarantine_approved) and quality.tripped,
            "quarantined": quality.quarantined,
            "rows": quality.rows,
            "percent": quality.percent,
            "limits": list(quality.limits),
            "message": quality.message,
            "nothing_valid": quality.nothing_valid,
        },
    }


def guard_limits(params: Mapping[str, Any], *, quality_gate: bool = True) -> dict[str, Any]:
    """:func:`decide`'s limits and approvals from a run's Params: ``max_disable_count``,
    ``max_disable_percent``, ``approve_disables`` and, with ``quality_gate``, ``max_quarantine_count``,
    ``max_quarantine_percent``, ``approve_quarantine`` (``airflow_provider_entra.params``)."""
    options = {
        "max_disable_count": params["max_disable_count"],
        "max_disable_percent": params["max_disable_percent"],
        "approved": bool(params["approve_disables"]),
    }
    if quality_gate:
        options.update(
            max_quarantine_count=params["max_quarantine_count"],
            max_quarantine_percent=params["max_quarantine_percent"],
            quarantine_approved=bool(params["approve_quarantine"]),
        )
    return options


def stop_notice(decision: Mapping[str, Any], *, approval_minutes: float | None = None) -> dict[str, Any]:
    """What a run that :func:`decide` stopped tells people, and whether to ask for approval in the UI.

    :param decision: what :func:`decide` returned (``proceed`` false).
    :param approval_minutes: how long an approval task in the UI waits for an answer (Airflow >= 3.1);
        ``None`` or 0: no approval task, the run fails at once.
    :return: ``{"status": "guard_tripped"|"rejected", "message", "ask_approval"}``: ``rejected`` when every
        row was quarantined (nothing to approve); the message names the Params to re-run with.
    """
    quality = decision.get("quality") or {}
    if quality.get("nothing_valid"):
        return {"status": "rejected", "message": decision["message"], "ask_approval": False}
    to_set = [
        f"{name}: true"
        for name, tripped in (
            ("approve_disables", decision.get("guard_tripped")),
            ("approve_quarantine", quality.get("tripped")),
        )
        if tripped
    ]
    params = ("Param " if len(to_set) == 1 else "Params ") + " and ".join(to_set)
    ask = bool(approval_minutes)
    how = (
        "To go ahead, approve the 'approve_disables' task of this run in the UI (Required actions), "
        f"within {approval_minutes:g} minute(s), or trigger"
        if ask
        else "To go ahead, trigger"
    )
    message = f"{decision['message']} {how} the DAG again with the {params}."
    return {"status": "guard_tripped", "message": message, "ask_approval": ask}
