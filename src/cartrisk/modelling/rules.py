"""Reference rules that a model of OS-2 must beat: D0-30, its D0-30 / D31-90 / >D90 form, and the PC-PI.

Each rule is a scikit-learn-style estimator with the same contract as the
models, so that evaluation, risk groups and reports treat it like any model:

- ``predict(X)``: the rule's score (higher = worse): 0/1 for D0-30, 0/1/2 for
  the three windows, 0-5 points for the PC-PI;
- ``predict_group(X)``: the group label of each patient;
- ``fit(X, y)`` learns nothing about the rule (its cut-points are published),
  only each group's Kaplan-Meier curve on the training patients, so that
  ``predict_survival_at`` / ``predict_survival_function`` give a calibrated
  survival prediction per group.

Thresholds come from :func:`cartrisk.data.literature.rule_constants`, never from
literals here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from sksurv.functions import StepFunction
from sksurv.nonparametric import kaplan_meier_estimator

from cartrisk.data.derive import PCPI_COLUMNS, pcpi_points
from cartrisk.data.literature import rule_constants
from cartrisk.exceptions import SchemaError

__all__ = ["D0_30Rule", "PCPI", "RULES", "ThreeWindowRule", "make_rule"]

class _Rule(BaseEstimator):
    """Shared machinery: group Kaplan-Meier curves learned on training data."""

    needs: tuple[str, ...] = ()
    group_labels: tuple[str, ...] = ()
    #: The rule's name in figures and reports.
    title: str = ""

    def _require(self, X: pd.DataFrame) -> None:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"{type(self).__name__} needs a DataFrame with data-dictionary columns")
        missing = [c for c in self.needs if c not in X]
        if missing:
            raise SchemaError(f"{type(self).__name__} needs column(s) {', '.join(missing)}, which the data lack; "
                              f"add them (see the data dictionary) or leave this rule out of the comparison")

    def score(self, X: pd.DataFrame) -> np.ndarray:  # noqa: D102 - overridden
        raise NotImplementedError

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The rule's score, higher = worse."""
        self._require(X)
        return self.score(X).astype(float)

    def predict_group(self, X: pd.DataFrame) -> np.ndarray:
        """Group label per patient, from lowest to highest risk as in ``group_labels``."""
        labels = np.asarray(self.group_labels, dtype=object)
        return labels[self._group_index(self.predict(X))]

    def _group_index(self, score: np.ndarray) -> np.ndarray:
        return score.astype(int)

    def fit(self, X: pd.DataFrame, y) -> _Rule:
        """Learn each group's Kaplan-Meier OS-2 curve on the training patients."""
        self._require(X)
        groups = self._group_index(self.predict(X))
        event, time = y[y.dtype.names[0]], y[y.dtype.names[1]]
        self.curves_ = {}
        overall = self._km(time, event)
        for g in range(len(self.group_labels)):
            mask = groups == g
            self.curves_[g] = self._km(time[mask], event[mask]) if mask.any() else overall
        self.n_features_in_ = X.shape[1]
        return self

    @staticmethod
    def _km(time: np.ndarray, event: np.ndarray) -> StepFunction:
        t, s = kaplan_meier_estimator(event.astype(bool), time)
        return StepFunction(np.r_[0.0, t], np.r_[1.0, s])

    def _curve_at(self, g: int, times: np.ndarray) -> np.ndarray:
        f = self.curves_[g]
        return f(np.clip(times, f.x[0], f.x[-1]))

    def predict_survival_at(self, X: pd.DataFrame, times_days) -> np.ndarray:
        """Training Kaplan-Meier survival of each patient's group at ``times_days`` (flat beyond follow-up)."""
        check_is_fitted(self, "curves_")
        times = np.atleast_1d(np.asarray(times_days, dtype=float))
        groups = self._group_index(self.predict(X))
        table = np.vstack([self._curve_at(g, times) for g in range(len(self.group_labels))])
        return table[groups]

    def predict_survival_function(self, X: pd.DataFrame, return_array: bool = False):
        """Each patient's group Kaplan-Meier curve (StepFunction), or an array on the training event times."""
        check_is_fitted(self, "curves_")
        groups = self._group_index(self.predict(X))
        if return_array:
            times = np.unique(np.concatenate([f.x for f in self.curves_.values()]))
            return self.predict_survival_at(X, times)
        return np.asarray([self.curves_[g] for g in groups], dtype=object)


class D0_30Rule(_Rule):
    """The clinicians' rule: failure within 30 days of infusion means high risk (score 1)."""

    needs = ("days_to_failure",)
    group_labels = ("after D30", "D0-30")
    title = "D0-30 rule"

    def score(self, X: pd.DataFrame) -> np.ndarray:
        return (X["days_to_failure"].to_numpy(float) <= rule_constants()["d0_30_boundary_days"]).astype(int)


class ThreeWindowRule(_Rule):
    """The D0-30 rule's three-level form: >D90 (0), D31-90 (1), D0-30 (2)."""

    needs = ("days_to_failure",)
    group_labels = (">D90", "D31-90", "D0-30")
    title = "D0-30 / D31-90 / >D90 rule"

    def score(self, X: pd.DataFrame) -> np.ndarray:
        rc = rule_constants()
        days = X["days_to_failure"].to_numpy(float)
        return (days <= rc["d0_30_boundary_days"]).astype(int) + (days <= rc["d31_90_boundary_days"]).astype(int)


class PCPI(_Rule):
    """Post-CAR Prognostic Index (Iacoboni et al. 2024): five points measured at progression.

    One point each for ECOG > 0, haemoglobin < 10 g/dL, LDH >= 2 x ULN, more than one
    extranodal site, and infusion-to-progression < 4 months (factors and thresholds from the
    literature data file). An item whose value is missing scores no point; the share of
    patients with at least one missing item is kept in ``missing_share_`` after ``fit``.
    Groups: low, intermediate-low, intermediate-high, high. Their point ranges (0-1, 2, 3, 4-5)
    could not be confirmed from the sources and are an assumption recorded in the data file.
    """

    needs = PCPI_COLUMNS
    group_labels = ("low", "intermediate-low", "intermediate-high", "high")
    title = "PC-PI"

    def points(self, X: pd.DataFrame) -> pd.DataFrame:
        """The five items, one column each (1 = point, 0 = no point or missing)."""
        self._require(X)
        return pcpi_points(X)

    def score(self, X: pd.DataFrame) -> np.ndarray:
        return self.points(X).sum(axis=1).to_numpy()

    def _group_index(self, score: np.ndarray) -> np.ndarray:
        upper = [g["points_max"] for g in rule_constants()["pcpi"]["groups"]]  # highest score of each group
        return np.searchsorted(np.asarray(upper), score, side="left")

    def fit(self, X: pd.DataFrame, y) -> PCPI:
        self._require(X)
        cols = list(self.needs)
        self.missing_share_ = float(X[cols].isna().any(axis=1).mean())
        return super().fit(X, y)


RULES: dict[str, type[_Rule]] = {"d0_30": D0_30Rule, "d0_30_90": ThreeWindowRule, "pcpi": PCPI}


def make_rule(name: str) -> _Rule:
    """A reference rule by name: ``d0_30``, ``d0_30_90`` or ``pcpi``."""
    if name not in RULES:
        raise ValueError(f"unknown rule '{name}'; known rules: {', '.join(RULES)}")
    return RULES[name]()
