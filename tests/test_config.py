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
         "dataset, n, path, roles, seed, source"),
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
