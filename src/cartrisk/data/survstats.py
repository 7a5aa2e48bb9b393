"""Kaplan-Meier summaries used across cartrisk: survival at given times, medians, follow-up.

One implementation, on scikit-survival's ``kaplan_meier_estimator``, for the simulation report,
calibration, risk groups, bundles and the command line.
"""

from __future__ import annotations

import numpy as np
from sksurv.nonparametric import kaplan_meier_estimator

__all__ = ["followup_median", "km_at", "km_median", "logrank_test"]


def km_at(event, time, times_days, conf_level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kaplan-Meier survival with its log-log confidence interval at given times.

    The step function is read at the last observed time <= t. Beyond the last follow-up
    time the estimate is 0 if the curve reached 0 and NaN (not estimable) otherwise; an
    empty group gives NaN.

    Returns
    -------
    surv, lower, upper : ndarray of shape (n_times,)
    """
    times_days = np.atleast_1d(np.asarray(times_days, dtype=float))
    nan = np.full(times_days.shape, np.nan)
    if len(time) == 0:
        return nan, nan.copy(), nan.copy()
    t, s, ci = kaplan_meier_estimator(event, time, conf_type="log-log", conf_level=conf_level)
    t, s, lo, hi = np.r_[0.0, t], np.r_[1.0, s], np.r_[1.0, ci[0]], np.r_[1.0, ci[1]]
    idx = np.searchsorted(t, times_days, side="right") - 1
    out = s[idx], lo[idx], hi[idx]
    beyond = (times_days > t[-1]) & (s[-1] > 0)
    return tuple(np.where(beyond, np.nan, v) for v in out)


def km_median(event, time, conf_level: float = 0.95) -> tuple[float, float, float]:
    """Median survival (days) from the Kaplan-Meier curve, with a confidence interval.

    The median is the first time with S(t) <= 0.5 (the lifelines convention; R's survfit
    averages over a stretch where S is exactly 0.5). Its interval inverts the pointwise
    log-log band (Brookmeyer-Crowley style, as survfit does): the lower limit is the first
    time the lower band reaches 0.5, the upper limit the first time the upper band does.
    NaN means not reached.
    """
    if len(time) == 0:
        return np.nan, np.nan, np.nan
    t, s, ci = kaplan_meier_estimator(event, time, conf_type="log-log", conf_level=conf_level)

    def first(curve):
        hit = np.flatnonzero(curve <= 0.5)
        return float(t[hit[0]]) if hit.size else np.nan

    return first(s), first(ci[0]), first(ci[1])


def logrank_test(event, time, groups) -> dict[str, float]:
    """The log-rank test of equal survival across groups (scikit-survival's ``compare_survival``).

    Parameters
    ----------
    event, time : array-like of shape (n_samples,)
    groups : array-like of shape (n_samples,)
        Group labels (no missing value; at least two groups).

    Returns
    -------
    dict
        ``chi2``, ``df`` (groups - 1) and ``p_value``.
    """
    from sksurv.compare import compare_survival
    from sksurv.util import Surv

    labels = np.asarray(groups).astype(str)
    y = Surv.from_arrays(np.asarray(event, dtype=bool), np.asarray(time, dtype=float))
    chi2, p_value = compare_survival(y, labels)[:2]
    return {"chi2": float(chi2), "df": int(np.unique(labels).size - 1), "p_value": float(p_value)}



def followup_median(event, time) -> float:
    """Median follow-up (days) by the reverse Kaplan-Meier method: censoring is the event (NaN if not reached)."""
    if len(time) == 0:
        return np.nan
    t, s = kaplan_meier_estimator(np.asarray(event, dtype=bool), np.asarray(time, dtype=float), reverse=True)
    hit = np.flatnonzero(s <= 0.5)
    return float(t[hit[0]]) if hit.size else np.nan
