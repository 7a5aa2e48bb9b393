"""The experiment pre-flight: an experiment checked against its data before any work, every problem at once."""

from __future__ import annotations

import pytest

from cartrisk.config import parse_experiment
from cartrisk.data.datasets import load_dataset
from cartrisk.evaluation.preflight import check_experiment, experiment_problems
from cartrisk.exceptions import ConfigError
from cartrisk.modelling.features import FEATURE_SETS, resolve_features

GOOD = """name = "p"
[data]
n = 300
[features]
set = "infusion+relapse"
[[models]]
estimator = "rsf"
params = { n_estimators = 20 }
[evaluation]
n_splits = 3
"""


def _problems(text: str) -> list[str]:
    cfg = parse_experiment(text, source="p.toml")
    return experiment_problems(cfg, load_dataset(cfg.data, seed=cfg.seed))


def test_a_good_experiment_has_no_problem():
    assert _problems(GOOD) == []


def test_every_problem_is_listed_at_once_with_file_and_key():
    text = (GOOD.replace('estimator = "rsf"', 'estimator = "rsf"\n[[models]]\nestimator = "cox"')
            .replace("n_splits = 3", 'n_splits = 3\nrules = ["d0_31"]\nhorizons_months = [6.0, 900.0]')
            .replace('set = "infusion+relapse"', 'set = ["age_yrs"]'))
    cfg = parse_experiment(text, source="p.toml")
    with pytest.raises(ConfigError) as caught:
        check_experiment(cfg, load_dataset(cfg.data))
    message = str(caught.value)
    assert message.startswith("p.toml: 4 problems")
    for part in ("p.toml: features.set: unknown feature(s) 'age_yrs' (closest: age_years",
                 "p.toml: models[1].estimator: unknown estimator 'cox'",
                 "p.toml: evaluation.rules: unknown rule 'd0_31' (closest: d0_30)",
                 "p.toml: evaluation.horizons_months = 900: horizon 900 months"):
        assert part in message, part


def test_search_ranges_are_checked_at_both_ends_and_inside():
    tuned = GOOD.replace("params = { n_estimators = 20 }", "[models.search]\nmin_samples_leaf = { low = 1, high = 3 }"
                         "\nmax_features = { low = 0.2, high = 1.5 }") + "[tuning]\nouter_folds = 2\ninner_folds = 2\n"
    (problem,) = _problems(tuned)
    assert problem.startswith("p.toml: models[0].search.max_features: high 1.5 is not a valid value")


def test_generic_data_use_their_own_columns():
    text = """name = "g"
[data]
source = "sksurv"
dataset = "gbsg2"
[data.roles]
time = "time"
event = "cens"
time_unit_days = 1.0
[features]
set = ["age", "tsize", "pnodes"]
[[models]]
estimator = "coxph"
[evaluation]
n_splits = 3
horizons_months = [12.0, 24.0]
"""
    assert _problems(text) == []
    assert "unknown feature(s) 'tsize2'" in _problems(text.replace('"tsize"', '"tsize2"'))[0]


def test_resolve_features_keeps_what_a_named_set_can_compute_and_refuses_what_a_list_cannot():
    columns = ["days_to_failure", "age_years", "ldh_infusion", "ldh_uln"]
    used = resolve_features("infusion", columns)
    assert "age_years" in used and "log2_ldh_ratio_infusion" in used and "crp_infusion" not in used
    assert set(used) <= set(FEATURE_SETS["infusion"])
    with pytest.raises(ConfigError, match=r"x: feature\(s\) log2_crp_infusion cannot be computed.*needs crp_infusion"):
        resolve_features(["age_years", "log2_crp_infusion"], columns, where="x")
    with pytest.raises(ConfigError, match=r"unknown feature\(s\) 'site'"):
        resolve_features(["age_years", "site"], columns)
    assert resolve_features(["age_years", "site"], [*columns, "site"], declared=["site"]) == ["age_years", "site"]
