"""The direct numpy route of a fitted FeatureBuilder (a few patients) gives scikit-learn's ColumnTransformer's matrix,
bit for bit, names, index and dtypes included; where it does not apply it steps aside."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cartrisk.data.derive import derive_features
from cartrisk.data.dictionary import declared_columns
from cartrisk.data.schema import to_xy, validate
from cartrisk.data.simulate import simulate
from cartrisk.modelling import FeatureBuilder
from cartrisk.modelling._direct import direct_transform


def library(builder: FeatureBuilder, X: pd.DataFrame) -> pd.DataFrame:
    """The ColumnTransformer's route, as ``transform`` took it before the direct route existed."""
    return builder.transformer_.transform(builder._select(derive_features(X)))


def assert_bitwise(direct: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(direct, expected, check_exact=True, check_column_type=True, check_index_type=True)
    assert (direct.to_numpy().view(np.int64) == expected.to_numpy().view(np.int64)).all()


@pytest.fixture(scope="module")
def cohort():
    typed = validate(simulate(400, 11)[0]).raise_if_invalid()
    return to_xy(typed)[0]


def scoring_rows(X: pd.DataFrame, seed: int) -> list[pd.DataFrame]:
    """New patients as scoring meets them: one, a few, gaps, unseen and missing levels, a missing column."""
    new = to_xy(validate(simulate(150, seed)[0]).raise_if_invalid())[0]
    rng = np.random.default_rng(seed)
    odd = new.head(12).copy()
    for col in ("ldh_infusion", "age_years", "crp_infusion", "ecog_failure", "days_to_failure", "bridging", "sex"):
        odd.loc[rng.random(12) < 0.4, col] = np.nan
    odd.loc[odd.index[:3], "histology"] = "not-a-level"
    odd.loc[odd.index[3], "cd19_failure"] = np.nan
    return [new.head(1), new.iloc[[7]], new.head(5), new, odd, odd.drop(columns=["crp_infusion", "salvage"]),
            new.head(3).set_axis([10, 20, 30])]


@pytest.mark.parametrize("feature_set", ["infusion", "relapse", "infusion+relapse", "literature",
                                         ["age_years", "failure_d0_30", "ldh_gt_uln_failure", "histology",
                                          "log2_ldh_ratio_failure", "failure_window"]])
@pytest.mark.parametrize("coding", ["onehot", "reference"])
@pytest.mark.parametrize(("scale", "indicator"), [(True, True), (False, True), (True, False)])
def test_the_direct_route_is_the_column_transformer(cohort, feature_set, coding, scale, indicator):
    X = cohort.copy()
    X.loc[X.index[::7], "crp_infusion"] = np.nan  # missing in training: a missing indicator
    builder = FeatureBuilder(feature_set=feature_set, coding=coding, scale=scale, add_indicator=indicator).fit(X)
    for k, rows in enumerate(scoring_rows(X, 5)):
        direct = direct_transform(builder, rows)
        assert direct is not None, k
        assert_bitwise(direct, library(builder, rows))
        assert_bitwise(builder.transform(rows), library(builder, rows))


def test_a_declared_category_and_an_old_builder(cohort):
    extra = {"site_grade": {"kind": "category", "role": "relapse", "levels": ["a", "b", "c"]}}
    X = cohort.assign(site_grade=np.resize(np.array(["a", "b", None], dtype=object), len(cohort)))
    builder = FeatureBuilder(feature_set=["infusion", "site_grade"], declared=declared_columns(extra)).fit(X)
    rows = X.head(4).assign(site_grade=["c", None, "a", "b"])
    assert_bitwise(direct_transform(builder, rows), library(builder, rows))
    old = FeatureBuilder(feature_set="relapse", coding="onehot").fit(cohort)
    del old.reference_levels_  # fitted before reference coding existed
    assert_bitwise(direct_transform(old, cohort.head(2)), library(old, cohort.head(2)))


def test_generic_data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"age": rng.normal(60, 10, 300), "grade": rng.choice(["I", "II", "III"], 300),
                      "nodes": rng.integers(0, 20, 300), "marker": np.where(rng.random(300) < 0.1, np.nan,
                                                                            rng.random(300))})
    builder = FeatureBuilder(feature_set=["age", "grade", "nodes", "marker"], coding="reference").fit(X)
    rows = X.head(3).assign(grade=["II", "IV", None], marker=[np.nan, 0.5, 1.0])
    assert_bitwise(direct_transform(builder, rows), library(builder, rows))


def test_where_it_steps_aside(cohort):
    builder = FeatureBuilder(feature_set="infusion", coding="reference").fit(cohort)
    rows = cohort.head(2).copy()
    assert direct_transform(builder, cohort) is None  # more rows than the route takes
    assert direct_transform(builder, rows.astype({"age_years": np.float32})) is None  # scikit-learn keeps float32
    rows.loc[rows.index[0], "age_years"] = np.inf
    assert direct_transform(builder, rows) is None
    with pytest.raises(ValueError, match="infinity"):  # scikit-learn's own message, as before
        builder.transform(rows)
    onehot = FeatureBuilder(feature_set="infusion", coding="onehot").fit(cohort)
    odd = cohort.head(2).assign(histology="not-a-level")  # one-hot coding, no level dropped: zeros, no warning
    assert_bitwise(direct_transform(onehot, odd), library(onehot, odd))
