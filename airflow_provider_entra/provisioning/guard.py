"""The deletion guard: stop before anything is sent when a plan would disable too many accounts.

A truncated HR export looks exactly like a mass departure: everybody missing from the file becomes a disable.
Entra's own accidental-deletion threshold only acts after the records arrive (and then quarantines the whole
job); this guard acts before the upload, so nothing is sent until a person confirms.

Both limits are on by default. The percentage is of the accounts that are active in the snapshot; on a first
run there is no snapshot, nothing can be disabled, and the percentage limit cannot trip (the count limit still
applies to whatever plan it is given).
"""

from __future__ import annotations

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
]

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
