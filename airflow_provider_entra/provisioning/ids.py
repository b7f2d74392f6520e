"""Id hygiene before planning: undo what spreadsheets do to id columns, quarantine what cannot be undone.

An HR export opened and saved again in Excel comes back with its ids turned into numbers: ``123456``
becomes ``123456.0`` (an integer written as a float), ``001234`` loses its leading zeros, and a long id is
shown in scientific notation, ``3.75400E+5``, which keeps only the digits on screen. Planned as they are,
such ids create accounts for people who do not exist and disable the real ones ("missing from the export"),
or send every worker as a mover because each ManagerID "changed". :func:`repair_ids` runs before
validation and planning, on the WorkerID column and the ManagerID column alike, one column at a time:

=======================================  ======================  ===========================================
value in the export                      becomes                 counted / reason
=======================================  ======================  ===========================================
``" 123456 "``                           ``123456``              ``restored["trimmed"]``
``123456.0``, ``123456.00``, ``12,0``    ``123456``, ``12``      ``restored["float_suffix"]``
``123`` (shape ``digits:6``)             ``000123``              ``restored["zero_padded"]``
``123`` (``000123`` is a known id)       ``000123``              ``restored["zero_padded"]``
``3.75400E+5``, ``1.2E+05``, ``1,2E+05``  quarantined             scientific notation: digits are lost
``1.000``, ``12,000``                    quarantined             decimal or thousands separator: ambiguous
``A12`` (declared ``digits``)            quarantined             contradicts the declared shape
``1234567`` (declared ``digits:6``)      quarantined             longer than the declared width
=======================================  ======================  ===========================================

* An id that is exactly one of ``known_ids`` (the ids Entra is known to hold) is never changed, whatever it
  looks like; only surrounding whitespace is trimmed.
* Zero padding needs a fixed-width digit shape: declared (``declared="digits:6"``), else learnt from
  ``known_ids`` by :func:`learn_id_shape`; or a known id that is the value with leading zeros, and the only
  one (``123`` with ``000123`` known, but not with both ``0123`` and ``00123``). Otherwise short ids stay.
* A row whose WorkerID or ManagerID is mangled is quarantined (stage ``ids``): a mangled WorkerID can then
  neither create an account nor make the real person look absent, and a mangled ManagerID cannot move the
  person to a wrong manager. ``held_ids`` lists the known ids a mangled WorkerID could stand for
  (``3.75E+5`` is any integer that rounds to it at the precision shown: 374,500 .. 375,500, both ties
  included; a known ``0375123`` counts as 375,123), plus the known WorkerIDs of every quarantined row: the
  planner neither updates nor disables them this run. A mangled id with no known candidate holds nothing,
  and is still quarantined, so it never creates an account.
* A declared ``text`` shape only turns off zero padding and the shape checks; the Excel forms above are
  still recognised (no real id is written ``123.0`` or ``3.75400E+5``).

Example::

    >>> import pandas as pd
    >>> hr = pd.DataFrame({"WorkerID": ["123", "3.75E+5", "000777"], "ManagerID": ["777.0", "777.0", ""]})
    >>> out = repair_ids(hr, id_column="WorkerID", manager_column="ManagerID",
    ...                  known_ids=pd.Series(["000777", "375000", "375100"]), declared="digits:6")
    >>> out.frame["WorkerID"].tolist(), out.frame["ManagerID"].tolist()
    (['000123', '000777'], ['000777', ''])
    >>> out.rejected["row"].tolist(), list(out.held_ids)
    ([1], ['375000', '375100'])
    >>> out.restored
    {'trimmed': 0, 'float_suffix': 1, 'zero_padded': 2}
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_entra.provisioning._hr import (
    TEXT_DTYPE,
    HrSchemaError,
    Reasons,
    from_arrow,
    index_in,
    isin_text,
    quarantine_frame,
    take_text,
    to_arrow,
    without_rows,
)

__all__ = [
    "CONFIDENT_KNOWN_IDS",
    "RESTORE_KINDS",
    "STAGE",
    "IdRepair",
    "IdShape",
    "learn_id_shape",
    "repair_ids",
]

STAGE = "ids"

#: Kinds of restoration counted in :attr:`IdRepair.restored`, in the order they are applied.
RESTORE_KINDS = ("trimmed", "float_suffix", "zero_padded")

#: Share of known ids that must agree for a shape to be learnt (a few stray ids in the ledger are tolerated).
NEARLY_ALL = 0.99
#: Without any leading zero among the known ids, this many ids of one width are needed to learn the width.
CONFIDENT_KNOWN_IDS = 1000
#: With leading zeros (proof of zero padding), this many known ids are enough.
MIN_PADDED_KNOWN_IDS = 3
#: Longest width a ``digits:N`` shape may declare (the longest externalId accepted, see ``validate``).
MAX_WIDTH = 64
#: Longest digit string compared numerically when looking for the people a mangled id stands for (int64).
_MAX_NUMERIC_DIGITS = 18

_FIX = "format the {col} column as Text in Excel and export again, or export from the HR system directly"
_DIGITS_RE2 = r"^[0-9]+$"
_SCI_RE2 = r"^(?P<int>[0-9]+)(?:[.,](?P<frac>[0-9]*))?[eE](?P<sign>[+-])(?P<exp>[0-9]+)$"
_AMBIGUOUS_RE2 = r"^(?P<int>[0-9]{1,3})[.,]000$"
_FLOAT_SUFFIX_RE2 = r"^[0-9]+[.,]0+$"  # "1.000" and "12,000" are caught as ambiguous first


@dataclass(frozen=True)
class IdShape:
    """What the ids of a column look like.

    :param kind: ``digits`` (ASCII digits only) or ``text`` (anything: no padding, no shape checks).
    :param width: for ``digits``, the fixed width ids are zero-padded to; ``None`` for any length.
    """

    kind: Literal["digits", "text"] = "digits"
    width: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("digits", "text"):
            raise ValueError(f"id shape kind must be 'digits' or 'text', got {self.kind!r}")
        if self.width is not None and (
            self.kind != "digits" or isinstance(self.width, bool) or not 1 <= self.width <= MAX_WIDTH
        ):
            raise ValueError(
                f"id shape width must be a whole number from 1 to {MAX_WIDTH}, for 'digits' only; got "
                f"{self.kind!r} with width {self.width!r}"
            )

    @classmethod
    def parse(cls, text: str) -> IdShape:
        """Read a declared shape: ``digits``, ``digits:6`` (zero-padded to 6 digits) or ``text``.

        :param text: the declaration (case and surrounding spaces ignored).
        :return: the shape.
        :raises ValueError: for anything else; the message lists the accepted forms.
        """
        spec = str(text).strip().lower()
        kind, colon, width = spec.partition(":")
        kind, width = kind.strip(), width.strip()
        if kind == "text" and not colon:
            return cls("text")
        if kind == "digits" and not colon:
            return cls("digits")
        if kind == "digits" and width.isascii() and width.isdigit():
            return cls("digits", int(width))
        raise ValueError(
            f"id shape must be 'digits', 'digits:<width>' (for example 'digits:6') or 'text', got {text!r}"
        )

    @property
    def fixed_width(self) -> int | None:
        """The width ids are zero-padded to, or ``None``."""
        return self.width if self.kind == "digits" else None

    def __str__(self) -> str:
        return f"{self.kind}:{self.width}" if self.width is not None else self.kind


@dataclass(frozen=True)
class IdRepair:
    """What :func:`repair_ids` returns.

    :param frame: the rows not quarantined, ids restored, input index labels kept.
    :param rejected: quarantined rows: ``row`` (input index label), ``externalId``, ``stage`` (``ids``),
        ``reason``.
    :param held_ids: known ids (text) the planner must neither update nor disable this run: those a mangled
        WorkerID could stand for, and the known WorkerIDs of quarantined rows.
    :param restored: how many id values of ``frame`` were restored, by kind (see :data:`RESTORE_KINDS`).
    :param shape: the shape used (declared, else learnt), or ``None``.
    """

    frame: pd.DataFrame
    rejected: pd.DataFrame
    held_ids: pd.Index
    restored: dict[str, int] = field(default_factory=dict)
    shape: IdShape | None = None


def _known_text(known_ids: pd.Series | pd.Index | Iterable[str] | None) -> pd.Series:
    """The known ids as trimmed, non-empty text (a ledger's ids are distinct already)."""
    if known_ids is None:
        return pd.Series([], dtype=TEXT_DTYPE)
    if isinstance(known_ids, pd.Index):
        values = pd.Series(known_ids.to_numpy(), copy=False)
    elif isinstance(known_ids, pd.Series):
        values = known_ids.reset_index(drop=True)
    else:
        values = pd.Series(list(known_ids), dtype=object)
    if len(values) == 0:
        return pd.Series([], dtype=TEXT_DTYPE)
    arr = pc.utf8_trim_whitespace(to_arrow(values))
    arr = arr.filter(pc.fill_null(pc.not_equal(arr, ""), False))
    return from_arrow(arr, pd.RangeIndex(len(arr)))


def learn_id_shape(known_ids: pd.Series | pd.Index | Iterable[str] | None) -> IdShape | None:
    """Learn the shape of ids from the ids Entra is known to hold (the ledger's).

    * ``digits:<w>`` when (nearly: :data:`NEARLY_ALL`) every known id is a digit string of width ``w`` and
      either some of them start with ``0`` (zero padding is proven; at least :data:`MIN_PADDED_KNOWN_IDS`
      ids) or there are at least :data:`CONFIDENT_KNOWN_IDS` of them;
    * ``digits`` when (nearly) every known id is a digit string, of various widths or too few to be sure;
    * ``None`` when there are no known ids, or they are not (nearly) all digits.

    :param known_ids: the known ids (text; blanks ignored).
    :return: the learnt shape, or ``None`` when nothing can be learnt.
    """
    return _learn(_known_text(known_ids))


def _learn(known: pd.Series) -> IdShape | None:
    n = len(known)
    if n == 0:
        return None
    arr = to_arrow(known)
    digits = np.asarray(pc.match_substring_regex(arr, _DIGITS_RE2).to_numpy(zero_copy_only=False), dtype=bool)
    if digits.sum() < NEARLY_ALL * n:
        return None
    lengths = np.asarray(pc.utf8_length(arr).to_numpy(zero_copy_only=False))[digits]
    widths, counts = np.unique(lengths, return_counts=True)
    width = int(widths[np.argmax(counts)])
    same = lengths == width
    if same.sum() < NEARLY_ALL * n:
        return IdShape("digits")
    starts = pc.utf8_slice_codeunits(arr.filter(pa.array(digits)), 0, 1)
    zero_led = np.asarray(pc.equal(starts, "0").to_numpy(zero_copy_only=False), dtype=bool) & same
    if (zero_led.any() and n >= MIN_PADDED_KNOWN_IDS) or n >= CONFIDENT_KNOWN_IDS:
        return IdShape("digits", width)
    return IdShape("digits")


def _is_known(arr: pa.Array, where: np.ndarray, known: pd.Series) -> np.ndarray:
    """True where ``where`` holds and the value is exactly a known id (only those rows are looked up)."""
    out = np.zeros(len(arr), dtype=bool)
    if len(known) and where.any():
        subset = arr.filter(pa.array(where))
        out[where] = isin_text(from_arrow(subset, pd.RangeIndex(len(subset))), known)
    return out


def _mask(arr: pa.Array, pattern: str) -> np.ndarray:
    hit = pc.fill_null(pc.match_substring_regex(arr, pattern), False)
    return np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)


def _int_of(digits: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Digit strings as int64, and a mask of those short enough (leading zeros do not count)."""
    stripped = pc.utf8_ltrim(digits, "0")
    length = np.asarray(pc.utf8_length(stripped).to_numpy(zero_copy_only=False), dtype=np.int64)
    fits = length <= _MAX_NUMERIC_DIGITS
    safe = pc.if_else(pa.array(fits & (length > 0)), stripped, pa.scalar("0", stripped.type))
    return np.asarray(pc.cast(safe, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64), fits


def _sci_intervals(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Integers each scientific-notation value could be, as inclusive ``[lo, hi]`` (empty when ``lo > hi``).

    ``m.fffE+e`` with the last shown digit worth ``10**p`` (``p = e - len(fff)``) stands for the integers
    that round to it: ``m.fff * 10**e - 5 * 10**(p-1)`` up to ``m.fff * 10**e + 5 * 10**(p-1)``, both ties
    included (Excel rounds half away from zero, Python and pandas half to even); when ``p <= 0`` only the
    value itself, if it is a whole number.
    """
    parts = pc.extract_regex(values, _SCI_RE2)
    frac = pc.fill_null(parts.field("frac"), pa.scalar("", values.type))
    shown = pc.binary_join_element_wise(parts.field("int"), frac, pa.scalar("", values.type))
    mantissa, fits = _int_of(shown)
    digits = np.asarray(
        pc.utf8_length(pc.utf8_ltrim(shown, "0")).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    exp_text = parts.field("exp")
    big_exp = np.asarray(pc.greater(pc.utf8_length(exp_text), 4).to_numpy(zero_copy_only=False), dtype=bool)
    exp_safe = pc.if_else(pa.array(big_exp), pa.scalar("9999", exp_text.type), exp_text)
    exp = np.asarray(pc.cast(exp_safe, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    negative = np.asarray(pc.equal(parts.field("sign"), "-").to_numpy(zero_copy_only=False), dtype=bool)
    exp = np.where(negative, -exp, exp)
    frac_len = np.asarray(pc.utf8_length(frac).to_numpy(zero_copy_only=False), dtype=np.int64)
    p = exp - frac_len

    lo = np.ones(len(p), dtype=np.int64)
    hi = np.zeros(len(p), dtype=np.int64)
    up = fits & (p >= 0) & ((mantissa == 0) | (digits + p <= _MAX_NUMERIC_DIGITS))
    pu = np.where(up, p, 0)
    scaled = mantissa * np.power(10, pu, dtype=np.int64)
    half = np.where(pu >= 1, 5 * np.power(10, np.maximum(pu - 1, 0), dtype=np.int64), 0)
    lo = np.where(up, np.maximum(scaled - half, 0), lo)
    hi = np.where(up, scaled + half, hi)
    down = fits & (p < 0)
    q = np.where(down, np.minimum(-p, _MAX_NUMERIC_DIGITS), 0)
    divisor = np.power(10, q, dtype=np.int64)
    whole = down & ((mantissa % divisor == 0) & ((-p <= _MAX_NUMERIC_DIGITS) | (mantissa == 0)))
    lo = np.where(whole, mantissa // divisor, lo)
    hi = np.where(whole, mantissa // divisor, hi)
    return lo, hi


def _candidates(known: pd.Series, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The known digit ids whose integer value lies in any ``[lo, hi]`` (zero-padded ids included)."""
    if len(known) == 0 or len(lo) == 0:
        return np.array([], dtype=object)
    arr = to_arrow(known)
    digits = _mask(arr, _DIGITS_RE2)
    if not digits.any():
        return np.array([], dtype=object)
    numbers, fits = _int_of(arr.filter(pa.array(digits)))
    text = known.to_numpy(dtype=object)[digits][fits]
    numbers = numbers[fits]
    order = np.argsort(numbers, kind="stable")
    numbers, text = numbers[order], text[order]
    start = np.searchsorted(numbers, lo, side="left")
    end = np.searchsorted(numbers, hi, side="right")
    size = np.maximum(end - start, 0)
    if size.sum() == 0:
        return np.array([], dtype=object)
    owner_start = np.repeat(start, size)
    offset = np.arange(size.sum()) - np.repeat(np.cumsum(size) - size, size)
    return text[owner_start + offset]


@dataclass
class _Column:
    """One repaired id column: text, what was restored where, and the values that could not be."""

    text: pd.Series
    changed: bool
    restored: dict[str, np.ndarray]
    lo: np.ndarray
    hi: np.ndarray


def _zero_led(known: pd.Series) -> pd.Series:
    """Known zero-padded digit ids by their text without the leading zeros (``"123"`` -> ``"000123"``).

    Only unambiguous ones: a stripped text shared by two known ids (``0123``, ``00123``), or itself a known
    id, is left out.
    """
    if len(known) == 0:
        return pd.Series([], dtype=TEXT_DTYPE, index=pd.Index([], dtype=TEXT_DTYPE))
    arr = to_arrow(known)
    padded = arr.filter(pa.array(_mask(arr, r"^0+[1-9][0-9]*$")))
    keys = from_arrow(pc.utf8_ltrim(padded, "0"), pd.RangeIndex(len(padded)))
    unique = ~keys.duplicated(keep=False).to_numpy() & ~isin_text(keys, known)
    return pd.Series(
        from_arrow(padded, keys.index)[unique].to_numpy(), index=pd.Index(keys[unique], dtype=TEXT_DTYPE)
    ).astype(TEXT_DTYPE)


def _repair_column(
    values: pd.Series,
    column: str,
    shape: IdShape | None,
    declared: bool,
    known: pd.Series,
    zero_led: pd.Series,
    reasons: Reasons,
) -> _Column:
    index = values.index
    n = len(values)
    original = to_arrow(values)
    arr = pc.utf8_trim_whitespace(original)
    present = np.asarray(
        pc.fill_null(pc.not_equal(arr, ""), False).to_numpy(zero_copy_only=False), dtype=bool
    )
    trimmed = present & np.asarray(
        pc.fill_null(pc.not_equal(arr, original), False).to_numpy(zero_copy_only=False), dtype=bool
    )
    none = np.zeros(n, dtype=bool)
    restored = {"trimmed": trimmed, "float_suffix": none, "zero_padded": none}
    bad = none
    lo = hi = np.array([], dtype=np.int64)
    fix = _FIX.format(col=column)

    digits = _mask(arr, _DIGITS_RE2)
    untouched = digits | ~present
    untouched |= _is_known(arr, ~untouched, known)
    if not untouched.all():  # only columns with something other than plain digits need the Excel checks
        text = from_arrow(arr, index)
        sci = _mask(arr, _SCI_RE2) & ~untouched
        if sci.any():
            reasons.add_values(
                pd.Series(sci, index=index),
                f"{column}: '",
                text,
                "' is in scientific notation: a spreadsheet turned the id into a number and lost its last"
                f" digits, so it cannot be restored; {fix}",
            )
            lo, hi = _sci_intervals(arr.filter(pa.array(sci)))
        ambiguous = _mask(arr, _AMBIGUOUS_RE2) & ~untouched
        if ambiguous.any():
            head = from_arrow(pc.utf8_slice_codeunits(arr, 0, -4), index)
            message = (
                f"{column}: '"
                + text
                + "' could be "
                + head
                + " or "
                + head
                + "000 (a decimal or a thousands separator added by a spreadsheet); "
                + fix
            )
            reasons.add(pd.Series(ambiguous, index=index), message)
            head_int, fits = _int_of(to_arrow(head[ambiguous]))
            lo = np.concatenate([lo, head_int[fits], head_int[fits] * 1000])
            hi = np.concatenate([hi, head_int[fits], head_int[fits] * 1000])
        bad = sci | ambiguous
        suffix = _mask(arr, _FLOAT_SUFFIX_RE2) & ~untouched & ~ambiguous
        if suffix.any():
            arr = pc.if_else(pa.array(suffix), pc.replace_substring_regex(arr, r"[.,]0+$", ""), arr)
            digits = digits | suffix
            restored["float_suffix"] = suffix

    if len(zero_led) and digits.any() and not (shape is not None and shape.kind == "text"):
        # A digit id that is a known zero-padded id without its zeros is that id, whatever the width.
        stripped = pc.utf8_ltrim(arr.filter(pa.array(digits)), "0")
        pos = np.full(n, -1, dtype=np.int64)
        pos[digits] = index_in(from_arrow(stripped, pd.RangeIndex(len(stripped))), zero_led.index)
        lost = pos >= 0
        lost &= ~_is_known(arr, lost, known)
        if lost.any():
            padded = take_text(zero_led.reset_index(drop=True), np.where(lost, pos, -1), index)
            arr = pc.if_else(pa.array(lost), to_arrow(padded), arr)
            restored["zero_padded"] = lost
    width = shape.fixed_width if shape is not None else None
    if width is not None:
        lengths = np.asarray(pc.fill_null(pc.utf8_length(arr), 0).to_numpy(zero_copy_only=False))
        short = digits & (lengths < width)
        short &= ~_is_known(arr, short, known)
        if short.any():
            arr = pc.if_else(pa.array(short), pc.utf8_lpad(arr, width=width, padding="0"), arr)
            restored["zero_padded"] = restored["zero_padded"] | short
    if declared and shape is not None and shape.kind == "digits":
        text = from_arrow(arr, index)
        lengths = np.asarray(pc.fill_null(pc.utf8_length(arr), 0).to_numpy(zero_copy_only=False))
        too_long = digits & (lengths > width) if width is not None else none
        checked = present & ~bad
        checked &= ~_is_known(arr, checked & (~digits | too_long), known)
        not_digits = checked & ~digits
        too_long = checked & too_long
        reasons.add_values(
            pd.Series(not_digits, index=index),
            f"{column}: '",
            text,
            f"' is not all digits, but the id shape is declared as '{shape}'",
        )
        reasons.add_values(
            pd.Series(too_long, index=index),
            f"{column}: '",
            text,
            f"' has more than the {width} digits of the declared id shape '{shape}'",
        )
        bad = bad | not_digits | too_long
    same = values.dtype == TEXT_DTYPE and not any(m.any() for m in restored.values())
    text = values if same else from_arrow(arr, index)
    return _Column(text=text, changed=not same, restored=restored, lo=lo, hi=hi)


def repair_ids(
    frame: pd.DataFrame,
    *,
    id_column: str,
    manager_column: str | None = None,
    known_ids: pd.Series | pd.Index | Iterable[str] | None = None,
    declared: IdShape | str | None = None,
) -> IdRepair:
    """Restore Excel-mangled ids where that is unambiguous; quarantine the rows where it is not.

    The rules are in the module docstring. Run it on the raw export, before validation: the other columns
    pass through untouched, the id columns come back as text.

    :param frame: the HR export as text, with a unique index (its labels become the quarantine's ``row``).
    :param id_column: the WorkerID column (the records' externalId).
    :param manager_column: the ManagerID column; skipped when ``None`` or absent from ``frame``.
    :param known_ids: the ids Entra is known to hold (the ledger's externalIds): never changed, used to learn
        the shape and to find who a mangled id stands for.
    :param declared: the id shape declared by the user (an :class:`IdShape` or its text, e.g. ``"digits:6"``);
        ``None`` learns it from ``known_ids`` (see :func:`learn_id_shape`).
    :return: :class:`IdRepair`.
    :raises HrSchemaError: when ``id_column`` is missing.
    :raises ValueError: for a non-unique index or an unreadable declared shape.
    """
    if id_column not in frame.columns:
        raise HrSchemaError(f"HR export is missing the id column {id_column}", missing=[id_column])
    if not frame.index.is_unique:
        raise ValueError(
            "repair_ids: the frame's index must be unique (its labels name the quarantined rows)"
        )
    is_declared = declared is not None
    declared_shape = IdShape.parse(declared) if isinstance(declared, str) else declared
    known = _known_text(known_ids)
    shape = declared_shape if declared_shape is not None else _learn(known)
    zero_led = _zero_led(known)

    reasons = Reasons(frame.index)
    worker = _repair_column(frame[id_column], id_column, shape, is_declared, known, zero_led, reasons)
    fixed = {id_column: worker}
    if manager_column is not None and manager_column in frame.columns and manager_column != id_column:
        manager = _repair_column(
            frame[manager_column], manager_column, shape, is_declared, known, zero_led, reasons
        )
        fixed[manager_column] = manager

    why = reasons.result()
    rejected = quarantine_frame(why.index, worker.text[why.index], STAGE, why)
    keep = np.ones(len(frame), dtype=bool)
    if len(why):
        keep[frame.index.get_indexer(why.index)] = False
    restored = {
        kind: int(sum((c.restored[kind] & keep).sum() for c in fixed.values())) for kind in RESTORE_KINDS
    }

    changed = {name: c.text for name, c in fixed.items() if c.changed}
    out = frame.assign(**changed) if changed else frame
    out = without_rows(out, why.index)

    held = _candidates(known, worker.lo, worker.hi)
    if len(why) and len(known):
        quarantined = worker.text[why.index]
        held = np.concatenate([held, quarantined[isin_text(quarantined, known)].to_numpy(dtype=object)])
    held_ids = pd.Index(pd.unique(held), dtype=TEXT_DTYPE) if len(held) else pd.Index([], dtype=TEXT_DTYPE)
    return IdRepair(
        frame=out, rejected=rejected, held_ids=held_ids.sort_values(), restored=restored, shape=shape
    )
