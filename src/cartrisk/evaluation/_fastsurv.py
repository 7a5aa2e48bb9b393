"""Survival statistics on data sorted by time: fast enough to be recomputed on a thousand bootstrap resamples.

Every function takes arrays already sorted by time (ascending). A nonparametric bootstrap resample of sorted data,
taken as ``np.sort(indices)``, is itself sorted, so each resample is computed with the same code and no re-sorting.
Ties in time are kept as they are (a resample duplicates patients), and are handled as R's ``survival`` package
does: events before censorings at a tied time in Kaplan-Meier estimates, tied event times not comparable in
concordance. Cox models (Efron's ties) are fitted by the one engine, :func:`cartrisk.evaluation.coxreg.fit_cox`.

Private to :mod:`cartrisk.evaluation`; the public entry points are :mod:`cartrisk.evaluation.external` and
:mod:`cartrisk.evaluation.clusters`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

__all__ = ["Distinct", "auc_at", "brier_at", "censored_at", "concordance", "percentile_interval", "rcs_basis",
           "rcs_knots"]


@dataclass(frozen=True)
class Distinct:
    """The distinct times of sorted data: time, first position, number at risk, events and censorings there.

    Its Kaplan-Meier read-outs (:meth:`survival_at`, :meth:`censoring_left`) are the bootstrap's: a product over
    at most a few hundred distinct times, about 400 times faster than :func:`cartrisk.data.survstats.km_at` (the
    read-out everywhere else, with its log-log interval), which a validation of 1,000 resamples would call some
    8,000 times.
    """

    times: np.ndarray
    first: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    censored: np.ndarray

    @classmethod
    def of(cls, time: np.ndarray, event: np.ndarray) -> Distinct:
        n = time.shape[0]
        new = np.empty(n, dtype=bool)
        new[:1] = True
        np.not_equal(time[1:], time[:-1], out=new[1:])
        first = np.flatnonzero(new)
        counts = np.diff(np.append(first, n))
        events = np.add.reduceat(event.astype(float), first) if n else np.empty(0)
        return cls(time[first], first, (n - first).astype(float), events, counts - events)

    def survival_at(self, horizon: float) -> float:
        """Kaplan-Meier survival at ``horizon`` (events before censorings at a tied time)."""
        keep = self.times <= horizon
        return float(np.prod(1.0 - self.events[keep] / self.at_risk[keep]))

    def censoring_left(self, at) -> np.ndarray:
        """The censoring distribution G(t-) = P(C >= t) (reverse Kaplan-Meier, censorings after events at a tie)."""
        g = np.cumprod(1.0 - self.censored / self.at_risk)
        return _step(self.times, g, at, left=True)


def _step(times: np.ndarray, values: np.ndarray, at, *, left: bool = False) -> np.ndarray:
    """A right-continuous step function (1 before its first time) read at ``at`` (its left limit with ``left``)."""
    idx = np.searchsorted(times, at, side="left" if left else "right") - 1
    return np.where(idx >= 0, values[np.maximum(idx, 0)], 1.0)


# ----------------------------------------------------------------------------------------------- concordance
@cache
def _concordance_kernel():
    from cartrisk.evaluation._concordance_kernel import concordance_sums  # deferred: loads numba

    return concordance_sums


def concordance(time: np.ndarray, event: np.ndarray, risk: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Harrell's C (``weight`` None) or a weighted C such as Uno's (weight ``1 / G(t_i-)^2`` per event).

    Comparable pairs: the shorter time is an event; an event tied with a censored time is comparable, tied event
    times are not; tied risk scores count 1/2 (R ``survival::concordance``, scikit-survival). O(n log n).
    """
    ranks = np.unique(risk, return_inverse=True)[1].astype(np.int64)
    w = np.ones(time.shape[0]) if weight is None else np.asarray(weight, dtype=float)
    num, den = _concordance_kernel()(time, event.astype(np.bool_), ranks, w, int(ranks.max(initial=0)) + 1)
    return num / den if den > 0 else np.nan


# ----------------------------------------------------------------------------------------------- IPCW at a horizon
def _cases_controls(time, event, horizon):
    case = event & (time <= horizon)
    control = ~case & (time >= horizon)
    return case, control


def auc_at(time, event, risk, horizon: float, d: Distinct) -> float:
    """Cumulative/dynamic AUC at ``horizon``: cases died by then (weight 1 / G(t_i-)), controls alive at it."""
    case, control = _cases_controls(time, event, horizon)
    if not case.any() or not control.any():
        return np.nan
    w = 1.0 / d.censoring_left(time[case])
    ctrl = np.sort(risk[control])
    below = np.searchsorted(ctrl, risk[case], side="left")
    ties = np.searchsorted(ctrl, risk[case], side="right") - below
    return float(np.sum(w * (below + 0.5 * ties)) / (w.sum() * ctrl.shape[0]))


def brier_at(time, event, pred_risk, horizon: float, d: Distinct) -> float:
    """Inverse-probability-of-censoring weighted Brier score of the predicted risk of death by ``horizon``."""
    case, control = _cases_controls(time, event, horizon)
    g_case = d.censoring_left(time[case])
    g_h = float(d.censoring_left(np.array([horizon]))[0])
    loss = np.sum((1.0 - pred_risk[case]) ** 2 / g_case) + np.sum(pred_risk[control] ** 2) / g_h
    return float(loss / time.shape[0])


# ----------------------------------------------------------------------------------------------- splines
def rcs_knots(x: np.ndarray, n_knots: int = 3) -> np.ndarray:
    """Knots of a restricted cubic spline as Hmisc's ``rcspline.eval`` places them (``rms::rcs(x, 3)``).

    Quantiles 0.10, 0.50, 0.90 (type 7) for 100 values or more; below 100 values the outer knots are the 5th
    smallest and 5th largest values.
    """
    x = np.asarray(x, dtype=float)
    probs = np.linspace(0.1, 0.9, n_knots)
    knots = np.quantile(x, probs)
    if x.shape[0] < 100:
        xs = np.sort(x)
        knots[0], knots[-1] = xs[min(4, xs.size - 1)], xs[max(xs.size - 5, 0)]
    return np.unique(knots)


def rcs_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """x and its restricted cubic spline terms (Harrell's parametrisation, divided by the squared knot span)."""
    k = knots.shape[0]
    cols = [x]
    if k >= 3:
        norm = (knots[-1] - knots[0]) ** 2
        for j in range(k - 2):
            term = (np.clip(x - knots[j], 0, None) ** 3
                    - np.clip(x - knots[-2], 0, None) ** 3 * (knots[-1] - knots[j]) / (knots[-1] - knots[-2])
                    + np.clip(x - knots[-1], 0, None) ** 3 * (knots[-2] - knots[j]) / (knots[-1] - knots[-2]))
            cols.append(term / norm)
    return np.column_stack(cols)


def censored_at(time: np.ndarray, event: np.ndarray, horizon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(order, t, e)``: the time order, and the times and events of that order administratively censored at
    ``horizon`` (the layout every function here expects)."""
    order = np.argsort(time, kind="mergesort")
    return order, np.minimum(time[order], horizon), (event & (time <= horizon))[order]


def percentile_interval(reps: np.ndarray, conf_level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of each column of ``reps`` (resamples x statistics), leaving out the
    resamples that gave no value (NaN); NaN where a column has no value at all, or there are no resamples."""
    alpha = (1.0 - conf_level) / 2.0
    bounds = np.full((2, reps.shape[1]), np.nan)
    known = np.isfinite(reps).any(axis=0) if reps.shape[0] else np.zeros(reps.shape[1], dtype=bool)
    if known.any():
        bounds[:, known] = np.nanquantile(reps[:, known], [alpha, 1.0 - alpha], axis=0)
    return bounds[0], bounds[1]
