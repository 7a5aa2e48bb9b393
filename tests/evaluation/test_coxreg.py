"""Unpenalised Cox regression and its inference, against independent implementations."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv

from cartrisk.evaluation.coxreg import cox_partial_likelihood, cox_regression, ph_test


def _cohort(n: int = 2000, seed: int = 0):
    """Three normal covariates and a binary one, Cox-exponential times in whole days (many ties), uniform censoring."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=list("abc"))
    X["e"] = (rng.random(n) < 0.3).astype(float)
    lp = X.to_numpy() @ np.array([0.5, -0.3, 0.1, 0.7])
    t = np.ceil(30 * rng.exponential(size=n) / np.exp(lp))
    c = np.ceil(60 * rng.random(n))
    return X, t <= c, np.minimum(t, c) + 1


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_equals_statsmodels_phreg(ties):
    phreg = pytest.importorskip("statsmodels.duration.hazard_regression").PHReg
    X, event, time = _cohort()
    fit = cox_regression(X, event, time, ties=ties)
    ref = phreg(time, X.to_numpy(), status=event.astype(float), ties=ties).fit()
    np.testing.assert_allclose(fit.coef, ref.params, atol=1e-9)
    np.testing.assert_allclose(fit.se, ref.bse, atol=1e-9)
    assert fit.loglik == pytest.approx(ref.llf, abs=1e-6)
    table = fit.table()
    np.testing.assert_allclose(table["p_value"], ref.pvalues, rtol=1e-6)
    np.testing.assert_allclose(table["hr"], np.exp(ref.params), rtol=1e-9)


def test_stratified_fit_equals_statsmodels():
    phreg = pytest.importorskip("statsmodels.duration.hazard_regression").PHReg
    X, event, time = _cohort(seed=1)
    strata = np.random.default_rng(1).choice(["C1", "C2", "C3", "C4"], len(time))
    fit = cox_regression(X, event, time, strata=strata)
    ref = phreg(time, X.to_numpy(), status=event.astype(float), strata=strata, ties="efron").fit()
    np.testing.assert_allclose(fit.coef, ref.params, atol=1e-9)
    np.testing.assert_allclose(fit.se, ref.bse, atol=1e-9)


def test_equals_scikit_survival_unpenalised_and_the_information_is_the_hessian():
    X, event, time = _cohort(seed=2)
    fit = cox_regression(X, event, time, ties="breslow")
    sk = CoxPHSurvivalAnalysis(alpha=0.0, ties="breslow").fit(X.to_numpy(), Surv.from_arrays(event, time))
    np.testing.assert_allclose(fit.coef, sk.coef_, atol=1e-5)
    _, score, info = cox_partial_likelihood(X, event, time, fit.coef, ties="efron")
    step = 1e-5
    def score_at(coef):
        return cox_partial_likelihood(X, event, time, coef)[1]

    numeric = np.column_stack([(score_at(fit.coef + step * np.eye(4)[j]) - score_at(fit.coef - step * np.eye(4)[j]))
                               / (2 * step) for j in range(4)])
    np.testing.assert_allclose(-numeric, info, rtol=1e-5, atol=1e-6)


def test_schoenfeld_test_equals_lifelines():
    """Reference values: lifelines 0.30.3 ``proportional_hazard_test(CoxPHFitter().fit(...), time_transform=...)`` on
    ``_cohort(2000, 0)`` (written to CSV and fitted in a side environment with pandas < 3; Efron ties)."""
    X, event, time = _cohort()
    fit = cox_regression(X, event, time)
    lifelines = {"km": [0.057731, 1.524864, 0.386659, 0.001643], "identity": [0.337078, 1.122129, 0.187204, 0.017632]}
    for transform, expected in lifelines.items():
        got = ph_test(fit, transform).set_index("term")["ph_chi2"]
        np.testing.assert_allclose(got[list("abce")], expected, rtol=2e-5, atol=2e-6)
    table = ph_test(fit)
    assert table["term"].tolist() == ["a", "b", "c", "e", "GLOBAL"] and table["ph_df"].tolist() == [1, 1, 1, 1, 4]


def test_a_time_varying_effect_is_detected():
    rng = np.random.default_rng(3)
    n = 3000
    x = rng.normal(size=n)
    early = rng.exponential(size=n) / np.exp(1.0 * x)  # x acts only in the first 0.3 time units
    late = 0.3 + rng.exponential(size=n)
    t = np.where(early < 0.3, early, late)
    fit = cox_regression(pd.DataFrame({"x": x}), np.ones(n, bool), t)
    assert ph_test(fit).set_index("term").loc["x", "ph_p_value"] < 1e-6


@pytest.mark.parametrize(("change", "message"), [
    (lambda X, e: (X.assign(k=1.0), e), "constant column(s) in the Cox design: k"),
    (lambda X, e: (X.assign(a=np.nan), e), "the Cox design has missing or infinite values"),
    (lambda X, e: (X, np.zeros_like(e)), "no event: a Cox model cannot be fitted"),
    (lambda X, e: (X.assign(a2=2 * X["a"]), e), "singular information matrix: collinear columns"),
])
def test_bad_designs_are_refused(change, message):
    X, event, time = _cohort(300)
    X, event = change(X, event)
    with pytest.raises(ValueError, match=re.escape(message)):
        cox_regression(X, event, time)
