"""Updating a survival model on new data: recalibration in the large, recalibration (intercept and slope) and
revision, compared by likelihood-ratio tests in the closed testing procedure of Vergouwe et al. (Stat Med
2017;36:4529-39), on the full-likelihood (Poisson) scale of Crowson, Atkinson & Therneau (Stat Methods Med Res
2016;25:1692-706) used by McLernon et al. (Ann Intern Med 2023).

With ``E_i = H(min(t_i, h) | x_i)`` the cumulative hazard the original model expects for patient ``i`` up to the
horizon (or its own time) and ``eta_i = log H(h | x_i) - mean`` its centred log cumulative hazard at the horizon
(a Cox model's centred linear predictor), the deaths by ``h`` are Poisson with mean

==========  ====================================================  ==========================
original    ``E_i``                                               0 parameters
intercept   ``exp(a) E_i``                                        1: the baseline hazard scaled
slope       ``exp(a) E_i exp((b - 1) eta_i)``                     2: and the calibration slope b
refit       ``exp(a) E_i exp((b - 1) eta_i + g' z_i)``            2 + p: every coefficient revised
==========  ====================================================  ==========================

The closed test (level alpha = 0.05, the literature data file) tests the revised model against the original; if
the difference is not significant the original is kept, else against the intercept update, then against the slope
update, keeping the least extensive update that the revision does not significantly beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import linalg, stats

from cartrisk.data.literature import method_constants

__all__ = ["UPDATE_METHODS", "PoissonFit", "UpdateTests", "closed_test", "poisson_offset_fit"]

UPDATE_METHODS = ("intercept", "slope", "refit")
ALPHA = float(method_constants()["updating"]["alpha"])


@dataclass(frozen=True)
class PoissonFit:
    """A Poisson regression with offset: coefficients (aliased columns dropped), covariance, log-likelihood."""

    coef: np.ndarray
    cov: np.ndarray
    loglik: float
    kept: np.ndarray

    @property
    def n_params(self) -> int:
        return int(self.kept.size)


def _loglik(d: np.ndarray, mu: np.ndarray) -> float:
    return float(np.sum(d * np.log(mu) - mu))


def poisson_offset_fit(d, offset, X=None, *, n_iter: int = 50, tol: float = 1e-10) -> PoissonFit:
    """Poisson GLM ``log mu = offset + X beta`` by iteratively reweighted least squares; columns of ``X`` that are
    linear combinations of the others are dropped (``kept`` lists those used)."""
    d = np.asarray(d, dtype=float)
    offset = np.asarray(offset, dtype=float)
    if X is None or np.size(X) == 0:
        return PoissonFit(np.empty(0), np.empty((0, 0)), _loglik(d, np.exp(offset)), np.empty(0, dtype=int))
    X = np.asarray(X, dtype=float).reshape(d.shape[0], -1)
    _, r, piv = linalg.qr(X, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    rank = int(np.sum(diag > diag[0] * 1e-9)) if diag.size else 0
    kept = np.sort(piv[:rank])
    Xk = X[:, kept]
    beta = np.zeros(kept.size)
    if kept.size and np.isclose(Xk[:, 0], 1.0).all():
        beta[0] = np.log(max(d.sum(), 1e-10) / np.exp(offset).sum())
    loglik = -np.inf
    for _ in range(n_iter):
        eta = np.clip(offset + Xk @ beta, -700, 700)
        mu = np.exp(eta)
        info = Xk.T @ (mu[:, None] * Xk)
        step = np.linalg.solve(info, Xk.T @ (d - mu))
        new = _loglik(d, np.exp(np.clip(offset + Xk @ (beta + step), -700, 700)))
        halvings = 0
        while new < loglik - 1e-12 and halvings < 30:
            step /= 2.0
            new = _loglik(d, np.exp(np.clip(offset + Xk @ (beta + step), -700, 700)))
            halvings += 1
        beta = beta + step
        done = abs(new - loglik) < tol * (1.0 + abs(new))
        loglik = new
        if done:
            break
    mu = np.exp(np.clip(offset + Xk @ beta, -700, 700))
    cov = np.linalg.pinv(Xk.T @ (mu[:, None] * Xk))
    return PoissonFit(beta, cov, loglik, kept)


@dataclass(frozen=True)
class UpdateTests:
    """The four nested models and the closed test's choice.

    Attributes
    ----------
    fits : dict
        ``original``, ``intercept``, ``slope``, ``refit`` -> :class:`PoissonFit`.
    tests : DataFrame
        ``comparison, lr, df, p_value, significant`` of the closed test's steps (those it ran).
    chosen : str
        ``original``, ``intercept``, ``slope`` or ``refit``.
    reason : str
        Why, in words.
    intercept, slope : float
        ``a`` of the intercept update, and ``(a, b)`` of the slope update (b = 1 + coefficient of eta).
    """

    fits: dict[str, PoissonFit]
    tests: pd.DataFrame
    chosen: str
    reason: str
    alpha: float

    def parameters(self, method: str) -> tuple[float, float]:
        """``(a, b)`` of the intercept (b = 1) or slope update."""
        if method == "intercept":
            return float(self.fits["intercept"].coef[0]), 1.0
        coef = self.fits["slope"].coef
        return float(coef[0]), 1.0 + float(coef[1]) if coef.size > 1 else 1.0


def closed_test(deaths, expected, eta, Z, *, alpha: float = ALPHA) -> UpdateTests:
    """Fit the four models and run the closed testing procedure (see the module docstring).

    Parameters
    ----------
    deaths : array of 0/1
        Death by the horizon.
    expected : array
        ``E_i``, the original model's cumulative hazard up to ``min(t_i, h)`` (patients with ``E_i = 0`` are left
        out, as in Crowson et al.).
    eta : array
        Centred log cumulative hazard at the horizon.
    Z : 2-D array
        The model's features (for the revision).
    """
    d, E = np.asarray(deaths, dtype=float), np.asarray(expected, dtype=float)
    keep = E > 0
    d, off, eta, Z = d[keep], np.log(E[keep]), np.asarray(eta, float)[keep], np.asarray(Z, float)[keep]
    one = np.ones((d.size, 1))
    Z = Z[:, np.ptp(Z, axis=0) > 0] if Z.size else Z
    fits = {"original": poisson_offset_fit(d, off), "intercept": poisson_offset_fit(d, off, one),
            "slope": poisson_offset_fit(d, off, np.hstack([one, eta[:, None]])),
            "refit": poisson_offset_fit(d, off, np.hstack([one, eta[:, None], Z]))}
    full = fits["refit"]
    rows, chosen, reason = [], "refit", ""
    for smaller in ("original", "intercept", "slope"):
        lr = max(2.0 * (full.loglik - fits[smaller].loglik), 0.0)
        df = full.n_params - fits[smaller].n_params
        p = float(stats.chi2.sf(lr, df)) if df > 0 else 1.0
        rows.append({"comparison": f"refit vs {smaller}", "lr": lr, "df": df, "p_value": p,
                     "significant": p < alpha})
        if p >= alpha:
            chosen = smaller
            reason = (f"the revised model does not fit significantly better than the {smaller} "
                      f"{'model' if smaller == 'original' else 'update'} (LR {lr:.2f} on {df} df, p = {p:.3f} >= "
                      f"{alpha:g})" + (": no update needed" if smaller == "original" else
                                       "; it did beat every less extensive model tested before"))
            break
    else:
        reason = (f"the revised model fits significantly better than the original, the intercept and the slope "
                  f"updates (last: p = {rows[-1]['p_value']:.3g} < {alpha:g}): every coefficient is re-estimated")
    return UpdateTests(fits, pd.DataFrame(rows), chosen, reason, alpha)
