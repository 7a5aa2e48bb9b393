"""A Cox model with a Gaussian centre frailty: how much do centres differ in their baseline hazard?

The model is ``h(t | x, centre c) = h0(t) exp(x'beta + b_c)`` with ``b_c ~ N(0, sigma^2)``, the random effect the
simulated registry plants (:func:`cartrisk.data.simulate.planted_effects`, term ``centre_effect``). It is fitted as
R's ``coxme`` does: for a given ``sigma`` the penalised partial likelihood ``l(beta, b) - b'b / (2 sigma^2)`` is
maximised over ``beta`` and ``b`` (Newton-Raphson on :func:`cartrisk.evaluation.coxreg.cox_partial_likelihood`), and
``b`` is integrated out by the Laplace approximation,

    log L(sigma) = l(beta_hat, b_hat) - b_hat'b_hat / (2 sigma^2) - 1/2 log det(I + sigma^2 H_bb),

with ``H_bb`` the partial likelihood's information for ``b``. ``sigma`` maximises it; its 95% interval is the profile
likelihood interval ``{sigma : 2 (log L(sigma_hat) - log L(sigma)) <= chi2_1(0.95)}`` (its lower end is 0 when
that includes 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from cartrisk.evaluation.coxreg import cox_partial_likelihood

__all__ = ["FrailtyFit", "centre_frailty"]

_SIGMA_RANGE = (1e-3, 3.0)


@dataclass
class FrailtyFit:
    """A fitted Gaussian frailty Cox model.

    Attributes
    ----------
    sigma, sigma_lower, sigma_upper : float
        The between-centre SD of the log hazard and its 95% profile-likelihood interval.
    coef : Series
        The fixed effects (log hazard ratios) at ``sigma``.
    effects : Series
        Each centre's predicted effect ``b_c`` (log hazard ratio against the average centre).
    loglik : float
        The Laplace-approximated log likelihood at ``sigma``.
    n, events, centres : int
    """

    sigma: float
    sigma_lower: float
    sigma_upper: float
    coef: pd.Series
    effects: pd.Series
    loglik: float
    n: int
    events: int
    centres: int


def _penalised(Z, event, time, p, sigma, start):
    """Maximise the penalised partial likelihood at ``sigma``; return (theta, Laplace log likelihood)."""
    q = Z.shape[1] - p
    penalty = np.r_[np.zeros(p), np.full(q, 1.0 / sigma**2)]
    theta = start.copy()

    def objective(t):
        ll, score, info = cox_partial_likelihood(Z, event, time, t, ties="efron")
        b = t[p:]
        return ll - 0.5 * float(b @ b) / sigma**2, score - penalty * t, info + np.diag(penalty), info

    value, score, info_pen, info = objective(theta)
    for _ in range(50):
        step = np.linalg.solve(info_pen, score)
        if float(score @ step) < 1e-10:  # squared Newton decrement: within 1e-10 of the maximum
            break
        new = theta + step
        new_value, new_score, new_info_pen, new_info = objective(new)
        halvings = 0
        while new_value < value - 1e-9 and halvings < 20:
            step /= 2.0
            new = theta + step
            new_value, new_score, new_info_pen, new_info = objective(new)
            halvings += 1
        theta, value, score, info_pen, info = new, new_value, new_score, new_info_pen, new_info
    h_bb = info[p:, p:]
    sign, logdet = np.linalg.slogdet(np.eye(q) + sigma**2 * h_bb)
    return theta, value - 0.5 * logdet


def centre_frailty(X: pd.DataFrame, event, time, centre, *, conf_level: float = 0.95) -> FrailtyFit:
    """Fit a Cox model with a Gaussian frailty per centre (see the module docstring).

    Parameters
    ----------
    X : DataFrame
        Fixed-effect design (numeric, complete); may have no column.
    event, time : array-like
        OS-2 event indicator and time (days).
    centre : array-like
        Each patient's centre.
    conf_level : float
        Level of the profile-likelihood interval of ``sigma``.
    """
    event, time = np.asarray(event, dtype=bool), np.asarray(time, dtype=float)
    labels, codes = np.unique(np.asarray(centre).astype(str), return_inverse=True)
    G = np.zeros((len(codes), labels.size))
    G[np.arange(len(codes)), codes] = 1.0
    design = np.asarray(X, dtype=float).reshape(len(codes), -1)
    p = design.shape[1]
    Z = np.hstack([design, G])
    cache: dict[float, tuple[np.ndarray, float]] = {}

    def profile(log_sigma: float) -> float:
        key = round(float(log_sigma), 10)
        if key not in cache:
            # warm start from the nearest sigma solved so far
            near = min(cache, key=lambda k: abs(k - key)) if cache else None
            start = cache[near][0] if near is not None else np.zeros(Z.shape[1])
            cache[key] = _penalised(Z, event, time, p, float(np.exp(log_sigma)), start)
        return cache[key][1]

    grid = np.linspace(*np.log(_SIGMA_RANGE), 15)
    values = np.array([profile(g) for g in grid])
    k = int(np.argmax(values))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    best = optimize.minimize_scalar(lambda g: -profile(g), bounds=(lo, hi), method="bounded",
                                    options={"xatol": 1e-5})
    log_sigma, peak = float(best.x), -float(best.fun)
    drop = stats.chi2.ppf(conf_level, 1) / 2.0

    def gap(g: float) -> float:
        return peak - profile(g) - drop

    low_end, high_end = np.log(_SIGMA_RANGE[0]), np.log(_SIGMA_RANGE[1])
    lower = float(np.exp(optimize.brentq(gap, low_end, log_sigma))) if gap(low_end) > 0 else 0.0
    upper = float(np.exp(optimize.brentq(gap, log_sigma, high_end))) if gap(high_end) > 0 else float("inf")
    theta = cache[round(log_sigma, 10)][0]
    names = [str(c) for c in getattr(X, "columns", range(p))]
    return FrailtyFit(sigma=float(np.exp(log_sigma)), sigma_lower=lower, sigma_upper=upper,
                      coef=pd.Series(theta[:p], index=names), effects=pd.Series(theta[p:], index=labels),
                      loglik=peak, n=int(len(time)), events=int(event.sum()), centres=int(labels.size))
