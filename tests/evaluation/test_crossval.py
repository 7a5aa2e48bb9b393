"""Tests for cartrisk.evaluation: splitter, metrics against sksurv, horizon guard, cross-validation, bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import (
    brier_score,
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.nonparametric import kaplan_meier_estimator
from sksurv.util import Surv

from cartrisk.evaluation import (
    CVResult,
    EventStratifiedKFold,
    bootstrap_ci,
    brier_at,
    compare,
    cross_validate_survival,
    harrell_c,
    integrated_brier,
    time_dependent_auc,
    uno_c,
)
from cartrisk.exceptions import StatisticalWarning
from cartrisk.units import months_to_days

HORIZONS_DAYS = months_to_days(np.array([3.0, 6.0, 12.0]))


class CoxAt(BaseEstimator):
    """sksurv's Cox model with the cartrisk contract; ``random_state`` draws a bootstrap sample when set."""

    def __init__(self, alpha: float = 0.0, random_state=None):
        self.alpha = alpha
        self.random_state = random_state

    def fit(self, X, y):
        if self.random_state is not None:
            idx = np.random.default_rng(self.random_state).integers(0, len(y), len(y))
            X, y = X[idx], y[idx]
        self.model_ = CoxPHSurvivalAnalysis(alpha=self.alpha).fit(X, y)
        return self

    def predict(self, X):
        return self.model_.predict(X)

    def predict_survival_at(self, X, times_days):
        h0 = self.model_.cum_baseline_hazard_
        i = np.searchsorted(h0.x, times_days, side="right") - 1
        cum_hazard = np.where(i >= 0, h0.y[np.clip(i, 0, None)], 0.0)
        return np.exp(-np.exp(self.predict(X))[:, None] * cum_hazard[None, :])


class SignRule(BaseEstimator):
    """A reference rule: high risk when the first column is positive; survival = Kaplan-Meier of the group."""

    def fit(self, X, y):
        high = np.asarray(X)[:, 0] > 0
        self.curves_ = [kaplan_meier_estimator(y["os2_event"][m], y["os2_days"][m]) for m in (~high, high)]
        return self

    def predict(self, X):
        return (np.asarray(X)[:, 0] > 0).astype(float)

    def predict_survival_at(self, X, times_days):
        rows = []
        for t, s in self.curves_:
            i = np.searchsorted(t, times_days, side="right") - 1
            rows.append(np.where(i >= 0, s[np.clip(i, 0, None)], 1.0))
        return np.vstack(rows)[self.predict(X).astype(int)]


# ---------------------------------------------------------------- splitter


@pytest.mark.parametrize("time_bins", [1, 3])
def test_splitter_balances_events_and_covers_each_sample_once_per_repeat(weibull, time_bins):
    _, _, y = weibull.cohort(500, 0)
    cv = EventStratifiedKFold(n_splits=5, n_repeats=3, random_state=1, time_bins=time_bins)
    splits = list(cv.split(None, y))
    assert len(splits) == cv.get_n_splits() == 15
    rate = y["os2_event"].mean()
    for r in range(3):
        seen = np.zeros(500, dtype=int)
        for train, test in splits[5 * r : 5 * r + 5]:
            assert np.intersect1d(train, test).size == 0
            assert train.size + test.size == 500
            assert abs(y["os2_event"][test].mean() - rate) < 0.03
            seen[test] += 1
        assert np.all(seen == 1)
    assert not np.array_equal(splits[0][1], splits[5][1])  # each repeat has its own seed


def test_splitter_is_deterministic_and_time_bins_balance_time(weibull):
    _, _, y = weibull.cohort(600, 1)
    a = list(EventStratifiedKFold(5, random_state=7, time_bins=3).split(None, y))
    b = list(EventStratifiedKFold(5, random_state=7, time_bins=3).split(None, y))
    assert all(np.array_equal(t1, t2) for (_, t1), (_, t2) in zip(a, b, strict=True))
    medians = [np.median(y["os2_days"][test]) for _, test in a]
    assert np.ptp(medians) / np.median(y["os2_days"]) < 0.25


@pytest.mark.parametrize(
    ("kwargs", "event", "match"),
    [
        ({"n_splits": 5}, [True] * 3 + [False] * 20, r"stratum 'events' has 3 samples, fewer than n_splits=5"),
        (
            {"n_splits": 5, "time_bins": 3},
            [True] * 12 + [False] * 20,
            r"stratum 'events, time bin \d of 3' has 4 samples, fewer than n_splits=5; use fewer splits",
        ),
        ({"n_splits": 5}, [False] * 20, r"all samples are censored"),
        ({"n_splits": 1}, [True] * 20, r"n_splits must be an integer >= 2, got 1"),
        ({"n_repeats": 2, "shuffle": False}, [True] * 20, r"n_repeats > 1 needs shuffle=True"),
    ],
)
def test_splitter_errors(kwargs, event, match):
    y = Surv.from_arrays(event=event, time=np.arange(1.0, len(event) + 1))
    with pytest.raises(ValueError, match=match):
        list(EventStratifiedKFold(**kwargs).split(None, y))


# ---------------------------------------------------------------- metrics


@pytest.fixture(scope="module")
def fitted(weibull):
    X, _, y = weibull.cohort(800, 2)
    train, test = np.arange(500), np.arange(500, 800)
    model = CoxAt().fit(X[train], y[train])
    return model, X[test], y[train], y[test]


def test_metrics_match_direct_sksurv_calls(fitted):
    model, X_test, y_train, y_test = fitted
    risk = model.predict(X_test)
    surv = model.predict_survival_at(X_test, HORIZONS_DAYS)
    ev, t = y_test["os2_event"], y_test["os2_days"]
    assert harrell_c(y_train, y_test, risk) == concordance_index_censored(ev, t, risk)[0]
    tau = HORIZONS_DAYS[-1]
    assert uno_c(y_train, y_test, risk, HORIZONS_DAYS) == concordance_index_ipcw(y_train, y_test, risk, tau=tau)[0]
    np.testing.assert_array_equal(
        time_dependent_auc(y_train, y_test, risk, HORIZONS_DAYS),
        cumulative_dynamic_auc(y_train, y_test, risk, HORIZONS_DAYS)[0],
    )
    np.testing.assert_array_equal(
        brier_at(y_train, y_test, surv, HORIZONS_DAYS), brier_score(y_train, y_test, surv, HORIZONS_DAYS)[1]
    )
    grid = np.linspace(t.min(), tau, 20)
    surv_grid = model.predict_survival_at(X_test, grid)
    assert integrated_brier(y_train, y_test, surv_grid, grid) == integrated_brier_score(
        y_train, y_test, surv_grid, grid
    )


@pytest.mark.parametrize("last_train_is_event", [False, True])
def test_test_times_beyond_training_follow_up_do_not_change_the_metrics(fitted, last_train_is_event):
    model, X_test, y_train, y_test = fitted
    y_train = y_train.copy()
    y_train["os2_event"][np.argmax(y_train["os2_days"])] = last_train_is_event
    risk, surv = model.predict(X_test), model.predict_survival_at(X_test, HORIZONS_DAYS)
    train_max = y_train["os2_days"].max()
    far, near = y_test.copy(), y_test.copy()
    far["os2_days"][0], far["os2_event"][0] = train_max + 200, True
    near["os2_days"][0], near["os2_event"][0] = train_max - 1, False
    # sksurv alone cannot weight an event after the last training time
    with pytest.raises(ValueError, match="censoring survival function is zero|time must be smaller than largest"):
        cumulative_dynamic_auc(y_train, far, risk, HORIZONS_DAYS)
    if last_train_is_event:
        with pytest.raises(ValueError, match="time must be smaller than largest observed time point"):
            brier_score(y_train, far, surv, HORIZONS_DAYS)
    np.testing.assert_allclose(
        brier_at(y_train, far, surv, HORIZONS_DAYS), brier_score(y_train, near, surv, HORIZONS_DAYS)[1]
    )
    np.testing.assert_allclose(
        time_dependent_auc(y_train, far, risk, HORIZONS_DAYS),
        cumulative_dynamic_auc(y_train, near, risk, HORIZONS_DAYS)[0],
    )


def test_horizon_guard_message_is_pinned(fitted):
    model, X_test, y_train, y_test = fitted
    short = y_test.copy()
    short["os2_days"] = np.minimum(short["os2_days"], 300.0)
    msg = (
        r"horizon 12 months \(365 days\) is beyond the follow-up of this fold \(max observed 300 days in the test "
        r"set, \d+ days in the training set\); shorten the horizon or use fewer folds"
    )
    surv = model.predict_survival_at(X_test, HORIZONS_DAYS)
    for metric, estimate in [(brier_at, surv), (time_dependent_auc, model.predict(X_test)), (uno_c, surv[:, 0])]:
        with pytest.raises(ValueError, match=msg):
            metric(y_train, short, estimate, HORIZONS_DAYS)


@pytest.mark.parametrize(
    ("metric", "times", "estimate", "match"),
    [
        (brier_at, [365.25, 91.0], "surv", r"times must be a non-empty, strictly increasing 1-D array of days"),
        (brier_at, HORIZONS_DAYS, "risk3", r"must hold survival probabilities in \[0, 1\]; did you pass risk scores"),
        (brier_at, HORIZONS_DAYS, "surv1", r"estimate has shape \(300, 1\), expected \(300, 3\)"),
    ],
)
def test_metric_bad_input(fitted, metric, times, estimate, match):
    model, X_test, y_train, y_test = fitted
    surv = model.predict_survival_at(X_test, HORIZONS_DAYS)
    arrays = {"surv": surv, "risk3": np.repeat(model.predict(X_test)[:, None] + 5, 3, axis=1), "surv1": surv[:, :1]}
    with pytest.raises(ValueError, match=match):
        metric(y_train, y_test, arrays[estimate], times)


# ---------------------------------------------------------------- cross-validation


@pytest.fixture(scope="module")
def cohort(weibull):
    X, _, y = weibull.cohort(400, 3)
    return X, y


def test_cross_validation_is_repeatable_and_complete(cohort):
    X, y = cohort
    calls = []
    a = cross_validate_survival(CoxAt(), X, y, cv=5, random_state=11, progress=lambda i, k: calls.append((i, k)))
    b = cross_validate_survival(CoxAt(), X, y, cv=5, random_state=11)
    pd.testing.assert_frame_equal(a.per_fold, b.per_fold)
    assert calls == [(i, 5) for i in range(1, 6)]
    assert list(a.per_fold.columns) == ["repeat", "fold", "metric", "horizon_months", "value"]
    metrics = set(a.per_fold["metric"])
    assert {"harrell_c", "uno_c", "auc", "brier", "ibs", "ici", "calibration_slope", "d_calibration_p"} <= metrics
    assert a.per_fold["value"].notna().all()
    assert a.fit_times.shape == (5,) and np.all(a.fit_times > 0)
    assert np.all(np.isfinite(a.oof_risk)) and a.oof_survival.shape == (400, 3)
    summary = a.summary().set_index(["metric", "horizon_months"])
    assert 0.6 < summary.loc[("harrell_c", np.nan), "mean"] < 0.8
    row = summary.loc[("auc", 12.0)]
    assert row["lower"] < row["mean"] < row["upper"] and row["n_folds"] == 5


def test_cross_validation_seeds_the_estimator(cohort):
    X, y = cohort
    cv = EventStratifiedKFold(3, random_state=0)
    a = cross_validate_survival(CoxAt(), X, y, cv=cv, calibration=False, random_state=1)
    b = cross_validate_survival(CoxAt(), X, y, cv=cv, calibration=False, random_state=2)
    c = cross_validate_survival(CoxAt(), X, y, cv=cv, calibration=False, random_state=1)
    assert not a.per_fold["value"].equals(b.per_fold["value"])  # bootstrap fits differ with the seed
    pd.testing.assert_frame_equal(a.per_fold, c.per_fold)


def test_rule_is_evaluated_like_a_model_and_compared(cohort):
    X, y = cohort
    cv = EventStratifiedKFold(4, n_repeats=2, random_state=5)
    model = cross_validate_survival(CoxAt(), X, y, cv=cv)
    rule = cross_validate_survival(SignRule(), X, y, cv=cv)
    assert rule.oof_risk is None and rule.n_repeats == 2 and rule.n_splits == 4
    table = compare({"cox": model, "rule": rule})
    assert list(table.columns.get_level_values(0).unique()) == ["cox", "rule"]
    assert table.loc[("harrell_c", np.nan), ("cox", "mean")] > table.loc[("harrell_c", np.nan), ("rule", "mean")]
    spread = rule.summary(interval="percentile").set_index(["metric", "horizon_months"]).loc[("brier", 6.0)]
    assert spread["lower"] <= spread["mean"] <= spread["upper"]


def test_cross_validation_warns_on_a_horizon_beyond_follow_up(weibull):
    X, _, y = weibull.cohort(300, 4, censor_max_days=330.0)
    cv = EventStratifiedKFold(3, random_state=0)
    with pytest.warns(StatisticalWarning, match=r"horizon 12 months \(365 days\) is beyond the follow-up of this fold"):
        res = cross_validate_survival(CoxAt(), X, y, cv=cv, horizons_months=(3, 12))
    at12 = res.per_fold[(res.per_fold["horizon_months"] == 12) & (res.per_fold["metric"] != "uno_c")]
    assert at12["value"].isna().all()
    at3 = res.per_fold[res.per_fold["horizon_months"] == 3]
    assert at3["value"].notna().all()


def test_cross_validation_rejects_bad_horizons(cohort):
    X, y = cohort
    with pytest.raises(ValueError, match=r"horizons_months must be positive and strictly increasing, got \(12, 3\)"):
        cross_validate_survival(CoxAt(), X, y, cv=3, horizons_months=(12, 3))


def test_summary_interval_is_a_t_interval():
    per_fold = pd.DataFrame(
        {"repeat": 0, "fold": range(4), "metric": "harrell_c", "horizon_months": np.nan, "value": [0.6, 0.7, 0.8, 0.7]}
    )
    s = CVResult(per_fold, np.zeros(4), (3.0,), 4, 1).summary().iloc[0]
    half = 3.182446305284263 * np.std([0.6, 0.7, 0.8, 0.7], ddof=1) / 2
    assert (s["mean"], s["lower"], s["upper"]) == pytest.approx((0.7, 0.7 - half, 0.7 + half))


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_ci_of_a_mean():
    x = np.random.default_rng(0).normal(size=400)
    a = bootstrap_ci(np.mean, x, n_boot=500, random_state=3)
    b = bootstrap_ci(np.mean, x, n_boot=500, random_state=3)
    assert (a.lower, a.upper) == (b.lower, b.upper)
    assert a.lower < a.estimate < a.upper
    assert a.upper - a.lower == pytest.approx(2 * 1.96 * x.std() / 20, rel=0.15)


def test_bootstrap_ci_of_a_c_index_difference(fitted):
    model, X_test, _, y_test = fitted
    risk, noise = model.predict(X_test), np.random.default_rng(1).normal(size=len(y_test))

    def diff(y, a, b):
        return harrell_c(y, y, a) - harrell_c(y, y, b)

    ci = bootstrap_ci(diff, y_test, risk, noise, n_boot=200, random_state=0)
    assert ci.lower > 0 and ci.replicates.shape == (200,)


def test_bootstrap_ci_counts_failed_resamples():
    y = Surv.from_arrays(event=[True] + [False] * 9, time=np.arange(1.0, 11.0))
    with pytest.warns(StatisticalWarning, match=r"\d+ of 100 bootstrap resamples gave no value and were dropped"):
        ci = bootstrap_ci(lambda yy, r: harrell_c(yy, yy, r), y, np.arange(10.0), n_boot=100, random_state=0)
    assert ci.n_failed > 0
    with pytest.raises(ValueError, match=r"arrays have different lengths: \[10, 3\]"):
        bootstrap_ci(np.mean, np.zeros(10), np.zeros(3))
