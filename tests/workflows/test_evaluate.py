"""The evaluate workflow end to end: same folds for models and rules, MLflow runs, same seed same numbers."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from cartrisk.cli import app
from cartrisk.config import parse_experiment
from cartrisk.workflows import evaluate_experiment, summary_table

EXPERIMENT = """
name = "wf"
seed = 7
[data]
source = "simulated"
n = 300
[features]
set = "infusion+relapse"
[[models]]
estimator = "coxph"
[[models]]
estimator = "xgb_cox"
params = { n_estimators = 30 }
[evaluation]
n_splits = 3
horizons_months = [3, 6]
rules = ["d0_30", "pcpi"]
"""


@pytest.fixture(scope="module")
def tracked(make_tracker, tmp_path_factory):
    root = tmp_path_factory.mktemp("mlruns")
    tracker = make_tracker(root, "wf")
    report = evaluate_experiment(parse_experiment(EXPERIMENT, source="wf.toml"), tracker=tracker)
    return report, tracker, root


def test_models_and_rules_side_by_side(tracked):
    report, _, _ = tracked
    assert list(report.results) == ["coxph", "xgb_cox", "d0_30", "pcpi"]
    assert report.kinds == {"coxph": "model", "xgb_cox": "model", "d0_30": "rule", "pcpi": "rule"}
    table = summary_table(report)
    assert table["model"].tolist() == ["coxph", "xgb_cox", "d0_30", "pcpi"]
    assert {"harrell_c", "uno_c@6m", "brier@6m"} <= set(table.columns)
    folds = {label: r.per_fold[["repeat", "fold"]].drop_duplicates().shape[0] for label, r in report.results.items()}
    assert set(folds.values()) == {3}


def test_mlflow_parent_and_child_runs(tracked):
    report, tracker, root = tracked
    parent = tracker.get_run(report.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["data_sha256"] == report.dataset.data_hash
    assert parent.data.tags["seed"] == "7" and "version.scikit-survival" in parent.data.tags
    assert parent.data.params["n"] == "300"
    children = tracker.client.search_runs([tracker.experiment_id],
                                          f"tags.mlflow.parentRunId = '{report.run_id}'")
    assert sorted(r.info.run_name for r in children) == ["coxph", "d0_30", "pcpi", "xgb_cox"]
    cox = next(r for r in children if r.info.run_name == "coxph")
    expected = report.results["coxph"].summary()
    harrell = expected[expected["metric"] == "harrell_c"]["mean"].iloc[0]
    assert cox.data.metrics["harrell_c_mean"] == pytest.approx(harrell)
    artifacts = {a.path for a in tracker.client.list_artifacts(cox.info.run_id)}
    assert {"per_fold.csv", "model"} <= artifacts
    parent_artifacts = {a.path for a in tracker.client.list_artifacts(report.run_id)}
    assert {"experiment.toml", "comparison.csv", "summary.csv"} <= parent_artifacts
    text = (root / "mlruns" / "mlflow.db").read_bytes()
    assert report.dataset.frame["patient_id"].iloc[0].encode() not in text  # no identifiers in the store


def test_same_seed_same_numbers(tracked):
    report, _, _ = tracked
    again = evaluate_experiment(parse_experiment(EXPERIMENT, source="wf.toml"))
    for label in report.results:
        pd.testing.assert_frame_equal(report.results[label].per_fold, again.results[label].per_fold)


def test_cli_evaluate(tmp_path):
    path = tmp_path / "wf.toml"
    path.write_text(EXPERIMENT.replace("n = 300", "n = 200").replace('rules = ["d0_30", "pcpi"]', 'rules = ["d0_30"]'))
    result = CliRunner().invoke(app, ["evaluate", str(path), "--tracking-uri", f"sqlite:///{tmp_path}/m/mlflow.db"])
    assert result.exit_code == 0, result.output
    assert "d0_30" in result.output and "MLflow run" in result.output


def test_cli_evaluate_bad_file_is_exit_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[data]\nsource = 'simulated'\nsize = 3\n")
    result = CliRunner().invoke(app, ["evaluate", str(path), "--no-tracking"])
    assert result.exit_code == 2
    assert "unknown key(s) 'size'" in result.output and "Traceback" not in result.output
