"""XGBoost survival models: Cox partial likelihood (``xgb_cox``) and accelerated failure time (``xgb_aft``).

Both call the native ``xgboost.train`` with ``tree_method="hist"``, no early stopping, and defaults for
cohorts of a few hundred to tens of thousands (learning rate 0.05, depth 3, 300 rounds, row and column
subsampling). Parameter names are those of XGBoost's scikit-learn API (``n_estimators`` is the number of
boosting rounds, ``n_jobs`` the thread count, ``random_state`` the seed). The fitted ``xgboost.Booster`` is
``model_``; it was trained on ``np.asarray(X, float)`` without feature names (they are in
``feature_names_in_``), and missing values (NaN) take XGBoost's learned default branch.

Censoring encoding: the Cox label is the time, negated for censored patients; the AFT label is the interval
[time, time] for deaths and [time, +inf) for censored patients. XGBoost needs times > 0: a time of 0 (death or
censoring on the day of failure) is replaced by half the smallest positive time before training, which keeps
the order of times.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import xgboost
from joblib import effective_n_jobs
from scipy import special
from sklearn.utils._param_validation import Interval, StrOptions
from sksurv.linear_model.coxph import BreslowEstimator

from ._base import SurvivalEstimator, _check_times_days, _seed, _step_values

__all__ = ["AFTSurvivalFunction", "XGBAFT", "XGBCox"]

_Z_MAX = 50.0  # exp(-exp(50)) is already 0 in float64; clipping avoids an overflow in exp


def _positive_times(time: np.ndarray) -> np.ndarray:
    positive = time[time > 0]
    if positive.size == 0:
        raise ValueError("all observed times are 0; XGBoost survival objectives need times > 0")
    return np.where(time > 0, time, positive.min() / 2.0)


def _aft_survival(margin: np.ndarray, scale: float, distribution: str, times: np.ndarray) -> np.ndarray:
    """S(t | x) = 1 - F((log t - margin) / scale), shape (n_samples, n_times); S(0) = 1."""
    with np.errstate(divide="ignore"):  # log(0) = -inf is meant: S(0) = 1
        log_t = np.log(times)
    z = np.minimum((log_t[np.newaxis, :] - margin[:, np.newaxis]) / scale, _Z_MAX)
    if distribution == "normal":
        return special.ndtr(-z)
    if distribution == "logistic":
        return special.expit(-z)
    return np.exp(-np.exp(z))  # extreme (minimum) value: a Weibull model of the time


class AFTSurvivalFunction:
    """One patient's survival curve under the XGBoost AFT model, callable at any time >= 0 (days).

    Continuous up to the last training time ``x[-1]``, constant after it.

    Attributes
    ----------
    x, y : ndarray
        The training time grid and the curve on it, for plotting (as scikit-survival's step functions have).
    domain : tuple
        ``(0, inf)``: the curve is defined for every time >= 0.
    """

    domain = (0.0, np.inf)

    def __init__(self, margin: float, scale: float, distribution: str, x: np.ndarray, y: np.ndarray) -> None:
        self.margin = margin
        self.scale = scale
        self.distribution = distribution
        self.x = x
        self.y = y

    def __call__(self, x):
        """Survival probability at times ``x`` (days); a scalar in gives a scalar out."""
        times = np.minimum(_check_times_days(x, name="x"), self.x[-1])
        value = _aft_survival(np.array([self.margin]), self.scale, self.distribution, times)[0]
        return value[0] if np.ndim(x) == 0 else value


class _XGBSurvival(SurvivalEstimator):
    """Shared training and prediction code of the two XGBoost families."""

    _allow_nan = True
    _objective = ""

    _parameter_constraints: dict = {
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0.0, None, closed="neither")],
        "max_depth": [Interval(Integral, 0, None, closed="left")],
        "min_child_weight": [Interval(Real, 0.0, None, closed="left")],
        "subsample": [Interval(Real, 0.0, 1.0, closed="right")],
        "colsample_bytree": [Interval(Real, 0.0, 1.0, closed="right")],
        "reg_lambda": [Interval(Real, 0.0, None, closed="left")],
        "reg_alpha": [Interval(Real, 0.0, None, closed="left")],
        "gamma": [Interval(Real, 0.0, None, closed="left")],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_estimators: int = 300,
        *,
        learning_rate: float = 0.05,
        max_depth: int = 3,
        min_child_weight: float = 1.0,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        reg_alpha: float = 0.0,
        gamma: float = 0.0,
        n_jobs: int | None = 1,
        random_state=None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.reg_alpha = reg_alpha
        self.gamma = gamma
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _booster_params(self) -> dict:
        return {
            "objective": self._objective,
            "tree_method": "hist",
            "learning_rate": self.learning_rate,
            "max_depth": self.max_depth,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "reg_lambda": self.reg_lambda,
            "reg_alpha": self.reg_alpha,
            "gamma": self.gamma,
            "nthread": self._nthread(),
            "seed": _seed(self.random_state),
        }

    def _nthread(self) -> int:
        return 1 if self.n_jobs is None else int(effective_n_jobs(self.n_jobs))

    def _train(self, dtrain: xgboost.DMatrix, **extra) -> None:
        self.model_ = xgboost.train({**self._booster_params(), **extra}, dtrain, num_boost_round=self.n_estimators)

    def _margin(self, X: np.ndarray) -> np.ndarray:
        dmatrix = xgboost.DMatrix(X, nthread=self._nthread())
        return self.model_.predict(dmatrix, output_margin=True).astype(np.float64)


_COMMON_DOC = """
    Parameters
    ----------
    n_estimators : int, default 300
        Boosting rounds (no early stopping).
    learning_rate : float, default 0.05
    max_depth : int, default 3
    min_child_weight : float, default 1.0
        Smallest sum of Hessians in a leaf.
    subsample : float in (0, 1], default 0.8
        Share of patients drawn for each round.
    colsample_bytree : float in (0, 1], default 0.8
    reg_lambda : float, default 1.0
        L2 penalty on leaf values.
    reg_alpha : float, default 0.0
        L1 penalty on leaf values.
    gamma : float, default 0.0
        Smallest loss reduction for a split.
    n_jobs : int or None, default 1
        Threads (None = 1, -1 = all cores).
    random_state : int, RandomState or None, default None
        Seed of the row and column subsampling; an int makes the fit reproducible."""


class XGBCox(_XGBSurvival):
    __doc__ = (
        """Gradient-boosted trees on the Cox partial likelihood (XGBoost ``survival:cox``).

    ``predict`` is the margin (log partial hazard, base score included), so TreeSHAP values of ``model_`` add up
    to it. Survival curves: Breslow's baseline hazard, computed at fit from the training margins and stored in
    ``baseline_model_``, raised to the power exp(margin).
"""
        + _COMMON_DOC
        + """

    Attributes
    ----------
    model_ : xgboost.Booster
    baseline_model_ : sksurv.linear_model.coxph.BreslowEstimator
        Breslow baseline on the training data (``baseline_survival_`` is a step function over
        ``unique_times_``).
    unique_times_ : ndarray
        Time points of the survival curves (distinct training times, days).
    n_features_in_, feature_names_in_
        As in scikit-learn.
    """
    )

    _objective = "survival:cox"

    def _fit(self, X: np.ndarray, event: np.ndarray, time: np.ndarray) -> None:
        positive = _positive_times(time)
        label = np.where(event, positive, -positive)
        self._train(xgboost.DMatrix(X, label=label, nthread=self._nthread()))
        self.baseline_model_ = BreslowEstimator().fit(self._margin(X), event, time)

    def _predict_risk(self, X: np.ndarray) -> np.ndarray:
        return self._margin(X)

    def _survival_grid(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        baseline = self.baseline_model_.baseline_survival_
        hazard_ratio = np.exp(self._margin(X))
        return baseline.x, np.power(baseline.y[np.newaxis, :], hazard_ratio[:, np.newaxis])

    def _survival_at(self, X: np.ndarray, times: np.ndarray) -> np.ndarray:
        # The baseline read at `times` only, then raised: no (n_samples x n_training_times) array.
        baseline = self.baseline_model_.baseline_survival_
        return _step_values(baseline.x, baseline.y[np.newaxis, :], times) ** np.exp(self._margin(X))[:, np.newaxis]

    def _grid_times(self) -> np.ndarray:
        return self.baseline_model_.unique_times_


class XGBAFT(_XGBSurvival):
    __doc__ = (
        """Gradient-boosted accelerated failure time model (XGBoost ``survival:aft``).

    The model: log T = margin(x) + scale * Z, with Z normal, logistic or extreme-value (minimum) per
    ``aft_loss_distribution`` (log-normal, log-logistic or Weibull times). ``predict`` is minus the margin
    (minus the predicted log survival time in days): the one place where a time prediction flips sign.
    Survival curves are that distribution's, S(t | x) = 1 - F((log t - margin) / scale), continuous in t up
    to the longest training time; past it the value there is carried forward, as for every other family (the
    parametric tail is not extrapolated).
"""
        + _COMMON_DOC
        + """
    aft_loss_distribution : {"normal", "logistic", "extreme"}, default "normal"
    aft_loss_distribution_scale : float, default 1.0
        The scale of Z (XGBoost does not estimate it: tune it).

    Attributes
    ----------
    model_ : xgboost.Booster
    unique_times_ : ndarray
        Distinct training times (days): the grid of ``predict_survival_function(X, return_array=True)``.
    n_features_in_, feature_names_in_
        As in scikit-learn.
    """
    )

    _objective = "survival:aft"
    _parameter_constraints: dict = {
        **_XGBSurvival._parameter_constraints,
        "aft_loss_distribution": [StrOptions({"normal", "logistic", "extreme"})],
        "aft_loss_distribution_scale": [Interval(Real, 0.0, None, closed="neither")],
    }

    def __init__(
        self,
        n_estimators: int = 300,
        *,
        learning_rate: float = 0.05,
        max_depth: int = 3,
        min_child_weight: float = 1.0,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        reg_alpha: float = 0.0,
        gamma: float = 0.0,
        aft_loss_distribution: str = "normal",
        aft_loss_distribution_scale: float = 1.0,
        n_jobs: int | None = 1,
        random_state=None,
    ) -> None:
        super().__init__(n_estimators, learning_rate=learning_rate, max_depth=max_depth,
                         min_child_weight=min_child_weight, subsample=subsample, colsample_bytree=colsample_bytree,
                         reg_lambda=reg_lambda, reg_alpha=reg_alpha, gamma=gamma, n_jobs=n_jobs,
                         random_state=random_state)
        self.aft_loss_distribution = aft_loss_distribution
        self.aft_loss_distribution_scale = aft_loss_distribution_scale

    def _fit(self, X: np.ndarray, event: np.ndarray, time: np.ndarray) -> None:
        positive = _positive_times(time)
        dtrain = xgboost.DMatrix(X, nthread=self._nthread())
        dtrain.set_float_info("label_lower_bound", positive)
        dtrain.set_float_info("label_upper_bound", np.where(event, positive, np.inf))
        self._train(
            dtrain,
            aft_loss_distribution=self.aft_loss_distribution,
            aft_loss_distribution_scale=self.aft_loss_distribution_scale,
        )
        self._train_times = np.unique(time)

    def _predict_risk(self, X: np.ndarray) -> np.ndarray:
        return -self._margin(X)

    def _survival_grid(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._train_times, self._survival_at(X, self._train_times)

    def _survival_at(self, X: np.ndarray, times: np.ndarray) -> np.ndarray:
        margin = self._margin(X)
        times = np.minimum(times, self._train_times[-1])
        return _aft_survival(margin, self.aft_loss_distribution_scale, self.aft_loss_distribution, times)

    def _survival_callables(self, X: np.ndarray, times: np.ndarray, surv: np.ndarray) -> np.ndarray:
        margin = self._margin(X)
        funcs = np.empty(surv.shape[0], dtype=object)
        for i, row in enumerate(surv):
            funcs[i] = AFTSurvivalFunction(
                float(margin[i]), self.aft_loss_distribution_scale, self.aft_loss_distribution, times, row
            )
        return funcs

    def _grid_times(self) -> np.ndarray:
        return self._train_times
