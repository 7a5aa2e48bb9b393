"""Time units. Data are in days; reports are in months of 30.4375 days."""

from __future__ import annotations

import numpy as np

__all__ = ["DAYS_PER_MONTH", "DEFAULT_HORIZONS_MONTHS", "days_to_months", "months_to_days"]

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
