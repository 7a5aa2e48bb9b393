"""Risk groups learned from a model's predictions: :class:`RiskGrouper`.

Clinicians sort patients whose lymphoma failed CAR T-cells by the D0-30 rule. :class:`RiskGrouper`
turns a model's predictions into groups of the same kind, with cut-points learned on training
predictions only. Their calibration is in :mod:`cartrisk.groups.recalibration`, their comparison with
other groupings in :mod:`cartrisk.groups.compare`, and the end-to-end comparison of a model with the
rules in :mod:`cartrisk.groups.rulecomparison`.

Group arguments are pandas Categoricals whose category order is low -> high risk (what
:meth:`RiskGrouper.predict` returns), or integer codes (0 = lowest risk). Times are days in
arguments and months in result tables. Nothing is printed or plotted here.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from cartrisk.exceptions import StatisticalWarning
from cartrisk.groups._stats import as_vector
from cartrisk.groups.recalibration import check_curves, curve_median_days, group_survival_curves
from cartrisk.units import days_to_months, months_to_days

__all__ = ["RiskGrouper", "default_labels"]

_DEFAULT_LABELS = {
    2: ("low", "high"),
    3: ("low", "intermediate", "high"),
    4: ("low", "intermediate-low", "intermediate-high", "high"),
}


def default_labels(n_groups: int) -> list[str]:
    """Group names low -> high risk: "low" / "high", "low" / "intermediate" / "high", ..., else G1, G2, ..."""
    return list(_DEFAULT_LABELS.get(n_groups, [f"G{k + 1}" for k in range(n_groups)]))


class RiskGrouper(BaseEstimator):
    """Risk groups from a model's predictions, cut-points learned on training predictions.

    Parameters
    ----------
    method : {"quantiles", "threshold", "n_groups"}
        "quantiles": groups of the given ``sizes`` on the risk score (e.g. ``(0.773, 0.227)``
        puts the top 22.7% as high risk, the share of D0-30 failures; ``(0.345, 0.429, 0.227)``
        mirrors >D90 / D31-90 / D0-30). "threshold": predicted OS-2 at ``horizon_months``
        below ``threshold`` is high risk (several thresholds give several groups).
        "n_groups": ``n_groups`` equal-sized quantile groups.
    sizes : sequence of float, optional
        Group shares ordered low -> high risk; must sum to 1 (within 0.01, then rescaled:
        published shares are rounded). Required for "quantiles".
    threshold : float or sequence of float, optional
        Predicted survival at the horizon below which a patient moves up a group.
        Required for "threshold".
    horizon_months : float
        Horizon of the "threshold" method.
    n_groups : int
        Number of groups of the "n_groups" method.
    labels : sequence of str, optional
        Group names low -> high risk; default "low" / "intermediate" / "high" style names.

    Attributes
    ----------
    cutpoints_ : ndarray
        Risk-score cut-points (quantile methods; a score equal to a cut-point joins the lower
        group) or survival thresholds in decreasing order ("threshold").
    n_groups_ : int
    labels_ : list of str
    train_shares_ : Series
        Share of the training predictions in each group.
    group_survival_ : DataFrame or None
        Mean predicted survival curve of each group on the training predictions, indexed by
        ``time_days`` (when ``fit`` received ``surv_curves``).
    group_median_months_ : Series or None
        Median of each group's mean predicted curve (NaN when not reached on the grid).
    """

    _parameter_constraints: dict = {
        "method": [StrOptions({"quantiles", "threshold", "n_groups"})],
        "sizes": ["array-like", None],
        "threshold": [Interval(Real, 0, 1, closed="neither"), "array-like", None],
        "horizon_months": [Interval(Real, 0, None, closed="neither")],
        "n_groups": [Interval(Integral, 2, None, closed="left")],
        "labels": ["array-like", None],
    }

    def __init__(
        self, method="quantiles", sizes=None, threshold=None, horizon_months=6.0, n_groups=3, labels=None
    ) -> None:
        self.method = method
        self.sizes = sizes
        self.threshold = threshold
        self.horizon_months = horizon_months
        self.n_groups = n_groups
        self.labels = labels

    def _shares(self) -> np.ndarray:
        if self.method == "n_groups":
            return np.full(self.n_groups, 1.0 / self.n_groups)
        if self.sizes is None:
            raise ValueError("sizes is required for method='quantiles'")
        sizes = np.asarray(self.sizes, dtype=float)
        if sizes.ndim != 1 or len(sizes) < 2 or np.any(sizes <= 0):
            raise ValueError(f"sizes must be at least two positive shares, got {self.sizes!r}")
        if abs(sizes.sum() - 1.0) > 0.01:
            raise ValueError(f"sizes must sum to 1, got {sizes.sum():g}")
        return sizes / sizes.sum()

    def _thresholds(self) -> np.ndarray:
        if self.threshold is None:
            raise ValueError("threshold is required for method='threshold'")
        cuts = np.atleast_1d(np.asarray(self.threshold, dtype=float))
        if cuts.ndim != 1 or np.any((cuts <= 0) | (cuts >= 1)) or len(np.unique(cuts)) != len(cuts):
            raise ValueError(f"threshold must be distinct survival probabilities in (0, 1), got {self.threshold!r}")
        return np.sort(cuts)[::-1]

    def _horizon_survival(self, surv_at_horizon, surv_curves, times_days, n) -> np.ndarray:
        if surv_at_horizon is not None:
            return as_vector(surv_at_horizon, "surv_at_horizon", n)
        if surv_curves is not None:
            curves, times = check_curves(surv_curves, times_days, n)
            hit = np.flatnonzero(np.isclose(times, months_to_days(self.horizon_months)))
            if hit.size:
                return curves[:, hit[0]]
        raise ValueError(
            f"surv_at_horizon (predicted survival at {self.horizon_months:g} months) is required for "
            "method='threshold', or surv_curves on a times_days grid that contains the horizon"
        )

    def _codes(self, risk_scores, surv_at_horizon, n=None) -> np.ndarray:
        if self.method == "threshold":
            s = self._horizon_survival(surv_at_horizon, None, None, n)
            return (s[:, None] < self.cutpoints_[None, :]).sum(axis=1)
        if risk_scores is None:
            raise ValueError(f"risk_scores is required for method={self.method!r}")
        scores = as_vector(risk_scores, "risk_scores", n)
        return np.searchsorted(self.cutpoints_, scores, side="left")

    def fit(self, risk_scores=None, surv_at_horizon=None, y=None, *, surv_curves=None, times_days=None):
        """Learn the cut-points from training predictions.

        Parameters
        ----------
        risk_scores : array-like of shape (n_samples,)
            Training risk scores (higher = worse); required by the quantile methods.
        surv_at_horizon : array-like of shape (n_samples,), optional
            Predicted survival at ``horizon_months``; required by "threshold" unless
            ``surv_curves`` contains the horizon.
        y : ignored
            Accepted for pipeline compatibility; cut-points depend on predictions only.
        surv_curves : ndarray of shape (n_samples, n_times), optional
            Training ``predict_survival_at`` output; gives each group's predicted curve.
        times_days : array-like of shape (n_times,), optional
            Grid of ``surv_curves``.

        Returns
        -------
        self
        """
        self._validate_params()
        n = None
        for arr in (risk_scores, surv_at_horizon):
            if arr is not None:
                n = len(np.asarray(arr))
        if self.method == "threshold":
            cutpoints = self._thresholds()
            n = n if n is not None else np.shape(surv_curves)[0] if surv_curves is not None else None
            surv = self._horizon_survival(surv_at_horizon, surv_curves, times_days, n)
            codes = (surv[:, None] < cutpoints[None, :]).sum(axis=1)
        else:
            shares = self._shares()
            if risk_scores is None:
                raise ValueError(f"risk_scores is required for method={self.method!r}")
            scores = as_vector(risk_scores, "risk_scores")
            cutpoints = np.quantile(scores, np.cumsum(shares)[:-1])
            codes = np.searchsorted(cutpoints, scores, side="left")
        n_groups = len(cutpoints) + 1
        labels = list(self.labels) if self.labels is not None else default_labels(n_groups)
        if len(labels) != n_groups or len(set(labels)) != n_groups:
            raise ValueError(f"labels must be {n_groups} distinct names (low -> high risk), got {self.labels!r}")
        if surv_curves is not None and times_days is None:
            raise ValueError("times_days is required with surv_curves")
        self.cutpoints_, self.n_groups_, self.labels_ = cutpoints, n_groups, labels
        counts = np.bincount(codes, minlength=n_groups)
        self.train_shares_ = pd.Series(counts / len(codes), index=pd.Index(labels, name="group"), name="share")
        if (counts == 0).any():
            empty = [lab for lab, c in zip(labels, counts, strict=True) if c == 0]
            warnings.warn(f"risk groups {empty} are empty in the training predictions (tied scores?)",
                          StatisticalWarning, stacklevel=2)
        self.group_survival_ = self.group_median_months_ = None
        if surv_curves is not None:
            groups = pd.Categorical.from_codes(codes, categories=labels, ordered=True)
            self.group_survival_ = group_survival_curves(groups, surv_curves, times_days)
            times = self.group_survival_.index.to_numpy()
            self.group_median_months_ = pd.Series(
                [days_to_months(curve_median_days(times, self.group_survival_[lab].to_numpy())) for lab in labels],
                index=pd.Index(labels, name="group"), name="predicted_median_months",
            )
        return self

    def transform(self, risk_scores=None, surv_at_horizon=None) -> np.ndarray:
        """Integer group codes, 0 = lowest risk (index into ``labels_``)."""
        check_is_fitted(self, "cutpoints_")
        return self._codes(risk_scores, surv_at_horizon).astype(int)

    def predict(self, risk_scores=None, surv_at_horizon=None) -> pd.Categorical:
        """Group labels as an ordered Categorical whose categories run low -> high risk."""
        return pd.Categorical.from_codes(self.transform(risk_scores, surv_at_horizon),
                                         categories=self.labels_, ordered=True)

    def fit_predict(self, risk_scores=None, surv_at_horizon=None, y=None, **fit_params) -> pd.Categorical:
        """Fit on training predictions and return their groups."""
        return self.fit(risk_scores, surv_at_horizon, y, **fit_params).predict(risk_scores, surv_at_horizon)

    @classmethod
    def from_cutpoints(cls, cutpoints, *, method: str = "quantiles", labels=None, horizon_months: float = 6.0
                       ) -> RiskGrouper:
        """A fitted grouper from cut-points learned before (e.g. stored in a model bundle).

        Parameters
        ----------
        cutpoints : array-like of float
            Increasing risk-score cut-points (quantile methods), or survival thresholds at
            ``horizon_months`` ("threshold"; any order).
        method : {"quantiles", "n_groups", "threshold"}
        labels : sequence of str, optional
            Group names low -> high risk (default names as in ``fit``).
        horizon_months : float
            Horizon of the "threshold" method.

        Returns
        -------
        RiskGrouper
            Ready for ``transform`` / ``predict``; ``train_shares_`` and ``group_survival_`` are None.
        """
        grouper = cls(method=method, horizon_months=horizon_months, labels=labels)
        grouper._validate_params()
        cuts = np.atleast_1d(np.asarray(cutpoints, dtype=float))
        if method == "threshold":
            grouper.threshold = cuts.tolist() if cuts.size > 1 else float(cuts[0])
            cuts = grouper._thresholds()
        elif cuts.ndim != 1 or cuts.size < 1 or not np.isfinite(cuts).all() or np.any(np.diff(cuts) < 0):
            raise ValueError(f"cutpoints must be non-decreasing finite risk scores, got {cutpoints!r}")
        n_groups = cuts.size + 1
        names = list(labels) if labels is not None else default_labels(n_groups)
        if len(names) != n_groups or len(set(names)) != n_groups:
            raise ValueError(f"labels must be {n_groups} distinct names (low -> high risk), got {labels!r}")
        grouper.cutpoints_, grouper.n_groups_, grouper.labels_ = cuts, n_groups, names
        grouper.train_shares_ = grouper.group_survival_ = grouper.group_median_months_ = None
        return grouper
