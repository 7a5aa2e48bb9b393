"""Unpenalised Cox regression with its inference, as clinical papers report it.

:func:`cox_regression` fits a Cox proportional hazards model (Efron or Breslow ties) and returns hazard ratios
with Wald 95% intervals and p-values; :func:`ph_test` tests proportional hazards per term and globally with
scaled Schoenfeld residuals (Grambsch & Therneau 1994, the test of R's ``cox.zph`` before survival 3.0 and of
lifelines' ``proportional_hazard_test``).

The fit is Newton-Raphson with step halving from zero on the exact partial likelihood computed here (vectorised
over the distinct death times), as R's ``coxph`` does; its observed information gives the covariance. It equals
statsmodels' ``PHReg`` (tests/evaluation/test_coxreg.py) and scikit-survival's ``CoxPHSurvivalAnalysis`` with
``alpha = 0``. Times in days.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sksurv.nonparametric import kaplan_meier_estimator

from cartrisk.exceptions import StatisticalWarning

__all__ = ["CoxFit", "cox_partial_likelihood", "cox_regression", "ph_test", "schoenfeld_residuals"]

_TIES = ("efron", "breslow")
_TRANSFORMS = ("km", "identity", "log")


def _walk(X: np.ndarray, event: np.ndarray, time: np.ndarray, coef: np.ndarray, ties: str, residuals: bool = False):
    """Log partial likelihood, score and information (or each death's Schoenfeld residual x_i - E[x | risk set]
    and its time), vectorised over the distinct death times."""
    order = np.argsort(time, kind="mergesort")
    X, event, time = X[order], event[order], time[order]
    n, p = X.shape
    eta = X @ coef
    shift = eta.max()
    w = np.exp(eta - shift)
    deaths = np.flatnonzero(event)
    if deaths.size == 0:
        return (np.empty((0, p)), np.empty(0)) if residuals else (0.0, np.zeros(p), np.zeros((p, p)))
    dtimes, group, d = np.unique(time[deaths], return_inverse=True, return_counts=True)
    starts = np.searchsorted(time, dtimes, side="left")  # first patient at risk at each death time
    # Risk-set sums at each death time: reverse cumulative sums over the sorted rows, read at `starts`.
    r0 = np.cumsum(w[::-1])[::-1][starts]
    r1 = np.cumsum((w[:, None] * X)[::-1], axis=0)[::-1][starts]
    # Sums over the deaths at each time (deaths are sorted by time, so each time's deaths are contiguous).
    first = np.searchsorted(group, np.arange(dtimes.size), side="left")
    wd, xd = w[deaths], X[deaths]
    d0 = np.add.reduceat(wd, first)
    d1 = np.add.reduceat(wd[:, None] * xd, first, axis=0)
    rank = np.arange(deaths.size) - first[group]
    frac = rank / d[group] if ties == "efron" else np.zeros(deaths.size)
    phi0 = r0[group] - frac * d0[group]
    mean = (r1[group] - frac[:, None] * d1[group]) / phi0[:, None]
    if residuals:
        group_mean = np.add.reduceat(mean, first, axis=0) / d[:, None]
        return xd - group_mean[group], time[deaths]
    loglik = float(eta[deaths].sum() - np.log(phi0).sum() - deaths.size * shift)
    score = xd.sum(axis=0) - mean.sum(axis=0)
    # sum_g a_g S2(risk set g) = X' diag(w A) X, where A_j adds a_g over the death times whose risk set holds j
    # (those at or before j's time); Efron's tied-death correction is the same over the deaths.
    a = np.add.reduceat(1.0 / phi0, first)
    at_start = np.zeros(n)
    np.add.at(at_start, starts, a)
    weight = w * np.cumsum(at_start)
    info = (X * weight[:, None]).T @ X - mean.T @ mean
    if ties == "efron" and (d > 1).any():
        b = np.add.reduceat(frac / phi0, first)
        info -= (xd * (wd * b[group])[:, None]).T @ xd
    return loglik, score, info


def _walk_strata(X, event, time, coef, ties, strata, residuals: bool = False):
    """:func:`_walk` summed over strata (risk sets within each stratum)."""
    if strata is None:
        return _walk(X, event, time, coef, ties, residuals)
    parts = [_walk(X[m], event[m], time[m], coef, ties, residuals) for m in (strata == s for s in np.unique(strata))]
    if residuals:
        return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return sum(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts)


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
    X = np.asarray(X, dtype=float)
    return _walk(X, np.asarray(event, dtype=bool), np.asarray(time, dtype=float), np.asarray(coef, float), ties)


@dataclass
class CoxFit:
    """A fitted unpenalised Cox model and its inference.

    Attributes
    ----------
    terms : list of str
        The design's columns.
    coef, se : ndarray
        Log hazard ratios and their standard errors (inverse observed information).
    covariance : ndarray
    loglik : float
        Log partial likelihood at the maximum (``loglik_null`` at zero).
    n, events : int
    ties : str
    X, event, time : ndarray
        The design and outcome the model was fitted on (kept for :func:`ph_test`; not written anywhere).
    strata : ndarray or None
        Stratum codes (a separate baseline hazard per stratum), when stratified.
    """

    terms: list[str]
    coef: np.ndarray
    se: np.ndarray
    covariance: np.ndarray
    loglik: float
    loglik_null: float
    n: int
    events: int
    ties: str
    X: np.ndarray
    event: np.ndarray
    time: np.ndarray
    strata: np.ndarray | None = None

    def table(self, conf_level: float = 0.95) -> pd.DataFrame:
        """One row per term: ``term``, ``coef``, ``se``, ``hr``, ``hr_lower``, ``hr_upper``, ``z``, ``p_value``."""
        z = stats.norm.ppf(0.5 + conf_level / 2.0)
        wald = self.coef / self.se
        return pd.DataFrame({"term": self.terms, "coef": self.coef, "se": self.se, "hr": np.exp(self.coef),
                             "hr_lower": np.exp(self.coef - z * self.se), "hr_upper": np.exp(self.coef + z * self.se),
                             "z": wald, "p_value": 2.0 * stats.norm.sf(np.abs(wald))})


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
    """
    if ties not in _TIES:
        raise ValueError(f"ties must be one of {', '.join(_TIES)}, got {ties!r}")
    design = np.asarray(X, dtype=float)
    event, time = np.asarray(event, dtype=bool), np.asarray(time, dtype=float)
    if not np.isfinite(design).all():
        raise ValueError("the Cox design has missing or infinite values; use complete cases")
    if event.sum() == 0:
        raise ValueError("no event: a Cox model cannot be fitted")
    if strata is not None:
        strata = np.unique(np.asarray(strata).astype(str), return_inverse=True)[1]
    terms = [str(c) for c in getattr(X, "columns", range(design.shape[1]))]
    constant = [t for t, sd in zip(terms, design.std(axis=0), strict=True) if sd == 0]
    if constant:
        raise ValueError(f"constant column(s) in the Cox design: {', '.join(constant)}")
    # Newton on centred, unit-SD columns (as R's coxph scales them), then back to the columns' own units.
    centre, scale = design.mean(axis=0), design.std(axis=0)
    scaled = (design - centre) / scale
    coef = np.zeros(design.shape[1])

    def _walk(X, event, time, coef, ties):  # noqa: F811  (the stratified sum, under the same name)
        return _walk_strata(X, event, time, coef, ties, strata)

    loglik, score, info = _walk(scaled, event, time, coef, ties)
    for _ in range(max_iter):
        try:
            step = np.linalg.solve(info, score)
        except np.linalg.LinAlgError as err:
            raise ValueError("singular information matrix: collinear columns in the Cox design") from err
        if float(score @ step) < tol:  # squared Newton decrement: the log-likelihood is within tol of its maximum
            break
        halvings = 0
        while True:
            new = coef + step
            with np.errstate(over="ignore", invalid="ignore"):
                new_loglik, new_score, new_info = _walk(scaled, event, time, new, ties)
            if (np.isfinite(new_loglik) and new_loglik >= loglik - 1e-9) or halvings >= 30:
                break
            step /= 2.0
            halvings += 1
        coef, loglik, score, info = new, new_loglik, new_score, new_info
    decrement = float(score @ np.linalg.lstsq(info, score, rcond=None)[0])
    if decrement >= 1e-6 or not np.isfinite(decrement):
        warnings.warn(f"Cox fit did not converge (Newton decrement {decrement:.2e})", StatisticalWarning, stacklevel=2)
    try:
        covariance = np.linalg.inv(info) / np.outer(scale, scale)
    except np.linalg.LinAlgError as err:
        raise ValueError("singular information matrix: collinear columns in the Cox design") from err
    if not (np.diag(covariance) > 0).all():
        raise ValueError("singular information matrix: collinear columns in the Cox design")
    coef = coef / scale
    loglik_null = _walk(design, event, time, np.zeros(design.shape[1]), ties)[0]
    return CoxFit(terms, coef, np.sqrt(np.diag(covariance)), covariance, float(loglik), float(loglik_null),
                  int(len(time)), int(event.sum()), ties, design, event, time, strata)


def schoenfeld_residuals(fit: CoxFit) -> tuple[np.ndarray, np.ndarray]:
    """Schoenfeld residuals, one row per death (tied deaths share the Efron-averaged risk-set mean), and the
    death times, in the order of the risk-set walk (latest death first)."""
    return _walk_strata(fit.X, fit.event, fit.time, fit.coef, fit.ties, fit.strata, residuals=True)


def _transform(fit: CoxFit, times: np.ndarray, transform: str) -> np.ndarray:
    if transform == "identity":
        return times
    if transform == "log":
        return np.log(times)
    t, s = kaplan_meier_estimator(fit.event, fit.time)
    return 1.0 - s[np.searchsorted(t, times, side="right") - 1]


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
