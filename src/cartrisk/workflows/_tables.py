"""Tables for people: a CSV of snake_case codes becomes an HTML table with human headers.

Used by :mod:`cartrisk.workflows.report`, which owns the label table. What happens to a frame:

* interval bounds join their estimate in one cell: ``hr, hr_lower, hr_upper`` -> ``6.44 (5.78-7.18)``
  (also ``_low``/``_high``, ``ci_low``/``ci_high`` and bare ``lower``/``upper`` after their estimate;
  ``median_lower`` joins ``median_months``); bounds without an estimate (``pi_lower``, ``pi_upper``) become
  one interval cell; cells already written as ``0.795 [0.728, 0.862]`` are rewritten the same way;
* every number of a column has the same number of decimals (from the label table, else from the column's
  magnitude); whole-number columns get thousands separators; shares (kind ``pct``) become percentages;
* p-values are never ``0`` (:func:`cartrisk.units.p_text`);
* codes in text cells (``d0_30``, ``model[d0_30]``) get their names for people.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from cartrisk.units import estimate_text, interval_text, is_p_column, p_text

__all__ = ["IDENTIFIER_COLUMNS", "header_text", "is_p_column", "table_html"]

#: Columns that identify patients: a table holding one is withheld from the report.
IDENTIFIER_COLUMNS = frozenset({"patient_id", "patient", "mrn", "record_id", "subject_id"})
_LOWER = re.compile(r"^(?P<stem>.*?)_?(?:lower|low)$")
_UPPER_FOR = {"lower": "upper", "low": "high"}
_HORIZON = re.compile(r"^(?P<base>.+?)(?:@|_)(?P<h>\d+(?:\.\d+)?)m$")
_BRACKETED = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*\[\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\]\s*$")
#: The report's column (px) and a rough width of a character of a 13 px table: a table estimated wider than the
#: column is set in a smaller type at fixed column widths, so that nothing scrolls sideways.
_COLUMN_PX, _CHAR_PX, _CELL_PAD_PX = 1040, 7.2, 20

#: A label entry: (header, kind) where kind is a number of decimals, "int", "pct", "p", "text" or None (auto).
Label = tuple[str, object]


def header_text(code: str, labels: Mapping[str, Label]) -> str:
    """The human header of a column code; unknown codes read without underscores."""
    code = str(code)
    if code in labels:
        return labels[code][0]
    m = _HORIZON.match(code)
    if m and not m.group("base").endswith("_"):
        return f"{header_text(m.group('base'), labels)} at {float(m.group('h')):g} months"
    for suffix, words in (("_pct", "(%)"), ("_months", "(months)"), ("_days", "(days)")):
        if code.endswith(suffix) and len(code) > len(suffix):
            return f"{header_text(code[: -len(suffix)], labels)} {words}"
    return code.replace("_", " ").replace("@", " at ").strip()


def _kind(code: str, labels: Mapping[str, Label]) -> object:
    if is_p_column(code):
        return "p"
    if code in labels:
        return labels[code][1]
    m = _HORIZON.match(code)
    if m and m.group("base") in labels:
        return labels[m.group("base")][1]
    return "pct" if code.endswith("_share") or code == "share" else None


def _intervals(columns: list[str]) -> list[tuple[str | None, str, str, str]]:
    """(estimate or None, lower, upper, stem) for every pair of bound columns."""
    out, used = [], set()
    for pos, col in enumerate(columns):
        m = _LOWER.match(col)
        if not m or col in used:
            continue
        stem, word = m.group("stem"), col[len(m.group("stem")):].lstrip("_")
        upper = f"{stem}_{_UPPER_FOR[word]}" if stem else _UPPER_FOR[word]
        if upper not in columns:
            continue
        if stem in columns:
            estimate = stem
        elif stem and stem not in ("ci",):
            estimate = next((c for c in columns if c.startswith(stem + "_") and c not in (col, upper)
                             and not _LOWER.match(c) and not c.endswith(("_upper", "_high"))), None)
        else:
            estimate = next((c for c in reversed(columns[:pos]) if c not in used and not _LOWER.match(c)
                             and not c.endswith(("_upper", "_high"))), None)
        used.update({col, upper})
        out.append((estimate, col, upper, stem))
    return out


def _decimals(values: np.ndarray) -> int:
    finite = np.abs(values[np.isfinite(values)])
    if finite.size == 0:
        return 3
    top = float(np.max(finite))
    return 3 if top < 10 else 2 if top < 100 else 1 if top < 1000 else 0


def _number_formatter(values: pd.Series, kind: object) -> Callable[[float], str]:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    finite = numbers[np.isfinite(numbers)]
    if kind == "p":
        return p_text
    if kind == "pct":
        share = finite.size and np.nanmax(np.abs(finite)) <= 1.0
        return (lambda v: f"{100 * v:.1f}%") if share else (lambda v: f"{v:.1f}%")
    kind = kind if kind in ("int", "p", "pct") or isinstance(kind, int) else None  # "text": numbers read as is
    whole = finite.size > 0 and np.all(finite == np.round(finite)) and np.all(np.abs(finite) < 1e15)
    if kind == "int" or (kind is None and whole):
        return lambda v: f"{int(round(v)):,}"
    decimals = kind if isinstance(kind, int) else _decimals(numbers)
    return lambda v: f"{v:,.{decimals}f}" if abs(v) >= 1e4 else f"{v:.{decimals}f}"


def _cell(value, formatter: Callable[[float], str] | None, value_label: Callable[[str], str]) -> tuple[str, bool]:
    """(text, numeric) of one cell."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "", formatter is not None
    if isinstance(value, bool | np.bool_):
        return ("yes" if value else "no"), False
    if formatter is not None and isinstance(value, int | float | np.number):
        return formatter(float(value)), True
    text = str(value)
    m = _BRACKETED.match(text)
    if m:
        est, low, high = (float(g) for g in m.groups())
        decimals = len(m.group(1).split(".")[1]) if "." in m.group(1) else 0
        return estimate_text(est, low, high, decimals), True
    return value_label(text), False


def _interval_column(frame: pd.DataFrame, estimate: str | None, lower: str, upper: str, kind: object
                     ) -> list[str]:
    lo, hi = (pd.to_numeric(frame[c], errors="coerce") for c in (lower, upper))
    if estimate is None:
        fmt = _number_formatter(pd.concat([lo, hi]), kind)
        return [interval_text(a, b, fmt) for a, b in zip(lo, hi, strict=True)]
    est = pd.to_numeric(frame[estimate], errors="coerce")
    fmt = _number_formatter(pd.concat([est, lo, hi]), kind)
    return ["" if not np.isfinite(e) else estimate_text(e, a, b, number=fmt)
            for e, a, b in zip(est, lo, hi, strict=True)]


def _ci_header(base: str) -> str:
    return f"{base}, 95% CI" if base.endswith(")") else f"{base} (95% CI)"


def table_html(frame: pd.DataFrame, labels: Mapping[str, Label], value_label: Callable[[str], str] = str,
               *, caption: str | None = None) -> str:
    """The frame as an HTML table with human headers, merged intervals and consistent decimals."""
    frame = frame.rename(columns={c: "" for c in frame.columns if str(c).startswith("Unnamed: ")})
    columns = [str(c) for c in frame.columns]
    merged = {lower: (est, lower, upper, stem) for est, lower, upper, stem in _intervals(columns)}
    skip = {upper for _, _, upper, _ in merged.values()} | {lower for lower in merged}
    skip |= {est for est, _, _, _ in merged.values() if est is not None}
    heads, cols = [], []  # header text, list of (text, numeric) cells
    for col in columns:
        if col in merged:
            est, lower, upper, stem = merged[col]
            code = est if est is not None else stem
            head = _ci_header(header_text(code, labels)) if est is not None else header_text(stem, labels)
            cells = _interval_column(frame, est, lower, upper, _kind(code, labels))
            heads.append(head)
            cols.append([(c, True) for c in cells])
            continue
        if col in skip:
            continue
        series = frame[col]
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        formatter = _number_formatter(series, _kind(col, labels)) if numeric else None
        cells = [_cell(v, formatter, value_label) for v in series]
        if cells and all(_BRACKETED.match(str(v)) for v in series.dropna()) and series.notna().any():
            heads.append(_ci_header(header_text(col, labels)))
        else:
            heads.append(header_text(col, labels) if col else "")
        cols.append(cells)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    rows = []
    for i in range(len(frame)):
        tds = "".join(f'<td class="num">{_num_html(c[i][0])}</td>' if c[i][1] else f"<td>{html.escape(c[i][0])}</td>"
                      for c in cols)
        rows.append(f"<tr>{tds}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    wide = ' class="wide"' if _width_px(heads, cols) > _COLUMN_PX else ""
    return (f'<div class="table"><table{wide}>{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
            "</table></div>")


def _width_px(heads: list[str], cols: list[list[tuple[str, bool]]]) -> float:
    """Estimated natural width of a table: numbers do not wrap; text wraps at about 24 characters, headers at
    their longest word."""
    total = 0.0
    for head, cells in zip(heads, cols, strict=True):
        longest_word = max((len(w) for w in head.split()), default=0)
        widest = max((len(t) if numeric else min(len(t), 24) for t, numeric in cells), default=0)
        total += max(longest_word, widest) * _CHAR_PX + _CELL_PAD_PX
    return total


def _num_html(text: str) -> str:
    """A number cell; an interval may wrap below its estimate, never inside itself."""
    m = re.match(r"^(\S+) (\(.+\))$", text)
    if not m:
        return html.escape(text)
    return f'{html.escape(m.group(1))} <span class="ci">{html.escape(m.group(2))}</span>'
