"""Tests for cartrisk.explain: SHAP for every family through the pipeline, literature concordance, figures, CLI.

Exactness is checked against brute-force Shapley values over every coalition, written here from the
definition (v(S) = mean over background rows b of f(x_S, b_notS)), never from the module's engines.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from typer.testing import CliRunner

from cartrisk.data.simulate import planted_effects, simulate
from cartrisk.explain import Explanation, concordance, concordance_markdown, explain, write_figures
from cartrisk.explain.literature import STATUSES, _weighted_spearman, factor_exposure
from cartrisk.modelling.features import FeatureBuilder
from cartrisk.modelling.pipeline import make_pipeline
from cartrisk.modelling.rules import make_rule
from cartrisk.units import months_to_days

FIVE = ["age_years", "prior_lines", "ecog_failure", "stage_failure", "hemoglobin_failure"]
SMALL_PARAMS = {
    "rsf": {"n_estimators": 15, "min_samples_leaf": 10, "random_state": 0},
    "extra_trees": {"n_estimators": 15, "min_samples_leaf": 10, "random_state": 0},
    "gbsa": {"n_estimators": 30, "random_state": 0},
    "coxph": {},
    "coxnet": {"alpha": 0.05},
    "xgb_cox": {"n_estimators": 40, "random_state": 0},
    "xgb_aft": {"n_estimators": 40, "random_state": 0},
}


@pytest.fixture(scope="module")
def cohort(registry_cohort) -> tuple[pd.DataFrame, np.ndarray]:
    return registry_cohort(300, 3, ids=True)


@pytest.fixture(scope="module")
def five(cohort) -> dict[str, object]:
    """Every family fitted on five numeric columns (five features after transformation)."""
    X, y = cohort
    return {name: make_pipeline(FeatureBuilder(FIVE, add_indicator=False), name, **params).fit(X, y)
            for name, params in SMALL_PARAMS.items()}


def _brute_force(f, X: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Interventional Shapley values from the definition: loop over features and coalitions."""
    n, m = X.shape
    phi = np.zeros((n, m))
    for i in range(n):
        value = {}
        for bits in range(2**m):
            S = np.array([(bits >> j) & 1 for j in range(m)], dtype=bool)
            value[bits] = f(np.where(S, X[i], B)).mean()
        for j in range(m):
            for bits in range(2**m):
                if (bits >> j) & 1:
                    continue
                size = bin(bits).count("1")
                weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
                phi[i, j] += weight * (value[bits | (1 << j)] - value[bits])
    return phi


def _final(pipe, columns):
    """f on the transformed features: the pipeline's final estimator on a named frame."""
    model = pipe.steps[-1][1]
    return lambda Z: model.predict(pd.DataFrame(np.atleast_2d(Z), columns=columns))


# ------------------------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("name", ["rsf", "extra_trees", "gbsa"])
def test_tree_families_add_up_to_predict_through_the_pipeline(five, cohort, name):
    X, _ = cohort
    pipe = five[name]
    result = explain(pipe, X)
    assert result.values.shape == (len(X), 5)
    assert result.exact and result.method == "tree_path_dependent" and result.model == name
    np.testing.assert_allclose(result.values.sum(axis=1) + result.base_value, pipe.predict(X), rtol=0, atol=1e-6)
    assert result.values.index.tolist() == X["patient_id"].tolist()


@pytest.mark.parametrize("name", ["rsf", "gbsa"])
def test_interventional_tree_shap_equals_brute_force_through_the_pipeline(five, cohort, name):
    X, _ = cohort
    pipe, patients, background = five[name], X.iloc[:6], X.iloc[100:130]
    result = explain(pipe, patients, background=background, n_background=30, feature_perturbation="interventional")
    assert result.method == "tree_interventional"
    columns = list(result.values.columns)
    B = pipe.transform_features(background).to_numpy(float)
    reference = _brute_force(_final(pipe, columns), pipe.transform_features(patients).to_numpy(float), B)
    np.testing.assert_allclose(result.values.to_numpy(), reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["coxph", "coxnet"])
def test_linear_shap_equals_brute_force_shapley(five, cohort, name):
    X, _ = cohort
    pipe, patients, background = five[name], X.iloc[:8], X.iloc[50:90]
    result = explain(pipe, patients, background=background, n_background=40)
    assert result.method == "linear" and result.exact
    columns = list(result.values.columns)
    B = pipe.transform_features(background).to_numpy(float)
    reference = _brute_force(_final(pipe, columns), pipe.transform_features(patients).to_numpy(float), B)
    np.testing.assert_allclose(result.values.to_numpy(), reference, rtol=0, atol=1e-9)
    assert result.base_value == pytest.approx(pipe.predict(background).mean(), abs=1e-12)


def test_xgboost_cox_adds_up_and_aft_flips_the_margin(five, cohort):
    import xgboost

    X, _ = cohort
    for name in ("xgb_cox", "xgb_aft"):
        pipe = five[name]
        result = explain(pipe, X)
        assert result.method == "xgboost_tree_path_dependent" and result.exact
        np.testing.assert_allclose(result.values.sum(axis=1) + result.base_value, pipe.predict(X), atol=1e-5)
        contribs = pipe.steps[-1][1].model_.predict(
            xgboost.DMatrix(pipe.transform_features(X).to_numpy(float)), pred_contribs=True)
        sign = -1.0 if name == "xgb_aft" else 1.0
        np.testing.assert_allclose(result.values.to_numpy(), sign * contribs[:, :-1], atol=1e-6)
    assert "minus" in explain(five["xgb_aft"], X.iloc[:3]).scale


# ------------------------------------------------------------------------------ survival at a horizon
@pytest.mark.parametrize("name", ["rsf", "extra_trees"])
def test_forest_survival_shap_is_exact(five, cohort, name):
    X, _ = cohort
    pipe = five[name]
    result = explain(pipe, X, output="survival", horizon_months=6)
    assert result.exact and result.method == "tree_path_dependent"
    assert result.scale == "survival probability at 6 months" and not result.higher_is_worse
    expected = pipe.predict_survival_at(X, [months_to_days(6)])[:, 0]
    np.testing.assert_allclose(result.values.sum(axis=1) + result.base_value, expected, atol=1e-6)


@pytest.mark.parametrize("name", ["rsf", "coxph"])
def test_survival_before_the_first_death_is_one_with_no_contributions(five, cohort, name):
    X, _ = cohort
    result = explain(five[name], X.iloc[:10], output="survival", horizon_months=0.01)
    np.testing.assert_array_equal(result.predictions, 1.0)
    assert result.base_value == 1.0 and np.all(result.values.to_numpy() == 0.0)


@pytest.mark.parametrize("name", ["coxph", "xgb_cox", "xgb_aft", "gbsa"])
def test_survival_brute_force_is_exact_for_few_features(five, cohort, name):
    X, _ = cohort
    pipe, patients, background = five[name], X.iloc[:4], X.iloc[200:220]
    horizon_days = months_to_days(3)
    result = explain(pipe, patients, output="survival", horizon_months=3, background=background, n_background=20)
    assert result.method == "brute_force" and result.exact
    model, columns = pipe.steps[-1][1], list(result.values.columns)

    def surv(Z):
        return model.predict_survival_at(pd.DataFrame(np.atleast_2d(Z), columns=columns), [horizon_days])[:, 0]

    reference = _brute_force(surv, pipe.transform_features(patients).to_numpy(float),
                             pipe.transform_features(background).to_numpy(float))
    np.testing.assert_allclose(result.values.to_numpy(), reference, rtol=0, atol=1e-9)


def test_permutation_sampling_is_additive_seeded_and_close_to_exact(five, cohort):
    X, _ = cohort
    pipe, patients, background = five["xgb_cox"], X.iloc[:5], X.iloc[150:190]
    kwargs = dict(output="survival", horizon_months=6, background=background, n_background=40)
    exact = explain(pipe, patients, method="exact", **kwargs)
    sampled = explain(pipe, patients, method="permutation", n_permutations=200, random_state=1, **kwargs)
    assert sampled.method == "permutation" and not sampled.exact
    assert sampled.additivity_error < 1e-12 and sampled.base_value == pytest.approx(exact.base_value)
    assert np.max(np.abs(sampled.values.to_numpy() - exact.values.to_numpy())) < 0.01
    again = explain(pipe, patients, method="permutation", n_permutations=200, random_state=1, **kwargs)
    pd.testing.assert_frame_equal(sampled.values, again.values)


def test_linear_cox_survival_with_many_features_is_sampled_and_additive(cohort):
    X, y = cohort
    pipe = make_pipeline("infusion+relapse", "coxph").fit(X, y)
    result = explain(pipe, X.iloc[:20], output="survival", horizon_months=12, background=X, n_background=50)
    assert result.method == "permutation" and not result.exact
    expected = pipe.predict_survival_at(X.iloc[:20], [months_to_days(12)])[:, 0]
    np.testing.assert_allclose(result.values.sum(axis=1) + result.base_value, expected, atol=1e-10)
    np.testing.assert_allclose(result.predictions, expected)


def test_model_agnostic_fallback_explains_a_rule_on_raw_columns(cohort):
    X, y = cohort
    rule = make_rule("d0_30").fit(X.drop(columns="patient_id"), y)
    result = explain(rule, X.iloc[:25], background=X, n_background=40, n_permutations=4)
    assert result.model == "D0_30Rule" and result.method == "permutation" and not result.exact
    assert "sex" in result.levels  # categories coded for the sampler, decoded for the rule
    others = result.values.drop(columns="days_to_failure")
    assert np.all(others.to_numpy() == 0.0)  # the rule reads days_to_failure only
    np.testing.assert_allclose(result.values["days_to_failure"] + result.base_value, rule.predict(X.iloc[:25]))


# ------------------------------------------------------------------------------------- the result object
def test_by_column_sums_features_into_data_dictionary_columns(cohort):
    X, y = cohort
    pipe = make_pipeline("infusion+relapse", "xgb_cox", n_estimators=30, random_state=0).fit(X, y)
    result = explain(pipe, X.iloc[:40])
    columns = result.by_column()
    assert columns.level == "column" and columns.by_column() is columns
    assert {"days_to_failure", "best_response", "ldh_infusion"} <= set(columns.values.columns)
    assert "failure_window_D0-30" in result.values.columns and "failure_window_D0-30" not in columns.values.columns
    np.testing.assert_allclose(columns.values.sum(axis=1), result.values.sum(axis=1), atol=1e-12)
    days = [f for f, c in result.feature_sources.items() if c == "days_to_failure"]
    np.testing.assert_allclose(columns.values["days_to_failure"], result.values[days].sum(axis=1), atol=1e-12)
    assert columns.levels["best_response"] == ("CR", "PR", "SD", "PD")
    assert explain(pipe, X.iloc[:40], aggregate="column").values.equals(columns.values)
    long = result.to_frame()
    assert long.shape == (40 * result.values.shape[1], 5)
    assert list(long.columns) == ["patient_id", "feature", "column", "feature_value", "shap_value"]
    wide = columns.to_frame(wide=True)
    assert list(wide.columns[:3]) == ["patient_id", "prediction", "base_value"] and len(wide) == 40
    importance = columns.importance()
    assert importance["rank"].tolist() == list(range(1, len(importance) + 1))
    assert importance["relative_importance"].iloc[0] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output": "survival"}, "needs a horizon_months > 0"),
        ({"output": "hazard"}, "output must be 'risk' or 'survival'"),
        ({"method": "kernel"}, "method must be 'auto', 'exact' or 'permutation'"),
        ({"feature_perturbation": "causal"}, "feature_perturbation must be 'auto', 'interventional'"),
        ({"patient_ids": ["a"]}, "patient_ids has 1 entries for 10 patients"),
        ({"output": "survival", "horizon_months": 6, "method": "exact", "max_exact_features": 3},
         "needs brute force over 2\\^5 coalitions"),
    ],
)
def test_explain_rejects_bad_arguments(five, cohort, kwargs, message):
    X, _ = cohort
    with pytest.raises(ValueError, match=message):
        explain(five["coxph"], X.iloc[:10], **kwargs)


# ----------------------------------------------------------------------------------------- concordance
@pytest.mark.parametrize(
    ("coding", "column", "expected"),
    [
        ("days_to_failure <= 30", "days_to_failure", [1, 0, 0, np.nan]),
        ("ldh_infusion > ldh_uln", "ldh_infusion", [1, 0, np.nan, 0]),
        ("bridging != none", "bridging", [0, 1, 1, np.nan]),
        ("best_response in {CR, PR}", "best_response", [1, 0, 1, np.nan]),
        ("product == tisa-cel (reference axi-cel)", "product", [1, 0, np.nan, np.nan]),
        ("crp_infusion, continuous", "crp_infusion", [3.0, 40.0, np.nan, 1.0]),
        ("log2(crp_infusion / CRP ULN)", "crp_infusion", [3.0, 40.0, np.nan, 1.0]),
        ("best_response", "best_response", [0, 2, 1, np.nan]),
    ],
)
def test_factor_exposure_follows_the_published_coding(coding, column, expected):
    raw = pd.DataFrame({
        "days_to_failure": [12.0, 31.0, 400.0, np.nan],
        "ldh_infusion": [300.0, 200.0, np.nan, 250.0],
        "ldh_uln": [250.0, 250.0, 250.0, 250.0],
        "bridging": pd.Series(["none", "systemic", "steroids", None], dtype="str"),
        "best_response": pd.Series(["CR", "SD", "PR", None], dtype="str"),
        "product": pd.Series(["tisa-cel", "axi-cel", "liso-cel", None], dtype="str"),
        "crp_infusion": [3.0, 40.0, np.nan, 1.0],
    })
    exposure, _ = factor_exposure(coding, column, raw)
    np.testing.assert_array_equal(exposure, np.asarray(expected, dtype=float))


def test_weighted_spearman_matches_scipy_on_bootstrap_samples():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, 60).astype(float)
    y = np.round(x + rng.normal(size=60), 1)  # ties in both
    index = rng.integers(0, 60, size=(4, 60))
    weights = np.stack([np.bincount(i, minlength=60) for i in index]).astype(float)
    expected = [spearmanr(x[i], y[i]).statistic for i in index]
    np.testing.assert_allclose(_weighted_spearman(x, y, weights), expected, atol=1e-12)
    assert np.isnan(_weighted_spearman(np.ones(60), y, weights[:1])[0])


def test_concordance_recovers_the_planted_effects_at_n_1500(registry_cohort):
    """xgb_cox (depth 2, 200 rounds, min_child_weight 5, lambda 5) on the simulated registry, n = 1,500.

    Every literature factor whose column carries a planted effect must agree with the published
    direction. Columns with no planted effect (bulky_failure, bridging, product: null in the truth,
    though proxies of the latent disease burden when other columns are missing) must not agree with
    a large effect (a fifth of the most important column's mean |SHAP| or more). Across simulation
    seeds 0-9 the largest such agreement was 0.14 (bulky_failure, seed 1); the planted factors all
    agreed in every seed.
    """
    X, y = registry_cohort(1500, 0, ids=True)
    pipe = make_pipeline("infusion+relapse", "xgb_cox", n_estimators=200, max_depth=2, min_child_weight=5,
                         reg_lambda=5, random_state=0).fit(X, y)
    table = concordance(explain(pipe, X), n_bootstrap=200)
    assert set(table["status"]) <= set(STATUSES)
    effects = planted_effects()
    first = effects["columns"].str.split(",").str[0].str.strip()
    planted, null = set(first[effects["kind"] != "null"]), set(first[effects["kind"] == "null"])
    literature = table[table["status"] != "not in literature"]
    on_planted = literature[literature["column"].isin(planted)]
    assert len(on_planted) >= 20
    assert (on_planted["status"] == "agrees").all(), on_planted[["factor", "status"]]
    on_null = literature[literature["column"].isin(null - {"salvage"})]
    assert set(on_null["column"]) == {"bulky_failure", "bridging", "product"}
    large = (on_null["status"] == "agrees") & (on_null["relative_importance"] >= 0.2)
    assert not large.any(), on_null[["factor", "status", "relative_importance"]]
    assert (literature.loc[literature["column"] == "salvage", "status"] == "not in model").all()
    assert (literature.loc[literature["column"] == "", "status"] == "not in model").all()
    others = table[table["status"] == "not in literature"]
    assert "hemoglobin_failure" in set(others["column"]) and others["rank"].notna().all()


def test_concordance_on_the_survival_scale_reverses_the_sign(five, cohort):
    X, _ = cohort
    risk = concordance(explain(five["rsf"], X), n_bootstrap=100)
    survival = concordance(explain(five["rsf"], X, output="survival", horizon_months=6), n_bootstrap=100)
    row = (risk["column"] == "stage_failure") & (risk["factor"] == "stage III-IV at salvage")
    assert risk.loc[row, "model_direction"].item() == survival.loc[row, "model_direction"].item() == "worse"
    assert risk.loc[row, "spearman"].item() > 0 > survival.loc[row, "spearman"].item()
    assert (risk.loc[risk["column"] == "ldh_infusion", "status"] == "not in model").all()
    markdown = concordance_markdown(risk)
    assert markdown.startswith("# Model explanation against the published risk factors")
    assert "| stage III-IV at salvage | stage_failure | worse |" in markdown
    assert "## Columns the model uses that the literature does not name" in markdown
    with pytest.raises(ValueError, match="negligible must be in"):
        concordance(explain(five["rsf"], X.iloc[:20]), negligible=1.5)


# --------------------------------------------------------------------------------------------- figures
def test_write_figures_writes_pngs_and_logs_them_to_mlflow(make_tracker, five, cohort, tmp_path):

    X, _ = cohort
    result = explain(five["gbsa"], X).by_column()
    tracker = make_tracker(tmp_path, "explain-test")
    patient = X["patient_id"].iloc[3]
    with tracker.run("figures") as run_id:  # the writer returns its paths; the caller logs them
        paths = write_figures(result, tmp_path / "figures", patients=[patient], n_dependence=2)
        for path in paths:
            tracker.log_file(run_id, path, "explain")
    names = sorted(p.name for p in paths)
    assert names == sorted(["beeswarm.png", f"waterfall_{patient}.png",
                            *[f"dependence_{c}.png" for c in result.importance()["feature"][:2]]])
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    logged = {a.path for a in tracker.client.list_artifacts(run_id, "explain")}
    assert logged == {f"explain/{name}" for name in names}
    assert not list((tmp_path / "figures").glob(".*"))  # no temporary file left behind
    with pytest.raises(ValueError, match="not among the explained patients"):
        write_figures(result, tmp_path / "other", patients=["nobody"])


def test_default_waterfall_is_the_worst_patient(five, cohort, tmp_path):
    X, _ = cohort
    result = explain(five["coxph"], X.iloc[:30], output="survival", horizon_months=6)
    paths = write_figures(result, tmp_path, n_dependence=0, prefix="s6_")
    worst = result.predictions.idxmin()
    assert sorted(p.name for p in paths) == ["s6_beeswarm.png", f"s6_waterfall_{worst}.png"]


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_explains_a_model_logged_to_mlflow(make_tracker, cohort, tmp_path):
    from cartrisk.cli import app

    X, y = cohort
    tracker = make_tracker(tmp_path, "cartrisk")
    uri = tracker.tracking_uri
    pipe = make_pipeline("infusion+relapse", "xgb_cox", n_estimators=30, random_state=0).fit(X, y)
    with tracker.run("fit") as run_id:
        tracker.log_pipeline(run_id, pipe)
    frame, _ = simulate(120, 11)
    data = tmp_path / "cohort.csv"
    frame.drop(columns=["os2_days", "os2_event"]).to_csv(data, index=False)
    out = tmp_path / "out"
    chosen = f"{frame['patient_id'].iloc[0]},{frame['patient_id'].iloc[5]}"
    runner = CliRunner()
    args = ["explain", "--model", run_id, "--data", str(data), "--out", str(out), "--tracking-uri", uri]
    result = runner.invoke(app, [*args, "--horizon", "6", "--patients", chosen, "--log-to-run"])
    assert result.exit_code == 0, result.output
    for name in ("shap_values.csv", "shap_by_column.csv", "concordance.csv", "concordance.md",
                 "shap_survival_6m.csv", "shap_survival_6m_by_column.csv", "figures/beeswarm.png",
                 f"figures/waterfall_{frame['patient_id'].iloc[5]}.png", "figures/survival_6m_beeswarm.png"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "shap_by_column.csv")
    assert len(table) == 120 and table["patient_id"].tolist() == frame["patient_id"].tolist()
    np.testing.assert_allclose(table.iloc[:, 3:].sum(axis=1) + table["base_value"], table["prediction"], atol=1e-5)
    survival = pd.read_csv(out / "shap_survival_6m.csv")
    assert sorted(survival["patient_id"]) == sorted(chosen.split(","))
    assert {a.path for a in tracker.client.list_artifacts(run_id, "explain")} >= {"explain/concordance.md"}
    bad = runner.invoke(app, [*args, "--patients", "nobody"])
    assert bad.exit_code == 2 and "--patients: nobody not in the data" in bad.output
    no_run = runner.invoke(app, [*args[:2], str(tmp_path), *args[3:], "--log-to-run"])
    assert no_run.exit_code == 2 and "--log-to-run needs an MLflow run id" in no_run.output


def test_explanation_is_a_frozen_dataclass(five, cohort):
    X, _ = cohort
    result = explain(five["coxph"], X.iloc[:5])
    assert isinstance(result, Explanation)
    with pytest.raises(AttributeError):
        result.method = "other"  # type: ignore[misc]
