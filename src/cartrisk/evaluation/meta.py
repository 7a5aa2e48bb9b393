"""Random-effects meta-analysis of per-cluster performance (REML), as R's ``metafor::rma`` computes it.

No maintained Python library gives REML with a Q-profile interval for tau^2 and a prediction interval (PyMARE is
pre-1.0, statsmodels has DerSimonian-Laird and Paule-Mandel only), so the estimator is kept small here and held
against metafor's published worked example (``dat.bcg``, log risk ratios: tau^2 0.3132, mu -0.7145 (-1.0669,
-0.3622), I^2 92.22%, prediction interval (-1.87, 0.44); tests/evaluation/test_meta.py).

References: Viechtbauer W. Conducting meta-analyses in R with the metafor package. J Stat Softw 2010;36(3);
Riley RD, Higgins JPT, Deeks JJ. Interpretation of random effects meta-analyses. BMJ 2011;342:d549;
Debray TPA et al. A guide to systematic review and meta-analysis of prediction model performance. BMJ
2017;356:i6460.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats

__all__ = ["MetaAnalysis", "random_effects"]


@dataclass(frozen=True)
class MetaAnalysis:
    """A random-effects meta-analysis (REML).

    Attributes
    ----------
    k : int
        Clusters pooled.
    estimate, se, lower, upper : float
        Pooled mean with its standard error and 95% confidence interval (normal).
    pi_lower, pi_upper : float
        95% prediction interval for a new cluster: ``mu +- t_{k-2} sqrt(se^2 + tau^2)`` (Riley et al. 2011; NaN for
        k < 3). ``pi_normal_*``: metafor's default, with the normal quantile.
    tau2, tau2_lower, tau2_upper : float
        Between-cluster variance (REML) and its Q-profile 95% interval.
    i2, h2 : float
        I^2 (percent) and H^2.
    q, q_p : float
        Cochran's Q and its p-value (k - 1 degrees of freedom).
    """

    k: int
    estimate: float
    se: float
    lower: float
    upper: float
    pi_lower: float
    pi_upper: float
    pi_normal_lower: float
    pi_normal_upper: float
    tau2: float
    tau2_lower: float
    tau2_upper: float
    i2: float
    h2: float
    q: float
    q_p: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _reml_negloglik(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    w = 1.0 / (v + tau2)
    mu = np.sum(w * y) / np.sum(w)
    return 0.5 * (np.sum(np.log(v + tau2)) + np.log(np.sum(w)) + np.sum(w * (y - mu) ** 2))


def _generalised_q(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    w = 1.0 / (v + tau2)
    mu = np.sum(w * y) / np.sum(w)
    return float(np.sum(w * (y - mu) ** 2))


def _q_profile(y, v, level: float) -> tuple[float, float]:
    """Q-profile interval of tau^2 (Viechtbauer 2007): where the generalised Q meets the chi^2_{k-1} quantiles."""
    k = y.shape[0]
    hi_q, lo_q = stats.chi2.ppf([(1 + level) / 2, (1 - level) / 2], k - 1)
    upper_bound = max(100.0 * float(np.var(y, ddof=1)) + 10.0 * float(v.max()), 1.0)

    def solve(target: float) -> float:
        f = lambda t: _generalised_q(t, y, v) - target  # noqa: E731  (Q falls as tau^2 grows)
        if f(0.0) <= 0:
            return 0.0
        if f(upper_bound) > 0:
            return np.inf
        return float(optimize.brentq(f, 0.0, upper_bound, xtol=1e-12))

    return solve(hi_q), solve(lo_q)


def random_effects(estimates, variances, *, level: float = 0.95) -> MetaAnalysis:
    """Pool per-cluster estimates by a random-effects model with the REML between-cluster variance.

    Parameters
    ----------
    estimates : array-like of shape (k,)
        One estimate per cluster, on the scale pooled (e.g. logit C, log O/E, the calibration slope).
    variances : array-like of shape (k,)
        Their sampling variances (squared standard errors), all positive.
    level : float, default 0.95

    Raises
    ------
    ValueError
        Fewer than two clusters, non-finite values, or a variance that is not positive.
    """
    y = np.asarray(estimates, dtype=float)
    v = np.asarray(variances, dtype=float)
    if y.ndim != 1 or y.shape != v.shape or y.shape[0] < 2:
        raise ValueError(f"a meta-analysis needs at least two clusters with one estimate and one variance each, got "
                         f"{y.shape[0] if y.ndim == 1 else y.shape} estimates and {v.shape} variances")
    if not (np.isfinite(y).all() and np.isfinite(v).all()) or (v <= 0).any():
        raise ValueError("estimates must be finite and variances finite and positive")
    k = y.shape[0]
    span = max(10.0 * float(np.var(y, ddof=1)) + 10.0 * float(v.max()), 1e-8)
    res = optimize.minimize_scalar(_reml_negloglik, bounds=(0.0, span), args=(y, v), method="bounded",
                                   options={"xatol": 1e-12})
    tau2 = float(res.x) if _reml_negloglik(float(res.x), y, v) < _reml_negloglik(0.0, y, v) else 0.0
    w = 1.0 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    se = float(np.sqrt(1.0 / np.sum(w)))
    z = float(stats.norm.ppf((1 + level) / 2))
    wf = 1.0 / v
    q = _generalised_q(0.0, y, v)
    s2 = (k - 1) * np.sum(wf) / (np.sum(wf) ** 2 - np.sum(wf ** 2))  # the "typical" within-cluster variance
    pi_se = np.sqrt(se ** 2 + tau2)
    t = float(stats.t.ppf((1 + level) / 2, k - 2)) if k >= 3 else np.nan
    tau2_lo, tau2_hi = _q_profile(y, v, level)
    return MetaAnalysis(k=k, estimate=mu, se=se, lower=mu - z * se, upper=mu + z * se,
                        pi_lower=mu - t * pi_se, pi_upper=mu + t * pi_se,
                        pi_normal_lower=mu - z * pi_se, pi_normal_upper=mu + z * pi_se,
                        tau2=tau2, tau2_lower=tau2_lo, tau2_upper=tau2_hi,
                        i2=float(100.0 * tau2 / (tau2 + s2)), h2=float((tau2 + s2) / s2),
                        q=q, q_p=float(stats.chi2.sf(q, k - 1)))
