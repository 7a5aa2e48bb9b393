"""Statistics behind :mod:`cartrisk.groups`: group encoding, hazard ratios, C.

Functions on numpy arrays (times in days). The public names (:func:`c_difference`, :class:`CDifference`) are
re-exported by :mod:`cartrisk.groups`; import them from there. Kaplan-Meier read-outs are
:mod:`cartrisk.data.survstats`'s. Reclassification and net benefit are in
:mod:`cartrisk.groups.reclassification`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sksurv.util import check_y_survival

from cartrisk.evaluation.coxreg import cox_regression
from cartrisk.exceptions import StatisticalWarning

__all__ = [
    "CDifference",
    "c_difference",
    "encode_groups",
    "group_hazard_ratios",
    "paired_c_difference",
]


def survival_arrays(y, allow_all_censored: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Event (bool) and time (float days) from a structured survival array, validated by scikit-survival."""
    event, time = check_y_survival(y, allow_all_censored=allow_all_censored)
    return np.asarray(event, dtype=bool), np.asarray(time, dtype=float)


def as_vector(values, name: str, n: int | None = None) -> np.ndarray:
    """A finite 1-D float array of length ``n``, or a ValueError naming ``name``."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if n is not None and len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} values, expected {n}")
    return arr


def encode_groups(groups, score=None, *, name: str = "groups", require_order: bool = False) -> tuple[np.ndarray, list]:
    """Integer codes ordered low -> high risk, and the labels they index.

    Parameters
    ----------
    groups : array-like of shape (n_samples,)
        A pandas Categorical (its category order is taken as low -> high risk; unused
        categories are kept), numbers (sorted ascending), or plain labels.
    score : array-like of shape (n_samples,), optional
        Risk scores; plain labels are then ordered by their members' mean score.
    name : str
        Name used in error messages.
    require_order : bool
        Whether plain labels without a score are an error (otherwise they are sorted).
    """
    if isinstance(groups, pd.Series) and isinstance(groups.dtype, pd.CategoricalDtype):
        groups = groups.array
    if isinstance(groups, pd.Categorical):
        codes = np.asarray(groups.codes, dtype=int)
        if (codes < 0).any():
            raise ValueError(f"{name} has missing values")
        return codes, list(groups.categories)
    arr = np.asarray(groups)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind in "biuf":
        if arr.dtype.kind == "f" and np.isnan(arr).any():
            raise ValueError(f"{name} has missing values")
        levels = np.unique(arr)
        return np.searchsorted(levels, arr).astype(int), levels.tolist()
    if pd.isna(arr).any():
        raise ValueError(f"{name} has missing values")
    arr = arr.astype(str)
    levels = np.unique(arr)
    if score is not None:
        score = np.asarray(score, dtype=float)
        levels = sorted(levels, key=lambda lev: float(np.mean(score[arr == lev])))
    elif require_order:
        raise ValueError(
            f"{name}: plain labels carry no risk order; pass a pandas Categorical with categories "
            "ordered low -> high risk, integer codes, or a score"
        )
    lookup = {lev: k for k, lev in enumerate(levels)}
    return np.array([lookup[v] for v in arr], dtype=int), list(levels)


# --------------------------------------------------------------------------- concordance
def _comparable_pairs(event, time) -> np.ndarray:
    """Comparable-pair matrix A (Harrell): i died first, or died at the time j was censored."""
    ti, tj = time[:, None], time[None, :]
    return (event[:, None] & ((ti < tj) | ((ti == tj) & ~event[None, :]))).astype(float)


def _credit(comparable: np.ndarray, score: np.ndarray, tied_tol: float = 1e-8) -> np.ndarray:
    """Concordance credit of each comparable pair: 1 when score_i > score_j, 0.5 for a tie within ``tied_tol``.

    The definition of :func:`sksurv.metrics.concordance_index_censored`.
    """
    diff = score[:, None] - score[None, :]
    return comparable * np.where(np.abs(diff) <= tied_tol, 0.5, (diff > tied_tol).astype(float))


def bootstrap_harrell(event, time, scores, weights) -> np.ndarray:
    """Harrell's C of each score on each resample given by case multiplicities.

    A resample in which patient i appears m_i times has sum_ij m_i m_j A_ij comparable pairs
    (a patient's copies are never comparable with each other), so every resample is a pair of
    quadratic forms in m: exact, and vectorised over resamples.

    Parameters
    ----------
    event, time : ndarray of shape (n_samples,)
    scores : sequence of ndarray of shape (n_samples,)
        Risk scores (higher = worse).
    weights : ndarray of shape (n_resamples, n_samples)
        Multiplicities (a row of ones is the original sample).

    Returns
    -------
    ndarray of shape (n_resamples, n_scores), NaN where a resample has no comparable pair.

    Notes
    -----
    Holds three n x n float arrays at a time, whatever the number of scores (32 MB each at
    n = 2,000, 200 MB at n = 5,000).
    """
    event, time = np.asarray(event, dtype=bool), np.asarray(time, dtype=float)
    comparable = _comparable_pairs(event, time)
    denom = np.einsum("bi,bi->b", weights @ comparable, weights)
    out = np.empty((weights.shape[0], len(scores)))
    for k, score in enumerate(scores):
        num = np.einsum("bi,bi->b", weights @ _credit(comparable, np.asarray(score, dtype=float)), weights)
        out[:, k] = np.divide(num, denom, out=np.full_like(num, np.nan), where=denom > 0)
    return out


def bootstrap_weights(n_samples: int, n_boot: int, random_state) -> np.ndarray:
    """Case multiplicities of ``n_boot`` nonparametric bootstrap resamples."""
    rng = np.random.default_rng(random_state)
    idx = rng.integers(0, n_samples, size=(n_boot, n_samples))
    return np.stack([np.bincount(row, minlength=n_samples) for row in idx]).astype(float)


@dataclass(frozen=True)
class CDifference:
    """Paired bootstrap comparison of Harrell's C of two scores on the same patients.

    Attributes
    ----------
    c_a, c_b : float
        Harrell's C of each score on the full sample.
    difference : float
        ``c_a - c_b``.
    lower, upper : float
        Percentile bootstrap interval of the difference.
    c_a_lower, c_a_upper, c_b_lower, c_b_upper : float
        Percentile bootstrap intervals of each C (same resamples).
    se : float
        Bootstrap standard error of the difference.
    n_boot : int
        Resamples used (those without a comparable pair are dropped).
    conf_level : float
    """

    c_a: float
    c_b: float
    difference: float
    lower: float
    upper: float
    c_a_lower: float
    c_a_upper: float
    c_b_lower: float
    c_b_upper: float
    se: float
    n_boot: int
    conf_level: float


def paired_c_difference(full, boot, conf_level: float = 0.95) -> CDifference:
    """Compare two scores' Harrell's C from their values on the full sample and on shared resamples.

    Parameters
    ----------
    full : array-like of shape (2,)
        C of score a and score b on the full sample.
    boot : ndarray of shape (n_resamples, 2)
        Their C on the same resamples (:func:`bootstrap_harrell`); resamples with a NaN are dropped.
    conf_level : float
    """
    full, boot = np.asarray(full, dtype=float), np.asarray(boot, dtype=float)
    boot = boot[np.isfinite(boot).all(axis=1)]
    alpha = (1.0 - conf_level) / 2.0
    q = [alpha, 1.0 - alpha]
    diff = boot[:, 0] - boot[:, 1]
    lo, hi = np.quantile(diff, q) if len(diff) else (np.nan, np.nan)
    (a_lo, b_lo), (a_hi, b_hi) = np.quantile(boot, q, axis=0) if len(diff) else np.full((2, 2), np.nan)
    return CDifference(
        c_a=float(full[0]), c_b=float(full[1]), difference=float(full[0] - full[1]),
        lower=float(lo), upper=float(hi), c_a_lower=float(a_lo), c_a_upper=float(a_hi),
        c_b_lower=float(b_lo), c_b_upper=float(b_hi),
        se=float(np.std(diff, ddof=1)) if len(diff) > 1 else np.nan, n_boot=len(diff), conf_level=conf_level,
    )


def c_difference_from_weights(event, time, score_a, score_b, weights, conf_level: float = 0.95) -> CDifference:
    """:func:`c_difference` on given bootstrap multiplicities (shared across comparisons)."""
    scores = [np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)]
    full = bootstrap_harrell(event, time, scores, np.ones((1, len(time))))[0]
    return paired_c_difference(full, bootstrap_harrell(event, time, scores, weights), conf_level)


def c_difference(
    y, score_a, score_b, n_boot: int = 1000, random_state=None, *, conf_level: float = 0.95
) -> CDifference:
    """Bootstrap interval of the difference in Harrell's C between two scores (paired).

    Both scores are evaluated on the same resampled patients, so the interval reflects the
    correlation between them; identical scores give a difference of exactly 0 in every
    resample.

    Parameters
    ----------
    y : structured array
        Survival target (``os2_event``, ``os2_days``).
    score_a, score_b : array-like of shape (n_samples,)
        Risk scores (higher = worse), e.g. a model's prediction and a rule's group code.
    n_boot : int
        Number of resamples.
    random_state : int, Generator or None
        Seed of the resampling.
    conf_level : float
        Level of the percentile intervals.

    Returns
    -------
    CDifference
    """
    event, time = survival_arrays(y)
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    for nm, s in (("score_a", score_a), ("score_b", score_b)):
        if np.shape(s) != time.shape:
            raise ValueError(f"{nm} has shape {np.shape(s)}, expected ({len(time)},)")
    weights = bootstrap_weights(len(time), n_boot, random_state)
    return c_difference_from_weights(event, time, score_a, score_b, weights, conf_level)


# --------------------------------------------------------------------------- hazard ratios
def wald_table(coef: np.ndarray, cov: np.ndarray, contrasts: np.ndarray, conf_level: float) -> pd.DataFrame:
    """Wald estimates, standard errors, hazard ratios with CI and p-values of linear contrasts."""
    est = contrasts @ coef
    se = np.sqrt(np.einsum("ij,jk,ik->i", contrasts, cov, contrasts))
    z = stats.norm.isf((1.0 - conf_level) / 2.0)
    return pd.DataFrame(
        {
            "coef": est, "se": se, "hr": np.exp(est), "hr_lower": np.exp(est - z * se),
            "hr_upper": np.exp(est + z * se), "p_value": 2.0 * stats.norm.sf(np.abs(est / se)),
        }
    )


def group_hazard_ratios(event, time, codes, labels, conf_level: float = 0.95) -> pd.DataFrame:
    """Hazard ratios of each group against the lowest and against the one below it (Cox, Breslow ties).

    The coefficients of a Cox model on group dummies (reference: the lowest group present) and their
    covariance (inverse observed information) come from :func:`cartrisk.evaluation.coxreg.cox_regression`
    (Breslow ties, as scikit-survival's ``CoxPHSurvivalAnalysis``). A group without deaths has no finite
    hazard ratio: all rows are then NaN, with a :class:`StatisticalWarning`.

    Returns
    -------
    DataFrame with ``group, versus, contrast`` ("vs lowest" / "vs previous") and the columns of
    :func:`wald_table`.
    """
    present = np.unique(codes)
    names = [labels[k] for k in present]
    contrasts = [(names[i], names[0], "vs lowest") for i in range(1, len(present))]
    contrasts += [(names[i], names[i - 1], "vs previous") for i in range(1, len(present))]
    index = pd.DataFrame(contrasts, columns=["group", "versus", "contrast"])
    n_events = np.array([event[codes == k].sum() for k in present])
    if (n_events == 0).any():
        empty = [nm for nm, d in zip(names, n_events, strict=True) if d == 0]
        warnings.warn(f"groups {empty} have no deaths: hazard ratios are not estimable", StatisticalWarning,
                      stacklevel=3)
        return index.assign(coef=np.nan, se=np.nan, hr=np.nan, hr_lower=np.nan, hr_upper=np.nan, p_value=np.nan)
    X = (codes[:, None] == present[None, 1:]).astype(float)
    fit = cox_regression(X, event, time, ties="breslow")
    p = len(present) - 1
    eye = np.eye(p)
    rows = [eye[i] for i in range(p)] + [eye[i] - (eye[i - 1] if i > 0 else 0.0) for i in range(p)]
    return pd.concat([index, wald_table(fit.coef, fit.covariance, np.array(rows), conf_level)], axis=1)
