"""Gradient-boosted Cox model with regression trees (``gbsa``: scikit-survival's GradientBoostingSurvivalAnalysis).

``predict`` is exactly the wrapped model's ``predict`` (the boosted log partial hazard), so TreeSHAP values of
its trees add up to it; survival curves use scikit-survival's Breslow baseline on the training data.

Scale. scikit-survival's Cox loss costs time that grows with the square of the training size at every boosting
iteration (measured here on one core with 30 features, 20 iterations: 0.87 s at n = 2,000, 3.9 s at 4,000,
17.6 s at 8,000; the ``ipcwls`` and ``squared`` losses grow linearly but predict no survival curve). Above
``GBSA_WARN_N_SAMPLES`` training samples, ``fit`` emits a :class:`SlowFitWarning` with the projected time and
points to ``xgb_cox``, which boosts the same Cox partial likelihood in about a second at n = 16,000.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions
from sksurv.ensemble import GradientBoostingSurvivalAnalysis
from sksurv.util import Surv

from ._base import SlowFitWarning, _SksurvModel

__all__ = ["GBSA", "GBSA_WARN_N_SAMPLES"]

#: Training size above which ``GBSA.fit`` warns (a 100-iteration fit then takes over half a minute).
GBSA_WARN_N_SAMPLES = 5000

# Measured fit time per boosting iteration at n = 8,000 (seconds, one core, 30 features) and its growth
# exponent in n between n = 2,000 and 8,000 (0.87 s -> 17.6 s for 20 iterations), used to project a fit's time.
_SECONDS_PER_ITERATION_AT_8000 = 0.88
_GROWTH_EXPONENT = 2.0


def _projected_fit_seconds(n_samples: int, n_estimators: int) -> float:
    return _SECONDS_PER_ITERATION_AT_8000 * (n_samples / 8000.0) ** _GROWTH_EXPONENT * n_estimators


class GBSA(_SksurvModel):
    """Gradient boosting of regression trees on the Cox partial likelihood (``loss="coxph"``).

    Parameters follow scikit-survival's ``GradientBoostingSurvivalAnalysis``; only the Cox loss is offered,
    the one for which scikit-survival predicts survival curves. Defaults are scikit-survival's except
    ``min_samples_leaf`` (15 rather than 1) and ``subsample`` (0.8 rather than 1.0), to keep leaves from
    resting on a handful of patients in cohorts of a few hundred.

    Parameters
    ----------
    n_estimators : int, default 100
    learning_rate : float, default 0.1
    max_depth : int or None, default 3
    min_samples_split : int or float, default 2
    min_samples_leaf : int or float, default 15
    subsample : float in (0, 1], default 0.8
    max_features : int, float, {"sqrt", "log2"} or None, default None
    max_leaf_nodes : int or None, default None
    dropout_rate : float in [0, 1), default 0.0
    random_state : int, RandomState or None, default None

    Attributes
    ----------
    model_ : sksurv.ensemble.GradientBoostingSurvivalAnalysis
        Fitted on ``np.asarray(X, float)``; its ``predict`` equals :meth:`predict`.
    unique_times_ : ndarray
        Time points of the survival curves (distinct training times, days).
    n_features_in_, feature_names_in_
        As in scikit-learn.

    Warns
    -----
    SlowFitWarning
        When fitted on more than ``GBSA_WARN_N_SAMPLES`` samples.
    """

    _parameter_constraints: dict = {
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0.0, None, closed="neither")],
        "max_depth": [Interval(Integral, 1, None, closed="left"), None],
        "min_samples_split": [Interval(Integral, 2, None, closed="left"), Interval(Real, 0.0, 1.0, closed="right")],
        "min_samples_leaf": [Interval(Integral, 1, None, closed="left"), Interval(Real, 0.0, 1.0, closed="neither")],
        "subsample": [Interval(Real, 0.0, 1.0, closed="right")],
        "max_features": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Real, 0.0, 1.0, closed="right"),
            StrOptions({"sqrt", "log2"}),
            None,
        ],
        "max_leaf_nodes": [Interval(Integral, 2, None, closed="left"), None],
        "dropout_rate": [Interval(Real, 0.0, 1.0, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_estimators: int = 100,
        *,
        learning_rate: float = 0.1,
        max_depth: int | None = 3,
        min_samples_split: int | float = 2,
        min_samples_leaf: int | float = 15,
        subsample: float = 0.8,
        max_features: int | float | str | None = None,
        max_leaf_nodes: int | None = None,
        dropout_rate: float = 0.0,
        random_state=None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.subsample = subsample
        self.max_features = max_features
        self.max_leaf_nodes = max_leaf_nodes
        self.dropout_rate = dropout_rate
        self.random_state = random_state

    def _fit(self, X: np.ndarray, event: np.ndarray, time: np.ndarray) -> None:
        n_samples = X.shape[0]
        if n_samples > GBSA_WARN_N_SAMPLES:
            warnings.warn(
                f"gbsa: fitting GradientBoostingSurvivalAnalysis on {n_samples:,} samples should take about "
                f"{_projected_fit_seconds(n_samples, self.n_estimators):,.0f} s: its Cox loss costs time that grows "
                "with the square of the sample size at every iteration (measured: 20 iterations took 0.87 s at "
                "n = 2,000 and 17.6 s at n = 8,000). Use 'xgb_cox', which boosts the same Cox partial likelihood "
                "in about a second at this size.",
                SlowFitWarning,
                stacklevel=3,
            )
        self.model_ = GradientBoostingSurvivalAnalysis(
            loss="coxph",
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            min_samples_split=self.min_samples_split,
            min_samples_leaf=self.min_samples_leaf,
            subsample=self.subsample,
            max_features=self.max_features,
            max_leaf_nodes=self.max_leaf_nodes,
            dropout_rate=self.dropout_rate,
            random_state=self.random_state,
        )
        self.model_.fit(X, Surv.from_arrays(event, time))
