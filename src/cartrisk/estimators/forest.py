"""Survival forests: random survival forest (``rsf``) and extremely randomised survival trees (``extra_trees``).

Both wrap scikit-survival's forests. ``predict`` is exactly the wrapped forest's ``predict`` (the ensemble
cumulative hazard summed over the event-time grid): the explainers convert the fitted trees for exact TreeSHAP
and need SHAP values that add up to it.

Scale. scikit-survival's defaults do not reach registry-consortium size: every tree node stores the
Nelson-Aalen estimate at every unique training time, and the log-rank split search of ``RandomSurvivalForest``
grows with the square of the samples per tree (measured here on a 16,000-patient training set, 30 features,
min_samples_leaf 15: 0.21 s per tree with 4,000-patient bootstraps, 1.6 s with full-size ones). Two defaults
keep a 5-fold cross-validation at n = 20,000 within minutes and a few hundred MB:

- ``max_unique_times`` (default 150): training times are put on a grid of at most that many event-time
  quantiles before fitting (event times rounded up to the next grid point, censoring times down to the
  previous one, the usual discrete-time convention), so the per-node arrays are 150 wide instead of one column
  per distinct day. ``None`` keeps every distinct time.
- ``max_samples`` (random forest default 3,000): each tree is grown on a bootstrap sample of at most that many
  patients. Unlike scikit-learn, an int larger than the training set means the whole training set, so one
  default serves 200 patients and 20,000. Measured on simulated 16,000-patient training sets (100 trees): 2,000 /
  3,000 / 4,000 patients per tree gave test concordance 0.702 / 0.704 / 0.705 in 10 / 20 / 34 s, and full-size
  bootstraps gained a further 0.002 over 4,000 at 7.5 times the time. Extremely randomised trees split at random
  thresholds, cost little per sample, and keep scikit-survival's ``None`` (full size).

``low_memory`` is not offered: scikit-survival's low-memory trees cannot predict survival functions, which
every cartrisk estimator must.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions
from sksurv.ensemble import ExtraSurvivalTrees, RandomSurvivalForest
from sksurv.util import Surv

from ._base import _SksurvModel

__all__ = ["ExtraTrees", "RSF", "coarsen_survival_times"]


def coarsen_survival_times(
    event: np.ndarray, time: np.ndarray, max_unique_times: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Put survival times on a grid of at most ``max_unique_times`` event-time quantiles.

    Parameters
    ----------
    event : ndarray of bool, shape (n_samples,)
    time : ndarray of float, shape (n_samples,)
        Times in days.
    max_unique_times : int or None
        Largest number of grid points. ``None``, or a sample with no more distinct times than that, leaves
        the times unchanged.

    Returns
    -------
    grid : ndarray
        The grid (observed event times, increasing), or the distinct times when nothing was coarsened.
    coarse_time : ndarray, shape (n_samples,)
        An event time becomes the first grid point at or after it; a censoring time the last grid point at or
        before it (0 when it precedes the whole grid), so nobody is counted at risk longer than observed.
    """
    distinct = np.unique(time)
    if max_unique_times is None or distinct.shape[0] <= max_unique_times:
        return distinct, time.copy()
    levels = np.linspace(0.0, 1.0, max_unique_times)
    grid = np.unique(np.quantile(time[event], levels, method="inverted_cdf"))
    up = np.minimum(np.searchsorted(grid, time, side="left"), grid.shape[0] - 1)
    down = np.searchsorted(grid, time, side="right") - 1
    coarse = np.where(event, grid[up], np.where(down >= 0, grid[np.maximum(down, 0)], 0.0))
    return grid, coarse


class _Forest(_SksurvModel):
    """Shared fit / predict code of the two forests."""

    _allow_nan = True
    _sksurv_class: type = RandomSurvivalForest

    _parameter_constraints: dict = {
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "max_depth": [Interval(Integral, 1, None, closed="left"), None],
        "min_samples_split": [Interval(Integral, 2, None, closed="left"), Interval(Real, 0.0, 1.0, closed="right"),
                              StrOptions({"auto"})],
        "min_samples_leaf": [Interval(Integral, 1, None, closed="left"), Interval(Real, 0.0, 1.0, closed="neither"),
                             StrOptions({"auto"})],
        "max_features": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Real, 0.0, 1.0, closed="right"),
            StrOptions({"sqrt", "log2"}),
            None,
        ],
        "max_leaf_nodes": [Interval(Integral, 2, None, closed="left"), None],
        "bootstrap": ["boolean"],
        "max_samples": [None, Interval(Integral, 1, None, closed="left"), Interval(Real, 0.0, 1.0, closed="right"),
                        StrOptions({"auto"})],
        "max_unique_times": [Interval(Integral, 2, None, closed="left"), None],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_estimators: int = 200,
        *,
        max_depth: int | None = None,
        min_samples_split: int | float | str = "auto",
        min_samples_leaf: int | float | str = "auto",
        max_features: int | float | str | None = "sqrt",
        max_leaf_nodes: int | None = None,
        bootstrap: bool = True,
        max_samples: int | float | str | None = "auto",
        max_unique_times: int | None = 150,
        n_jobs: int | None = 1,
        random_state=None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.max_leaf_nodes = max_leaf_nodes
        self.bootstrap = bootstrap
        self.max_samples = max_samples
        self.max_unique_times = max_unique_times
        self.n_jobs = n_jobs
        self.random_state = random_state

    #: What "auto" means, per forest: the bootstrap size per tree, and the leaf size for n training samples.
    _auto_max_samples: int | None = None

    def _auto_leaf(self, n_samples: int) -> int:  # pragma: no cover - each forest defines it
        raise NotImplementedError

    def _leaf_sizes(self, n_samples: int) -> tuple[int | float, int | float]:
        """``min_samples_split`` and ``min_samples_leaf`` passed to scikit-survival ("auto" resolved).

        An "auto" split size is twice the leaf size (an explicit one too), so a searched leaf size keeps
        nodes splittable.
        """
        leaf = self._auto_leaf(n_samples) if self.min_samples_leaf == "auto" else self.min_samples_leaf
        if self.min_samples_split != "auto":
            return self.min_samples_split, leaf
        return 2 * (leaf if isinstance(leaf, Integral) else int(np.ceil(leaf * n_samples))), leaf

    def _fit(self, X: np.ndarray, event: np.ndarray, time: np.ndarray) -> None:
        min_samples_split, min_samples_leaf = self._leaf_sizes(X.shape[0])
        _, coarse = coarsen_survival_times(event, time, self.max_unique_times)
        max_samples = self._auto_max_samples if self.max_samples == "auto" else self.max_samples
        max_samples = max_samples if self.bootstrap else None
        if isinstance(max_samples, Integral):
            max_samples = min(int(max_samples), X.shape[0])
        self.model_ = self._sksurv_class(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_split=min_samples_split,
            min_samples_leaf=min_samples_leaf,
            max_features=self.max_features,
            max_leaf_nodes=self.max_leaf_nodes,
            bootstrap=self.bootstrap,
            max_samples=max_samples,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        )
        self.model_.fit(X, Surv.from_arrays(event, coarse))


class RSF(_Forest):
    """Random survival forest (scikit-survival's ``RandomSurvivalForest``, log-rank splits).

    ``predict`` is ``model_.predict``: the ensemble cumulative hazard summed over the event times of the grid.

    Parameters follow scikit-survival (see its documentation) with defaults sized for 200 to 20,000 patients;
    ``max_unique_times`` is cartrisk's own (see the module docstring).

    Parameters
    ----------
    n_estimators : int, default 200
    max_depth : int or None, default None
    min_samples_split : int, float or "auto", default "auto"
        "auto": twice the leaf size.
    min_samples_leaf : int, float or "auto", default "auto"
        "auto": 15. A leaf holds at least this many patients, so each leaf's Nelson-Aalen curve rests on some
        events.
    max_features : int, float, {"sqrt", "log2"} or None, default "sqrt"
    max_leaf_nodes : int or None, default None
    bootstrap : bool, default True
    max_samples : int, float, None or "auto", default "auto"
        Bootstrap sample size per tree ("auto": 3,000); an int above the training size means the training size.
        Ignored when ``bootstrap`` is False.
    max_unique_times : int or None, default 150
        Largest number of time points the trees see (event-time quantiles); None keeps every distinct time.
    n_jobs : int or None, default 1
    random_state : int, RandomState or None, default None

    Attributes
    ----------
    model_ : sksurv.ensemble.RandomSurvivalForest
        Fitted on ``np.asarray(X, float)`` (it converts to float32 itself) and the coarsened times; its
        ``predict`` equals :meth:`predict`.
    unique_times_ : ndarray
        The (coarsened) time grid of the survival curves, in days.
    n_features_in_, feature_names_in_
        As in scikit-learn.
    """

    _sksurv_class = RandomSurvivalForest

    _auto_max_samples = 3000

    def _auto_leaf(self, n_samples: int) -> int:
        return 15


class ExtraTrees(_Forest):
    """Extremely randomised survival trees (scikit-survival's ``ExtraSurvivalTrees``: random split thresholds).

    ``predict`` is ``model_.predict``: the ensemble cumulative hazard summed over the event times of the grid.

    Same parameters as :class:`RSF`; "auto" means a full-size bootstrap (``max_samples`` None, as in
    scikit-survival: random splits cost little per sample) and ``min_samples_leaf`` = n_samples // 200 clipped to
    [3, 15].
    Random thresholds need deeper trees than log-rank splits: on GBSG2 and WHAS500 (repeated 5-fold CV,
    ``benchmarks/bench_public_data.py``) leaves of 3 gave Harrell C 0.678 / 0.743 against 0.660 / 0.733 with
    15; from 3,000 patients on, 15 keeps the memory of the stored leaf curves within bounds (0.8 GiB at n = 20,000).

    Attributes
    ----------
    model_ : sksurv.ensemble.ExtraSurvivalTrees
        Fitted on ``np.asarray(X, float)`` and the coarsened times; its ``predict`` equals :meth:`predict`.
    unique_times_ : ndarray
        The (coarsened) time grid of the survival curves, in days.
    n_features_in_, feature_names_in_
        As in scikit-learn.
    """

    _sksurv_class = ExtraSurvivalTrees

    def _auto_leaf(self, n_samples: int) -> int:
        return int(np.clip(n_samples // 200, 3, 15))
