"""Riley's sample size for a survival model, against R pmsampsize 1.1.3 (its man-page example and its tests)."""

from __future__ import annotations

import numpy as np
import pytest

from cartrisk.evaluation.samplesize import expected_shrinkage, riley_survival, sample_size_check


def test_pmsampsize_worked_example():
    """pmsampsize(type = "s", csrsquared = 0.051, parameters = 30, rate = 0.065, timepoint = 2, meanfup = 2.07):
    5143 participants, 692 events, 23.07 events per parameter (Riley et al., BMJ 2020;368:m441, recurrent VTE)."""
    res = riley_survival(parameters=30, rate=0.065, horizon=2, mean_followup=2.07, r2_cs=0.051)
    assert (res.n_criterion1, res.n_criterion2, res.n) == (5143, 1039, 5143)
    assert np.ceil(res.events) == 692
    assert round(res.events_per_parameter, 2) == 23.07
    assert res.shrinkage == pytest.approx(0.9)
    assert round(res.shrinkage_criterion2, 3) == 0.648
    assert round(res.max_r2_cs, 3) == 0.555 and round(res.nagelkerke_r2, 3) == 0.092
    assert round(res.overall_risk, 3) == 0.122
    assert (round(res.overall_risk_lower, 3), round(res.overall_risk_upper, 3)) == (0.113, 0.130)


@pytest.mark.parametrize(("args", "sizes", "epp"), [
    ((0.051, 25, 0.065, 2, 2.07), (4286, 866), 23.07),
    ((0.065, 25, 0.065, 2, 2.07), (3335, 859), 17.95),
    ((0.051, 25, 0.1, 2, 2.07), (4286, 731), 35.49),
    ((0.06, 40, 0.08, 3, 5), (5798, 969), 57.98),
    ((0.3, 80, 0.03, 1, 5), (1974, 2272), 4.26),  # criterion 2 dominates
])
def test_pmsampsize_package_tests(args, sizes, epp):
    r2, p, rate, t, fup = args
    res = riley_survival(parameters=p, rate=rate, horizon=t, mean_followup=fup, r2_cs=r2)
    assert (res.n_criterion1, res.n_criterion2) == sizes
    assert res.n == max(sizes)
    assert round(res.events_per_parameter, 2) == epp


def test_out_of_range_inputs_are_refused():
    with pytest.raises(ValueError, match="Cox-Snell R2"):
        riley_survival(parameters=10, rate=0.05, horizon=1, mean_followup=1, r2_cs=0.95)
    with pytest.raises(ValueError, match="parameters must be"):
        riley_survival(parameters=0, rate=0.05, horizon=1, mean_followup=1, r2_cs=0.1)


def test_cohort_check_warns_when_many_parameters_on_few_events():
    rng = np.random.default_rng(0)
    n = 120
    Z = rng.normal(size=(n, 30))
    time = rng.exponential(10 / np.exp(0.5 * Z[:, 0]))
    event = rng.random(n) < 0.6
    check = sample_size_check(Z, time, event)
    assert check["parameters"] == 30 and check["events"] == event.sum()
    assert check["expected_shrinkage"] < 0.9
    assert check["expected_shrinkage"] == pytest.approx(expected_shrinkage(n, 30, check["r2_cs"]))
    assert check["required_n"] > n
