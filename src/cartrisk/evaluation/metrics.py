"""Survival metrics with scikit-survival's signature ``metric(survival_train, survival_test, estimate, times)``.

Times are in days. Each metric is a thin wrapper over :mod:`sksurv.metrics` that first checks the
times with :func:`cartrisk.evaluation.calibration.check_horizons`, so a horizon outside the follow-up
raises a ``ValueError`` that names it in months and days. Each docstring says whether it takes risk
scores (higher = worse) or survival probabilities. :func:`bootstrap_ci` gives percentile intervals
of any statistic.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.utils import _safe_indexing
from sksurv.metrics import (
    brier_score,
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.util import Surv, check_y_survival

from cartrisk.evaluation.calibration import check_horizons, check_survival_probabilities
from cartrisk.exceptions import StatisticalWarning

__all__ = ["BootstrapCI", "IBS_GRID_POINTS", "bootstrap_ci", "brier_at", "harrell_c", "integrated_brier",
           "time_dependent_auc", "uno_c"]

#: Points of the time grid over which the integrated Brier score is computed.
IBS_GRID_POINTS = 50


# ---------------------------------------------------------------- metrics


def _as_times(times) -> np.ndarray:
    times = np.atleast_1d(np.asarray(times, dtype=float))
    if times.ndim != 1 or times.size == 0 or not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
        raise ValueError(f"times must be a non-empty, strictly increasing 1-D array of days, got {times}")
    return times


def _clip_to_train_followup(survival_train, survival_test, times: np.ndarray):
    """Censor test times at the largest training time (times must lie below it).

    sksurv evaluates the censoring distribution (a Kaplan-Meier fitted on the
    training set) at each test time and raises beyond the last training time. For
    metrics at ``times`` strictly below that time, a test patient still at risk
    there counts only as a control, whose weight does not depend on its own time,
    so censoring it at the last training time leaves the metric unchanged.
    """
    train_max = check_y_survival(survival_train)[1].max()
    event, time = check_y_survival(survival_test)
    beyond = time >= train_max
    if not beyond.any() or times.max() >= train_max:
        return survival_test
    name_event, name_time = survival_test.dtype.names
    return Surv.from_arrays(
        event=event & ~beyond, time=np.minimum(time, train_max), name_event=name_event, name_time=name_time
    )


def harrell_c(survival_train, survival_test, estimate, times=None) -> float:
    """Harrell's concordance index. Takes **risk scores** (higher = worse).

    ``survival_train`` and ``times`` are ignored (kept for the common signature).
    Harrell's C grows optimistic with heavy censoring: report :func:`uno_c` beside it.
    """
    event, time = check_y_survival(survival_test)
    return float(concordance_index_censored(event, time, np.asarray(estimate, dtype=float))[0])


def uno_c(survival_train, survival_test, estimate, times=None) -> float:
    """Uno's IPCW concordance index truncated at ``tau = max(times)``. Takes **risk scores**.

    Without ``times``, tau is the largest training time, beyond which the
    censoring weights are undefined. Prefer the largest clinical horizon: pairs are
    compared where the censoring distribution is well estimated.
    """
    if times is None:
        tau = float(check_y_survival(survival_train)[1].max())
    else:
        tau = float(check_horizons(_as_times(times)[-1:], survival_test, survival_train)[0])
    return float(concordance_index_ipcw(survival_train, survival_test, np.asarray(estimate, dtype=float), tau=tau)[0])


def time_dependent_auc(survival_train, survival_test, estimate, times) -> np.ndarray:
    """Cumulative/dynamic AUC at each time (days). Takes **risk scores** (1-D, or 2-D one column per time).

    Returns
    -------
    ndarray, shape (n_times,)
    """
    times = check_horizons(_as_times(times), survival_test, survival_train, require_events=True)
    test = _clip_to_train_followup(survival_train, survival_test, times)
    return cumulative_dynamic_auc(survival_train, test, np.asarray(estimate, dtype=float), times)[0]


def _check_surv_prob(estimate, n_samples: int, times: np.ndarray) -> np.ndarray:
    estimate = np.asarray(estimate, dtype=float)
    if estimate.ndim == 1 and times.shape[0] == 1:
        estimate = estimate[:, None]
    return check_survival_probabilities(estimate, (n_samples, times.shape[0]), "estimate")


def brier_at(survival_train, survival_test, estimate, times) -> np.ndarray:
    """IPCW Brier score at each time (days). Takes **survival probabilities**, shape (n_samples, n_times).

    Returns
    -------
    ndarray, shape (n_times,)
    """
    times = check_horizons(_as_times(times), survival_test, survival_train)
    estimate = _check_surv_prob(estimate, len(survival_test), times)
    test = _clip_to_train_followup(survival_train, survival_test, times)
    return brier_score(survival_train, test, estimate, times)[1]


def integrated_brier(survival_train, survival_test, estimate, times) -> float:
    """Integrated Brier score over ``[times[0], times[-1]]``. Takes **survival probabilities**.

    ``estimate`` has shape (n_samples, n_times) on a grid of at least two times (days).
    """
    times = check_horizons(_as_times(times), survival_test, survival_train)
    estimate = _check_surv_prob(estimate, len(survival_test), times)
    test = _clip_to_train_followup(survival_train, survival_test, times)
    return float(integrated_brier_score(survival_train, test, estimate, times))


# ---------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class BootstrapCI:
    """A percentile bootstrap interval: the statistic on the data, its interval and the replicates."""

    estimate: float
    lower: float
    upper: float
    confidence: float
    replicates: np.ndarray
    n_failed: int


def bootstrap_ci(
    statistic: Callable[..., float],
    *arrays,
    n_boot: int = 1000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = None,
) -> BootstrapCI:
    """Percentile bootstrap interval of ``statistic(*arrays)``, resampling rows of all arrays together.

    Parameters
    ----------
    statistic : callable
        Takes the arrays (resampled with the same row indices) and returns a float,
        e.g. ``lambda y, a, b: harrell_c(y, y, a) - harrell_c(y, y, b)``.
    *arrays : array-likes, DataFrames or structured arrays of equal length
    n_boot : int, default 1000
    confidence : float, default 0.95
    random_state : int, Generator or None

    Returns
    -------
    BootstrapCI
        Resamples where ``statistic`` raises ``ValueError`` (e.g. no events drawn) or
        returns a non-finite value are dropped and counted in ``n_failed``, with a
        :class:`~cartrisk.exceptions.StatisticalWarning`.
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"arrays have different lengths: {[len(a) for a in arrays]}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    rng = np.random.default_rng(random_state)
    estimate = float(statistic(*arrays))
    reps = np.full(n_boot, np.nan)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        try:
            reps[b] = statistic(*(_safe_indexing(a, idx) for a in arrays))
        except ValueError:
            continue  # counted below as a failed resample
    ok = np.isfinite(reps)
    n_failed = int((~ok).sum())
    if not ok.any():
        raise ValueError(f"the statistic failed on all {n_boot} bootstrap resamples")
    if n_failed:
        warnings.warn(
            f"{n_failed} of {n_boot} bootstrap resamples gave no value and were dropped",
            StatisticalWarning,
            stacklevel=2,
        )
    alpha = (1 - confidence) / 2
    lower, upper = np.quantile(reps[ok], [alpha, 1 - alpha])
    return BootstrapCI(estimate, float(lower), float(upper), confidence, reps[ok], n_failed)
