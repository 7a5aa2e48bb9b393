"""What every cartrisk survival estimator shares: input checks, survival curves on a time grid, the warning class.

Each family subclasses :class:`SurvivalEstimator` and implements three hooks:

- ``_fit(X, event, time)``: fit ``model_`` (and anything else) on validated arrays;
- ``_predict_risk(X)``: the risk score, higher = worse, on a validated array;
- ``_survival_grid(X)``: ``(times, survival)``, the survival curves of the rows of ``X`` at the increasing
  time points ``times`` (in days), as the wrapped library computes them.

The base class turns the grid into scikit-survival-like step functions and into
:meth:`SurvivalEstimator.predict_survival_at`, so that every family extends its curves the same way: 1 before
the first time point and the last value after the last one.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from sksurv.base import SurvivalAnalysisMixin
from sksurv.functions import StepFunction
from sksurv.util import check_array_survival

__all__ = ["SlowFitWarning", "SurvivalEstimator", "SurvivalStepFunction"]


class SlowFitWarning(UserWarning):
    """A fit is known to take much longer than an equivalent model would at this sample size.

    A plain :class:`UserWarning` subclass rather than
    :class:`cartrisk.exceptions.StatisticalWarning`: the result is statistically sound, only its cost is the
    problem, and callers that filter statistical caveats (small groups, heavy censoring) should not hide it.
    """


class SurvivalStepFunction(StepFunction):
    """A survival curve that is a right-continuous step function, defined for every time >= 0.

    scikit-survival's :class:`~sksurv.functions.StepFunction` with two differences that make curves of
    different families comparable: before the first time point the value is 1 (nobody has died yet, where
    scikit-survival repeats the first value), and after the last time point the last value is carried forward
    (scikit-survival raises).

    Parameters
    ----------
    x : ndarray, shape (n_points,)
        Increasing time points, in days.
    y : ndarray, shape (n_points,)
        Survival probability at each time point.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        super().__init__(x, y, domain=(0.0, np.inf))

    def __call__(self, x):
        """Evaluate the curve at times ``x`` (days, finite, >= 0); a scalar in gives a scalar out."""
        times = _check_times_days(x, name="x")
        value = _step_values(self.x, self.y[np.newaxis, :], times)[0]
        if value.shape[0] == 1 and np.ndim(x) == 0:
            return value[0]
        return value


def _check_times_days(times_days, *, name: str = "times_days") -> np.ndarray:
    """Times as a 1-D float array, finite and non-negative, or a ValueError that names ``name``."""
    times = np.atleast_1d(np.asarray(times_days, dtype=float))
    if times.ndim != 1:
        raise ValueError(f"{name} must be a scalar or a 1-D array of times in days, got shape {times.shape}")
    if times.size == 0:
        raise ValueError(f"{name} is empty; give at least one time in days")
    if not np.all(np.isfinite(times)) or np.any(times < 0):
        raise ValueError(f"{name} must be finite and >= 0 (days), got {times_days!r}")
    return times


def _step_values(grid: np.ndarray, values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Right-continuous step functions given on ``grid`` (columns of ``values``), evaluated at ``times``.

    1 before ``grid[0]``; the last column after ``grid[-1]``. Returns shape (n_rows, n_times).
    """
    idx = np.searchsorted(grid, times, side="right") - 1
    out = values[:, np.maximum(idx, 0)]
    out[:, idx < 0] = 1.0
    return out


def _seed(random_state) -> int:
    """An int seed for libraries that need one (XGBoost): the int itself, or a draw from the RandomState."""
    if isinstance(random_state, int | np.integer):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


class SurvivalEstimator(SurvivalAnalysisMixin, BaseEstimator):
    """Base class of the cartrisk survival estimators (not for direct use).

    ``score(X, y)`` (Harrell's concordance of :meth:`predict`) comes from scikit-survival's
    ``SurvivalAnalysisMixin``.
    """

    #: Whether X may hold NaN (the wrapped model handles missing values itself).
    _allow_nan: bool = False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self._allow_nan
        return tags

    # -- validation ---------------------------------------------------------------------------------------
    def _validate_fit_data(self, X, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Check parameters, X (sets ``n_features_in_`` / ``feature_names_in_``) and y, once, in that order."""
        self._validate_params()
        X = validate_data(
            self,
            X,
            dtype=np.float64,
            ensure_min_samples=2,
            ensure_all_finite="allow-nan" if self._allow_nan else True,
        )
        event, time = check_array_survival(X, y)
        return X, np.asarray(event, dtype=bool), np.asarray(time, dtype=np.float64)

    def _validate_X(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return validate_data(
            self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan" if self._allow_nan else True
        )

    # -- public API -----------------------------------------------------------------------------------------
    def fit(self, X, y) -> SurvivalEstimator:
        """Fit the model.

        Parameters
        ----------
        X : array-like or DataFrame, shape (n_samples, n_features)
            Numeric features.
        y : structured ndarray, shape (n_samples,)
            Event indicator (bool) then time in days (float), as made by ``sksurv.util.Surv.from_arrays``.

        Returns
        -------
        self
        """
        X, event, time = self._validate_fit_data(X, y)
        self._fit(X, event, time)
        return self

    def predict(self, X) -> np.ndarray:
        """Risk score, higher = worse (the scale depends on the family; see the class docstring).

        Parameters
        ----------
        X : array-like or DataFrame, shape (n_samples, n_features)

        Returns
        -------
        ndarray, shape (n_samples,)
        """
        return np.asarray(self._predict_risk(self._validate_X(X)), dtype=np.float64)

    def predict_survival_function(self, X, return_array: bool = False) -> np.ndarray:
        """Survival curves, as in scikit-survival.

        Parameters
        ----------
        X : array-like or DataFrame, shape (n_samples, n_features)
        return_array : bool, default False
            If True, an array (n_samples, n_times) of survival probabilities at ``unique_times_``; otherwise an
            object array of callables (:class:`SurvivalStepFunction` for step-function families), each defined
            for every time >= 0 in days: 1 before the first time point, the last value carried forward past the
            training follow-up.

        Returns
        -------
        ndarray
        """
        X = self._validate_X(X)
        times, surv = self._survival_grid(X)
        if return_array:
            return surv
        return self._survival_callables(X, times, surv)

    def predict_survival_at(self, X, times_days) -> np.ndarray:
        """Survival probabilities at given times.

        Parameters
        ----------
        X : array-like or DataFrame, shape (n_samples, n_features)
        times_days : float or array-like, shape (n_times,)
            Times in days, finite and >= 0, in any order. Before the first training time point the survival is
            1; beyond the training follow-up the last value is carried forward (no extrapolation).

        Returns
        -------
        ndarray, shape (n_samples, n_times)
            Non-increasing in time, within [0, 1]; equal to :meth:`predict_survival_function` evaluated at the
            same times.
        """
        times = _check_times_days(times_days)
        X = self._validate_X(X)
        return self._survival_at(X, times)

    # -- hooks with defaults --------------------------------------------------------------------------------
    @property
    def unique_times_(self) -> np.ndarray:
        """Time points (days) of ``predict_survival_function(X, return_array=True)``."""
        check_is_fitted(self, "model_")
        return self._grid_times()

    def _survival_at(self, X: np.ndarray, times: np.ndarray) -> np.ndarray:
        grid, surv = self._survival_grid(X)
        return _step_values(grid, surv, times)

    def _survival_callables(self, X: np.ndarray, times: np.ndarray, surv: np.ndarray) -> np.ndarray:
        funcs = np.empty(surv.shape[0], dtype=object)
        for i, row in enumerate(surv):
            funcs[i] = SurvivalStepFunction(times, row)
        return funcs

    def _fit(self, X: np.ndarray, event: np.ndarray, time: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict_risk(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _survival_grid(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _grid_times(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class _SksurvModel(SurvivalEstimator):
    """A wrapper whose ``model_`` is a fitted scikit-survival estimator: risk and curves are the model's own."""

    def _predict_risk(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(X)

    def _survival_grid(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.model_.unique_times_, self.model_.predict_survival_function(X, return_array=True)

    def _grid_times(self) -> np.ndarray:
        return self.model_.unique_times_
