"""Unpenalised Cox regression with its inference, as clinical papers report it: the one Cox engine of cartrisk.

:func:`cox_regression` fits a Cox proportional hazards model (Efron or Breslow ties) and returns hazard ratios
with Wald 95% intervals and p-values; :func:`ph_test` tests proportional hazards per term and globally with
scaled Schoenfeld residuals (Grambsch & Therneau 1994, the test of R's ``cox.zph`` before survival 3.0 and of
lifelines' ``proportional_hazard_test``). :func:`fit_cox` is the same fit without the checks, for bootstrap
resamples and other loops that must not stop on one degenerate sample (external validation's calibration slope and
smoothed calibration curve, subgroup and cluster slopes, Riley's sample-size check); :func:`cox_partial_likelihood`
is the likelihood alone (the centre frailty model, the risk groups' hazard ratios).

The fit is Newton-Raphson with step halving from zero on the exact partial likelihood computed here (vectorised
over the distinct death times; the risk sets are worked out once per fit, not once per step), as R's ``coxph``
does; its observed information gives the covariance, and the same sums give the baseline cumulative hazard
(Breslow's estimator, with Efron's correction under Efron ties, as R's ``basehaz``). It equals statsmodels'
``PHReg`` (tests/evaluation/test_coxreg.py), scikit-survival's ``CoxPHSurvivalAnalysis`` with ``alpha = 0`` and
the closed forms of Therneau & Grambsch's test data (tests/groups/test_grouper.py). Times in days.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from cartrisk.data.survstats import km_at
from cartrisk.exceptions import StatisticalWarning

__all__ = ["CoxFit", "baseline_cumhaz", "cox_partial_likelihood", "cox_regression", "fit_cox", "ph_test",
           "schoenfeld_residuals"]

_TIES = ("efron", "breslow")
_TRANSFORMS = ("km", "identity", "log")


class _RiskSets(NamedTuple):
    """Where the risk sets of one stratum start, in time order: what every step of a fit reuses."""

    order: np.ndarray  # the stratum's rows, sorted by time (stable)
    deaths: np.ndarray  # positions (in time order) of the deaths
    times: np.ndarray  # the distinct death times
    starts: np.ndarray  # first position at risk at each death time
    first: np.ndarray  # position in ``deaths`` of each death time's first death
    group: np.ndarray  # death time of each death (index into ``times``)
    d: np.ndarray  # deaths at each death time
    frac: np.ndarray  # Efron's l / d of each death (zeros under Breslow ties)


def _risk_sets(event: np.ndarray, time: np.ndarray, ties: str, rows: np.ndarray | None = None) -> _RiskSets:
    order = np.argsort(time, kind="mergesort")
    event, time = event[order], time[order]
    deaths = np.flatnonzero(event)
    times, group, d = np.unique(time[deaths], return_inverse=True, return_counts=True)
    starts = np.searchsorted(time, times, side="left")
    first = np.searchsorted(group, np.arange(times.size), side="left")
    rank = np.arange(deaths.size) - first[group]
    frac = rank / d[group] if ties == "efron" else np.zeros(deaths.size)
    return _RiskSets(order if rows is None else rows[order], deaths, times, starts, first, group, d, frac)


def _strata_sets(event, time, ties: str, strata) -> list[_RiskSets]:
    """One :class:`_RiskSets` per stratum (risk sets within each), ``order`` indexing the full sample."""
    if strata is None:
        return [_risk_sets(event, time, ties)]
    rows = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    return [_risk_sets(event[r], time[r], ties, r) for r in rows]


class _Sums(NamedTuple):
    loglik: float
    score: np.ndarray
    info: np.ndarray
    hazard: np.ndarray  # baseline hazard increments at the death times (every covariate at 0)


def _means(X: np.ndarray, rs: _RiskSets, coef: np.ndarray):
    """The weights and each death's risk-set mean of ``X`` (Efron-corrected for tied deaths)."""
    eta = X @ coef
    shift = eta.max()
    w = np.exp(eta - shift)
    # Risk-set sums at each death time: reverse cumulative sums over the sorted rows, read at `starts`.
    r0 = np.cumsum(w[::-1])[::-1][rs.starts]
    r1 = np.cumsum((w[:, None] * X)[::-1], axis=0)[::-1][rs.starts]
    # Sums over the deaths at each time (deaths are sorted by time, so each time's deaths are contiguous).
    wd, xd = w[rs.deaths], X[rs.deaths]
    d0 = np.add.reduceat(wd, rs.first)
    d1 = np.add.reduceat(wd[:, None] * xd, rs.first, axis=0)
    phi0 = r0[rs.group] - rs.frac * d0[rs.group]
    mean = (r1[rs.group] - rs.frac[:, None] * d1[rs.group]) / phi0[:, None]
    return eta, shift, w, wd, xd, phi0, mean


def _sums(X: np.ndarray, rs: _RiskSets, coef: np.ndarray) -> _Sums:
    """Log partial likelihood, score, information and baseline hazard increments of rows ``X`` (already in the
    order of ``rs``) at ``coef``."""
    n, p = X.shape
    if rs.deaths.size == 0:
        return _Sums(0.0, np.zeros(p), np.zeros((p, p)), np.empty(0))
    eta, shift, w, wd, xd, phi0, mean = _means(X, rs, coef)
    loglik = float(eta[rs.deaths].sum() - np.log(phi0).sum() - rs.deaths.size * shift)
    score = xd.sum(axis=0) - mean.sum(axis=0)
    # sum_g a_g S2(risk set g) = X' diag(w A) X, where A_j adds a_g over the death times whose risk set holds j
    # (those at or before j's time); Efron's tied-death correction is the same over the deaths.
    a = np.add.reduceat(1.0 / phi0, rs.first)
    at_start = np.zeros(n)
    np.add.at(at_start, rs.starts, a)
    weight = w * np.cumsum(at_start)
    info = (X * weight[:, None]).T @ X - mean.T @ mean
    if rs.frac.any():
        b = np.add.reduceat(rs.frac / phi0, rs.first)
        info -= (xd * (wd * b[rs.group])[:, None]).T @ xd
    # a_g, the sum over the deaths at a time of 1 / (their risk set's weight), is Breslow's hazard increment
    # (Efron's under Efron ties): here for weights exp(eta - shift), so back to exp(eta).
    return _Sums(loglik, score, info, a * np.exp(-shift))


def _total(parts: list[tuple[np.ndarray, _RiskSets]], coef: np.ndarray) -> _Sums:
    """:func:`_sums` added over strata (risk sets within each)."""
    sums = [_sums(X, rs, coef) for X, rs in parts]
    if len(sums) == 1:
        return sums[0]
    return _Sums(sum(s.loglik for s in sums), sum(s.score for s in sums), sum(s.info for s in sums), np.empty(0))


def _residuals(X: np.ndarray, rs: _RiskSets, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each death's Schoenfeld residual x_i - E[x | risk set] (tied deaths share the Efron-averaged mean), and
    its time."""
    if rs.deaths.size == 0:
        return np.empty((0, X.shape[1])), np.empty(0)
    mean = _means(X, rs, coef)[-1]
    group_mean = np.add.reduceat(mean, rs.first, axis=0) / rs.d[:, None]
    return X[rs.deaths] - group_mean[rs.group], rs.times[rs.group]


def cox_partial_likelihood(X, event, time, coef, ties: str = "efron") -> tuple[float, np.ndarray, np.ndarray]:
    """Log partial likelihood, score and observed information of a Cox model at ``coef`` (Efron or Breslow ties).

    Returns
    -------
    loglik : float
    score : ndarray of shape (n_features,)
    information : ndarray of shape (n_features, n_features)
        Minus the Hessian; its inverse at the maximum is the model-based covariance.
    """
    if ties not in _TIES:
        raise ValueError(f"ties must be one of {', '.join(_TIES)}, got {ties!r}")
    X = np.asarray(X, dtype=float).reshape(len(time), -1)
    rs = _risk_sets(np.asarray(event, dtype=bool), np.asarray(time, dtype=float), ties)
    return _sums(X[rs.order], rs, np.asarray(coef, dtype=float))[:3]


def _read_step(times: np.ndarray, cumulative: np.ndarray, at) -> np.ndarray:
    """A cumulative hazard (0 before its first time) read at ``at``."""
    idx = np.searchsorted(times, np.asarray(at, dtype=float), side="right") - 1
    return np.where(idx >= 0, cumulative[np.maximum(idx, 0)], 0.0)


def baseline_cumhaz(X, event, time, coef, at, *, ties: str = "efron") -> np.ndarray:
    """Baseline cumulative hazard (every covariate at 0) of a Cox model with coefficients ``coef``, at ``at`` days.

    Breslow's estimator, Efron-corrected under Efron ties (R's ``basehaz(fit, centered = FALSE)``); the
    coefficients need not maximise the likelihood (e.g. a calibration slope fixed at 1).
    """
    if ties not in _TIES:
        raise ValueError(f"ties must be one of {', '.join(_TIES)}, got {ties!r}")
    X = np.asarray(X, dtype=float).reshape(len(time), -1)
    rs = _risk_sets(np.asarray(event, dtype=bool), np.asarray(time, dtype=float), ties)
    return _read_step(rs.times, np.cumsum(_sums(X[rs.order], rs, np.asarray(coef, dtype=float)).hazard), at)


@dataclass
class CoxFit:
    """A fitted unpenalised Cox model and its inference.

    Attributes
    ----------
    terms : list of str
        The design's columns.
    coef, se : ndarray
        Log hazard ratios and their standard errors (inverse observed information; NaN when it is singular).
    covariance : ndarray
    loglik : float
        Log partial likelihood at the maximum (``loglik_null`` at zero).
    n, events : int
    ties : str
    X, event, time : ndarray
        The design and outcome the model was fitted on (kept for :func:`ph_test`; not written anywhere).
    strata : ndarray or None
        Stratum codes (a separate baseline hazard per stratum), when stratified.
    converged : bool
        Whether Newton-Raphson reached the maximum (:func:`cox_regression` warns when not).
    """

    terms: list[str]
    coef: np.ndarray
    se: np.ndarray
    covariance: np.ndarray
    loglik: float
    n: int
    events: int
    ties: str
    X: np.ndarray
    event: np.ndarray
    time: np.ndarray
    strata: np.ndarray | None = None
    converged: bool = True
    _hazard: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @cached_property
    def loglik_null(self) -> float:
        """Log partial likelihood of the model with every coefficient 0."""
        sets = _strata_sets(self.event, self.time, self.ties, self.strata)
        return _total([(self.X[rs.order], rs) for rs in sets], np.zeros(self.X.shape[1])).loglik

    def cumhaz(self, at: float) -> float:
        """Baseline cumulative hazard (every covariate at 0) at ``at`` days: Breslow's estimator, Efron-corrected
        under Efron ties (R's ``basehaz(fit, centered = FALSE)``). Not for a stratified fit."""
        if self._hazard is None:
            raise ValueError("a stratified Cox fit has one baseline hazard per stratum; fit without strata")
        return float(_read_step(*self._hazard, at))

    def table(self, conf_level: float = 0.95) -> pd.DataFrame:
        """One row per term: ``term``, ``coef``, ``se``, ``hr``, ``hr_lower``, ``hr_upper``, ``z``, ``p_value``."""
        z = stats.norm.ppf(0.5 + conf_level / 2.0)
        wald = self.coef / self.se
        return pd.DataFrame({"term": self.terms, "coef": self.coef, "se": self.se, "hr": np.exp(self.coef),
                             "hr_lower": np.exp(self.coef - z * self.se), "hr_upper": np.exp(self.coef + z * self.se),
                             "z": wald, "p_value": 2.0 * stats.norm.sf(np.abs(wald))})


class _Maximum(NamedTuple):
    coef: np.ndarray  # on the centred, unit-SD columns
    sums: _Sums
    singular: bool  # a Newton step met a singular information matrix
    decrement: float


def _maximise(parts: list[tuple[np.ndarray, _RiskSets]], p: int, max_iter: int, tol: float, strict: bool
              ) -> _Maximum:
    """Newton-Raphson with step halving from zero, until the squared Newton decrement (score' info^-1 score, twice
    the log-likelihood still to gain) is below ``tol``. A singular information matrix stops a ``strict`` fit;
    otherwise the step is the least-squares one (collinear columns share their effect)."""
    coef = np.zeros(p)
    sums = _total(parts, coef)
    for _ in range(max_iter):
        try:
            step = np.linalg.solve(sums.info, sums.score)
        except np.linalg.LinAlgError:
            if strict:
                return _Maximum(coef, sums, True, np.nan)
            step = np.linalg.lstsq(sums.info, sums.score, rcond=None)[0]
        if float(sums.score @ step) < tol:
            break
        for _halving in range(31):
            new = coef + step
            with np.errstate(over="ignore", invalid="ignore"):
                new_sums = _total(parts, new)
            if np.isfinite(new_sums.loglik) and new_sums.loglik >= sums.loglik - 1e-9:
                break
            step /= 2.0
        else:  # no step along the Newton direction gains: stay at the last point (the fit has not converged)
            break
        coef, sums = new, new_sums
    try:
        decrement = float(sums.score @ np.linalg.lstsq(sums.info, sums.score, rcond=None)[0])
    except np.linalg.LinAlgError:
        decrement = np.nan
    return _Maximum(coef, sums, False, decrement)


def _prepare(X, event, time, strata):
    design = np.asarray(X, dtype=float)
    event, time = np.asarray(event, dtype=bool), np.asarray(time, dtype=float)
    design = design.reshape(time.shape[0], -1)
    if strata is not None:
        strata = np.unique(np.asarray(strata).astype(str), return_inverse=True)[1]
    terms = [str(c) for c in getattr(X, "columns", range(design.shape[1]))]
    return design, event, time, strata, terms


def _fit(design, event, time, strata, terms, ties, max_iter, tol, *, strict: bool) -> CoxFit:
    # Newton on centred, unit-SD columns (as R's coxph scales them), then back to the columns' own units.
    centre, scale = design.mean(axis=0), design.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    scaled = (design - centre) / scale
    sets = _strata_sets(event, time, ties, strata)
    top = _maximise([(scaled[rs.order], rs) for rs in sets], design.shape[1], max_iter, tol, strict)
    singular = "singular information matrix: collinear columns in the Cox design"
    if strict and top.singular:
        raise ValueError(singular)
    converged = not top.singular and np.isfinite(top.decrement) and top.decrement < 1e-6
    if strict and not converged:
        warnings.warn(f"Cox fit did not converge (Newton decrement {top.decrement:.2e})", StatisticalWarning,
                      stacklevel=3)
    try:
        covariance = np.linalg.inv(top.sums.info) / np.outer(scale, scale)
    except np.linalg.LinAlgError as err:
        if strict:
            raise ValueError(singular) from err
        covariance = np.full((design.shape[1],) * 2, np.nan)
    if strict and not (np.diag(covariance) > 0).all():
        raise ValueError(singular)
    coef = top.coef / scale
    hazard = None
    if strata is None:  # back from the centred columns: H0(t) = H0_centred(t) exp(-centre' coef)
        hazard = sets[0].times, np.cumsum(top.sums.hazard) * np.exp(-float(centre @ coef))
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.diag(covariance))
    return CoxFit(terms, coef, se, covariance, float(top.sums.loglik), int(time.shape[0]), int(event.sum()), ties,
                  design, event, time, strata, bool(converged), hazard)


def fit_cox(X, event, time, *, ties: str = "efron", strata=None, max_iter: int = 50, tol: float = 1e-18) -> CoxFit:
    """:func:`cox_regression` without its checks: never raises or warns on a degenerate sample.

    For loops over bootstrap resamples, subgroups or clusters, where one sample without a usable fit must not stop
    the others: collinear columns share their effect (least-squares Newton steps), a constant column keeps a zero
    coefficient, and the covariance is NaN where the information is singular. Parameters as
    :func:`cox_regression`; ``X`` may be an array.
    """
    if ties not in _TIES:
        raise ValueError(f"ties must be one of {', '.join(_TIES)}, got {ties!r}")
    design, event, time, strata, terms = _prepare(X, event, time, strata)
    return _fit(design, event, time, strata, terms, ties, max_iter, tol, strict=False)


def cox_regression(X: pd.DataFrame, event, time, *, ties: str = "efron", strata=None, max_iter: int = 50,
                   tol: float = 1e-18) -> CoxFit:
    """Fit an unpenalised Cox model and its covariance.

    Parameters
    ----------
    X : DataFrame
        Numeric design, no missing values (one column per term; code categories with a reference level first).
    event, time : array-like
        Event indicator and time (days).
    ties : {"efron", "breslow"}
    strata : array-like, optional
        Stratum of each patient (e.g. the centre): one baseline hazard per stratum, common hazard ratios.
    max_iter, tol : int, float
        Newton steps from zero, until the squared Newton decrement (score' info^-1 score,
        twice the log-likelihood still to gain) is below ``tol``.

    Raises
    ------
    ValueError
        Missing values, no event, or a singular information matrix (collinear or constant columns).

    Warns
    -----
    StatisticalWarning
        When Newton-Raphson did not converge.
    """
    if ties not in _TIES:
        raise ValueError(f"ties must be one of {', '.join(_TIES)}, got {ties!r}")
    design, event, time, strata, terms = _prepare(X, event, time, strata)
    if not np.isfinite(design).all():
        raise ValueError("the Cox design has missing or infinite values; use complete cases")
    if event.sum() == 0:
        raise ValueError("no event: a Cox model cannot be fitted")
    constant = [t for t, sd in zip(terms, design.std(axis=0), strict=True) if sd == 0]
    if constant:
        raise ValueError(f"constant column(s) in the Cox design: {', '.join(constant)}")
    return _fit(design, event, time, strata, terms, ties, max_iter, tol, strict=True)


def schoenfeld_residuals(fit: CoxFit) -> tuple[np.ndarray, np.ndarray]:
    """Schoenfeld residuals, one row per death (tied deaths share the Efron-averaged risk-set mean), and the
    death times, stratum by stratum in time order."""
    parts = [_residuals(fit.X[rs.order], rs, fit.coef) for rs in _strata_sets(fit.event, fit.time, fit.ties,
                                                                             fit.strata)]
    return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _transform(fit: CoxFit, times: np.ndarray, transform: str) -> np.ndarray:
    if transform == "identity":
        return times
    if transform == "log":
        return np.log(times)
    return 1.0 - km_at(fit.event, fit.time, times)[0]


def ph_test(fit: CoxFit, transform: str = "km") -> pd.DataFrame:
    """Test proportional hazards with scaled Schoenfeld residuals, per term and globally.

    The score-type test of Grambsch and Therneau (Biometrika 1994): for each term, the slope of its scaled
    Schoenfeld residuals against a transform of time, ``T_j = (sum_k g_k r*_kj)^2 / (d V_jj sum_k g_k^2)`` with
    ``g`` the centred transformed death times, ``r* = d r V`` and ``d`` the number of deaths, chi-square with one
    degree of freedom; the global test ``d (g'r) V (r'g) / sum g^2`` has one per term.

    Parameters
    ----------
    fit : CoxFit
    transform : {"km", "identity", "log"}, default "km"
        Time scale: one minus the Kaplan-Meier estimate at each death time (R's default), days, or log days.

    Returns
    -------
    DataFrame
        ``term`` (then ``GLOBAL``), ``ph_chi2``, ``ph_df``, ``ph_p_value``.
    """
    if transform not in _TRANSFORMS:
        raise ValueError(f"transform must be one of {', '.join(_TRANSFORMS)}, got {transform!r}")
    resid, times = schoenfeld_residuals(fit)
    d = resid.shape[0]
    g = _transform(fit, times, transform)
    g = g - g.mean()
    gg = float(g @ g)
    if d < 2 or gg == 0:
        nan = np.full(len(fit.terms) + 1, np.nan)
        return pd.DataFrame({"term": [*fit.terms, "GLOBAL"], "ph_chi2": nan, "ph_df": [1] * len(fit.terms) +
                             [len(fit.terms)], "ph_p_value": nan})
    V = fit.covariance
    scaled = d * resid @ V
    per_term = (g @ scaled) ** 2 / (d * np.diag(V) * gg)
    u = g @ resid
    total = float(d * u @ V @ u / gg)
    chi2 = np.append(per_term, total)
    df = np.append(np.ones(len(fit.terms), dtype=int), len(fit.terms))
    return pd.DataFrame({"term": [*fit.terms, "GLOBAL"], "ph_chi2": chi2, "ph_df": df,
                         "ph_p_value": stats.chi2.sf(chi2, df)})
