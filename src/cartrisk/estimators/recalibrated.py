"""A fitted survival model recalibrated on new data: its baseline hazard scaled (intercept update), and its
log cumulative hazard at a horizon stretched (slope update), for any family.

``H_new(t | x) = exp(a) H(t | x) exp((b - 1) (log H(h | x) - c))``: for a Cox model this is the Cox model with
baseline ``exp(a - (b - 1) c) H0(t)^1`` and coefficients ``b beta`` (van Houwelingen's recalibration); for other
families the same map applied to their predicted cumulative hazard. The parameters are estimated by
:func:`cartrisk.evaluation.updating.closed_test` and set with :meth:`RecalibratedSurvival.set_update`
(:mod:`cartrisk.bundle.updating`); the wrapper itself never refits anything.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

__all__ = ["RecalibratedSurvival"]

_TINY = 1e-12


class RecalibratedSurvival(BaseEstimator):
    """A fitted survival estimator with an intercept (and slope) update of its cumulative hazard.

    Parameters
    ----------
    base_estimator : fitted estimator
        ``predict`` (risk) and ``predict_survival_at``; never refitted.
    method : {"intercept", "slope"}
    horizon_days : float
        Horizon at which the slope acts on the log cumulative hazard.

    Attributes
    ----------
    intercept_, slope_ : float
        ``a`` and ``b`` (``b = 1`` for the intercept update).
    centre_ : float
        ``c``: mean log cumulative hazard at the horizon on the update data.
    """

    def __init__(self, base_estimator=None, method: str = "intercept", horizon_days: float = 365.25) -> None:
        self.base_estimator = base_estimator
        self.method = method
        self.horizon_days = horizon_days

    @staticmethod
    def _log_cumhaz(s: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(-np.log(np.clip(s, _TINY, 1.0)), _TINY))

    def set_update(self, intercept: float, slope: float, centre: float) -> RecalibratedSurvival:
        """Set fitted parameters (from :func:`cartrisk.evaluation.updating.closed_test`)."""
        if self.method not in ("intercept", "slope"):
            raise ValueError(f"method must be 'intercept' or 'slope', got {self.method!r}")
        self.intercept_, self.slope_ = float(intercept), float(slope) if self.method == "slope" else 1.0
        self.centre_ = float(centre)
        self.n_features_in_ = getattr(self.base_estimator, "n_features_in_", None)
        return self

    def fit(self, X=None, y=None):
        """Not trainable: the update is estimated by :func:`cartrisk.bundle.updating.update_bundle`."""
        raise TypeError("RecalibratedSurvival wraps a fitted model and is not refitted; update a bundle with "
                        "cartrisk.bundle.updating.update_bundle (cartrisk update-model), or refit its base model")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "intercept_")

    def predict(self, X) -> np.ndarray:
        """Risk score: the base risk times the slope (a Cox model's updated linear predictor, up to a constant)."""
        check_is_fitted(self, "intercept_")
        return self.slope_ * np.asarray(self.base_estimator.predict(X), dtype=float)

    def predict_survival_at(self, X, times_days) -> np.ndarray:
        """Updated survival probabilities at ``times_days``, shape (n_samples, n_times)."""
        check_is_fitted(self, "intercept_")
        times = np.atleast_1d(np.asarray(times_days, dtype=float))
        # one pass of the base model: the asked times and, last, the horizon the update is anchored at
        both = np.asarray(self.base_estimator.predict_survival_at(X, np.append(times, float(self.horizon_days))),
                          dtype=float)
        s = both[:, :-1]
        H = -np.log(np.clip(s, _TINY, 1.0))
        eta = self._log_cumhaz(both[:, -1]) - self.centre_
        factor = np.exp(self.intercept_ + (self.slope_ - 1.0) * eta)
        return np.exp(-H * factor[:, None])
