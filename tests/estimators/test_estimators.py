"""Contract test of every registered survival estimator, plus the family-specific behaviour."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sksurv.ensemble import ExtraSurvivalTrees, GradientBoostingSurvivalAnalysis, RandomSurvivalForest
from sksurv.linear_model import CoxnetSurvivalAnalysis, CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored
from sksurv.util import Surv

from cartrisk.estimators import (
    ESTIMATORS,
    RSF,
    XGBAFT,
    SlowFitWarning,
    coarsen_survival_times,
    make_estimator,
)
from cartrisk.estimators import boosting as boosting_module

FEATURES = ["risk_a", "protect_b", "risk_flag", "risk_flag2", "noise_normal", "noise_uniform"]
LOG_HAZARD_COEF = np.array([0.9, -0.5, 0.7, 0.6, 0.0, 0.0])
WRAPPED = {
    "coxph": CoxPHSurvivalAnalysis,
    "coxnet": CoxnetSurvivalAnalysis,
    "rsf": RandomSurvivalForest,
    "extra_trees": ExtraSurvivalTrees,
    "gbsa": GradientBoostingSurvivalAnalysis,
    "xgb_cox": xgboost.Booster,
    "xgb_aft": xgboost.Booster,
}
TIMES_DAYS = np.array([0.0, 1.0, 15.5, 30.0, 91.3, 182.6, 365.25, 500.0, 10_000.0])


def _cohort(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Weibull survival (shape 1.3, scale 180 days) with a known log-hazard, uniform censoring 60-720 days."""
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [
            rng.normal(size=n),
            rng.normal(size=n),
            rng.binomial(1, 0.4, size=n),
            rng.binomial(1, 0.3, size=n),
            rng.normal(size=n),
            rng.uniform(size=n),
        ]
    ).astype(float)
    log_hazard = X @ LOG_HAZARD_COEF
    death = 180.0 * (rng.exponential(size=n) / np.exp(log_hazard)) ** (1 / 1.3)
    censor = rng.uniform(60.0, 720.0, size=n)
    time = np.maximum(np.ceil(np.minimum(death, censor)), 1.0)
    y = Surv.from_arrays(event=death <= censor, time=time, name_event="os2_event", name_time="os2_days")
    return pd.DataFrame(X, columns=FEATURES), y, log_hazard


X_TRAIN, Y_TRAIN, _ = _cohort(300, seed=0)
X_TEST, Y_TEST, LOG_HAZARD_TEST = _cohort(300, seed=1)


def _new(name: str, **params):
    if "random_state" in make_estimator(name).get_params():
        params.setdefault("random_state", 0)
    return make_estimator(name, **params)


@pytest.fixture(scope="module")
def fitted() -> dict:
    return {name: _new(name).fit(X_TRAIN, Y_TRAIN) for name in ESTIMATORS}


# -- registry ------------------------------------------------------------------------------------------------
def test_registry_names():
    assert ESTIMATORS == ("coxph", "coxnet", "rsf", "extra_trees", "gbsa", "xgb_cox", "xgb_aft")


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="unknown estimator 'cox'; known estimators: coxph, coxnet, rsf, extra_trees"):
        make_estimator("cox")


def test_make_estimator_sets_params_and_rejects_unknown_ones():
    assert make_estimator("rsf", n_estimators=7).n_estimators == 7
    with pytest.raises(ValueError, match="Invalid parameter 'bogus' for estimator"):
        make_estimator("xgb_cox", bogus=1)


# -- scikit-learn contract -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ESTIMATORS)
def test_clone_and_params_round_trip(name):
    est = make_estimator(name)
    params = est.get_params()
    assert clone(est).get_params() == params
    assert est.set_params(**params).get_params() == params
    key = "random_state" if "random_state" in params else "tol"
    est.set_params(**{key: 3})
    assert est.get_params()[key] == 3
    assert clone(est).get_params()[key] == 3


@pytest.mark.parametrize("name", ESTIMATORS)
def test_not_fitted_error_before_fit(name):
    est = make_estimator(name)
    with pytest.raises(NotFittedError):
        est.predict(X_TEST)
    with pytest.raises(NotFittedError):
        est.predict_survival_function(X_TEST)
    with pytest.raises(NotFittedError):
        est.predict_survival_at(X_TEST, [30.0])


BAD_PARAMS = {
    "coxph": ("ties", "exact"),
    "coxnet": ("l1_ratio", 0.0),
    "rsf": ("n_estimators", 0),
    "extra_trees": ("max_unique_times", 1),
    "gbsa": ("learning_rate", 0.0),
    "xgb_cox": ("subsample", 1.5),
    "xgb_aft": ("aft_loss_distribution", "weibull"),
}


@pytest.mark.parametrize("name", ESTIMATORS)
def test_bad_hyperparameter_rejected_at_fit(name):
    param, value = BAD_PARAMS[name]
    est = make_estimator(name, **{param: value})  # __init__ / set_params only store
    with pytest.raises(ValueError, match=f"The '{param}' parameter of"):
        est.fit(X_TRAIN, Y_TRAIN)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_fit_returns_self_and_keeps_feature_names(name, fitted):
    est = _new(name)
    assert est.fit(X_TRAIN, Y_TRAIN) is est
    est = fitted[name]
    assert list(est.feature_names_in_) == FEATURES
    assert est.n_features_in_ == len(FEATURES)
    assert isinstance(est.model_, WRAPPED[name])
    with pytest.raises(ValueError, match="Feature names seen at fit time, yet now missing:\n- noise_uniform"):
        est.predict(X_TEST.iloc[:, :5])


# -- predictions ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ESTIMATORS)
def test_predict_shape_and_direction(name, fitted):
    risk = fitted[name].predict(X_TEST)
    assert risk.shape == (len(X_TEST),) and risk.dtype == np.float64 and np.all(np.isfinite(risk))
    harrell_c = concordance_index_censored(Y_TEST["os2_event"], Y_TEST["os2_days"], risk)[0]
    assert harrell_c > 0.6
    assert np.corrcoef(risk, LOG_HAZARD_TEST)[0, 1] > 0.5  # the planted high-risk patients score higher


@pytest.mark.parametrize("name", ["rsf", "extra_trees", "gbsa"])
def test_tree_families_predict_is_the_wrapped_models_predict(name, fitted):
    est = fitted[name]
    np.testing.assert_array_equal(est.predict(X_TEST), est.model_.predict(X_TEST.to_numpy(dtype=float)))


@pytest.mark.parametrize(("name", "sign"), [("xgb_cox", 1.0), ("xgb_aft", -1.0)])
def test_xgboost_predict_is_the_signed_margin(name, sign, fitted):
    est = fitted[name]
    margin = est.model_.predict(xgboost.DMatrix(X_TEST.to_numpy(dtype=float)), output_margin=True)
    np.testing.assert_array_equal(est.predict(X_TEST), sign * margin.astype(np.float64))


@pytest.mark.parametrize("name", ESTIMATORS)
def test_survival_curves_monotone_within_unit_interval(name, fitted):
    est = fitted[name]
    grid = np.concatenate([[0.0], est.unique_times_, [est.unique_times_[-1] * 3]])
    surv = est.predict_survival_at(X_TEST, grid)
    assert surv.shape == (len(X_TEST), grid.shape[0])
    assert np.all((surv >= 0) & (surv <= 1))
    assert np.all(np.diff(surv, axis=1) <= 1e-12)
    np.testing.assert_array_equal(surv[:, 0], 1.0)
    # beyond the training follow-up the last value is carried forward
    np.testing.assert_array_equal(surv[:, -1], surv[:, -2])
    arr = est.predict_survival_function(X_TEST, return_array=True)
    assert arr.shape == (len(X_TEST), est.unique_times_.shape[0])
    assert np.all((arr >= 0) & (arr <= 1)) and np.all(np.diff(arr, axis=1) <= 1e-12)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_survival_at_equals_survival_function(name, fitted):
    est = fitted[name]
    X = X_TEST.iloc[:25]
    functions = est.predict_survival_function(X)
    assert functions.shape == (25,)
    from_functions = np.vstack([fn(TIMES_DAYS) for fn in functions])
    np.testing.assert_allclose(est.predict_survival_at(X, TIMES_DAYS), from_functions, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        est.predict_survival_at(X, est.unique_times_),
        est.predict_survival_function(X, return_array=True),
        rtol=0,
        atol=1e-12,
    )
    assert np.isscalar(functions[0](30.0))
    assert est.predict_survival_at(X, 30.0).shape == (25, 1)


@pytest.mark.parametrize("times", [[-1.0], [np.nan], [[30.0, 60.0]], []])
def test_predict_survival_at_rejects_bad_times(times, fitted):
    with pytest.raises(ValueError, match="times_days"):
        fitted["coxph"].predict_survival_at(X_TEST, times)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_pickle_round_trip_gives_identical_predictions(name, fitted):
    est = fitted[name]
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict(X_TEST), est.predict(X_TEST))
    np.testing.assert_array_equal(
        back.predict_survival_at(X_TEST, TIMES_DAYS), est.predict_survival_at(X_TEST, TIMES_DAYS)
    )


@pytest.mark.parametrize("name", ESTIMATORS)
def test_deterministic_given_random_state(name, fitted):
    again = _new(name).fit(X_TRAIN, Y_TRAIN)
    np.testing.assert_array_equal(again.predict(X_TEST), fitted[name].predict(X_TEST))
    np.testing.assert_array_equal(
        again.predict_survival_at(X_TEST, TIMES_DAYS), fitted[name].predict_survival_at(X_TEST, TIMES_DAYS)
    )


# -- bad input -----------------------------------------------------------------------------------------------
def _y(event, time):
    return np.array(list(zip(event, time, strict=True)), dtype=[("os2_event", bool), ("os2_days", float)])


N = len(X_TRAIN)
BAD_Y = {
    "all censored": (_y(np.zeros(N, bool), Y_TRAIN["os2_days"]), "all samples are censored"),
    "negative time": (
        _y(Y_TRAIN["os2_event"], np.where(np.arange(N) == 3, -2.0, Y_TRAIN["os2_days"])),
        "observed time contains values smaller zero",
    ),
    "integer event": (
        np.array(
            list(zip(Y_TRAIN["os2_event"].astype(int), Y_TRAIN["os2_days"], strict=True)),
            dtype=[("os2_event", int), ("os2_days", float)],
        ),
        "elements of event indicator must be boolean, but found int64",
    ),
    "plain array": (Y_TRAIN["os2_days"], "y must be a structured array with the first field being a binary class"),
    "wrong length": (Y_TRAIN[:-1], "Found input variables with inconsistent numbers of samples"),
}


@pytest.mark.parametrize("case", BAD_Y)
@pytest.mark.parametrize("name", ESTIMATORS)
def test_bad_y_is_rejected_with_a_clear_message(name, case):
    y, message = BAD_Y[case]
    with pytest.raises(ValueError, match=message):
        make_estimator(name).fit(X_TRAIN, y)


def test_nan_in_X_rejected_by_cox_models():
    X = X_TRAIN.copy()
    X.iloc[0, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        make_estimator("coxph").fit(X, Y_TRAIN)


@pytest.mark.parametrize("name", ["rsf", "extra_trees", "xgb_cox", "xgb_aft"])
def test_tree_and_xgboost_families_accept_missing_values(name):
    X = X_TRAIN.mask(np.random.default_rng(5).uniform(size=X_TRAIN.shape) < 0.1)
    est = _new(name, n_estimators=20).fit(X, Y_TRAIN)
    assert np.all(np.isfinite(est.predict(X))) and np.all(np.isfinite(est.predict_survival_at(X, TIMES_DAYS)))


# -- family specifics ----------------------------------------------------------------------------------------
def test_coarsen_survival_times_rounds_events_up_and_censorings_down():
    event, time = Y_TRAIN["os2_event"], Y_TRAIN["os2_days"]
    grid, coarse = coarsen_survival_times(event, time, 20)
    assert grid.shape[0] <= 20 and np.all(np.isin(grid, time[event]))
    assert np.all(coarse[event] >= time[event]) and np.all(coarse[~event] <= time[~event])
    assert np.all(np.isin(coarse, np.append(grid, 0.0)))
    unchanged_grid, unchanged = coarsen_survival_times(event, time, None)
    np.testing.assert_array_equal(unchanged, time)
    np.testing.assert_array_equal(unchanged_grid, np.unique(time))


def test_rsf_uses_the_coarse_grid_and_clips_max_samples():
    est = RSF(n_estimators=10, max_unique_times=20, max_samples=4000, random_state=0).fit(X_TRAIN, Y_TRAIN)
    assert est.unique_times_.shape[0] <= 21
    assert est.model_.max_samples == len(X_TRAIN)


def test_gbsa_warns_above_the_sample_threshold(monkeypatch):
    monkeypatch.setattr(boosting_module, "GBSA_WARN_N_SAMPLES", 100)
    with pytest.warns(SlowFitWarning, match=r"300 samples .* grows with the square .* Use 'xgb_cox'"):
        make_estimator("gbsa", n_estimators=5, random_state=0).fit(X_TRAIN, Y_TRAIN)


def test_coxnet_predicts_at_its_alpha(fitted):
    est = fitted["coxnet"]
    assert est.model_.alphas_[-1] == est.alpha
    coef = est.model_.coef_[:, -1]
    assert np.all(np.sign(coef[:4]) == np.sign(LOG_HAZARD_COEF[:4]))


def test_xgb_cox_survival_uses_breslow_baseline_of_training_margins(fitted):
    est = fitted["xgb_cox"]
    event, time = Y_TRAIN["os2_event"], Y_TRAIN["os2_days"]
    risk = np.exp(est.predict(X_TRAIN))
    horizons = np.array([45.0, 180.0, 365.0])
    death_times = np.unique(time[event])
    increments = [event[time == t].sum() / risk[time >= t].sum() for t in death_times]
    cumulative_baseline = [np.sum(np.array(increments)[death_times <= h]) for h in horizons]
    expected = np.exp(-np.outer(np.exp(est.predict(X_TEST)), cumulative_baseline))
    np.testing.assert_allclose(est.predict_survival_at(X_TEST, horizons), expected, rtol=1e-9)


@pytest.mark.parametrize(
    ("distribution", "survival_at_median"), [("normal", 0.5), ("logistic", 0.5), ("extreme", np.exp(-1.0))]
)
def test_xgb_aft_survival_follows_its_distribution(distribution, survival_at_median):
    est = XGBAFT(n_estimators=50, aft_loss_distribution=distribution, random_state=0).fit(X_TRAIN, Y_TRAIN)
    predicted_time = np.exp(-est.predict(X_TEST))  # predict is minus the log time
    inside = predicted_time < Y_TRAIN["os2_days"].max()
    assert inside.sum() > 100
    surv = est.predict_survival_at(X_TEST[inside], predicted_time[inside])
    np.testing.assert_allclose(np.diag(surv), survival_at_median, rtol=1e-5)


@pytest.mark.parametrize("name", ["xgb_cox", "xgb_aft"])
def test_xgboost_families_accept_time_zero(name):
    time = Y_TRAIN["os2_days"].copy()
    time[:2] = 0.0  # one death and one censoring on the day of failure, whatever the events
    y = _y(Y_TRAIN["os2_event"], time)
    est = _new(name, n_estimators=20).fit(X_TRAIN, y)
    assert np.all(np.isfinite(est.predict(X_TRAIN)))
    with pytest.raises(ValueError, match="all observed times are 0"):
        _new(name).fit(X_TRAIN, _y(Y_TRAIN["os2_event"], np.zeros(N)))


def test_extra_trees_leaf_sizes_follow_the_cohort_size():
    """'auto' leaves: n // 200 clipped to [3, 15] (deep trees for small cohorts, bounded memory for large ones)."""
    from cartrisk.estimators.forest import ExtraTrees

    assert ExtraTrees()._leaf_sizes(300) == (6, 3)
    assert ExtraTrees()._leaf_sizes(1500) == (14, 7)
    assert ExtraTrees()._leaf_sizes(20_000) == (30, 15)
    assert ExtraTrees(min_samples_leaf=9)._leaf_sizes(300) == (18, 9)
    assert ExtraTrees(min_samples_split=40)._leaf_sizes(300) == (40, 3)
    assert make_estimator("extra_trees").get_params()["min_samples_leaf"] == "auto"
