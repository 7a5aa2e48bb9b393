"""Experiment files: typed, frozen, unknown keys rejected by name."""

from __future__ import annotations

import dataclasses
import re

import pytest

from cartrisk.config import load_experiment, parse_experiment
from cartrisk.exceptions import ConfigError

GOOD = """
name = "t"
seed = 3
[data]
source = "simulated"
n = 400
[features]
set = "relapse"
[[models]]
estimator = "coxph"
[[models]]
estimator = "rsf"
name = "forest"
params = { n_estimators = 20 }
[evaluation]
n_splits = 3
horizons_months = [3, 6]
"""


def test_parse_good_file():
    cfg = parse_experiment(GOOD, source="t.toml")
    assert cfg.seed == 3 and cfg.data.n == 400 and cfg.data_seed == 3
    assert [m.label for m in cfg.models] == ["coxph", "forest"]
    assert cfg.models[1].params == {"n_estimators": 20}
    assert cfg.evaluation.horizons_months == (3.0, 6.0)
    assert cfg.source_text == GOOD
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("n = 400", "n = 400\nsize = 3"), "t.toml.data: unknown key(s) 'size'; known keys: columns, "
         "dataset, extra, n, path, roles, seed, source"),
        ("sampler = 'tpe'\n" + GOOD, "t.toml: unknown key(s) 'sampler'"),
        (GOOD + "\nsampler = 'tpe'\n", "t.toml.evaluation: unknown key(s) 'sampler'"),
        (GOOD.replace('estimator = "coxph"', 'estimater = "coxph"'), "t.toml.models[0]: unknown key(s) 'estimater'"),
        (GOOD.replace("n = 400", 'n = "many"'), "t.toml.data.n: expected int, got 'many'"),
        (GOOD.replace("seed = 3", "seed = true"), "t.toml.seed: expected int, got True"),
        (GOOD.replace("n_splits = 3", "n_splits = 1"), "evaluation.n_splits must be at least 2, got 1"),
        (GOOD.replace('source = "simulated"', 'source = "file"'), "data.source = 'file' needs data.path"),
        (GOOD.replace('source = "simulated"', 'source = "sql"'), "data.source must be 'simulated', 'file' or "
         "'sksurv', got 'sql'"),
        ("name = 'x'\n[[models]]\nname = 'a'\n", "t.toml.models[0]: missing key(s) 'estimator'"),
        ("name = [", "t.toml: not valid TOML"),
    ],
)
def test_bad_files_are_refused_by_name(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_experiment(text, source="t.toml")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="experiment file not found"):
        load_experiment(tmp_path / "nope.toml")


def test_name_defaults_to_file_stem(tmp_path):
    path = tmp_path / "my_study.toml"
    path.write_text("[[models]]\nestimator = 'coxph'\n")
    assert load_experiment(path).name == "my_study"


TUNING = """
name = "t"
[[models]]
estimator = "xgb_cox"
[models.search]
n_estimators = { low = 50, high = 400, log = true, type = "int" }
learning_rate = { low = 0.01, high = 0.2, log = true }
max_depth = { choices = [2, 3, 4] }
min_child_weight = { low = 1, high = 30 }
subsample = { low = 0.5, high = 1.0, step = 0.1 }
[tuning]
n_trials = 7
objective = { uno_c = 1.0, ibs = 0.5 }
"""


def test_parse_tuning_and_search_spaces():
    cfg = parse_experiment(TUNING, source="t.toml")
    search = cfg.models[0].search
    assert {k: v.kind for k, v in search.items()} == {"n_estimators": "int", "learning_rate": "float",
                                                       "max_depth": "categorical", "min_child_weight": "int",
                                                       "subsample": "float"}
    assert search["max_depth"].choices == (2, 3, 4) and search["n_estimators"].log is True
    assert cfg.tuning.n_trials == 7 and cfg.tuning.outer_folds == 3 and cfg.tuning.sampler == "tpe"
    assert cfg.tuning.objective_weights == {"uno_c": 1.0, "ibs": 0.5}
    assert parse_experiment(GOOD, source="t.toml").tuning is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("max_depth = { choices = [2, 3, 4] }", "max_depth = { choices = [] }", "t.toml.models[0].search.max_depth: "
         "choices must not be empty"),
        ("max_depth = { choices = [2, 3, 4] }", "max_depth = { choices = [2], low = 1 }", "give either choices or a "
         "range"),
        ("max_depth = { choices = [2, 3, 4] }", "max_depth = { low = 2 }", "a search range needs low and high"),
        ("max_depth = { choices = [2, 3, 4] }", "max_depth = { low = 4, high = 2 }", "low must be below high, got "
         "low = 4, high = 2"),
        ("max_depth = { choices = [2, 3, 4] }", "max_depth = { lo = 2, high = 4 }", "search.max_depth: unknown "
         "key(s) 'lo'"),
        ("learning_rate = { low = 0.01", "learning_rate = { low = 0.0", "a log-scale range needs low > 0"),
        ("type = \"int\" }", "type = \"integer\" }", "n_estimators.type must be 'int' or 'float', got 'integer'"),
        ("low = 0.5, high = 1.0, step = 0.1", "low = 0.5, high = 1.0, step = 0.1, log = true", "step and log = "
         "true cannot be combined"),
        ("objective = { uno_c = 1.0, ibs = 0.5 }", "objective = 'c_index'", "t.toml.tuning.objective: unknown "
         "metric(s) 'c_index'; known: uno_c, harrell_c, ibs"),
        ("objective = { uno_c = 1.0, ibs = 0.5 }", "objective = { uno_c = 1.0, ibs = -0.5 }", "weights must be "
         "positive"),
        ("n_trials = 7", "n_trials = 0", "t.toml.tuning.n_trials must be at least 1, got 0"),
        ("n_trials = 7", "inner_folds = 1", "t.toml.tuning.inner_folds must be at least 2, got 1"),
        ("n_trials = 7", "sampler = 'grid'", "tuning.sampler must be one of tpe, random, cmaes, got 'grid'"),
        ("n_trials = 7", "pruner = 'hyperband'", "tuning.pruner must be one of median, none, got 'hyperband'"),
        ("n_trials = 7", "trials = 7", "t.toml.tuning: unknown key(s) 'trials'"),
        ("[tuning]\nn_trials = 7\nobjective = { uno_c = 1.0, ibs = 0.5 }\n", "", "t.toml.models[0].search: a search "
         "space needs a [tuning] table"),
        ("estimator = \"xgb_cox\"", "estimator = \"xgb_cox\"\nparams = { max_depth = 3 }", "'max_depth' both fixed "
         "(params) and searched"),
    ],
)
def test_bad_tuning_files_are_refused_by_name(old, new, message):
    assert old in TUNING
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_experiment(TUNING.replace(old, new), source="t.toml")
