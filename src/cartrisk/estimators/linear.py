"""Cox proportional hazards models: ridge-stabilised ``coxph`` and elastic-net ``coxnet`` (scikit-survival).

``predict`` is the linear predictor (log partial hazard); survival curves use scikit-survival's Breslow
estimate of the baseline hazard on the training data.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions
from sksurv.linear_model import CoxnetSurvivalAnalysis, CoxPHSurvivalAnalysis
from sksurv.util import Surv

from ._base import _SksurvModel, _step_values

__all__ = ["CoxPH", "Coxnet"]


class _LinearCox(_SksurvModel):
    #: Categorical coding this family wants from the FeatureBuilder: one level dropped as the named reference.
    categorical_coding = "reference"

    def _baseline(self):
        """scikit-survival's Breslow estimator behind the model's survival curves."""
        return self.model_._baseline_model

    def _survival_at(self, X: np.ndarray, times: np.ndarray) -> np.ndarray:
        # S(t | x) = S0(t) ** exp(lp), as scikit-survival computes it, read at `times` only: no step-function
        # object per patient over every training time (the cost that dominated scoring).
        s0 = self._baseline().baseline_survival_
        return _step_values(s0.x, s0.y[np.newaxis, :], times) ** np.exp(self._predict_risk(X))[:, np.newaxis]


class CoxPH(_LinearCox):
    """Cox proportional hazards model with a small ridge penalty (scikit-survival's ``CoxPHSurvivalAnalysis``).

    ``predict`` is the linear predictor ``X @ model_.coef_`` (log partial hazard).

    Parameters
    ----------
    alpha : float, default 0.1
        Ridge penalty: ``alpha / 2 * ||beta||^2`` is added to the negative partial log-likelihood (so its weight
        does not grow with n). The small default keeps Newton's method solvable when one-hot columns are
        collinear or a level is rare, and changes the coefficients negligibly otherwise. 0 = unpenalised.
    ties : {"efron", "breslow"}, default "efron"
        Handling of tied event times (days are often tied).
    n_iter : int, default 100
        Newton-Raphson iterations at most.
    tol : float, default 1e-9
        Convergence tolerance on the relative change of the log-likelihood.

    Attributes
    ----------
    model_ : sksurv.linear_model.CoxPHSurvivalAnalysis
        Fitted on ``np.asarray(X, float)``; ``model_.coef_`` are the log hazard ratios.
    unique_times_ : ndarray
        Time points of the survival curves (distinct training times, days).
    n_features_in_, feature_names_in_
        As in scikit-learn.
    """

    _parameter_constraints: dict = {
        "alpha": [Interval(Real, 0, None, closed="left")],
        "ties": [StrOptions({"efron", "breslow"})],
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, alpha: float = 0.1, *, ties: str = "efron", n_iter: int = 100, tol: float = 1e-9) -> None:
        self.alpha = alpha
        self.ties = ties
        self.n_iter = n_iter
        self.tol = tol

    def _fit(self, X: np.ndarray, event: np.ndarray, time: np.ndarray) -> None:
        self.model_ = CoxPHSurvivalAnalysis(alpha=self.alpha, ties=self.ties, n_iter=self.n_iter, tol=self.tol)
        self.model_.fit(X, Surv.from_arrays(event, time))


class Coxnet(_LinearCox):
    """Elastic-net Cox model at one penalty (scikit-survival's ``CoxnetSurvivalAnalysis``).

    ``predict`` is the linear predictor at ``alpha`` (centred on the training mean, as scikit-survival does).

    The fit runs in two steps so that predictions come from coefficients fitted at ``alpha`` itself (not
    interpolated) with a Breslow baseline for that ``alpha``: scikit-survival's default path (``n_alphas``
    values down to ``alpha_min_ratio`` times the smallest penalty that zeroes every coefficient) is fitted once
    to find its penalties; the model kept in ``model_`` is then refitted, with baselines, on the part of that path
    above ``alpha`` followed by ``alpha`` (warm starts along the path, as glmnet does). ``model_.alphas_[-1]`` is
    ``alpha``, and scikit-survival's ``predict(X)`` and ``predict_survival_function(X)`` with their default
    ``alpha=None`` use it.

    Parameters
    ----------
    alpha : float, default 0.01
        Penalty at which the model predicts. Tune it; at or above the path's largest penalty every
        coefficient is zero (scikit-survival warns).
    l1_ratio : float in (0, 1], default 0.5
        Lasso share of the penalty (1 = lasso; the ridge part keeps correlated features together).
    n_alphas : int, default 100
        Length of the penalty path of the first step.
    alpha_min_ratio : float or "auto", default "auto"
        Smallest penalty of that path relative to the largest.
    penalty_factor : array-like of shape (n_features,) or None, default None
        Per-feature penalty weights (0 = never penalised).
    normalize : bool, default False
        Scale features to unit norm inside the fit (coefficients are returned on the original scale).
    tol : float, default 1e-7
    max_iter : int, default 100000

    Attributes
    ----------
    model_ : sksurv.linear_model.CoxnetSurvivalAnalysis
        Fitted with ``fit_baseline_model=True`` on ``np.asarray(X, float)``; ``model_.coef_[:, -1]`` are the
        coefficients at ``alpha``.
    unique_times_ : ndarray
        Time points of the survival curves (distinct training times, days).
    n_features_in_, feature_names_in_
        As in scikit-learn.
    """

    _parameter_constraints: dict = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "l1_ratio": [Interval(Real, 0.0, 1.0, closed="right")],
        "n_alphas": [Interval(Integral, 1, None, closed="left")],
        "alpha_min_ratio": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "penalty_factor": [None, "array-like"],
        "normalize": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        alpha: float = 0.01,
        *,
        l1_ratio: float = 0.5,
        n_alphas: int = 100,
        alpha_min_ratio: float | str = "auto",
        penalty_factor=None,
        normalize: bool = False,
        tol: float = 1e-7,
        max_iter: int = 100000,
    ) -> None:
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.n_alphas = n_alphas
        self.alpha_min_ratio = alpha_min_ratio
        self.penalty_factor = penalty_factor
        self.normalize = normalize
        self.tol = tol
        self.max_iter = max_iter

    def _coxnet(self, **kwargs) -> CoxnetSurvivalAnalysis:
        return CoxnetSurvivalAnalysis(
            l1_ratio=self.l1_ratio,
            alpha_min_ratio=self.alpha_min_ratio,
            penalty_factor=self.penalty_factor,
            normalize=self.normalize,
            tol=self.tol,
            max_iter=self.max_iter,
            **kwargs,
        )

    def _fit(self, X: np.ndarray, event: np.ndarray, time: np.ndarray) -> None:
        y = Surv.from_arrays(event, time)
        path = self._coxnet(n_alphas=self.n_alphas).fit(X, y).alphas_
        alphas = np.append(path[path > self.alpha * (1.0 + 1e-9)], float(self.alpha))
        self.model_ = self._coxnet(alphas=alphas, fit_baseline_model=True)
        self.model_.fit(X, y)

    def _baseline(self):
        return self.model_._get_baseline_model(None)  # the Breslow baseline at alpha (the path's last penalty)
