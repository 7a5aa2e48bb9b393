"""Models measured against the simulated registry's known truth (issue 3's evidence)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv

from cartrisk.data.simulate import planted_effects
from cartrisk.evaluation import uno_c
from cartrisk.evaluation.coxreg import cox_partial_likelihood
from cartrisk.modelling.pipeline import make_pipeline
from cartrisk.modelling.rules import D0_30Rule
from cartrisk.units import months_to_days

TAU_DAYS = months_to_days(12.0)


def _recovery(cohort, seed: int, n: int, terms: list[str], true_log_hr: np.ndarray) -> np.ndarray:
    """Whether each planted log-HR lies in the 95% Wald interval of a Cox fit on the true design."""
    _, y, truth = cohort(n, seed, truth=True)
    design = truth[terms].to_numpy(float)
    event, time = y["os2_event"], y["os2_days"]
    cox = CoxPHSurvivalAnalysis(alpha=0.0, ties="breslow").fit(design, y)
    _, _, information = cox_partial_likelihood(design, event, time, cox.coef_, ties="breslow")
    se = np.sqrt(np.diag(np.linalg.inv(information)))
    z = stats.norm.ppf(0.975)
    return (cox.coef_ - z * se <= true_log_hr) & (true_log_hr <= cox.coef_ + z * se)


def test_cox_on_the_true_design_recovers_the_planted_hazard_ratios(registry_cohort):
    """Cox on the literature codings as planted: the truth lies in the 95% CI in >= 90% of 20 seeds."""
    planted = planted_effects()
    planted = planted[planted["kind"] != "null"]
    terms, beta = planted["term"].tolist(), planted["log_hr"].to_numpy(float)
    covered = np.vstack([_recovery(registry_cohort, seed, 1500, terms, beta) for seed in range(20)])
    per_term = pd.Series(covered.mean(axis=0), index=terms)
    assert covered.mean() >= 0.90, per_term
    assert per_term.min() >= 0.75, per_term  # no single planted effect is systematically missed


@pytest.fixture(scope="module")
def train_test(registry_cohort):
    return registry_cohort(1500, 11), registry_cohort(5000, 12, truth=True)


#: A sensible small-data boosting setting (shallow trees, slow learning), as a tuning study picks it.
XGB_TUNED = {"learning_rate": 0.03, "max_depth": 2, "n_estimators": 500}


def _model(family: str, **params):
    pipe = make_pipeline("infusion+relapse", family, **params)
    if "random_state" in pipe.named_steps["model"].get_params():
        pipe.named_steps["model"].set_params(random_state=0)
    return pipe


def _held_out_uno(model, train, test) -> float:
    (X_tr, y_tr), (X_te, y_te) = train, test
    model.fit(X_tr, y_tr)
    return uno_c(y_tr, y_te, model.predict(X_te), TAU_DAYS)


def test_flexible_model_reaches_the_oracle_and_beats_the_d0_30_rule(train_test):
    train, (X_te, y_te, truth) = train_test
    oracle = uno_c(train[1], y_te, truth["true_log_hazard"].to_numpy(), TAU_DAYS)
    rule = _held_out_uno(D0_30Rule(), train, (X_te, y_te))
    scores = {"coxph": _held_out_uno(_model("coxph"), train, (X_te, y_te)),
              "xgb_cox": _held_out_uno(_model("xgb_cox", **XGB_TUNED), train, (X_te, y_te))}
    best = max(scores.values())
    assert best >= 0.97 * oracle, (scores, oracle)
    assert all(s > rule for s in scores.values()), (scores, rule)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["coxnet", "rsf", "extra_trees", "gbsa", "xgb_aft"])
def test_every_family_beats_the_d0_30_rule(train_test, family):
    train, (X_te, y_te, _) = train_test
    rule = _held_out_uno(D0_30Rule(), train, (X_te, y_te))
    assert _held_out_uno(_model(family), train, (X_te, y_te)) > rule


def test_structured_target_names(registry_cohort):
    y = Surv.from_arrays([True, False], [1.0, 2.0], name_event="os2_event", name_time="os2_days")
    assert registry_cohort(50, 0)[1].dtype.names == y.dtype.names
