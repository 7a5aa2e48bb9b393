"""Reference rules: documented points and groups on hand-made patients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sksurv.nonparametric import kaplan_meier_estimator
from sksurv.util import Surv

from cartrisk.exceptions import SchemaError
from cartrisk.modelling.rules import PCPI, D0_30Rule, ThreeWindowRule, make_rule

# ecog, hb, ldh, uln, extranodal, days: each row is built to score a known number of PC-PI points
PATIENTS = pd.DataFrame(
    {
        "ecog_failure":       [0,    1,    1,    2,    3,    0,     np.nan],
        "hemoglobin_failure": [12.0, 12.0, 9.5,  9.0,  8.0,  10.0,  np.nan],
        "ldh_failure":        [200,  200,  200,  500,  800,  499,   np.nan],
        "ldh_uln":            [250,  250,  250,  250,  250,  250,   250],
        "extranodal_failure": [0,    1,    1,    1,    3,    1,     np.nan],
        "days_to_failure":    [400,  200,  150,  100,  20,   122,   30],
    }
)
EXPECTED_POINTS = [0, 1, 2, 4, 5, 0, 1]  # row 6: hb 10 (not < 10), LDH 1.996 x ULN, 122 days > 4 months (121.75)


def test_pcpi_points_on_hand_made_patients():
    points = PCPI().points(PATIENTS)
    assert points.sum(axis=1).tolist() == EXPECTED_POINTS
    # ECOG 2 > 0, Hb 9 < 10, LDH exactly 2 x ULN, one extranodal site (not > 1), 100 days < 4 months
    assert points.iloc[3].tolist() == [1, 1, 1, 0, 1]
    assert PCPI().predict(PATIENTS).tolist() == EXPECTED_POINTS


def test_pcpi_groups_follow_the_point_ranges():
    groups = PCPI().predict_group(PATIENTS)
    assert groups.tolist() == ["low", "low", "intermediate-low", "high", "high", "low", "low"]


def test_d0_30_and_three_windows():
    X = pd.DataFrame({"days_to_failure": [0, 30, 31, 90, 91, 600]})
    assert D0_30Rule().predict(X).tolist() == [1, 1, 0, 0, 0, 0]
    assert D0_30Rule().predict_group(X).tolist() == ["D0-30", "D0-30", "after D30", "after D30", "after D30",
                                                     "after D30"]
    assert ThreeWindowRule().predict(X).tolist() == [2, 2, 1, 1, 0, 0]
    assert ThreeWindowRule().predict_group(X).tolist() == ["D0-30", "D0-30", "D31-90", "D31-90", ">D90", ">D90"]


def test_rule_survival_is_the_training_group_kaplan_meier():
    rng = np.random.default_rng(0)
    days = rng.integers(0, 300, 200)
    time = rng.exponential(np.where(days <= 30, 60, 200)) + 1
    event = rng.random(200) < 0.8
    X, y = pd.DataFrame({"days_to_failure": days}), Surv.from_arrays(event, time)
    rule = D0_30Rule().fit(X, y)
    early = days <= 30
    t, s = kaplan_meier_estimator(event[early], time[early])
    at = np.array([t[5], t[20]])
    expected = s[[5, 20]]
    got = rule.predict_survival_at(X[early].iloc[:1], at)[0]
    np.testing.assert_allclose(got, expected)
    curves = rule.predict_survival_at(X, np.linspace(0, 400, 30))
    assert (np.diff(curves, axis=1) <= 1e-12).all() and (curves >= 0).all() and (curves <= 1).all()


def test_missing_column_is_a_clear_error():
    with pytest.raises(SchemaError, match=r"PCPI needs column\(s\) hemoglobin_failure, which the data lack"):
        PCPI().predict(PATIENTS.drop(columns=["hemoglobin_failure"]))


def test_make_rule_names():
    assert isinstance(make_rule("d0_30_90"), ThreeWindowRule)
    with pytest.raises(ValueError, match="unknown rule 'ipi'; known rules: d0_30, d0_30_90, pcpi"):
        make_rule("ipi")
