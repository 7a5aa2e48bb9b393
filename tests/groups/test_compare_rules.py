"""compare_with_rules and ``cartrisk compare-rules``: honest cut-points, the rule against itself, the CLI end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from typer.testing import CliRunner

from cartrisk.bundle import load_bundle
from cartrisk.cli import app
from cartrisk.data.simulate import simulate
from cartrisk.evaluation import cross_validate_survival
from cartrisk.exceptions import ConfigError, SchemaError
from cartrisk.groups import Recalibrator, RiskGrouper
from cartrisk.groups.rulecomparison import ComparisonSettings, GroupSpec, compare_with_rules, parse_groups
from cartrisk.modelling.pipeline import make_pipeline
from cartrisk.modelling.rules import D0_30Rule, ThreeWindowRule
from cartrisk.tracking import Tracker

XGB = {"learning_rate": 0.05, "max_depth": 2, "n_estimators": 150, "random_state": 0}


@pytest.fixture(scope="module")
def cohorts(registry_cohort):
    return registry_cohort(400, 1), registry_cohort(600, 2)


@pytest.fixture(scope="module")
def xgb_result(cohorts):
    (X_tr, y_tr), (X_te, y_te) = cohorts
    pipe = make_pipeline("infusion+relapse", "xgb_cox", **XGB)
    return compare_with_rules(pipe, X_tr, y_tr, X_te, y_te, ComparisonSettings(n_boot=100, cv=3, random_state=0))


def _row(summary: pd.DataFrame, rule: str, grouping: str) -> pd.Series:
    return summary[(summary["rule"] == rule) & (summary["grouping"] == grouping)].iloc[0]


# --------------------------------------------------------------------------- the comparison
def test_model_groups_sized_like_d0_30_separate_better_than_the_rule(xgb_result, cohorts):
    s = xgb_result.summary()
    rule, model, score = (_row(s, "d0_30", g) for g in ("d0_30", "model[d0_30]", "model score"))
    assert model.n_groups == rule.n_groups == 2
    assert model.hr_top > rule.hr_top and model.harrell_c > rule.harrell_c
    assert model.c_difference == pytest.approx(model.harrell_c - rule.harrell_c)
    assert score.c_difference_lower > 0  # the continuous score beats the rule clearly even at n = 600
    shares = xgb_result.groupers["model[d0_30]"].train_shares_
    rule_share = xgb_result.rules["d0_30"].predict(cohorts[0][0]).mean()
    assert shares["high"] == pytest.approx(rule_share, abs=0.01)
    cal = xgb_result.group_calibration("model[d0_30]", stage="after", horizon_months=6)
    assert len(cal) == 2 and cal["difference"].abs().max() < 0.05


def test_tables_hold_every_part_of_the_comparison(xgb_result):
    tables = xgb_result.tables()
    assert set(tables) == {"summary", "discrimination", "groups", "hazard_ratios", "c_differences",
                           "reclassification", "nri", "calibration", "decision_curve"}
    assert set(xgb_result.rules) == {"d0_30", "d0_30_90", "pcpi"}
    assert xgb_result.pairs == (("model[d0_30]", "d0_30"), ("model[d0_30_90]", "d0_30_90"), ("model[pcpi]", "pcpi"),
                                ("model score", "d0_30"), ("model score", "d0_30_90"), ("model score", "pcpi"))
    assert set(tables["decision_curve"]["strategy"]) == {"model", "d0_30", "d0_30_90", "pcpi", "treat all",
                                                         "treat none"}
    assert set(tables["calibration"]["stage"]) == {"before", "after", "rule KM"}
    assert xgb_result.settings["training_predictions"] == "3-fold cross-validation"
    matrix = xgb_result.comparison.reclassification_matrix("model[d0_30_90]", reference="d0_30_90")
    assert list(matrix.index) == [">D90", "D31-90", "D0-30"]
    assert list(matrix.columns) == ["low", "intermediate", "high"] and matrix.to_numpy().sum() == 600
    medians = tables["groups"].set_index(["grouping", "group"])["median_months"]
    assert medians["model[d0_30]", "high"] < medians["d0_30", "D0-30"]
    pts = xgb_result.patients
    assert len(pts) == 600 and isinstance(pts["model[d0_30]"].dtype, pd.CategoricalDtype)
    # Ranking kept: recalibration is monotone (it may tie the extremes, e.g. survivals mapped to the same floor).
    order = np.argsort(pts["surv_6m"].to_numpy(), kind="stable")
    assert (np.diff(pts["recalibrated_6m"].to_numpy()[order]) >= -1e-12).all()


def test_cut_points_and_recalibration_come_from_training_predictions_only(cohorts):
    (X_tr, y_tr), (X_te, y_te) = cohorts
    pipe = make_pipeline("infusion+relapse", "coxph")
    cvres = cross_validate_survival(pipe, X_tr, y_tr, cv=3, calibration=False, random_state=1)
    kwargs = {"settings": ComparisonSettings(rules=("d0_30",), n_boot=20, random_state=0), "oof_risk": cvres.oof_risk,
              "oof_survival": cvres.oof_survival}
    full = compare_with_rules(pipe, X_tr, y_tr, X_te, y_te, **kwargs)
    share = (X_tr["days_to_failure"] <= 30).mean()
    np.testing.assert_allclose(full.groupers["model[d0_30]"].cutpoints_, np.quantile(cvres.oof_risk, [1 - share]))
    rec = Recalibrator().fit(cvres.oof_survival.to_numpy(), y_tr)
    np.testing.assert_allclose(full.recalibrator.slope_, rec.slope_)
    half = compare_with_rules(pipe, X_tr, y_tr, X_te.iloc[:300], y_te[:300], **kwargs)
    np.testing.assert_array_equal(half.groupers["model[d0_30]"].cutpoints_, full.groupers["model[d0_30]"].cutpoints_)
    np.testing.assert_array_equal(half.patients["model[d0_30]"], full.patients["model[d0_30]"].iloc[:300])
    assert full.settings["training_predictions"] == "given"


@pytest.mark.parametrize(("rule", "name"), [(D0_30Rule, "d0_30"), (ThreeWindowRule, "d0_30_90")])
def test_the_rule_against_itself_shows_no_difference(cohorts, rule, name):
    (X_tr, y_tr), (X_te, y_te) = cohorts
    res = compare_with_rules(rule(), X_tr, y_tr, X_te, y_te,
        ComparisonSettings(rules=(name,), n_boot=200, cv=3, random_state=0))
    cd = res.comparison.c_differences
    assert (cd["difference"] == 0).all() and (cd["lower"] <= 0).all() and (cd["upper"] >= 0).all()
    matrix = res.comparison.reclassification_matrix(f"model[{name}]", reference=name).to_numpy()
    np.testing.assert_array_equal(matrix, np.diag(np.diag(matrix)))
    nri = res.comparison.nri.iloc[0]
    assert nri["nri"] == 0 and nri["n_up"] == 0 and nri["n_down"] == 0
    s = res.summary()
    assert s["harrell_c"].nunique() == 1 and s["hr_top"].dropna().nunique() == 1


def test_threshold_and_equal_groups(cohorts):
    (X_tr, y_tr), (X_te, y_te) = cohorts
    pipe = make_pipeline("infusion+relapse", "coxph")
    res = compare_with_rules(pipe, X_tr, y_tr, X_te, y_te,
        ComparisonSettings(groups="threshold:0.25@6", rules=("d0_30", "pcpi"), n_boot=20, cv=3, random_state=0))
    name = "model[S(6m)<0.25]"
    high = np.asarray(res.patients[name]) == "high"
    np.testing.assert_array_equal(high, res.patients["recalibrated_6m"] < 0.25)
    assert res.pairs[:2] == ((name, "d0_30"), (name, "pcpi"))
    assert np.isnan(res.comparison.nri.set_index("reference").loc["pcpi", "nri"])  # 2 vs 4 groups: no NRI
    thirds = compare_with_rules(pipe, X_tr, y_tr, X_te, y_te,
        ComparisonSettings(groups="3", rules=("d0_30_90",), n_boot=20, cv=3, random_state=0, recalibrate=False))
    np.testing.assert_allclose(thirds.groupers["model[3 groups]"].train_shares_, 1 / 3, atol=0.01)
    assert set(thirds.calibration["stage"]) == {"before", "rule KM"} and thirds.recalibrator is None


def test_stored_cut_points_without_trainingregistry_cohort(cohorts):
    (X_tr, y_tr), (X_te, y_te) = cohorts
    pipe = make_pipeline("infusion+relapse", "coxph").fit(X_tr, y_tr)
    cut = float(np.quantile(pipe.predict(X_tr), 0.75))
    stored = {"model[stored]": RiskGrouper.from_cutpoints([cut])}
    res = compare_with_rules(pipe, None, None, X_te, y_te,
        ComparisonSettings(recalibrate=False, rules=("d0_30",), n_boot=20, random_state=0), groupers=stored)
    np.testing.assert_array_equal(np.asarray(res.patients["model[stored]"]) == "high", pipe.predict(X_te) > cut)
    assert any("no training cohort" in note for note in res.notes)
    assert res.settings["training_predictions"] == "none"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("rule-sized", GroupSpec("rule-sized")), ("3", GroupSpec("n_groups", n_groups=3)),
     ("threshold:0.25@6", GroupSpec("threshold", threshold=0.25, horizon_months=6.0)),
     ("threshold:0.25,0.5@12", GroupSpec("threshold", threshold=(0.25, 0.5), horizon_months=12.0))],
)
def test_parse_groups(spec, expected):
    assert parse_groups(spec) == expected
    assert str(parse_groups(spec)) == spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [("1", "at least 2 groups"), ("threshold:1.5@6", r"thresholds must lie in \(0, 1\)"),
     ("threshold:x@6", "must be numbers"), ("quartiles", "'quartiles' not understood; use 'rule-sized'")],
)
def test_parse_groups_rejects(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_groups(spec)


def test_bad_calls_are_refused_with_the_reason(cohorts):
    (X_tr, y_tr), (X_te, y_te) = cohorts
    rule = D0_30Rule()
    with pytest.raises(ValueError, match=r"horizon_months \(9 months\) must be one of horizons_months"):
        compare_with_rules(rule, X_tr, y_tr, X_te, y_te, ComparisonSettings(horizon_months=9))
    with pytest.raises(ValueError, match="the horizon of groups=threshold:0.25@9"):
        compare_with_rules(rule, X_tr, y_tr, X_te, y_te, ComparisonSettings(groups="threshold:0.25@9"))
    with pytest.raises(ValueError, match="a training cohort .* is needed to learn the cut-points"):
        compare_with_rules(rule, None, None, X_te, y_te)
    with pytest.raises(ConfigError, match="unknown rule 'ipi'"):
        compare_with_rules(rule, X_tr, y_tr, X_te, y_te, ComparisonSettings(rules=("d0_30", "ipi")))
    with pytest.raises(ValueError, match=r"horizon 36 months \(1096 days\) is beyond the follow-up"):
        compare_with_rules(rule, X_tr, y_tr, X_te, y_te, ComparisonSettings(horizons_months=(6, 36)))
    with pytest.raises(SchemaError, match="no reference rule can be computed.*lack days_to_failure"):
        compare_with_rules(rule, X_tr, y_tr, X_te.drop(columns="days_to_failure"), y_te,
            ComparisonSettings(rules=("d0_30",)))
    res = compare_with_rules(rule, X_tr, y_tr, X_te.drop(columns="hemoglobin_failure"), y_te,
        ComparisonSettings(rules=("d0_30", "pcpi"), n_boot=10, cv=3, random_state=0))
    assert res.notes[0] == "rule pcpi left out: the data lack hemoglobin_failure" and list(res.rules) == ["d0_30"]


# --------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def files(tmp_path_factory, small_bundle):
    """The shared Cox bundle (trained on simulate(300, 3)), its training extract, a test extract, its skops file."""
    root = tmp_path_factory.mktemp("cli")
    bundle, _ = small_bundle
    simulate(300, seed=3)[0].to_csv(root / "train.csv", index=False)
    simulate(400, seed=4)[0].to_csv(root / "test.csv", index=False)
    sio.dump(load_bundle(bundle).pipeline, root / "cox.skops")
    return root, bundle


def test_cli_with_the_bundle_cut_points(files):
    root, bundle = files
    out = root / "out-bundle"
    result = CliRunner().invoke(app, ["compare-rules", "--model", str(bundle), "--data", str(root / "test.csv"),
                                      "--out", str(out), "--n-boot", "20", "--rules", "d0_30,pcpi"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "model[bundle]" in text and "groups: bundle cut-points" in text
    assert "rules' group survival was learned on the test patients" in text
    table = pd.read_csv(out / "comparison.csv")
    assert table["grouping"].tolist() == ["d0_30", "model[bundle]", "model score", "pcpi", "model[bundle]",
                                          "model score"]
    assert {p.name for p in out.glob("*.png")} == {"km_d0_30.png", "km_pcpi.png", "calibration_model_bundle.png",
                                                   "calibration_d0_30.png", "calibration_pcpi.png",
                                                   "decision_curve.png"}
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_cli_learns_groups_on_the_training_cohort_and_tracks(files, tmp_path):
    root, bundle = files
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    result = CliRunner().invoke(app, ["compare-rules", "--model", str(bundle), "--data", str(root / "test.csv"),
                                      "--train", str(root / "train.csv"), "--groups", "rule-sized",
                                      "--out", str(tmp_path / "out"), "--n-boot", "20", "--rules", "d0_30",
                                      "--track", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "model[d0_30]" in text and "5-fold cross-validation" in text
    summary = pd.read_csv(tmp_path / "out" / "comparison.csv")
    assert summary.loc[summary["grouping"] == "model[d0_30]", "c_difference"].notna().all()
    tracker = Tracker(uri)
    run = tracker.client.search_runs([tracker.experiment_id])[0]
    assert run.info.status == "FINISHED" and run.data.params["groups"] == "rule-sized"
    figures = {a.path for a in tracker.client.list_artifacts(run.info.run_id, "figures")}
    assert "figures/km_d0_30.png" in figures
    tables = {a.path for a in tracker.client.list_artifacts(run.info.run_id, "tables")}
    assert "tables/comparison.csv" in tables


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--groups", "3"], "--groups asks for new cut-points: give the training cohort with --train PATH"),
     (["--groups", "4x"], "groups '4x' not understood"),
     (["--rules", "d0_30,ipi", "--train", "{root}/train.csv"], "unknown rule 'ipi'")],
)
def test_cli_user_errors_exit_2(files, extra, message):
    root, bundle = files
    args = ["compare-rules", "--model", str(bundle), "--data", str(root / "test.csv"), "--out", str(root / "x")]
    result = CliRunner().invoke(app, args + [a.format(root=root) for a in extra])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_cli_without_cut_points_needs_the_trainingregistry_cohort(files):
    root, _ = files
    result = CliRunner().invoke(app, ["compare-rules", "--model", str(root / "cox.skops"),
                                      "--data", str(root / "test.csv"), "--out", str(root / "never")])
    assert result.exit_code == 2
    assert "carries no risk-group cut-points: give the training cohort with --train PATH" in " ".join(
        result.output.split())
    assert not (root / "never").exists()


# --------------------------------------------------------------------------- the evidence (slow)
@pytest.mark.slow
def test_evidence_on_the_simulated_registry(registry_cohort):
    (X_tr, y_tr), (X_te, y_te) = registry_cohort(1500, 1), registry_cohort(5000, 2)
    pipe = make_pipeline("infusion+relapse", "xgb_cox", learning_rate=0.03, max_depth=2, n_estimators=400,
                         random_state=0)
    res = compare_with_rules(pipe, X_tr, y_tr, X_te, y_te, ComparisonSettings(n_boot=1000, random_state=0))
    s = res.summary()
    rule, model = _row(s, "d0_30", "d0_30"), _row(s, "d0_30", "model[d0_30]")
    assert model.hr_top > rule.hr_top and model.harrell_c > rule.harrell_c
    assert model.c_difference_lower > 0
    after = res.group_calibration("model[d0_30]", stage="after", horizon_months=6)
    assert after["difference"].abs().max() < 0.05
