"""Units, and how numbers read in reports.

Time: data are in days; reports are in months of 30.4375 days. Numbers for people (answer sentences, figure
labels, tables): an estimate with its interval in one string (``0.68 (0.67-0.70)``), p-values never ``0``
(``< 1e-300`` in tables, ``p < 0.001`` in prose), shares as percentages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np

__all__ = ["DAYS_PER_MONTH", "DEFAULT_HORIZONS_MONTHS", "days_to_months", "estimate_text", "interval_text",
           "is_p_column", "months_to_days", "p_text", "percent_text"]

#: Mean Gregorian month, the convention of survival reports (365.25 / 12).
DAYS_PER_MONTH = 30.4375

#: Horizons that clinicians use for OS-2, in months.
DEFAULT_HORIZONS_MONTHS: tuple[float, ...] = (3.0, 6.0, 12.0)


def days_to_months(days):
    """Convert days to months (scalar or array)."""
    return np.asarray(days, dtype=float) / DAYS_PER_MONTH if np.ndim(days) else float(days) / DAYS_PER_MONTH


def months_to_days(months):
    """Convert months to days (scalar or array)."""
    return np.asarray(months, dtype=float) * DAYS_PER_MONTH if np.ndim(months) else float(months) * DAYS_PER_MONTH


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def interval_text(lower: float | None, upper: float | None, number: Callable[[float], str]) -> str:
    """Two bounds as one interval, each written by ``number``: ``0.67-0.70``; ``-0.11 to 0.29`` when a bound is
    negative (a hyphen would read as a minus); ``""`` when a bound is missing."""
    if not (_finite(lower) and _finite(upper)):
        return ""
    sep = " to " if min(float(lower), float(upper)) < 0 else "-"
    return f"{number(float(lower))}{sep}{number(float(upper))}"


def estimate_text(estimate: float, lower: float | None = None, upper: float | None = None, decimals: int = 2, *,
                  number: Callable[[float], str] | None = None) -> str:
    """An estimate with its interval in one string: ``0.68 (0.67-0.70)``; ``-0.11 to 0.29`` when a bound is
    negative; the estimate alone when a bound is missing. Numbers get ``decimals``, or are written by ``number``."""
    if not _finite(estimate):
        return "n/a"
    number = number or (lambda v: f"{v:.{decimals}f}")
    interval = interval_text(lower, upper, number)
    return number(float(estimate)) + (f" ({interval})" if interval else "")


_P = re.compile(r"(^|[_\s])p([_ -]?value)?$|^pvalue$", re.IGNORECASE)


def is_p_column(code: str) -> bool:
    """Whether a column holds p-values (``p``, ``p_value``, ``logrank_p``, ``*_p``): print it with :func:`p_text`."""
    return bool(_P.search(str(code)))


def p_text(p: float, *, prose: bool = False) -> str:
    """A p-value that is never ``0``.

    Tables (``prose=False``): three decimals from 0.001 up, two significant digits in scientific notation
    below, ``< 1e-300`` when the computation underflowed to 0. Prose: ``p = 0.012`` or ``p < 0.001``.
    """
    if not _finite(p):
        return "n/a" if prose else ""
    p = float(p)
    if prose:
        return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
    if p < 1e-300:
        return "< 1e-300"
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def percent_text(share: float, decimals: int = 0) -> str:
    """A share (0-1) as a percentage: ``0.232`` -> ``23%``."""
    return "n/a" if not _finite(share) else f"{100 * share:.{decimals}f}%"
