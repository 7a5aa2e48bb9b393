"""Tests for cartrisk.evaluation.calibration on a Weibull proportional-hazards truth."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.nonparametric import kaplan_meier_estimator
from sksurv.util import Surv

from cartrisk.evaluation.calibration import (
    calibration_at_horizon,
    check_horizons,
    d_calibration,
    horizon_problems,
    lookup_survival,
    survival_at_own_time,
)
from cartrisk.exceptions import StatisticalWarning
from cartrisk.units import months_to_days

H12 = months_to_days(12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("horizon_months", [3, 12])
def test_true_survival_is_calibrated(weibull, seed, horizon_months):
    _, lp, y = weibull.cohort(2000, seed)
    h = months_to_days(horizon_months)
    cal = calibration_at_horizon(y, weibull.survival(lp, [h])[:, 0], h)
    assert cal.ici < 0.03
    assert cal.e50 <= cal.e90
    assert 0.8 < cal.slope < 1.2
    assert abs(cal.calibration_in_the_large) < 0.04
    assert cal.horizon_months == pytest.approx(horizon_months)


def test_cubed_survival_is_flagged_by_ici_and_calibration_in_the_large(weibull):
    _, lp, y = weibull.cohort(2000, 0)
    s = weibull.survival(lp, [H12])[:, 0]
    good, bad = calibration_at_horizon(y, s, H12), calibration_at_horizon(y, s**3, H12)
    assert bad.ici > 0.1 > good.ici
    assert bad.calibration_in_the_large > 0.1  # predicted survival far too low
    # S**3 only shifts log(-log S) by log 3: under a PH truth the slope stays near 1,
    # so the slope alone does not flag it (the ICI and the intercept do).
    assert 0.8 < bad.slope < 1.2


def test_overconfident_predictions_have_slope_below_one(weibull):
    _, lp, y = weibull.cohort(2000, 1)
    cll = np.log(-np.log(weibull.survival(lp, [H12])[:, 0]))
    overconfident = np.exp(-np.exp(2 * (cll - cll.mean()) + cll.mean()))  # log(-log S) stretched twofold
    cal = calibration_at_horizon(y, overconfident, H12)
    assert 0.4 < cal.slope < 0.6
    assert cal.ici > 0.05


def test_table_by_deciles_against_direct_kaplan_meier(weibull):
    _, lp, y = weibull.cohort(1000, 3)
    s = weibull.survival(lp, [H12])[:, 0]
    table = calibration_at_horizon(y, s, H12, n_groups=10).table
    assert list(table["group"]) == list(range(1, 11))
    assert table["n"].sum() == 1000
    assert np.all(np.diff(table["mean_predicted"]) < 0)  # group 1 = lowest predicted risk
    assert np.all((table["observed_lower"] <= table["observed"]) & (table["observed"] <= table["observed_upper"]))
    top = s >= np.quantile(s, 0.9)
    km_t, km_s, km_ci = kaplan_meier_estimator(y["os2_event"][top], y["os2_days"][top], conf_type="log-log")
    i = np.searchsorted(km_t, H12, side="right") - 1
    assert table["observed"].iloc[0] == pytest.approx(km_s[i])
    assert table["observed_upper"].iloc[0] == pytest.approx(km_ci[1, i])


def test_two_level_rule_gives_two_groups_and_a_finite_slope(weibull):
    X, lp, y = weibull.cohort(800, 4)
    s = np.where(X[:, 0] > 0, 0.2, 0.5)
    cal = calibration_at_horizon(y, s, H12)
    assert len(cal.table) == 2
    assert np.isfinite(cal.slope) and np.isfinite(cal.ici)


def test_constant_prediction_warns_and_compares_with_kaplan_meier(weibull):
    _, _, y = weibull.cohort(500, 5)
    with pytest.warns(StatisticalWarning, match=r"calibration slope at horizon 12 months \(365 days\) is undefined"):
        cal = calibration_at_horizon(y, np.full(500, 0.3), H12)
    assert np.isnan(cal.slope)
    assert cal.ici == pytest.approx(abs(cal.observed - 0.3))


def test_horizon_guard_message_is_pinned():
    y = Surv.from_arrays(event=[True, False, True, True], time=[30.0, 100.0, 200.0, 300.0])
    msg = (
        r"horizon 12 months \(365 days\) is beyond the follow-up of this fold \(max observed 300 days in the "
        r"test set\); shorten the horizon or use fewer folds"
    )
    with pytest.raises(ValueError, match=msg):
        calibration_at_horizon(y, np.full(4, 0.5), H12)
    with pytest.raises(ValueError, match=r"horizon 12 months \(365 days\) is beyond .*, 200 days in the training set"):
        check_horizons([H12], y, y[:3])
    problems = horizon_problems([months_to_days(3), H12], y)
    assert problems[0] is None and problems[1].startswith("horizon 12 months (365 days) is beyond")


EVENTS_EARLY = ([True, True, True, False], [10.0, 100.0, 200.0, 300.0])


@pytest.mark.parametrize(
    ("target", "surv", "horizon_days", "n_groups", "match"),
    [
        (EVENTS_EARLY, [0.5] * 4, 5.0, 10, r"horizon 0.16\d* months \(5 days\) is before the first observed time"),
        (
            ([False, False, True, True], [50.0, 150.0, 200.0, 300.0]),
            [0.5] * 4,
            months_to_days(3),
            10,
            r"no events by horizon 3 months \(91 days\) in the test set",
        ),
        (EVENTS_EARLY, [0.5] * 3, 50.0, 10, r"surv_prob has shape \(3,\), expected \(4,\)"),
        (EVENTS_EARLY, [0.5, 1.2, 0.4, 0.3], 50.0, 10, r"surv_prob must hold survival probabilities in \[0, 1\]"),
        (EVENTS_EARLY, [0.5] * 4, 50.0, 0, r"n_groups must be at least 1, got 0"),
    ],
)
def test_calibration_bad_input(target, surv, horizon_days, n_groups, match):
    y = Surv.from_arrays(event=target[0], time=target[1])
    with pytest.raises(ValueError, match=match):
        calibration_at_horizon(y, surv, horizon_days, n_groups=n_groups)


def test_d_calibration_true_survival_passes_for_most_seeds(weibull):
    p_values = []
    for seed in range(10):
        _, lp, y = weibull.cohort(1000, seed)
        p_values.append(d_calibration(y, weibull.survival_at_own_time(lp, y["os2_days"])).p_value)
    assert sum(p > 0.05 for p in p_values) >= 8


def test_d_calibration_flags_cubed_survival(weibull):
    _, lp, y = weibull.cohort(1000, 0)
    s = weibull.survival_at_own_time(lp, y["os2_days"])
    assert d_calibration(y, s**3).p_value < 1e-6


def test_d_calibration_spreads_censored_patients_as_in_haider():
    y = Surv.from_arrays(event=[True, False, False], time=[1.0, 2.0, 3.0])
    d = d_calibration(y, [0.6, 0.6, 0.0], n_bins=4)
    # event at 0.6 -> bin [0.5, 0.75); censored at 0.6 -> (0.6-0.5)/0.6 there, 0.25/0.6 to each lower bin;
    # censored at 0 -> lowest bin.
    np.testing.assert_allclose(d.counts, [1 + 0.25 / 0.6, 0.25 / 0.6, 1 + 0.1 / 0.6, 0.0])
    assert d.counts.sum() == pytest.approx(3)
    assert d.expected == pytest.approx(0.75)
    assert d.chi2 == pytest.approx(np.sum((d.counts - 0.75) ** 2) / 0.75)


@pytest.mark.parametrize(
    ("surv", "n_bins", "match"),
    [
        ([0.5, 0.5], 10, r"surv_at_own_time has shape \(2,\), expected \(3,\)"),
        ([0.5, 0.5, -0.1], 10, r"surv_at_own_time must hold survival probabilities in \[0, 1\]"),
        ([0.5, 0.5, 0.5], 1, r"n_bins must be at least 2, got 1"),
    ],
)
def test_d_calibration_bad_input(surv, n_bins, match):
    y = Surv.from_arrays(event=[True, False, True], time=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=match):
        d_calibration(y, surv, n_bins=n_bins)


def test_lookup_survival_is_a_right_continuous_step_function():
    grid = np.array([10.0, 20.0, 30.0])
    surv = np.array([[0.9, 0.8, 0.7]] * 4)
    np.testing.assert_allclose(lookup_survival(surv, grid, [5.0, 10.0, 25.0, 99.0]), [1.0, 0.9, 0.8, 0.7])
    with pytest.raises(ValueError, match=r"surv_grid has shape \(4, 3\), expected \(2, 3\)"):
        lookup_survival(surv, grid, [5.0, 10.0])


class _TrueModel:
    """The Weibull truth behind the estimator contract's ``predict_survival_at``."""

    def __init__(self, truth) -> None:
        self.truth = truth

    def predict_survival_at(self, X, times_days):
        return self.truth.survival(X @ np.asarray(self.truth.beta), times_days)


def test_survival_at_own_time_matches_the_truth_on_the_default_grid(weibull):
    X, lp, y = weibull.cohort(300, 6)
    s = survival_at_own_time(_TrueModel(weibull), X, y["os2_days"])
    np.testing.assert_allclose(s, weibull.survival_at_own_time(lp, y["os2_days"]))
    coarse = survival_at_own_time(_TrueModel(weibull), X, y["os2_days"], grid_days=[100.0, 400.0])
    assert np.all(coarse >= s - 1e-12)  # a coarser grid reads the curve at an earlier time


def test_d_calibration_handles_vanishing_survival_without_overflow():
    """A censored patient whose predicted S(t_i) underflows (1e-310) belongs wholly to the first bin."""
    rng = np.random.default_rng(3)
    s = rng.uniform(0, 1, 200)
    s[:3] = [1e-310, 0.0, 1e-200]
    event = np.r_[np.zeros(3, bool), rng.random(197) < 0.5]
    result = d_calibration(Surv.from_arrays(event, rng.uniform(1, 10, 200)), s)
    assert np.isfinite(result.chi2) and result.counts.sum() == pytest.approx(200)
    assert result.counts[0] >= 3
