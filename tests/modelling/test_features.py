"""Feature sets and fold-fitted preprocessing."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sksurv.util import Surv

from cartrisk.data.literature import literature_features
from cartrisk.evaluation import EventStratifiedKFold
from cartrisk.exceptions import ConfigError
from cartrisk.modelling.features import FEATURE_SETS, FeatureBuilder, derive_features, feature_set_columns
from cartrisk.modelling.pipeline import make_pipeline


def small_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "days_to_failure": rng.integers(0, 400, n),
        "ldh_infusion": rng.uniform(100, 900, n), "ldh_uln": 250.0,
        "ldh_failure": rng.uniform(100, 900, n),
        "crp_infusion": rng.exponential(20, n), "ferritin_infusion": rng.exponential(800, n),
        "ecog_infusion": rng.integers(0, 4, n).astype(float), "ecog_failure": rng.integers(0, 4, n).astype(float),
        "stage_failure": rng.integers(1, 5, n).astype(float), "extranodal_failure": rng.integers(0, 4, n).astype(float),
        "hemoglobin_failure": rng.uniform(7, 15, n), "bulky_failure": rng.integers(0, 2, n).astype(float),
        "age_years": rng.uniform(30, 80, n), "prior_lines": rng.integers(1, 6, n).astype(float),
        "sex": rng.choice(["M", "F"], n).astype(object), "best_response": rng.choice(["CR", "PR", "SD", "PD"], n),
    })


def test_derived_features():
    frame = pd.DataFrame({"days_to_failure": [0, 30, 31, 90, 91], "ldh_infusion": [500, 250, np.nan, 100, 1000],
                          "ldh_uln": [250.0] * 5, "crp_infusion": [0, 1, 3, 7, np.nan]})
    out = derive_features(frame)
    assert out["failure_window"].tolist() == ["D0-30", "D0-30", "D31-90", "D31-90", ">D90"]
    np.testing.assert_allclose(out["ldh_ratio_infusion"], [2, 1, np.nan, 0.4, 4])
    np.testing.assert_allclose(out["log2_ldh_ratio_infusion"], [1, 0, np.nan, np.log2(0.4), 2])
    np.testing.assert_allclose(out["log2_crp_infusion"], [0, 1, 2, 3, np.nan])
    assert out["ldh_gt_uln_infusion"].tolist()[:2] == [1.0, 0.0] and np.isnan(out["ldh_gt_uln_infusion"][2])
    assert out["failure_d0_30"].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert "failure_window" not in frame  # the input is not modified


def test_named_sets():
    assert "log2_days_to_failure" in FEATURE_SETS["infusion"] and "hemoglobin_failure" not in FEATURE_SETS["infusion"]
    assert "hemoglobin_failure" in FEATURE_SETS["relapse"] and "age_years" not in FEATURE_SETS["relapse"]
    # CRS and ICANS happen after infusion and before failure: known at failure, not at infusion
    assert "crs_grade" in FEATURE_SETS["relapse"] and "icans_grade" in FEATURE_SETS["infusion+relapse"]
    assert "crs_grade" not in FEATURE_SETS["infusion"] and "icans_grade" not in FEATURE_SETS["infusion"]
    assert set(FEATURE_SETS["infusion"]) | set(FEATURE_SETS["relapse"]) == set(FEATURE_SETS["infusion+relapse"])
    assert feature_set_columns("literature") == literature_features()
    assert all("salvage" not in cols for cols in FEATURE_SETS.values())
    with pytest.raises(ConfigError, match="unknown feature set 'labs'; known sets: infusion, relapse, "
                                          "infusion\\+relapse, literature, or a list of columns"):
        feature_set_columns("labs")


def test_readable_names_and_sources():
    fb = FeatureBuilder("relapse").fit(small_frame())
    names = list(fb.get_feature_names_out())
    assert "log2_ldh_ratio_failure" in names and "best_response_CR" in names and "failure_window_D0-30" in names
    assert fb.feature_sources_["log2_ldh_ratio_failure"] == "ldh_failure"
    assert fb.feature_sources_["best_response_CR"] == "best_response"
    assert fb.feature_sources_["failure_window_D0-30"] == "days_to_failure"
    lit = FeatureBuilder("literature").fit(small_frame())
    assert lit.feature_sources_["ldh_gt_uln_failure"] == "ldh_failure"
    assert lit.feature_sources_["stage34_failure"] == "stage_failure"


def test_after_failure_columns_are_refused_with_the_reason():
    X = small_frame().assign(salvage="lenalidomide")
    with pytest.raises(ConfigError, match="salvage are decided or observed after the failure date .* confounded by "
                                          "indication, so they are no prognostic predictor"):
        FeatureBuilder(["days_to_failure", "salvage"]).fit(X)
    fb = FeatureBuilder(["days_to_failure", "salvage"], allow_after_failure=True).fit(X)
    assert "salvage_lenalidomide" in fb.get_feature_names_out()


def test_outcome_columns_are_refused():
    with pytest.raises(ConfigError, match="os2_days are the outcome or identify the patient"):
        FeatureBuilder(["age_years", "os2_days"]).fit(small_frame().assign(os2_days=1))


def test_absent_columns_are_skipped_and_recorded():
    fb = FeatureBuilder("infusion").fit(small_frame())
    assert "bridging" in fb.absent_columns_ and "bridging" not in fb.columns_


def test_unknown_category_at_transform_is_ignored():
    fb = FeatureBuilder(["sex"]).fit(small_frame())
    out = fb.transform(small_frame(3).assign(sex=["M", "F", "X"]))
    assert out.iloc[2].sum() == 0


def test_preprocessing_is_fitted_on_training_folds_only():
    """A planted feature whose missing values would be imputed with the test fold's statistics if it leaked."""
    X = small_frame(200, seed=1)
    rng = np.random.default_rng(2)
    X["hemoglobin_failure"] = rng.uniform(7, 9, 200)
    y = Surv.from_arrays(rng.random(200) < 0.7, rng.exponential(100, 200) + 1)
    cv = EventStratifiedKFold(n_splits=4, random_state=0)
    for train, test in cv.split(X, y):
        X_fold = X.copy()
        X_fold.loc[X_fold.index[test], "hemoglobin_failure"] = 14.0 + rng.uniform(0, 1, len(test))  # shifted test fold
        X_fold.loc[X_fold.index[test[:5]], "hemoglobin_failure"] = np.nan
        pipe = clone(make_pipeline(FeatureBuilder(["hemoglobin_failure"]), "coxph")).fit(X_fold.iloc[train], y[train])
        impute = pipe.named_steps["features"].transformer_.named_transformers_["num"].named_steps["impute"]
        scale = pipe.named_steps["features"].transformer_.named_transformers_["num"].named_steps["scale"]
        train_values = X_fold["hemoglobin_failure"].iloc[train]
        assert impute.statistics_[0] == pytest.approx(train_values.median())
        assert scale.mean_[0] == pytest.approx(train_values.mean())
        assert scale.mean_[0] < 9  # the shifted test fold (14-15 g/dL) never entered the fit


def test_feature_builder_needs_a_frame():
    with pytest.raises(TypeError, match="FeatureBuilder needs a pandas DataFrame"):
        FeatureBuilder().fit(np.zeros((3, 2)))


def test_input_columns_expand_derived_features_to_the_data_columns():
    fb = FeatureBuilder("literature").fit(small_frame())
    assert {"ldh_infusion", "ldh_uln", "ldh_failure", "days_to_failure", "stage_failure"} <= set(fb.input_columns_)
    assert not {"ldh_gt_uln_infusion", "failure_d0_30", "log2_crp_infusion"} & set(fb.input_columns_)
    assert fb.categorical_ == ["best_response"]


# ---- the feature-name rules (resolve_features) ---------------------------------------------------------------------
from cartrisk.modelling.features import resolve_features  # noqa: E402

REGISTRY_COLUMNS = ["days_to_failure", "age_years", "sex", "vital_status_cutoff", "ldh_doubling_days"]


@pytest.mark.parametrize(("feature_set", "message"), [
    (["age_years", "no_such_col"], "features.set: unknown feature(s) 'no_such_col': not a data-dictionary column, a "
     "feature cartrisk derives, a literature coding, a feature set, a declared column ([data.extra]). Fix: correct "
     "the name, or declare the site's own column in [data.extra]"),
    (["age_yaers"], "unknown feature(s) 'age_yaers'"),
    (["vital_status_cutoff"], "features.set: 'vital_status_cutoff' is a column of the extract but neither in the data "
     "dictionary nor declared; declare it in [data.extra.vital_status_cutoff]"),
    (["pfs2_days"], "features.set: pfs2_days are PFS-2, an outcome observed after the failure date (time zero of "
     "OS-2): never a predictor, even with allow_after_failure"),
    (["os2_event"], "features.set: feature(s) os2_event are the outcome or identify the patient"),
    (["salvage"], "features.set: feature(s) salvage are decided or observed after the failure date"),
])
def test_names_outside_the_rules_are_refused(feature_set, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_features(feature_set, REGISTRY_COLUMNS, allow_after_failure=feature_set == ["pfs2_days"])


def test_the_closest_known_names_are_offered():
    with pytest.raises(ConfigError, match=re.escape("'age_yaers' (closest: age_years")):
        resolve_features(["age_yaers"], REGISTRY_COLUMNS)
    with pytest.raises(ConfigError, match=re.escape("'ldh_doubling_day' (closest: ldh_doubling_days")):
        resolve_features(["ldh_doubling_day"], REGISTRY_COLUMNS, declared={"ldh_doubling_days": {}})


def test_known_names_sets_and_declared_columns_resolve():
    got = resolve_features(["infusion", "ldh_doubling_days", "ldh_gt_uln_infusion", "failure_window", "centre_id"],
                           [*REGISTRY_COLUMNS, "ldh_infusion", "ldh_uln", "centre_id"],
                           declared={"ldh_doubling_days": {"kind": "float", "role": "relapse"}})
    assert got == [*FEATURE_SETS["infusion"], "ldh_doubling_days", "ldh_gt_uln_infusion", "centre_id"]
    assert resolve_features(["salvage"], [*REGISTRY_COLUMNS, "salvage"], allow_after_failure=True) == ["salvage"]
    # the generic path: any column of the data is a feature, nothing else is
    assert resolve_features(["tgrade", "age"], ["age", "tgrade", "horTh"]) == ["tgrade", "age"]
    with pytest.raises(ConfigError, match=re.escape("unknown feature(s) 'agee'")):
        resolve_features(["agee"], ["age", "tgrade"])


def test_a_declared_category_is_one_hot_coded_and_traced_to_its_column():
    frame = small_frame().assign(mtv_class=np.resize(["low", "high", "mid"], 60).astype(object))
    fb = FeatureBuilder(["age_years", "mtv_class"], declared={"mtv_class": {"kind": "category", "role": "infusion",
                                                                            "levels": ["low", "mid", "high"]}})
    fb.fit(frame)
    assert fb.categorical_ == ["mtv_class"] and "mtv_class_mid" in fb.get_feature_names_out()
    assert fb.feature_sources_["mtv_class_mid"] == "mtv_class" and "mtv_class" in fb.input_columns_
    with pytest.raises(ConfigError, match="declare it in"):
        FeatureBuilder(["age_years", "mtv_class"]).fit(frame.assign(days_to_failure=1))


# ---- categorical coding: reference levels for linear models, full one-hot for trees --------------------------------
@pytest.mark.parametrize("feature_set", ["infusion", "relapse", "infusion+relapse", "literature"])
def test_unpenalised_cox_fits_every_named_set(registry_cohort, feature_set):
    X, y = registry_cohort(600, 5)
    pipe = make_pipeline(feature_set, "coxph", alpha=0.0).fit(X, y)
    fb = pipe.named_steps["features"]
    assert fb.coding == "reference" and set(fb.reference_levels_) == set(fb.categorical_)
    for column, reference in fb.reference_levels_.items():  # the reference level is dropped and named
        assert f"{column}_{reference}" not in fb.get_feature_names_out()
    assert np.isfinite(pipe.named_steps["model"].model_.coef_).all()


def test_trees_keep_every_level_and_a_given_builder_is_not_changed():
    X = small_frame()
    given = FeatureBuilder(["sex", "best_response"])
    tree = make_pipeline(given, "rsf", n_estimators=5)
    assert tree.named_steps["features"].coding == "onehot" and given.coding == "auto"
    linear = make_pipeline(given, "coxph")
    assert linear.named_steps["features"].coding == "reference"
    names = FeatureBuilder(["best_response"], coding="onehot").fit(X).get_feature_names_out()
    assert {"best_response_CR", "best_response_PR", "best_response_SD", "best_response_PD"} <= set(names)


def test_reference_coding_codes_an_unseen_level_as_the_reference_without_warning():
    fb = FeatureBuilder(["sex"], coding="reference").fit(small_frame())
    out = fb.transform(small_frame(3).assign(sex=["M", "F", "X"]))
    reference = fb.reference_levels_["sex"]
    assert out.shape[1] == 1 and out.iloc[2].sum() == 0
    assert out.iloc[[0, 1]].sum(axis=1).tolist() == [float(reference != "M"), float(reference != "F")]
