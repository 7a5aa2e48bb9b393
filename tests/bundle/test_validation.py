"""External validation, updating and generic-cohort bundles: validate-model, update-model, export of a generic
evaluate run, and the model card's account of them."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sksurv.datasets import load_gbsg2
from typer.testing import CliRunner

from cartrisk.bundle import load_bundle
from cartrisk.bundle.updating import update_bundle
from cartrisk.bundle.validation import membership_c, validate_bundle
from cartrisk.cli import app
from cartrisk.data.simulate import simulate
from cartrisk.exceptions import SchemaError

METRICS = ["harrell_c", "uno_c", "auc", "oe_ratio", "calibration_slope", "ici", "e50", "e90", "emax", "brier",
           "ipa", "net_benefit@0.2", "net_benefit@0.5"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    path = tmp_path_factory.mktemp("site") / "site.csv"
    simulate(600, 21)[0].to_csv(path, index=False)
    return path


def test_validate_model_writes_metrics_figures_sections_and_a_report(small_bundle, site, tmp_path):
    out = tmp_path / "val"
    result = CliRunner().invoke(app, ["validate-model", str(small_bundle[0]), "--data", str(site), "--horizon", "6",
                                      "--thresholds", "0.2,0.5", "--n-boot", "40", "--out", str(out), "--report"])
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns) == ["metric", "estimate", "lower", "upper"]
    assert metrics["metric"].tolist() == METRICS
    assert (metrics["lower"] <= metrics["estimate"] + 1e-12).all() and (metrics["estimate"] <= metrics["upper"]
                                                                        + 1e-12).all()
    for name in ("calibration.png", "decision_curve.png", "km_risk_groups.png", "case_mix.png", "report.html",
                 "subgroups/subgroups.csv", "subgroups/forest_harrell_c.png"):
        assert (out / name).is_file(), name
    section = json.loads((out / "section.json").read_text())
    assert section["figure"] == "calibration.png" and "Harrell's C" in section["answer"]
    html = (out / "report.html").read_text()
    assert "External validation" in html and "Performance in subgroups" in html
    assert "SIM-" not in html and "(rows " not in html  # nothing patient-level


def test_validate_model_refuses_bad_files_and_horizons(small_bundle, tmp_path):
    frame = simulate(80, 4)[0].drop(columns=["os2_event"])
    frame.to_csv(tmp_path / "no_outcome.csv", index=False)
    out = tmp_path / "val"
    result = CliRunner().invoke(app, ["validate-model", str(small_bundle[0]), "--data",
                                      str(tmp_path / "no_outcome.csv"), "--horizon", "6", "--out", str(out)])
    assert result.exit_code == 2 and "os2_event" in result.output and not out.exists()
    simulate(80, 4)[0].to_csv(tmp_path / "ok.csv", index=False)
    result = CliRunner().invoke(app, ["validate-model", str(small_bundle[0]), "--data", str(tmp_path / "ok.csv"),
                                      "--horizon", "120", "--out", str(out)])
    assert result.exit_code == 2 and "beyond the follow-up" in result.output and not out.exists()


def test_membership_c_says_how_far_the_case_mix_moved():
    rng = np.random.default_rng(0)
    dev = {"percentiles": np.percentile(rng.normal(size=5000), np.arange(1, 100))}
    assert membership_c(dev, rng.normal(size=2000)) == pytest.approx(0.5, abs=0.02)
    assert membership_c(dev, rng.normal(1.0, 1.0, 2000)) == pytest.approx(0.76, abs=0.03)  # Phi(1/sqrt(2))


def test_update_model_records_lineage_and_keeps_the_parent_schema(small_bundle, site, tmp_path):
    parent = load_bundle(small_bundle[0])
    frame = pd.read_csv(site)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = update_bundle(parent, frame, method="slope", name="cox-slope", models_dir=tmp_path, source="site.csv",
                            horizon_months=6)
    child = load_bundle(res.path)
    lin = child.info["lineage"]
    assert lin["parent"]["fingerprint"] == parent.fingerprint and lin["method"] == "slope"
    assert lin["update_data_sha256"] and lin["tests"][0]["comparison"] == "refit vs original"
    assert child.info["training"]["data_sha256"] == lin["update_data_sha256"]  # one hash of the update data
    assert child.schema == parent.schema
    card = (res.path / "MODEL_CARD.md").read_text()
    assert "## Updating" in card and parent.fingerprint in card and "| 12f | Model updating | Updating |" in card
    # same ranking, survival moved by the update
    typed = parent.validate(frame.drop(columns=["os2_days", "os2_event"])).raise_if_invalid()
    a, b = parent.predict_frame(typed), child.predict_frame(typed)
    assert np.corrcoef(a["risk_score"], b["risk_score"])[0, 1] == pytest.approx(1.0)
    assert not np.allclose(a["survival_6m"], b["survival_6m"])
    assert (a["risk_group"] == b["risk_group"]).all()  # cut-points rescaled with the risk score


def test_update_model_cli_auto_and_refusals(small_bundle, site, tmp_path):
    result = CliRunner().invoke(app, ["update-model", str(small_bundle[0]), "--data", str(site), "--method", "auto",
                                      "--name", "cox-auto", "--models-dir", str(tmp_path), "--horizon", "6"])
    assert result.exit_code == 0, result.output
    assert "closed testing" in result.output and "Why:" in result.output
    result = CliRunner().invoke(app, ["update-model", str(small_bundle[0]), "--data", str(site), "--method", "magic",
                                      "--name", "x", "--models-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--method 'magic'" in result.output and not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------------- generic cohorts
GBSG_TOML = """name = "gbsg-one"
seed = 0
[data]
source = "sksurv"
dataset = "gbsg2"
[data.roles]
time = "time"
event = "cens"
covariates = ["age", "estrec", "horTh", "menostat", "pnodes", "progrec", "tgrade", "tsize"]
[features]
set = ["age", "estrec", "horTh", "menostat", "pnodes", "progrec", "tgrade", "tsize"]
[[models]]
estimator = "coxph"
{more}
[evaluation]
n_splits = 3
horizons_months = [12, 24, 36]
rules = []
"""


@pytest.fixture(scope="module")
def gbsg_runs(make_tracker, tmp_path_factory):
    from cartrisk.config import parse_experiment
    from cartrisk.workflows import evaluate_experiment

    root = tmp_path_factory.mktemp("mlruns")
    tracker = make_tracker(root, "gbsg")
    one = evaluate_experiment(parse_experiment(GBSG_TOML.format(more="")), tracker=tracker)
    two = evaluate_experiment(parse_experiment(GBSG_TOML.format(more='[[models]]\nestimator = "coxnet"')),
                              tracker=tracker)
    return tracker.tracking_uri, one, two


def test_generic_evaluate_run_exports_scores_and_validates(gbsg_runs, tmp_path):
    uri, one, two = gbsg_runs
    models = tmp_path / "models"
    result = CliRunner().invoke(app, ["export", "--run", one.run_id, "--name", "gbsg", "--tracking-uri", uri,
                                      "--models-dir", str(models)])
    assert result.exit_code == 0, result.output
    bundle = load_bundle(models / "gbsg")
    assert bundle.schema["cohort"] == "generic" and bundle.schema["outcome"]["event"] == "cens"
    assert "out-of-fold" in bundle.risk_groups["origin"]
    card = (models / "gbsg" / "MODEL_CARD.md").read_text(encoding="utf-8")
    opening = card.split("## Predictors")[0]  # summary, intended use, outcome: about this cohort, not OS-2
    assert "event of column `cens` (time column `time`) in a generic cohort" in opening
    assert "CAR T" not in opening and "OS-2" not in opening and "lymphoma" not in opening
    assert "## Comparison with the D0-30 rule" not in card and "predicted / observed (KM) survival" in card
    X, y = load_gbsg2()
    frame = X.assign(time=y["time"], cens=y["cens"].astype(int))
    frame.to_csv(tmp_path / "gbsg.csv", index=False)
    scored = bundle.score(frame.drop(columns=["time", "cens"]).head(5))
    assert scored["patient_id"].tolist() == [f"row-{i}" for i in range(1, 6)]
    res = validate_bundle(bundle, frame, horizon_months=24, n_boot=20, subgroups=False)
    assert 0.6 < res.external.estimate("harrell_c") < 0.8
    bad = frame.astype(object)
    bad.loc[3, "age"] = "old"
    with pytest.raises(SchemaError, match="row 4, column 'age': value 'old': not a number"):
        bundle.score(bad)
    # an evaluate run with two models needs --model
    result = CliRunner().invoke(app, ["export", "--run", two.run_id, "--name", "g2", "--tracking-uri", uri,
                                      "--models-dir", str(models)])
    assert result.exit_code == 2 and "pick one with --model NAME" in result.output
    result = CliRunner().invoke(app, ["export", "--run", two.run_id, "--model", "coxnet", "--name", "g2",
                                      "--tracking-uri", uri, "--models-dir", str(models)])
    assert result.exit_code == 0, result.output
    assert load_bundle(models / "g2").info["model"]["family"] == "coxnet"



def test_validate_model_never_replaces_a_folder_it_did_not_write(small_bundle, site, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    result = CliRunner().invoke(app, ["validate-model", str(small_bundle[0]), "--data", str(site), "--horizon", "6",
                                      "--n-boot", "5", "--out", str(tmp_path / "mine")])
    assert result.exit_code == 2 and "not the output folder of an earlier validate-model" in result.output
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_an_updated_xgboost_bundle_keeps_its_booster_in_json(tmp_path):
    from cartrisk.bundle import export_bundle
    from cartrisk.data.schema import to_xy, validate
    from cartrisk.modelling import make_pipeline

    typed = validate(simulate(300, 3)[0]).raise_if_invalid()
    X, y = to_xy(typed)
    parent = load_bundle(export_bundle(make_pipeline("literature", "xgb_cox", n_estimators=20).fit(X, y), tmp_path,
                                       name="xgb", training_frame=typed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = update_bundle(parent, simulate(400, 8)[0], method="slope", name="xgb-slope", models_dir=tmp_path,
                            horizon_months=6)
    child = load_bundle(res.path)
    assert (res.path / "booster.json").is_file()
    assert child.info["model"]["family"] == "xgb_cox, slope-updated"
    fresh = simulate(20, 1)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fresh cohort has a few values outside the training ranges
        a, b = parent.score(fresh), child.score(fresh)
    assert np.corrcoef(a["risk_score"], b["risk_score"])[0, 1] == pytest.approx(1.0)
    # explained through the recalibration: contributions on the updated score, additive to it
    from cartrisk.explain import explain

    typed_fresh = child.validate(fresh.drop(columns=["os2_days", "os2_event"])).raise_if_invalid()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shown = child.score(fresh, explain=3)
    assert {"top1_column", "top1_contribution", "top3_contribution"} <= set(shown.columns)
    values = explain(child.pipeline, typed_fresh, output="risk", aggregate="column")
    np.testing.assert_allclose(values.values.to_numpy().sum(axis=1) + values.base_value,
                               child.pipeline.predict(typed_fresh), rtol=0, atol=1e-6)
