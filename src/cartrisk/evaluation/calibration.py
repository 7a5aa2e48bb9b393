"""Calibration of predicted survival: at a horizon (ICI, E50, E90, slope) and over time (D-calibration).

Every function takes the test target as a scikit-survival structured array and
predicted *survival probabilities* (not risk scores). Times are in days; the
horizon guard :func:`check_horizons`, shared with :mod:`cartrisk.evaluation`,
states problems in months and days.

References
----------
Austin PC, Harrell FE, van Klaveren D. Graphical calibration curves and the
integrated calibration index (ICI) for survival models. Stat Med 2020;39:2714-42.
Haider H, Hoehn B, Davis S, Greiner R. Effective ways to build and evaluate
individual survival distributions. JMLR 2020;21(85):1-63.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sksurv.util import check_y_survival

from cartrisk.data.survstats import km_at
from cartrisk.evaluation._fastsurv import rcs_basis, rcs_knots
from cartrisk.evaluation.coxreg import fit_cox
from cartrisk.exceptions import StatisticalWarning
from cartrisk.units import days_to_months

__all__ = [
    "DCalibration",
    "HorizonCalibration",
    "calibration_at_horizon",
    "calibration_slope",
    "check_horizons",
    "smoothed_observed_risk",
    "cloglog",
    "d_calibration",
    "group_table",
    "horizon_problems",
    "lookup_survival",
    "survival_at_own_time",
]

#: Predicted probabilities are clipped away from 0 and 1 before the log(-log) transform.
_EPS = 1e-10


def cloglog(surv) -> np.ndarray:
    """``log(-log S)`` of survival probabilities clipped to [1e-10, 1 - 1e-10]: the scale on which a Cox model's
    predictions are linear (its linear predictor plus a constant), where calibration slopes and curves are fitted."""
    return np.log(-np.log(np.clip(np.asarray(surv, dtype=float), _EPS, 1.0 - _EPS)))


def calibration_slope(time: np.ndarray, event: np.ndarray, pred_risk: np.ndarray) -> tuple[float, float]:
    """The calibration slope of predicted risks of death by a horizon, and its standard error: the coefficient of
    a Cox regression of the outcome (censored at the horizon) on ``cloglog(1 - pred_risk)``. NaN when the
    predictions do not vary or the fit is degenerate; never raises (for loops over resamples and clusters)."""
    cll = cloglog(1.0 - np.asarray(pred_risk, dtype=float))
    if not np.ptp(cll) > 0:
        return np.nan, np.nan
    with np.errstate(all="ignore"):
        fit = fit_cox(cll, event, time)
        return float(fit.coef[0]), float(fit.se[0])


def smoothed_observed_risk(time: np.ndarray, event: np.ndarray, pred_risk: np.ndarray, horizon: float,
                           grid_risk: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Austin's smoothed observed risk of death by ``horizon``: a Cox model (Efron ties) of the outcome censored at
    the horizon on a restricted cubic spline of ``cloglog(1 - pred_risk)`` with Hmisc's 3 knots (linear when the
    predictions take fewer than 3 values), read at each patient's prediction and, with ``grid_risk``, on that
    grid of predicted risks (the calibration curve). NaN on a degenerate fit; never raises."""
    cll = cloglog(1.0 - np.asarray(pred_risk, dtype=float))
    with np.errstate(all="ignore"):
        knots = rcs_knots(cll)
        basis = rcs_basis(cll, knots)
        fit = fit_cox(basis, event, time)
        h0 = fit.cumhaz(horizon)
        observed = 1.0 - np.exp(-h0 * np.exp(basis @ fit.coef))
        curve = np.empty(0) if grid_risk is None else 1.0 - np.exp(
            -h0 * np.exp(rcs_basis(cloglog(1.0 - np.asarray(grid_risk, dtype=float)), knots) @ fit.coef))
    return observed, curve


def _describe_horizon(horizon_days: float) -> str:
    return f"horizon {days_to_months(horizon_days):g} months ({horizon_days:.0f} days)"


def horizon_problems(
    times_days, survival_test, survival_train=None, *, require_events: bool = False
) -> list[str | None]:
    """Say, for each time, why an IPCW metric or a calibration cannot be computed there.

    A time must lie within the follow-up of the test set (at or after its first
    observed time, strictly before its last) and, when a training set is given,
    strictly before its last observed time (the censoring distribution that
    weights the IPCW metrics is unknown beyond it). sksurv raises, or returns NaN
    with a warning, outside these ranges.

    Parameters
    ----------
    times_days : array-like of float
        Times (horizons) in days.
    survival_test, survival_train : structured array
        Targets of the evaluation set and, optionally, of the set the model was fitted on.
    require_events : bool, default False
        Also flag times by which the test set has no event (the time-dependent
        AUC and the calibration at that horizon are undefined).

    Returns
    -------
    list of str or None
        One entry per time: ``None`` when usable, otherwise the message.
    """
    test_event, test_time = check_y_survival(survival_test)
    test_min, test_max = float(test_time.min()), float(test_time.max())
    train_max = np.inf
    if survival_train is not None:
        train_max = float(check_y_survival(survival_train)[1].max())
    problems: list[str | None] = []
    for t in np.atleast_1d(np.asarray(times_days, dtype=float)):
        if not np.isfinite(t):
            problems.append(f"horizon {t} days is not a finite time")
        elif t >= test_max or t >= train_max:
            where = f"max observed {test_max:.0f} days in the test set"
            if survival_train is not None:
                where += f", {train_max:.0f} days in the training set"
            problems.append(
                f"{_describe_horizon(t)} is beyond the follow-up of this fold ({where}); "
                "shorten the horizon or use fewer folds so that each holds longer follow-up"
            )
        elif t < test_min:
            problems.append(
                f"{_describe_horizon(t)} is before the first observed time of this fold "
                f"(min observed {test_min:.0f} days); use a later horizon"
            )
        elif require_events and not (test_event & (test_time <= t)).any():
            problems.append(f"no events by {_describe_horizon(t)} in the test set; use a later horizon")
        else:
            problems.append(None)
    return problems


def check_horizons(times_days, survival_test, survival_train=None, *, require_events: bool = False) -> np.ndarray:
    """Raise ``ValueError`` unless every time is usable (see :func:`horizon_problems`).

    Parameters
    ----------
    times_days : array-like of float
    survival_test, survival_train : structured array
    require_events : bool, default False
        As in :func:`horizon_problems`.

    Returns
    -------
    ndarray of float
        The times, as a 1-D float array.

    Raises
    ------
    ValueError
        With the first problem's message, naming the horizon in months and days
        and the follow-up available.
    """
    problems = horizon_problems(times_days, survival_test, survival_train, require_events=require_events)
    problems = [p for p in problems if p is not None]
    if problems:
        raise ValueError(problems[0])
    return np.atleast_1d(np.asarray(times_days, dtype=float))


def lookup_survival(surv_grid: np.ndarray, grid_days, own_days) -> np.ndarray:
    """Read each patient's survival curve, given on a time grid, at the patient's own time.

    The curve is a right-continuous step function: the value at ``t`` is the one at
    the largest grid time ``<= t``, and 1 before the first grid time.

    Parameters
    ----------
    surv_grid : ndarray, shape (n_samples, n_times)
        Survival probabilities on ``grid_days`` (non-decreasing grid).
    grid_days : array-like, shape (n_times,)
    own_days : array-like, shape (n_samples,)

    Returns
    -------
    ndarray, shape (n_samples,)
    """
    surv_grid = np.asarray(surv_grid, dtype=float)
    grid = np.asarray(grid_days, dtype=float)
    own = np.asarray(own_days, dtype=float)
    if surv_grid.shape != (own.shape[0], grid.shape[0]):
        raise ValueError(f"surv_grid has shape {surv_grid.shape}, expected ({own.shape[0]}, {grid.shape[0]})")
    idx = np.searchsorted(grid, own, side="right") - 1
    padded = np.hstack([np.ones((own.shape[0], 1)), surv_grid])
    return padded[np.arange(own.shape[0]), idx + 1]


def survival_at_own_time(estimator, X, time_days, grid_days=None) -> np.ndarray:
    """``S_i(t_i)``: each patient's predicted survival at his or her own observed time.

    Parameters
    ----------
    estimator : fitted estimator with ``predict_survival_at(X, times_days)``
    X : array-like or DataFrame, shape (n_samples, n_features)
    time_days : array-like, shape (n_samples,)
        Observed (event or censoring) times.
    grid_days : array-like, optional
        Grid passed to ``predict_survival_at``; by default the distinct observed
        times, which makes the step-function lookup exact.
    """
    time_days = np.asarray(time_days, dtype=float)
    grid = np.unique(time_days) if grid_days is None else np.unique(np.asarray(grid_days, dtype=float))
    return lookup_survival(estimator.predict_survival_at(X, grid), grid, time_days)


@dataclass(frozen=True)
class HorizonCalibration:
    """Calibration of predicted survival at one horizon.

    Attributes
    ----------
    horizon_days, horizon_months : float
    n, n_events : int
        Patients, and events observed by the horizon.
    table : DataFrame
        One row per group of predicted risk: ``group``, ``n``, ``n_events`` (by the
        horizon), ``mean_predicted`` survival, ``observed`` Kaplan-Meier survival
        with ``observed_lower``/``observed_upper`` (95% log-log interval; NaN
        where the group's follow-up ends before the horizon).
    ici, e50, e90 : float
        Mean, median and 90th percentile of ``|predicted - smoothed observed|``
        event probability (Austin et al. 2020).
    slope : float
        Calibration slope: Cox coefficient of ``log(-log S_pred)``; 1 is ideal,
        below 1 means predictions too extreme. NaN when all predictions are equal.
    calibration_in_the_large : float
        Observed Kaplan-Meier survival minus mean predicted survival (positive:
        the model underestimates survival).
    observed, mean_predicted : float
        The two terms of the calibration-in-the-large.
    curve : DataFrame
        ``predicted`` and smoothed ``observed`` event probability, sorted, for plotting.
    """

    horizon_days: float
    horizon_months: float
    n: int
    n_events: int
    table: pd.DataFrame
    ici: float
    e50: float
    e90: float
    slope: float
    calibration_in_the_large: float
    observed: float
    mean_predicted: float
    curve: pd.DataFrame

    def as_dict(self) -> dict[str, float]:
        """The scalar summaries, keyed by metric name."""
        return {
            "ici": self.ici,
            "e50": self.e50,
            "e90": self.e90,
            "calibration_slope": self.slope,
            "calibration_in_the_large": self.calibration_in_the_large,
        }


def _km_at(event: np.ndarray, time: np.ndarray, horizon: float) -> tuple[float, float, float]:
    """Kaplan-Meier survival and its 95% log-log interval at ``horizon`` (NaN if not reached)."""
    surv, lower, upper = km_at(event, time, [horizon])
    return float(surv[0]), float(lower[0]), float(upper[0])


def check_survival_probabilities(values, shape: tuple[int, ...], name: str) -> np.ndarray:
    """``values`` as a float array of ``shape``, or a ``ValueError`` naming ``name`` (wrong shape; not in [0, 1])."""
    values = np.asarray(values, dtype=float)
    if values.shape != shape:
        raise ValueError(f"{name} has shape {values.shape}, expected {shape}")
    if not np.all(np.isfinite(values)) or values.min(initial=0.0) < 0 or values.max(initial=1.0) > 1:
        raise ValueError(f"{name} must hold survival probabilities in [0, 1]; did you pass risk scores?")
    return values


def calibration_at_horizon(survival_test, surv_prob, horizon_days: float, n_groups: int = 10) -> HorizonCalibration:
    """Calibration of predicted survival probabilities at one horizon.

    Parameters
    ----------
    survival_test : structured array, shape (n_samples,)
        Observed outcome (event indicator, time in days).
    surv_prob : array-like, shape (n_samples,)
        Predicted **survival probabilities** at ``horizon_days`` (not risk scores).
    horizon_days : float
    n_groups : int, default 10
        Groups of predicted risk for the table (deciles); ties stay in one group,
        so a rule with few levels gives fewer groups.

    Returns
    -------
    HorizonCalibration

    Notes
    -----
    The smoothed observed probability and the slope are those of external validation
    (:func:`smoothed_observed_risk`, :func:`calibration_slope`): a Cox model of the outcome,
    administratively censored at the horizon, on a restricted cubic spline (Hmisc's 3 knots)
    of ``log(-log S_pred)`` (Austin et al. 2020), so internal and external figures compare.
    With fewer than 3 distinct predictions the spline becomes linear; with one,
    the smoothed observed probability is the Kaplan-Meier estimate and the slope is NaN.
    """
    event, time = check_y_survival(survival_test)
    horizon = float(check_horizons([horizon_days], survival_test, require_events=True)[0])
    surv_prob = check_survival_probabilities(surv_prob, time.shape, "surv_prob")
    if n_groups < 1:
        raise ValueError(f"n_groups must be at least 1, got {n_groups}")
    event_by_h = event & (time <= horizon)

    pred_event = 1.0 - surv_prob
    observed, obs_lo, obs_hi = _km_at(event, time, horizon)
    time_h = np.minimum(time, horizon)
    cll = cloglog(surv_prob)

    n_distinct = np.unique(cll).shape[0]
    if n_distinct < 2:
        warnings.warn(
            f"calibration slope at {_describe_horizon(horizon)} is undefined: all predicted survival "
            "probabilities are equal",
            StatisticalWarning,
            stacklevel=2,
        )
        slope = np.nan
        smoothed = np.full_like(pred_event, 1.0 - observed)
    else:
        slope = calibration_slope(time_h, event_by_h, pred_event)[0]  # as external validation defines them
        smoothed = smoothed_observed_risk(time_h, event_by_h, pred_event, horizon)[0]

    abs_err = np.abs(pred_event - smoothed)
    order = np.argsort(pred_event, kind="stable")
    return HorizonCalibration(
        horizon_days=horizon,
        horizon_months=float(days_to_months(horizon)),
        n=int(time.shape[0]),
        n_events=int(event_by_h.sum()),
        table=group_table(event, time, surv_prob, horizon, n_groups),
        ici=float(abs_err.mean()),
        e50=float(np.median(abs_err)),
        e90=float(np.quantile(abs_err, 0.9)),
        slope=slope,
        calibration_in_the_large=float(observed - surv_prob.mean()),
        observed=observed,
        mean_predicted=float(surv_prob.mean()),
        curve=pd.DataFrame({"predicted": pred_event[order], "observed": smoothed[order]}),
    )


def group_table(event, time, surv_prob, horizon: float, n_groups: int = 10) -> pd.DataFrame:
    """Observed Kaplan-Meier vs mean predicted survival by groups of predicted risk (ties stay in one group):
    ``group, n, n_events`` (by the horizon), ``mean_predicted``, ``observed``, ``observed_lower``,
    ``observed_upper`` (95% log-log interval)."""
    risk = 1.0 - surv_prob
    edges = np.unique(np.quantile(risk, np.linspace(0, 1, n_groups + 1)[1:-1]))
    group = np.searchsorted(edges, risk, side="left")
    rows = []
    for g in np.unique(group):
        m = group == g
        km, lo, hi = _km_at(event[m], time[m], horizon)
        rows.append(
            {
                "group": len(rows) + 1,
                "n": int(m.sum()),
                "n_events": int((event[m] & (time[m] <= horizon)).sum()),
                "mean_predicted": float(surv_prob[m].mean()),
                "observed": km,
                "observed_lower": lo,
                "observed_upper": hi,
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class DCalibration:
    """D-calibration of individual survival distributions (Haider et al. 2020).

    Attributes
    ----------
    counts : ndarray, shape (n_bins,)
        Patients per bin of ``S_i(t_i)``, lowest bin first; censored patients are
        spread over the bins at and below their ``S_i(c_i)``.
    expected : float
        Count per bin under calibration (``n / n_bins``).
    chi2, p_value : float
        Pearson chi-square statistic against the uniform, ``n_bins - 1`` degrees of
        freedom; a small p-value flags miscalibration.
    n, n_bins : int
    """

    counts: np.ndarray
    expected: float
    chi2: float
    p_value: float
    n: int
    n_bins: int


def d_calibration(survival_test, surv_at_own_time, n_bins: int = 10) -> DCalibration:
    """D-calibration test of predicted survival curves.

    Parameters
    ----------
    survival_test : structured array, shape (n_samples,)
    surv_at_own_time : array-like, shape (n_samples,)
        Predicted **survival probability** of each patient at his or her own
        observed time, ``S_i(t_i)`` (see :func:`survival_at_own_time`).
    n_bins : int, default 10

    Returns
    -------
    DCalibration

    Notes
    -----
    Under calibration ``S_i(T_i)`` is uniform on [0, 1]. An uncensored patient adds 1
    to the bin holding ``S_i(t_i)``; a censored patient with ``s = S_i(c_i)``, whose
    ``S_i(T_i)`` is then uniform on [0, s], adds ``(s - lower edge) / s`` to the bin
    holding ``s`` and ``1 / (n_bins * s)`` to every bin below it.
    """
    event, _ = check_y_survival(survival_test)
    s = check_survival_probabilities(surv_at_own_time, event.shape, "surv_at_own_time")
    if n_bins < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins}")
    width = 1.0 / n_bins
    lower = np.arange(n_bins) * width
    bin_of = np.minimum((s / width).astype(int), n_bins - 1)
    counts = np.bincount(bin_of[event], minlength=n_bins).astype(float)
    cens = s[~event]
    cens_bin = bin_of[~event]
    # A censored patient with S(t_i) in bin b adds (S - lower_b) / S to bin b and width / S to each bin below.
    # In bin 0 the second part is empty and the first is 1: so a (near-)zero S, whose 1/S would overflow, adds 1.
    in_first = cens_bin == 0
    counts[0] += in_first.sum()
    s_c, b_c = cens[~in_first], cens_bin[~in_first]
    np.add.at(counts, b_c, (s_c - lower[b_c]) / s_c)
    below = np.bincount(b_c, weights=width / s_c, minlength=n_bins)  # spread over bins 0 .. b-1
    counts += np.cumsum(below[::-1])[::-1] - below
    n = int(event.shape[0])
    expected = n / n_bins
    chi2 = float(np.sum((counts - expected) ** 2) / expected)
    return DCalibration(
        counts=counts,
        expected=expected,
        chi2=chi2,
        p_value=float(stats.chi2.sf(chi2, n_bins - 1)),
        n=n,
        n_bins=n_bins,
    )
