"""Tests of cartrisk.groups: each statistic against a reference (sksurv, a published value, a hand computation)."""

from __future__ import annotations

import pickle
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sksurv.compare import compare_survival
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.linear_model.coxph import CoxPHOptimizer
from sksurv.metrics import concordance_index_censored, concordance_index_ipcw, cumulative_dynamic_auc
from sksurv.nonparametric import kaplan_meier_estimator
from sksurv.util import Surv

from cartrisk.data.survstats import km_at, km_median
from cartrisk.evaluation.coxreg import cox_partial_likelihood
from cartrisk.exceptions import StatisticalWarning
from cartrisk.groups import (
    Recalibrator,
    RiskGrouper,
    c_difference,
    calibration_before_after,
    compare_groupings,
    decision_curve,
    group_calibration,
    group_survival_curves,
    net_reclassification,
    observed_group_risk,
)
from cartrisk.groups._stats import bootstrap_harrell
from cartrisk.groups.reclassification import net_benefit
from cartrisk.units import months_to_days

H6 = months_to_days(6.0)
SHAPE, SCALE = 0.9, 250.0
GRID = np.arange(1.0, 731.0)
HORIZONS_DAYS = months_to_days(np.array([3.0, 6.0, 12.0]))


def _surv(y_event, y_time):
    return Surv.from_arrays(event=np.asarray(y_event, bool), time=np.asarray(y_time, float),
                            name_event="os2_event", name_time="os2_days")


def weibull_cohort(n: int, seed: int):
    """Failure timing (0 = >D90, 1 = D31-90, 2 = D0-30, DESCAR-T shares), LDH, a continuous factor; Weibull OS-2."""
    rng = np.random.default_rng(seed)
    timing = rng.choice([0, 1, 2], size=n, p=[0.345, 0.429, 0.226])
    lp = 0.5 * timing + 0.7 * rng.binomial(1, 0.39, n) + 0.4 * rng.normal(size=n)
    t = SCALE * (-np.log(rng.uniform(size=n)) / np.exp(lp)) ** (1 / SHAPE)
    c = rng.uniform(60, 720, n)
    return _surv(t <= c, np.ceil(np.minimum(t, c))), timing, lp


def true_survival(lp, times_days):
    return np.exp(-((np.asarray(times_days)[None, :] / SCALE) ** SHAPE) * np.exp(lp)[:, None])


RULE_LABELS = [">D90", "D31-90", "D0-30"]


@pytest.fixture(scope="module")
def train_set():
    return weibull_cohort(500, 11)


@pytest.fixture(scope="module")
def eval_set():
    return weibull_cohort(300, 12)


# --------------------------------------------------------------------------- Cox information
# Therneau & Grambsch (2000), appendix E, test data 1 (survival package tests/book1.R), Breslow ties:
# loglik = 2b - log(3r + 3) - 2 log(r + 3), I(b) = r/(r+1)^2 + 6r/(r+3)^2, r = exp(b); MLE b = 1.4752849.
BOOK_TIME = np.array([9, 1, 1, 6, 6, 8.0])
BOOK_EVENT = np.array([1, 1, 0, 1, 1, 0], bool)
BOOK_X = np.array([[0], [1], [1], [1], [0], [0.0]])


@pytest.mark.parametrize("beta", [0.0, 1.4752849, -0.7])
def test_breslow_partial_likelihood_matches_therneau_closed_form(beta):
    r = np.exp(beta)
    loglik, score, info = cox_partial_likelihood(BOOK_X, BOOK_EVENT, BOOK_TIME, [beta], ties="breslow")
    assert loglik == pytest.approx(2 * beta - np.log(3 * r + 3) - 2 * np.log(r + 3), rel=1e-12)
    assert score[0] == pytest.approx((6 + 3 * r - r**2) / ((r + 1) * (r + 3)), abs=1e-12)
    assert info[0, 0] == pytest.approx(r / (r + 1) ** 2 + 6 * r / (r + 3) ** 2, rel=1e-12)


def test_sksurv_coefficient_and_our_se_match_published_book_values():
    cox = CoxPHSurvivalAnalysis(ties="breslow").fit(BOOK_X, _surv(BOOK_EVENT, BOOK_TIME))
    assert cox.coef_[0] == pytest.approx(1.4752849, abs=1e-5)  # coxph(..., method="breslow") in book1.R
    r = (3 + np.sqrt(33)) / 2  # root of the score 6 + 3r - r^2 = 0
    se = 1 / np.sqrt(cox_partial_likelihood(BOOK_X, BOOK_EVENT, BOOK_TIME, cox.coef_, ties="breslow")[2][0, 0])
    assert se == pytest.approx(1 / np.sqrt(r / (r + 1) ** 2 + 6 * r / (r + 3) ** 2), rel=1e-5)
    info_at_zero = cox_partial_likelihood(BOOK_X, BOOK_EVENT, BOOK_TIME, [0.0], ties="breslow")[2][0, 0]
    assert info_at_zero == pytest.approx(0.625)  # var 1.6 at b = 0


def test_cox_information_matches_sksurv_hessian_and_numerical_hessian(train_set):
    y, timing, _ = train_set
    event, time = y["os2_event"], y["os2_days"]
    X = np.column_stack([timing == 1, timing == 2]).astype(float)
    beta = CoxPHSurvivalAnalysis(ties="breslow").fit(X, y).coef_
    _, score, info = cox_partial_likelihood(X, event, time, beta, ties="breslow")
    opt = CoxPHOptimizer(X, event, time, alpha=np.zeros(2), ties="breslow")
    opt.update(beta)
    n = len(time)
    np.testing.assert_allclose(info, n * opt.hessian, rtol=1e-10)
    np.testing.assert_allclose(score, -n * opt.gradient, atol=1e-10)
    assert np.abs(score).max() < 1e-4  # sksurv's coefficients maximise our likelihood
    h = 1e-4

    def f(b):
        return opt.nlog_likelihood(b) * n

    numerical = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * h, np.eye(2)[j] * h
            second = f(beta + ei + ej) - f(beta + ei - ej) - f(beta - ei + ej) + f(beta - ei - ej)
            numerical[i, j] = second / (4 * h**2)
    np.testing.assert_allclose(info, numerical, rtol=1e-5)


def test_hazard_ratios_match_cox_fit(eval_set):
    y, timing, lp = eval_set
    rule = pd.Categorical.from_codes(timing, RULE_LABELS)
    res = compare_groupings(y, {"rule": rule}, n_boot=1, random_state=0)
    hr = res.hazard_ratios
    X = np.column_stack([timing == 1, timing == 2]).astype(float)
    beta = CoxPHSurvivalAnalysis(ties="breslow").fit(X, y).coef_
    cov = np.linalg.inv(cox_partial_likelihood(X, y["os2_event"], y["os2_days"], beta, ties="breslow")[2])
    low = hr[hr.contrast == "vs lowest"]
    np.testing.assert_allclose(low.coef, beta, rtol=1e-10)
    np.testing.assert_allclose(low.se, np.sqrt(np.diag(cov)), rtol=1e-10)
    np.testing.assert_allclose(low.hr_lower, np.exp(beta - 1.959963984540054 * np.sqrt(np.diag(cov))), rtol=1e-10)
    prev = hr[(hr.contrast == "vs previous") & (hr.group == "D0-30")].iloc[0]
    assert prev.versus == "D31-90"
    assert prev.coef == pytest.approx(beta[1] - beta[0])
    assert prev.se == pytest.approx(np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]))
    assert list(low.versus) == [">D90", ">D90"]


def test_group_without_deaths_warns_and_gives_nan_hazard_ratios():
    y = _surv([1, 1, 0, 0, 1, 0], [10, 20, 30, 40, 15, 50])
    groups = np.array([0, 0, 1, 1, 0, 1])
    with pytest.warns(StatisticalWarning, match="have no deaths"):
        res = compare_groupings(y, {"g": groups}, horizon_months=0.5, n_boot=1, random_state=0)
    assert res.hazard_ratios.hr.isna().all()


# --------------------------------------------------------------------------- KM, medians, log-rank, C, AUC
def test_group_table_and_logrank_match_sksurv(eval_set):
    y, timing, lp = eval_set
    rule = pd.Categorical.from_codes(timing, RULE_LABELS)
    res = compare_groupings(y, {"rule": rule}, n_boot=1, random_state=0)
    event, time = y["os2_event"], y["os2_days"]
    for k, lab in enumerate(RULE_LABELS):
        row = res.groups.set_index("group").loc[lab]
        t, s, ci = kaplan_meier_estimator(event[timing == k], time[timing == k], conf_type="log-log")
        i = np.searchsorted(t, H6, side="right") - 1
        assert (row.observed, row.observed_lower, row.observed_upper) == pytest.approx((s[i], ci[0, i], ci[1, i]))
        assert row.median_months * 30.4375 == pytest.approx(t[np.flatnonzero(s <= 0.5)[0]])
        assert row.median_lower <= row.median_months <= row.median_upper
        assert row.n == (timing == k).sum() and row.events == event[timing == k].sum()
    chisq, p = compare_survival(y, timing)
    d = res.discrimination.iloc[0]
    assert (d.logrank_chisq, d.logrank_p, d.logrank_df) == pytest.approx((chisq, p, 2))


def test_km_read_outs_at_edges():
    event, time = np.array([1, 0, 1, 0], bool), np.array([5, 10, 20, 30.0])
    s, lo, hi = km_at(event, time, [0, 5, 29, 30, 31])
    np.testing.assert_allclose(s[:4], [1, 0.75, 0.375, 0.375])
    assert np.isnan(s[4]) and np.isnan(lo[4]) and np.isnan(hi[4])  # beyond the last (censored) follow-up
    s_dead, _, _ = km_at(np.array([1, 1], bool), np.array([5, 10.0]), [50])
    assert s_dead[0] == 0.0
    assert np.isnan(km_median(event[:0], time[:0])[0])
    assert km_median(event, time)[0] == 20.0


def test_discrimination_matches_sksurv(train_set, eval_set):
    (y_tr, _, _), (y, timing, lp) = train_set, eval_set
    res = compare_groupings(y, {"rule": timing, "model": np.digitize(lp, [0.5, 1.2])}, {"model": lp},
                            y_train=y_tr, n_boot=1, random_state=0)
    d = res.discrimination.set_index("grouping")
    event, time = y["os2_event"], y["os2_days"]
    assert d.loc["model", "harrell_c"] == pytest.approx(concordance_index_censored(event, time, lp)[0])
    assert d.loc["rule", "harrell_c"] == pytest.approx(concordance_index_censored(event, time, timing * 1.0)[0])
    assert d.loc["model", "uno_c"] == pytest.approx(concordance_index_ipcw(y_tr, y, lp, tau=months_to_days(12))[0])
    assert d.loc["model", "td_auc"] == pytest.approx(cumulative_dynamic_auc(y_tr, y, lp, [H6])[0][0])
    assert d.loc["model", "harrell_c"] > d.loc["rule", "harrell_c"]


def test_bootstrap_harrell_equals_sksurv_on_explicit_resamples(eval_set):
    y, timing, lp = eval_set
    event, time = y["os2_event"], y["os2_days"]
    rng = np.random.default_rng(3)
    for _ in range(3):
        idx = rng.integers(0, len(time), len(time))
        weights = np.bincount(idx, minlength=len(time))[None, :].astype(float)
        ours = bootstrap_harrell(event, time, [lp, timing * 1.0], weights)[0]
        assert ours[0] == pytest.approx(concordance_index_censored(event[idx], time[idx], lp[idx])[0], rel=1e-12)
        assert ours[1] == pytest.approx(concordance_index_censored(event[idx], time[idx], timing[idx] * 1.0)[0])


def test_c_difference_detects_a_better_score_and_is_reproducible(eval_set):
    y, timing, lp = eval_set
    a = c_difference(y, lp, timing, n_boot=300, random_state=5)
    assert a == c_difference(y, lp, timing, n_boot=300, random_state=5)
    assert a.difference == pytest.approx(a.c_a - a.c_b)
    assert 0 < a.lower < a.difference < a.upper
    assert a.c_a_lower < a.c_a < a.c_a_upper and a.n_boot == 300
    with pytest.raises(ValueError, match="n_boot must be at least 1"):
        c_difference(y, lp, timing, n_boot=0)


def test_identical_scores_show_no_difference(eval_set):
    y, timing, lp = eval_set
    rule = pd.Categorical.from_codes(timing, RULE_LABELS)
    same = pd.Categorical.from_codes(timing, ["low", "intermediate", "high"])
    res = compare_groupings(y, {"rule": rule, "model": same}, {"model": timing * 2.0 + 1}, n_boot=200, random_state=1)
    cd = res.c_differences.iloc[0]
    assert cd.difference == 0 and cd.lower <= 0 <= cd.upper
    matrix = res.reclassification_matrix("model")
    assert list(matrix.index) == RULE_LABELS and list(matrix.columns) == ["low", "intermediate", "high"]
    np.testing.assert_array_equal(matrix.to_numpy(), np.diag(np.bincount(timing)))
    nri = res.nri.iloc[0]
    assert nri.nri == 0 and nri.n_up == 0 and nri.n_down == 0
    assert res.discrimination.harrell_c.nunique() == 1


def test_reclassification_cells_match_km(eval_set):
    y, timing, lp = eval_set
    model = RiskGrouper(sizes=(0.345, 0.429, 0.226)).fit(lp).predict(lp)
    res = compare_groupings(y, {"rule": timing, "model": model}, {"model": lp}, n_boot=1, random_state=0)
    cell = res.reclassification.query("reference_group == '2' and group == 'high'").iloc[0]
    m = (timing == 2) & (np.asarray(model) == "high")
    assert cell.n == m.sum()
    assert cell.observed == pytest.approx(km_at(y["os2_event"][m], y["os2_days"][m], H6)[0][0])
    assert res.reclassification_matrix("model").to_numpy().sum() == len(timing)


# --------------------------------------------------------------------------- NRI and net benefit by hand
def test_nri_without_early_censoring_is_the_classical_nri():
    # deaths by 6 months: a (up), b (up), c (down); survivors beyond: d (down), e (up), f (same)
    y = _surv([1, 1, 1, 0, 1, 0], [30, 60, 90, 400, 300, 500])
    old, new = [0, 0, 1, 1, 0, 0], [1, 1, 0, 0, 1, 0]
    r = net_reclassification(y, old, new, horizon_months=6)
    assert r.nri_events == pytest.approx((2 - 1) / 3)
    assert r.nri_nonevents == pytest.approx((1 - 1) / 3)
    assert (r.n_up, r.n_down) == (3, 2)


def test_nri_with_censoring_by_hand():
    # up: A death 50, B cens 100, C cens 300, C2 cens 350 -> S_up(6 mo) = 3/4
    # down: D cens 80, E cens 400 -> S_down = 1; same: F death 120, G cens 250, H death 20
    # all: 20 (9 at risk) -> 8/9, 50 (8) -> 7/9, 120 (5) -> 28/45
    time = [50, 100, 300, 350, 80, 400, 120, 250, 20]
    event = [1, 0, 0, 0, 0, 0, 1, 0, 1]
    old = [0, 0, 0, 0, 1, 1, 0, 1, 1]
    new = [1, 1, 1, 1, 0, 0, 0, 1, 1]
    r = net_reclassification(_surv(event, time), old, new, horizon_months=6)
    s_all = Fraction(28, 45)
    assert r.km_all == pytest.approx(float(s_all)) and r.km_up == 0.75 and r.km_down == 1.0
    expected_e = (4 * Fraction(1, 4) - 2 * 0) / (9 * (1 - s_all))
    expected_ne = (2 * 1 - 4 * Fraction(3, 4)) / (9 * s_all)
    assert expected_e == Fraction(5, 17) and expected_ne == Fraction(-5, 28)
    assert r.nri_events == pytest.approx(float(expected_e))
    assert r.nri_nonevents == pytest.approx(float(expected_ne))
    assert r.nri == pytest.approx(float(expected_e + expected_ne))
    with pytest.raises(ValueError, match="same number of groups"):
        net_reclassification(_surv(event, time), old, [0, 1, 2, 0, 1, 2, 0, 1, 2])


TINY_TIME = [30, 60, 90, 120, 190, 200, 250, 300, 100, 400]
TINY_EVENT = [1, 1, 0, 1, 0, 1, 0, 0, 0, 1]
TINY_RISK = [0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.3, 0.2, 0.1]


def test_net_benefit_by_hand():
    y = _surv(TINY_EVENT, TINY_TIME)
    # horizon 6 months = 182.6 days
    # p_t = 0.5: treat the 5 first; KM 30 -> 4/5, 60 -> 3/5, 90 cens, 120 (2 at risk) -> 3/10, 190 cens
    # p_t = 0.25: treat 8; KM 30 -> 7/8, 60 -> 6/8, 90 cens, 120 (5 at risk) -> 6/10
    # p_t = 0.8: treat 2 (risk >= p_t), both dead by 60 -> S = 0
    # p_t = 0.65: treat 3, the last one censored at 90 -> S not estimable at 6 months
    nb, share = net_benefit(y, TINY_RISK, [0.5, 0.25, 0.95, 0.8, 0.65], H6)
    assert nb[0] == pytest.approx(0.5 * ((1 - 0.3) - 0.3 * 0.5 / 0.5))
    assert nb[1] == pytest.approx(0.8 * ((1 - 0.6) - 0.6 * 0.25 / 0.75))
    assert nb[2] == 0.0
    assert nb[3] == pytest.approx(0.2 * 1.0)
    assert np.isnan(nb[4])
    np.testing.assert_allclose(share, [0.5, 0.8, 0.0, 0.2, 0.3])
    # treat all: KM 30 -> 9/10, 60 -> 8/10, 90, 100 cens, 120 (6 at risk) -> 2/3
    curve = decision_curve(y, {"model": TINY_RISK}, horizon_months=6, thresholds=[0.25, 0.5])
    nb_all = curve.query("strategy == 'treat all'").net_benefit.to_numpy()
    np.testing.assert_allclose(nb_all, [1 / 3 - (2 / 3) * (1 / 3), 1 / 3 - (2 / 3) * 1])
    assert (curve.query("strategy == 'treat none'").net_benefit == 0).all()
    np.testing.assert_allclose(curve.query("strategy == 'model'").net_benefit, [nb[1], nb[0]])
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        decision_curve(y, {"model": TINY_RISK}, thresholds=[0.0, 0.5])


def test_observed_group_risk_is_one_minus_group_km(train_set, eval_set):
    (y_tr, t_tr, _), (y, timing, _) = train_set, eval_set
    risk = observed_group_risk(y_tr, t_tr, timing, horizon_months=6)
    for k in range(3):
        expected = 1 - km_at(y_tr["os2_event"][t_tr == k], y_tr["os2_days"][t_tr == k], H6)[0][0]
        np.testing.assert_allclose(risk[timing == k], expected)
    res = compare_groupings(y, {"rule": timing}, mortality={"rule": risk}, n_boot=1, random_state=0)
    assert set(res.decision_curve.strategy) == {"rule", "treat all", "treat none"}


# --------------------------------------------------------------------------- RiskGrouper
@pytest.mark.parametrize("sizes", [(0.773, 0.227), (0.345, 0.429, 0.227), (0.31, 0.26, 0.17, 0.26)])
def test_quantile_groups_have_the_asked_sizes(sizes):
    scores = np.random.default_rng(0).normal(size=1000)
    g = RiskGrouper(sizes=sizes).fit(scores)
    counts = np.bincount(g.transform(scores), minlength=len(sizes))
    np.testing.assert_allclose(counts, 1000 * np.asarray(sizes) / sum(sizes), atol=1.0)
    np.testing.assert_allclose(g.train_shares_, counts / 1000)


def test_n_groups_are_equal_and_labels_ordered():
    scores = np.random.default_rng(1).normal(size=600)
    groups = RiskGrouper(method="n_groups", n_groups=4).fit_predict(scores)
    assert isinstance(groups, pd.Categorical) and groups.ordered
    assert list(groups.categories) == ["low", "intermediate-low", "intermediate-high", "high"]
    np.testing.assert_array_equal(pd.Series(groups).value_counts(sort=False).to_numpy(), [150] * 4)
    top = scores > np.quantile(scores, 0.75)
    assert (groups[top] == "high").all()


def test_cut_points_come_from_training_predictions_only():
    rng = np.random.default_rng(2)
    train_scores, test_a = rng.normal(size=400), rng.normal(size=100)
    g = RiskGrouper(sizes=(0.773, 0.227)).fit(train_scores)
    cuts = g.cutpoints_.copy()
    groups_a = g.transform(test_a)
    g.transform(test_a * 10 + 5)
    np.testing.assert_array_equal(g.cutpoints_, cuts)
    np.testing.assert_array_equal(cuts, np.quantile(train_scores, [0.773]))
    np.testing.assert_array_equal(groups_a, (test_a > cuts[0]).astype(int))
    both = g.transform(np.r_[test_a, rng.normal(size=50) + 3])
    np.testing.assert_array_equal(both[:100], groups_a)  # a patient's group depends on their own score only


def test_threshold_method_and_group_curves(train_set):
    y, _, lp = train_set
    curves = true_survival(lp, GRID)
    s6 = true_survival(lp, [H6])[:, 0]
    g = RiskGrouper(method="threshold", threshold=0.25, labels=["standard", "very high"])
    g.fit(None, s6, y, surv_curves=curves, times_days=GRID)
    groups = g.predict(surv_at_horizon=s6)
    np.testing.assert_array_equal(np.asarray(groups) == "very high", s6 < 0.25)
    np.testing.assert_allclose(g.group_survival_["very high"], curves[s6 < 0.25].mean(axis=0))
    med_grid = GRID[np.flatnonzero(curves[s6 >= 0.25].mean(axis=0) <= 0.5)[0]]
    assert g.group_median_months_["standard"] == pytest.approx(med_grid / 30.4375)
    g3 = RiskGrouper(method="threshold", threshold=(0.25, 0.5)).fit(surv_at_horizon=s6)
    np.testing.assert_array_equal(g3.transform(surv_at_horizon=s6), (s6 < 0.5).astype(int) + (s6 < 0.25))
    grid6 = np.sort(np.r_[GRID, H6])
    from_curves = RiskGrouper(method="threshold", threshold=0.25).fit(
        surv_curves=true_survival(lp, grid6), times_days=grid6)
    np.testing.assert_array_equal(from_curves.transform(surv_at_horizon=s6), g.transform(surv_at_horizon=s6))


def test_grouper_contract():
    scores = np.random.default_rng(4).normal(size=50)
    g = RiskGrouper(sizes=(0.5, 0.5))
    with pytest.raises(NotFittedError):
        g.predict(scores)
    assert clone(g).get_params() == g.get_params()
    fitted = pickle.loads(pickle.dumps(g.fit(scores)))
    np.testing.assert_array_equal(fitted.transform(scores), g.transform(scores))
    assert fitted.group_survival_ is None


@pytest.mark.parametrize(
    ("params", "fit_kwargs", "message"),
    [
        ({"method": "kmeans"}, {}, "The 'method' parameter of RiskGrouper must be"),
        ({}, {}, "sizes is required for method='quantiles'"),
        ({"sizes": (0.5, 0.6)}, {}, "sizes must sum to 1"),
        ({"sizes": (1.0,)}, {}, "sizes must be at least two positive shares"),
        ({"method": "threshold"}, {"surv_at_horizon": [0.5, 0.1]}, "threshold is required"),
        ({"method": "threshold", "threshold": 0.3}, {}, "surv_at_horizon .* is required"),
        ({"method": "threshold", "threshold": (0.3, 1.2)}, {"surv_at_horizon": [0.5, 0.1]}, "distinct survival"),
        ({"method": "n_groups", "labels": ["a", "b"]}, {"risk_scores": [1, 2, 3]}, "labels must be 3 distinct"),
        ({"method": "n_groups"}, {"risk_scores": [1, np.nan, 3]}, "risk_scores contains NaN"),
        ({"method": "n_groups", "n_groups": 1}, {}, "The 'n_groups' parameter of RiskGrouper"),
    ],
)
def test_grouper_rejects_bad_input(params, fit_kwargs, message):
    with pytest.raises(ValueError, match=message):
        RiskGrouper(**params).fit(**fit_kwargs)


def test_tied_scores_leave_an_empty_group_with_a_warning():
    with pytest.warns(StatisticalWarning, match="are empty in the training predictions"):
        RiskGrouper(method="n_groups", n_groups=3).fit(np.r_[np.zeros(8), 1.0, 2.0])


# --------------------------------------------------------------------------- group calibration, recalibration
def test_group_calibration_against_km_and_mean_prediction(eval_set):
    y, timing, lp = eval_set
    pred = true_survival(lp, HORIZONS_DAYS)
    groups = pd.Categorical.from_codes(timing, RULE_LABELS, ordered=True)
    cal = group_calibration(y, groups, pred, surv_curves=true_survival(lp, GRID), times_days=GRID)
    assert list(cal.horizons.group.cat.categories) == RULE_LABELS and len(cal.horizons) == 9
    event, time = y["os2_event"], y["os2_days"]
    for k, lab in enumerate(RULE_LABELS):
        m = timing == k
        rows = cal.horizons[cal.horizons.group == lab]
        obs, lo, hi = km_at(event[m], time[m], HORIZONS_DAYS)
        np.testing.assert_allclose(rows.observed, obs)
        np.testing.assert_allclose(rows.observed_lower, lo)
        np.testing.assert_allclose(rows.predicted, pred[m].mean(axis=0))
        med = cal.medians.set_index("group").loc[lab]
        assert med.observed_median_months * 30.4375 == pytest.approx(km_median(event[m], time[m])[0])
        curve = true_survival(lp[m], GRID).mean(axis=0)
        assert med.predicted_median_months * 30.4375 == pytest.approx(GRID[np.flatnonzero(curve <= 0.5)[0]])
    assert cal.horizons.difference.abs().max() < 0.15  # the truth is calibrated
    np.testing.assert_allclose(group_survival_curves(groups, true_survival(lp, GRID), GRID)[">D90"],
                               true_survival(lp[timing == 0], GRID).mean(axis=0))


def test_recalibrator_repairs_doubled_hazard(train_set, eval_set):
    (y_tr, _, lp_tr), (y, timing, lp) = train_set, eval_set
    rec = Recalibrator().fit(true_survival(lp_tr, HORIZONS_DAYS) ** 2, y_tr)  # predictions with twice the hazard
    assert np.all(np.abs(rec.slope_ - 1) < 0.25)
    np.testing.assert_allclose(rec.baseline_cumhaz_, 0.5, rtol=0.3)  # H(h|x) = H0 * 2 e^x, so H0 ~ 1/2
    table = calibration_before_after(y, timing, true_survival(lp, HORIZONS_DAYS) ** 2, rec)
    err = table.assign(abs_diff=table.difference.abs()).groupby("stage").abs_diff.mean()
    assert err["after"] < err["before"] / 2
    out = rec.transform(true_survival(lp, HORIZONS_DAYS) ** 2)
    assert np.all(np.diff(out, axis=1) <= 0) and np.all((out >= 0) & (out <= 1))
    order_before = np.argsort(true_survival(lp, [H6])[:, 0], kind="stable")
    np.testing.assert_array_equal(np.argsort(out[:, 1], kind="stable"), order_before)  # ranking kept


def test_recalibrator_offset_is_the_breslow_baseline_refit(train_set):
    y, _, lp = train_set
    s6 = true_survival(lp, [H6])
    rec = Recalibrator(horizons_months=[6.0], fit_slope=False).fit(s6, y)
    assert rec.slope_[0] == 1.0
    # Breslow with offset x = cloglog S(h), deaths by h only
    x = np.log(-np.log(s6[:, 0]))
    event, time = y["os2_event"], y["os2_days"]
    deaths = np.unique(time[event & (time <= H6)])
    h0 = sum((event & (time == t)).sum() / np.exp(x[time >= t]).sum() for t in deaths)
    assert rec.baseline_cumhaz_[0] == pytest.approx(h0, rel=1e-10)
    with pytest.raises(ValueError, match="X must hold predicted survival at the 1 horizons"):
        rec.transform(np.ones((3, 2)))


# --------------------------------------------------------------------------- argument checks
def test_compare_groupings_rejects_bad_input(eval_set):
    y, timing, lp = eval_set
    labels = np.array(RULE_LABELS)[timing]
    with pytest.raises(ValueError, match="plain labels carry no risk order"):
        compare_groupings(y, {"rule": labels})
    with pytest.raises(ValueError, match="reference 'x' is not among"):
        compare_groupings(y, {"rule": timing}, reference="x")
    with pytest.raises(ValueError, match=r"horizon 60 months \(1826 days\) is beyond the follow-up"):
        compare_groupings(y, {"rule": timing}, horizon_months=60)
    with pytest.raises(ValueError, match="fewer than two non-empty groups"):
        compare_groupings(y, {"rule": np.zeros(len(timing), int)})
    with pytest.raises(ValueError, match="scores given for unknown groupings"):
        compare_groupings(y, {"rule": timing}, {"model": lp})
    ordered = compare_groupings(y, {"rule": labels}, {"rule": timing * 1.0}, n_boot=1, random_state=0)
    assert list(ordered.groups.group) == RULE_LABELS  # plain labels ordered by mean score


def test_recalibrator_contract_and_bad_input(train_set):
    y, _, lp = train_set
    pred = true_survival(lp, HORIZONS_DAYS)
    rec = Recalibrator()
    with pytest.raises(NotFittedError):
        rec.transform(pred)
    assert clone(rec).get_params() == {"fit_slope": True, "horizons_months": (3.0, 6.0, 12.0)}
    fitted = pickle.loads(pickle.dumps(rec.fit(pred, y)))
    np.testing.assert_allclose(fitted.transform(pred), rec.transform(pred))
    with pytest.raises(ValueError, match="horizons_months must be positive"):
        Recalibrator(horizons_months=[-1.0, 6.0, 12.0]).fit(pred, y)
    with pytest.raises(ValueError, match=r"horizon 0.01 months \(0 days\) is before the first observed time"):
        Recalibrator(horizons_months=[0.01]).fit(pred[:, :1], y)
    with pytest.raises(ValueError, match=r"horizon 60 months \(1826 days\) is beyond the follow-up"):
        Recalibrator(horizons_months=[60.0]).fit(pred[:, :1], y)
    early = _surv(np.r_[False, y["os2_event"][1:]], np.r_[1.0, np.maximum(y["os2_days"][1:], 2.0)])
    with pytest.raises(ValueError, match=r"no events by horizon 0.0328542 months \(1 days\)"):
        Recalibrator(horizons_months=[1 / 30.4375]).fit(pred[:, :1], early)
    with pytest.raises(ValueError, match="survival probabilities in \\[0, 1\\]"):
        rec.transform(pred * 2)
    with pytest.warns(StatisticalWarning, match="calibration slope <= 0"):
        Recalibrator(horizons_months=[6.0]).fit(1 - true_survival(lp, [H6]), y)  # reversed ranking


def test_group_calibration_rejects_mismatched_shapes(eval_set):
    y, timing, lp = eval_set
    with pytest.raises(ValueError, match=r"surv_pred_at_horizons has shape \(300, 2\), expected \(300, 3\)"):
        group_calibration(y, timing, np.ones((300, 2)))
    with pytest.raises(ValueError, match="groups has 10 values, expected 300"):
        group_calibration(y, timing[:10], np.ones((300, 3)))
    with pytest.raises(ValueError, match="groups has missing values"):
        group_calibration(y, np.where(timing == 0, np.nan, timing), np.ones((300, 3)))


# --------------------------------------------------------------------------- continuous scores, chosen pairs
def test_continuous_scores_and_chosen_pairs_share_one_bootstrap(eval_set):
    y, timing, lp = eval_set
    model = RiskGrouper(sizes=(0.345, 0.429, 0.226)).fit(lp).predict(lp)
    pairs = [("model", "rule"), ("score", "rule"), ("score", "model")]
    res = compare_groupings(y, {"rule": timing, "model": model}, continuous={"score": lp}, pairs=pairs, n_boot=200,
                            random_state=3)
    d = res.discrimination.set_index("grouping")
    assert d.loc["score", "kind"] == "score" and d.loc["model", "kind"] == "grouping"
    assert np.isnan(d.loc["score", "n_groups"]) and np.isnan(d.loc["score", "logrank_p"])
    harrell = concordance_index_censored(y["os2_event"], y["os2_days"], lp)[0]
    assert d.loc["score", "harrell_c"] == pytest.approx(harrell)
    assert set(res.groups.grouping) == set(res.hazard_ratios.grouping) == {"rule", "model"}
    cd = res.c_differences.set_index(["grouping", "reference"])
    assert list(cd.index) == pairs
    alone = c_difference(y, lp, timing * 1.0, n_boot=200, random_state=3)  # same seed, same resamples
    row = cd.loc[("score", "rule")]
    assert (row.difference, row.lower, row.upper) == pytest.approx((alone.difference, alone.lower, alone.upper))
    assert set(res.reclassification.grouping) == {"model"} and len(res.nri) == 1  # scores have no groups
    assert res.reclassification_matrix("model", reference="rule").to_numpy().sum() == len(timing)
    with pytest.raises(ValueError, match="no reclassification table for 'score' against 'rule'"):
        res.reclassification_matrix("score")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"pairs": [("model", "x")]}, r"pair \('model', 'x'\) names 'x', not among"),
     ({"pairs": [("rule", "rule")]}, "compares 'rule' with itself"),
     ({"continuous": {"rule": [0.0]}}, "names used both as grouping and as continuous score"),
     ({"continuous": {"s": [0.0]}}, r"continuous\['s'\] has 1 values, expected 300")],
)
def test_compare_groupings_rejects_bad_pairs(eval_set, kwargs, message):
    y, timing, _ = eval_set
    with pytest.raises(ValueError, match=message):
        compare_groupings(y, {"rule": timing, "model": 2 - timing}, n_boot=1, **kwargs)


def test_grouper_from_stored_cut_points_predicts_like_the_fitted_one():
    scores = np.random.default_rng(5).normal(size=200)
    fitted = RiskGrouper(sizes=(0.345, 0.429, 0.226)).fit(scores)
    stored = RiskGrouper.from_cutpoints(fitted.cutpoints_.tolist())
    np.testing.assert_array_equal(stored.predict(scores), fitted.predict(scores))
    assert stored.train_shares_ is None and stored.labels_ == ["low", "intermediate", "high"]
    s6 = np.linspace(0.05, 0.95, 50)
    thr = RiskGrouper.from_cutpoints([0.5, 0.25], method="threshold", labels=["a", "b", "c"])
    np.testing.assert_array_equal(thr.transform(surv_at_horizon=s6), (s6 < 0.5).astype(int) + (s6 < 0.25))
    with pytest.raises(ValueError, match="cutpoints must be non-decreasing finite risk scores"):
        RiskGrouper.from_cutpoints([1.0, 0.0])
    with pytest.raises(ValueError, match="labels must be 2 distinct names"):
        RiskGrouper.from_cutpoints([0.0], labels=["a", "b", "c"])
