"""Per-run report: ``outcomes.csv`` for machines and spreadsheets, ``report.html`` for people.

>>> paths = write_report(outcomes, "/data/entra/2026-03-02", run_id="scheduled__2026-03-02")  # doctest: +SKIP
>>> paths.html                                                                            # doctest: +SKIP
PosixPath('/data/entra/2026-03-02/report.html')

``report.html`` is one self-contained file: inline CSS, an inline SVG bar chart, no JavaScript, nothing
fetched from the network, so it opens from a mail attachment or an object-store console as it is. It shows
the headline counts, an action x status table, every failure with Entra's reason and recommended action,
warnings and skips, the records that never appeared in the logs, every record (folded in a ``<details>``
element), timings, and the run details passed in ``summary``. Long sections are capped at ``max_rows``
rows; ``outcomes.csv`` always holds every record.

Safety
------
* Every value shown in the HTML is escaped (``html.escape``), names such as ``<script>`` included.
* CSV formula injection is neutralised: in text columns, a cell starting with ``=``, ``+``, ``-``, ``@``,
  a tab or a carriage return gets a leading ``'`` so spreadsheet programs show it as text instead of
  evaluating it (OWASP's "CSV Injection" advice). Numeric columns are written unchanged.
* The report receives outcomes only; it never sees credentials. Callers must not put secrets in ``summary``
  or ``timings``; as a safety net, values whose key looks like a credential (``secret``, ``password``,
  ``token``, ``private``, ``credential``, ``api_key``, ``assertion``) are shown as ``[redacted]``.
* The files hold personal data (names, UPNs); on a local disk they are created with mode ``0600``.

Where the files go
------------------
``out_dir`` is a local folder (text or a path), a URL or an ``ObjectStoragePath``, created if needed; the
files are written through :mod:`airflow_provider_entra._fsio`: on a local disk each goes to a temporary file
in that folder and is renamed over the target, so a reader never sees a half-written report and no temporary
file is left behind on error; on an object store each is one whole object (published only once its upload
completes).

Pure Python and pandas: no Airflow import, no network.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from airflow_provider_entra._fsio import join, write_bytes
from airflow_provider_entra.provisioning.reconcile import (
    STATUS_FAILURE,
    STATUS_MISSING,
    STATUS_SKIPPED,
    STATUS_SUCCESS,
    STATUS_WARNING,
    STATUSES,
    outcome_summary,
    records_to_resend,
)

__all__ = [
    "CSV_NAME",
    "FORMULA_PREFIXES",
    "HTML_NAME",
    "ReportPaths",
    "neutralise_formulas",
    "render_html",
    "render_report",
    "write_report",
]

CSV_NAME = "outcomes.csv"
HTML_NAME = "report.html"
#: Cell prefixes a spreadsheet may evaluate as a formula (OWASP, CSV Injection).
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
#: A run that sent at most this many records shows them all unfolded (a daily delta: who changed and how).
OPEN_RECORDS_UP_TO = 50
#: Rows shown per table in the HTML by default; the CSV always has every record.
DEFAULT_MAX_ROWS = 500
_FORMULA_START = "[" + re.escape("".join(FORMULA_PREFIXES)) + "]"
_SECRET_KEY = re.compile(r"secret|passw|token|private|credential|api_?key|assertion", re.IGNORECASE)
_REDACTED = "[redacted]"

_STATUS_COLOURS = {
    STATUS_SUCCESS: "#2e7d32",
    STATUS_WARNING: "#b26a00",
    STATUS_FAILURE: "#c62828",
    STATUS_SKIPPED: "#607d8b",
    STATUS_MISSING: "#6a1b9a",
}
_STATUS_LABELS = {
    STATUS_SUCCESS: "Succeeded",
    STATUS_WARNING: "Warnings",
    STATUS_FAILURE: "Failed",
    STATUS_SKIPPED: "Skipped",
    STATUS_MISSING: "Missing from logs",
}
_TIMING_LABELS = {
    "submitted_at": "First submit",
    "first_submitted_at": "First submit",
    "last_submitted_at": "Last submit",
    "verify_started_at": "Verification started",
    "verify_finished_at": "Verification finished",
}


@dataclass(frozen=True)
class ReportPaths:
    """Where :func:`write_report` put the files (same path type as ``out_dir``).

    :param csv: the per-record outcomes CSV.
    :param html: the HTML report.
    """

    csv: Any
    html: Any


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells cannot be read as spreadsheet formulas.

    A text cell starting with one of :data:`FORMULA_PREFIXES` gets a leading ``'``. Numeric, boolean and
    datetime columns are unchanged.

    :param frame: any frame.
    """
    safe = frame.copy()
    for column in safe.columns:
        values = safe[column]
        if not (pd.api.types.is_object_dtype(values.dtype) or pd.api.types.is_string_dtype(values.dtype)):
            continue
        text = values.astype("string")
        risky = text.str.match(_FORMULA_START).fillna(False).astype(bool)
        if risky.any():
            safe[column] = values.astype(object).where(~risky, "'" + text.astype(object))
    return safe


def _csv_bytes(outcomes: pd.DataFrame) -> bytes:
    frame = outcomes.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return neutralise_formulas(frame).to_csv(index=False, lineterminator="\n").encode("utf-8")


# --- formatting helpers -------------------------------------------------------------------------------------


def _esc(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    if isinstance(value, (pd.Timestamp, datetime)):
        return html.escape(_fmt_time(value))
    return html.escape(str(value), quote=True)


def _fmt_time(value: datetime | pd.Timestamp) -> str:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt_duration(seconds: float) -> str:
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds:.1f} s" if seconds % 1 else f"{sign}{int(seconds)} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{sign}{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{sign}{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{sign}{days} d {hours:02d} h"


def _fmt_value(key: str, value: Any) -> str:
    """Escaped display text for a summary/timings value."""
    if _SECRET_KEY.search(key):
        return _REDACTED
    if isinstance(value, timedelta):
        return html.escape(_fmt_duration(value.total_seconds()))
    if isinstance(value, (datetime, pd.Timestamp)):
        return html.escape(_fmt_time(value))
    if isinstance(value, date):
        return html.escape(value.isoformat())
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple, set)):
        return html.escape(", ".join(str(item) for item in value))
    return _esc(value)


def _label(key: str) -> str:
    text = _TIMING_LABELS.get(key) or key.replace("_", " ").strip()
    return html.escape(text[:1].upper() + text[1:])


def _as_utc(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    if pd.isna(stamp):
        return None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


# --- sections -----------------------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; --ink: #1f2933; --muted: #5f6b7a; --line: #d9dee5; --soft: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 32px 48px; }
header { border-bottom: 1px solid var(--line); padding-bottom: 14px; margin-bottom: 8px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 10px; }
h2 .n { color: var(--muted); font-weight: normal; }
.sub { color: var(--muted); margin: 0; }
code, .id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.verdict { margin: 14px 0 0; padding: 10px 14px; border-radius: 6px; font-weight: 600; }
.verdict.ok { background: #e8f5e9; color: #1b5e20; }
.verdict.bad { background: #fdecea; color: #8e1c1c; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px;
         margin: 16px 0; }
.card { border: 1px solid var(--line); border-left: 6px solid var(--c); border-radius: 6px;
        padding: 10px 14px; }
.card .count { font-size: 28px; font-weight: 700; color: var(--c); }
.card .label { color: var(--muted); font-size: 13px; }
.notes { color: var(--muted); margin: 4px 0; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; font-size: 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 6px 10px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 700; border-top: 2px solid var(--ink); }
td.zero { color: #b0b8c2; }
td.reason { max-width: 420px; overflow-wrap: anywhere; }
table.kv th { width: 32%; }
.pill { display: inline-block; padding: 0 8px; border-radius: 10px; color: #fff; font-size: 12px;
        background: var(--c); }
.empty { color: var(--muted); font-style: italic; }
details summary { cursor: pointer; color: var(--muted); margin: 4px 0 8px; }
.more { color: var(--muted); font-size: 13px; }
ul.ids { columns: 4 160px; padding-left: 18px; margin: 6px 0; }
svg text { font: 13px -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: var(--ink); }
footer { margin-top: 40px; color: var(--muted); font-size: 13px; border-top: 1px solid var(--line);
         padding-top: 10px; }
@media print { main { padding: 0; } .card, table { break-inside: avoid; } }
"""


def _status_counts(outcomes: pd.DataFrame) -> dict[str, int]:
    counts = outcomes["status"].astype(object).value_counts()
    ordered = {status: int(counts.get(status, 0)) for status in STATUSES}
    for status, count in counts.items():
        if status not in ordered:
            ordered[str(status)] = int(count)
    return ordered


def _cards(counts: dict[str, int], total: int) -> str:
    parts = [
        f'<div class="card" style="--c:#1f2933" data-status="total" data-count="{total}">'
        f'<div class="count">{total}</div><div class="label">Records sent</div></div>'
    ]
    for status, count in counts.items():
        colour = _STATUS_COLOURS.get(status, "#455a64")
        share = f" · {100 * count / total:.1f}%" if total else ""
        parts.append(
            f'<div class="card" style="--c:{colour}" data-status="{_esc(status)}" data-count="{count}">'
            f'<div class="count">{count}</div>'
            f'<div class="label">{_esc(_STATUS_LABELS.get(status, status))}{share}</div></div>'
        )
    return f'<div class="cards">{"".join(parts)}</div>'


def _bar_chart(counts: dict[str, int]) -> str:
    bar_height, gap, label_width, width = 24, 10, 150, 760
    track = width - label_width - 70
    peak = max(counts.values(), default=0) or 1
    height = len(counts) * (bar_height + gap) + gap
    rows = []
    for i, (status, count) in enumerate(counts.items()):
        y = gap + i * (bar_height + gap)
        length = 0 if count == 0 else max(2, round(track * count / peak))
        colour = _STATUS_COLOURS.get(status, "#455a64")
        label = _esc(_STATUS_LABELS.get(status, status))
        rows.append(
            f'<text x="{label_width - 10}" y="{y + bar_height * 0.7:.0f}" text-anchor="end">{label}</text>'
            f'<rect x="{label_width}" y="{y}" width="{track}" height="{bar_height}" fill="#f0f2f5" rx="3"/>'
            f'<rect x="{label_width}" y="{y}" width="{length}" height="{bar_height}" fill="{colour}" rx="3">'
            f"<title>{label}: {count}</title></rect>"
            f'<text x="{label_width + length + 8}" y="{y + bar_height * 0.7:.0f}" '
            f'data-status="{_esc(status)}">{count}</text>'
        )
    summary = ", ".join(f"{_STATUS_LABELS.get(s, s)} {c}" for s, c in counts.items())
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_esc("Outcome counts: " + summary)}">'
        f"{''.join(rows)}</svg>"
    )


def _action_table(outcomes: pd.DataFrame) -> str:
    table = outcome_summary(outcomes)
    head = "".join(f'<th class="num">{_esc(_STATUS_LABELS.get(c, c))}</th>' for c in table.columns[:-1])
    lines = [
        '<table id="action-status"><thead><tr><th>Action</th>'
        f'{head}<th class="num">Total</th></tr></thead><tbody>'
    ]
    for action, row in table.iterrows():
        cells = []
        for status, count in row.items():
            cls = "num zero" if count == 0 else "num"
            data = f'data-action="{_esc(action)}" data-status="{_esc(status)}"'
            cells.append(f'<td class="{cls}" {data}>{int(count)}</td>')
        css = ' class="total"' if action == "total" else ""
        name = "Total" if action == "total" else ("no log entry" if action == "(none)" else action)
        lines.append(f"<tr{css}><td>{_esc(name)}</td>{''.join(cells)}</tr>")
    lines.append("</tbody></table>")
    return "".join(lines)


def _records_table(rows: pd.DataFrame, columns: list[tuple[str, str]], max_rows: int, table_id: str) -> str:
    if rows.empty:
        return '<p class="empty">None.</p>'
    shown = rows.head(max_rows)
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in columns)
    body = []
    for record in shown.itertuples(index=False):
        values = record._asdict()
        cells = []
        for column, _ in columns:
            value = values.get(column)
            if column == "status":
                colour = _STATUS_COLOURS.get(str(value), "#455a64")
                cells.append(f'<td><span class="pill" style="--c:{colour}">{_esc(value)}</span></td>')
            elif column == "external_id":
                cells.append(f'<td class="id">{_esc(value)}</td>')
            elif column in ("reason", "recommended_action"):
                cells.append(f'<td class="reason">{_esc(value)}</td>')
            elif column == "change":
                cells.append(f"<td>{_esc(CHANGE_LABELS.get(str(value), value))}</td>")
            else:
                cells.append(f"<td>{_esc(value)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    more = ""
    if len(rows) > len(shown):
        more = f'<p class="more">{len(rows) - len(shown)} more in {CSV_NAME}.</p>'
    return (
        f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>{more}'
    )


def _missing_list(missing: pd.DataFrame, max_rows: int) -> str:
    if missing.empty:
        return '<p class="empty">None: every record sent has a log entry.</p>'
    shown = missing["external_id"].head(max_rows)
    items = "".join(f'<li class="id">{_esc(value)}</li>' for value in shown)
    more = ""
    if len(missing) > len(shown):
        more = f'<p class="more">{len(missing) - len(shown)} more in {CSV_NAME}.</p>'
    return (
        '<p class="notes">No provisioning-log entry arrived for these records before verification ended. '
        "Entra writes its logs 5 to 10 minutes after processing; they are sent again next run.</p>"
        f'<ul class="ids" id="missing-ids">{items}</ul>{more}'
    )


def _timings(outcomes: pd.DataFrame, timings: Mapping[str, Any] | None) -> str:
    rows: list[tuple[str, str]] = []
    timings = dict(timings or {})
    for key, value in timings.items():
        rows.append((_label(key), _fmt_value(key, value)))
    times = outcomes["activity_time"].dropna() if "activity_time" in outcomes else pd.Series(dtype=object)
    first_log = _as_utc(times.min()) if len(times) else None
    last_log = _as_utc(times.max()) if len(times) else None
    if first_log is not None:
        rows.append(("First log entry", html.escape(_fmt_time(first_log))))
        rows.append(("Last log entry", html.escape(_fmt_time(last_log))))
    submitted = _as_utc(timings.get("submitted_at", timings.get("first_submitted_at")))
    if submitted is not None and first_log is not None:
        rows.append(
            (
                "First submit → first log entry",
                html.escape(_fmt_duration((first_log - submitted).total_seconds())),
            )
        )
        rows.append(
            (
                "First submit → last log entry",
                html.escape(_fmt_duration((last_log - submitted).total_seconds())),
            )
        )
    if first_log is not None and last_log is not None:
        rows.append(
            (
                "Log span (first → last entry)",
                html.escape(_fmt_duration((last_log - first_log).total_seconds())),
            )
        )
    if not rows:
        return '<p class="empty">No timings recorded.</p>'
    body = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)
    return f'<table id="timings" class="kv"><tbody>{body}</tbody></table>'


def _run_details(summary: Mapping[str, Any] | None) -> str:
    if not summary:
        return '<p class="empty">No run details given.</p>'
    body = "".join(
        f"<tr><th>{_label(str(key))}</th><td>{_fmt_value(str(key), value)}</td></tr>"
        for key, value in summary.items()
    )
    return f'<table id="run-details" class="kv"><tbody>{body}</tbody></table>'


#: Columns a caller may add to the outcomes (joined from the plan): shown when present.
_RECORD_DETAIL_COLUMNS = [
    ("display_name", "Name"),
    ("change", "HR change"),
    ("changed_attributes", "Changed attributes"),
]
#: How each plan ``change`` reads in the report.
CHANGE_LABELS = {
    "joiner": "joiner",
    "mover": "mover",
    "leaver": "leaver",
    "rehire": "rehire",
    "missing_disable": "missing from the export (disabled)",
    "inactive_new": "inactive, unknown to the ledger (sent disabled)",
    "prehire": "joiner before the hire date (created disabled)",
    "unchanged": "unchanged (full sync)",
    "inactive_changed": "inactive, changed (full sync)",
    "stuck": "stuck (full sync)",
}


def _with_details(columns: list[tuple[str, str]], outcomes: pd.DataFrame) -> list[tuple[str, str]]:
    extra = [(c, t) for c, t in _RECORD_DETAIL_COLUMNS if c in outcomes.columns]
    return columns[:1] + extra + columns[1:]


def _progress_line(progress: Mapping[str, Any] | None) -> str:
    """The load's progress under the verdict: how much is sent, and how many days of quota the rest takes."""
    if not progress:
        return ""
    unsent = int(progress.get("unsent") or 0)
    waiting = (
        f" {unsent:,} record(s) wait for the tenant's daily quota ({progress.get('per_day')} bulkUpload "
        "calls a day) and go in the next runs: they are not failures."
        if unsent
        else ""
    )
    return (
        f'<p class="notes" id="progress" data-sent="{int(progress["sent"])}" data-total="'
        f'{int(progress["total"])}" data-unsent="{unsent}">{_esc(str(progress["text"]) + ".")}{_esc(waiting)}'
        "</p>"
    )


def _quarantine_section(quarantine: Mapping[str, Any] | None) -> str:
    if not quarantine:
        return ""
    count = int(quarantine.get("count") or 0)
    rows = int(quarantine.get("rows") or 0)
    path = quarantine.get("path")
    if not count:
        body = f'<p class="empty">No HR row was quarantined ({rows} row(s) read).</p>'
    else:
        reasons = "".join(
            f'<tr><td class="reason">{_esc(reason)}</td><td>{_esc(n)}</td></tr>'
            for reason, n in quarantine.get("top_reasons") or ()
        )
        body = (
            f'<p class="notes" id="quarantine-count" data-count="{count}">{count} of {rows} HR row(s) were '
            "quarantined and not sent: a person Entra already holds stays as Entra holds them (neither "
            "updated nor disabled) until the row is fixed.</p>"
            f'<table id="quarantine-reasons"><thead><tr><th>Top reasons</th><th>Rows</th></tr></thead>'
            f"<tbody>{reasons}</tbody></table>"
        )
        if path:
            body += f'<p class="notes">Every row with its reason: <code>{_esc(path)}</code></p>'
    title = f'Quarantined HR rows <span class="n">({count})</span>'
    return f'<section id="quarantine"><h2>{title}</h2>{body}</section>'


def _held_section(held: Mapping[str, Any] | None) -> str:
    if not held:
        return ""
    count = int(held.get("count") or 0)
    ids = list(held.get("ids") or ())
    if not count:
        return ""
    items = "".join(f'<li class="id">{_esc(value)}</li>' for value in ids)
    more = f'<p class="more">{count - len(ids)} more.</p>' if count > len(ids) else ""
    return (
        f'<section id="held"><h2>Held at their last state <span class="n">({count})</span></h2>'
        '<p class="notes">These people are in the ledger but their HR row was quarantined this run: they '
        "were neither updated nor disabled. Fix their rows (see the quarantine) and they are sent next "
        "run.</p>"
        f'<ul class="ids" id="held-ids">{items}</ul>{more}</section>'
    )


def _stuck_section(stuck: list[Mapping[str, Any]] | None) -> str:
    if not stuck:
        return ""
    rows = pd.DataFrame(list(stuck))
    columns = [
        ("externalId", "externalId"),
        ("reason", "Reason"),
        ("detail", "Entra's description"),
        ("runs", "Runs"),
        ("action", "What to do"),
    ]
    return (
        f'<section id="stuck"><h2>Stuck records <span class="n">({len(rows)})</span></h2>'
        '<p class="notes">Entra skipped these records the same way in several runs, so they were not sent '
        "again. Act on the reason (for example extend the provisioning app's scoping, or release held "
        "deletes), change the record, or run a full sync to send them once more.</p>"
        f"{_records_table(rows, columns, DEFAULT_MAX_ROWS, 'stuck-table')}</section>"
    )


def render_html(
    outcomes: pd.DataFrame,
    *,
    run_id: str,
    summary: Mapping[str, Any] | None = None,
    timings: Mapping[str, Any] | None = None,
    generated_at: datetime | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    quarantine: Mapping[str, Any] | None = None,
    held: Mapping[str, Any] | None = None,
    stuck: list[Mapping[str, Any]] | None = None,
    progress: Mapping[str, Any] | None = None,
) -> str:
    """The HTML report as a string (see :func:`write_report` for the parameters)."""
    generated = generated_at or datetime.now(timezone.utc)
    total = len(outcomes)
    counts = _status_counts(outcomes)
    status = outcomes["status"]
    failures = outcomes[status.eq(STATUS_FAILURE)]
    attention = outcomes[status.isin((STATUS_WARNING, STATUS_SKIPPED))]
    missing = outcomes[status.eq(STATUS_MISSING)]
    resend = records_to_resend(outcomes)
    resolved = int(outcomes["resolved_later"].astype(bool).sum()) if "resolved_later" in outcomes else 0

    rejected = int((quarantine or {}).get("count") or 0)
    if total == 0 and rejected and rejected >= int((quarantine or {}).get("rows") or 0):
        verdict = (
            f'<p class="verdict bad">Nothing was sent: every one of the {rejected} HR row(s) was '
            "quarantined.</p>"
        )
    elif total == 0:
        quarantined = f" {rejected} HR row(s) were quarantined." if rejected else ""
        verdict = f'<p class="verdict ok">No records were sent in this run.{_esc(quarantined)}</p>'
    elif not resend and counts.get(STATUS_WARNING, 0) == 0:
        verdict = f'<p class="verdict ok">All {total} records were provisioned.</p>'
    else:
        problems = [
            f"{count} {_STATUS_LABELS[name].lower()}"
            for name, count in counts.items()
            if name in (STATUS_FAILURE, STATUS_MISSING, STATUS_WARNING, STATUS_SKIPPED) and count
        ]
        verdict = (
            f'<p class="verdict bad">{len(resend)} of {total} records will be sent again next run '
            f"({_esc(', '.join(problems))}).</p>"
        )
    notes = []
    if resolved:
        notes.append(
            f'<p class="notes" id="resolved-later" data-count="{resolved}">{resolved} manager reference(s) '
            "could not be resolved on the first pass and were set by Entra's follow-up update: counted as "
            "succeeded.</p>"
        )
    failure_columns = [
        ("external_id", "externalId"),
        ("action", "Action"),
        ("error_code", "Error code"),
        ("reason", "Entra's reason"),
        ("recommended_action", "Recommended action"),
        ("activity_time", "Logged"),
    ]
    attention_columns = [
        ("external_id", "externalId"),
        ("status", "Status"),
        ("action", "Action"),
        ("error_code", "Code"),
        ("reason", "Reason"),
        ("upn", "UPN"),
    ]
    all_columns = [
        ("external_id", "externalId"),
        ("status", "Status"),
        ("action", "Action"),
        ("upn", "UPN"),
        ("entra_object_id", "Entra object id"),
        ("activity_time", "Logged"),
        ("entries", "Log entries"),
    ]
    failure_columns = _with_details(failure_columns, outcomes)
    attention_columns = _with_details(attention_columns, outcomes)
    all_columns = _with_details(all_columns, outcomes)
    sections = [
        "<header><h1>Entra provisioning report</h1>"
        f'<p class="sub">Run <code>{_esc(run_id)}</code> · generated {_esc(_fmt_time(generated))}</p>'
        f"{verdict}{_progress_line(progress)}</header>",
        f'<section id="headline"><h2>Outcome</h2>{_cards(counts, total)}{"".join(notes)}'
        f"{_bar_chart(counts)}</section>",
        f'<section id="actions"><h2>Actions by status</h2>{_action_table(outcomes)}</section>',
        _quarantine_section(quarantine),
        _held_section(held),
        _stuck_section(stuck),
        f'<section id="failures"><h2>Failures <span class="n">({len(failures)})</span></h2>'
        f"{_records_table(failures, failure_columns, max_rows, 'failure-table')}</section>",
        f'<section id="attention"><h2>Warnings and skipped <span class="n">({len(attention)})</span></h2>'
        f"{_records_table(attention, attention_columns, max_rows, 'attention-table')}</section>",
        f'<section id="missing"><h2>Missing from the logs <span class="n">({len(missing)})</span></h2>'
        f"{_missing_list(missing, max_rows)}</section>",
        f'<section id="all"><h2>All records <span class="n">({total})</span></h2>'
        f"<details{' open' if total <= OPEN_RECORDS_UP_TO else ''}>"
        "<summary>Show every record sent, with its final outcome</summary>"
        f"{_records_table(outcomes, all_columns, max_rows, 'all-table')}</details></section>",
        f'<section id="timing"><h2>Timings</h2>{_timings(outcomes, timings)}</section>',
        f'<section id="run"><h2>Run details</h2>{_run_details(summary)}</section>',
        f"<footer>Every record with its outcome: <code>{CSV_NAME}</code>. Outcomes come from Entra's "
        "provisioning logs; a record counts as succeeded only when its latest log entry says so.</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Entra provisioning report · {_esc(run_id)}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(sections)}</main></body></html>\n"
    )


# --- writing ------------------------------------------------------------------------------------------------


def render_report(outcomes: pd.DataFrame, **kwargs: Any) -> tuple[bytes, bytes]:
    """``(outcomes.csv, report.html)`` as bytes, for callers that store them themselves (keyword arguments
    as for :func:`write_report`, less ``out_dir``)."""
    return _csv_bytes(outcomes), render_html(outcomes, **kwargs).encode("utf-8")


def write_report(
    outcomes: pd.DataFrame,
    out_dir: str | os.PathLike[str] | Any,
    *,
    run_id: str,
    summary: Mapping[str, Any] | None = None,
    timings: Mapping[str, Any] | None = None,
    generated_at: datetime | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    quarantine: Mapping[str, Any] | None = None,
    held: Mapping[str, Any] | None = None,
    stuck: list[Mapping[str, Any]] | None = None,
    progress: Mapping[str, Any] | None = None,
) -> ReportPaths:
    """Write ``outcomes.csv`` and ``report.html`` for one run.

    :param outcomes: the frame :func:`~airflow_provider_entra.provisioning.reconcile.reconcile` returns.
    :param out_dir: the run folder: a local path, a URL or an ``ObjectStoragePath`` (see the module
        docstring).
    :param run_id: shown in the title (e.g. the Airflow run id).
    :param summary: run details shown as a table (source rows, quarantined rows, DAG, job id...). Never
        pass secrets; keys that look like credentials are redacted anyway.
    :param timings: datetimes/durations shown in the timings table. Recognised keys: ``submitted_at`` (or
        ``first_submitted_at``: the first upload, used to compute the delay to the first and last log
        entry), ``last_submitted_at``, ``verify_started_at``, ``verify_finished_at``; other keys are shown
        as given.
    :param generated_at: timestamp printed in the header (default: now, UTC).
    :param max_rows: rows shown per HTML table; the CSV holds every record.
    :param quarantine: the HR rows set aside: ``count``, ``rows`` (read), ``top_reasons`` (``[[reason, n]]``)
        and ``path`` (of ``quarantine.csv``).
    :param held: people held at their last proven state: ``count`` and ``ids``.
    :param stuck: records not sent because Entra skipped them the same way run after run (``externalId``,
        ``reason``, ``detail``, ``runs``).
    :param progress: the load's progress, shown under the verdict: ``sent``, ``total``, ``unsent``,
        ``per_day`` and ``text`` (``142,000 of 500,000 records sent; about 4 more days at this tenant's
        quota``; :func:`~airflow_provider_entra.provisioning.summary.load_progress`).
    :return: the paths written: ``Path`` objects for a local folder given as text or a path, URLs as text,
        ``ObjectStoragePath`` objects for one.

    Outcomes may carry ``display_name``, ``change`` (the HR change kind) and ``changed_attributes`` columns
    (joined from the plan): the record tables show them.
    """
    csv_data, html_data = render_report(
        outcomes,
        run_id=run_id,
        summary=summary,
        timings=timings,
        generated_at=generated_at,
        max_rows=max_rows,
        quarantine=quarantine,
        held=held,
        stuck=stuck,
        progress=progress,
    )
    folder = Path(out_dir) if isinstance(out_dir, str) and "://" not in out_dir else out_dir
    paths = ReportPaths(csv=join(folder, CSV_NAME), html=join(folder, HTML_NAME))
    write_bytes(paths.csv, csv_data)
    write_bytes(paths.html, html_data)
    return paths
