"""Every file in experiments/ runs as it is, on a small cohort: tuning files with 2 trials, the others through
``evaluate_experiment`` with 2 folds (no MLflow, studies in a temporary journal file)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from cartrisk.config import load_experiment
from cartrisk.tuning import run_study
from cartrisk.workflows import evaluate_experiment

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "experiments").glob("*.toml"))
SMALL_N = 300


def small(cfg):
    """The experiment on a small simulated cohort (generic data sets keep their size) with 2 folds."""
    data = cfg.data
    if data.source == "simulated":
        data = dataclasses.replace(data, n=SMALL_N)
    elif data.source == "file" and data.path and not Path(data.path).is_absolute():
        data = dataclasses.replace(data, path=str(ROOT / data.path))
    evaluation = dataclasses.replace(cfg.evaluation, n_splits=2, n_repeats=1)
    return dataclasses.replace(cfg, data=data, evaluation=evaluation)


def test_there_are_tuning_experiments():
    names = {f.name for f in FILES}
    assert {"tune_xgb_cox.toml", "tune_rsf.toml", "tune_coxnet.toml", "tune_families.toml"} <= names


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_experiment_file_runs(path, tmp_path):
    cfg = small(load_experiment(path))
    if cfg.tuning is not None:
        result = run_study(cfg, storage=f"journal:{tmp_path}/studies.log", n_trials=2, workers=1)
        assert (result.trials.groupby("study")["state"].count() == 2).all()
        assert np.isfinite(result.outer_value) and np.isfinite(result.inner_value)
        assert result.family in [m.label for m in cfg.models]
        risk = result.best_pipeline.predict(result.dataset.X.iloc[:5])
        assert risk.shape == (5,) and np.all(np.isfinite(risk))
    else:
        report = evaluate_experiment(cfg)
        assert [m.label for m in cfg.models] == list(report.results)[: len(cfg.models)]
        for result in report.results.values():
            c = result.per_fold.loc[result.per_fold["metric"] == "harrell_c", "value"]
            assert len(c) == 2 and np.all(np.isfinite(c))
