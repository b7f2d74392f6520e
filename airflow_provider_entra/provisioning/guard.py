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
    "GuardDecision",
    "check_deletion_guard",
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
