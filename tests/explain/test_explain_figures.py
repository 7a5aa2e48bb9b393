"""cartrisk.explain.figures: the explanation at a glance (beeswarm beside the agreement with the literature)."""

from __future__ import annotations

import numpy as np
import pytest

from cartrisk.explain import concordance, explain
from cartrisk.explain.figures import concordance_points, explanation_overview_figure
from cartrisk.modelling.features import FeatureBuilder
from cartrisk.modelling.pipeline import make_pipeline

COLUMNS = ["days_to_failure", "ldh_failure", "ecog_failure", "stage_failure", "age_years", "hemoglobin_failure"]


@pytest.fixture(scope="module")
def explained(registry_cohort):
    X, y = registry_cohort(300, 4, ids=True)
    pipe = make_pipeline(FeatureBuilder(COLUMNS, add_indicator=False), "coxph").fit(X, y)
    explanation = explain(pipe, X)
    return explanation, concordance(explanation, n_bootstrap=50, random_state=0)


def test_concordance_points_sign_each_factor_in_its_published_direction(explained):
    _, table = explained
    points = concordance_points(table)
    assert set(points["status"]) <= {"agrees", "disagrees", "not significant"}
    assert not points.duplicated(["column", "factor"]).any()
    agrees = points[points["status"] == "agrees"]
    assert len(agrees) and (agrees["agreement"] > 0).all() and (agrees["agreement_lower"] > 0).all()
    disagrees = points[points["status"] == "disagrees"]
    assert (disagrees["agreement"] < 0).all()
    assert (points["agreement_lower"] <= points["agreement"] + 1e-12).all()
    assert (points["agreement"] <= points["agreement_upper"] + 1e-12).all()
    # one row per factor and coding however many sources publish it
    sources = table[table["status"].isin(["agrees", "disagrees", "not significant"])]
    assert points["sources"].sum() == len(sources)


def test_overview_figure_has_the_beeswarm_and_the_dot_plot_with_words_not_codes(explained):
    explanation, table = explained
    fig = explanation_overview_figure(explanation.by_column(), table, max_display=5)
    swarm, dots = fig.axes[0], fig.axes[1]
    labels = [t.get_text() for t in swarm.get_yticklabels()]
    assert len(labels) == 5 and all("_" not in label for label in labels)
    assert "LDH at failure" in labels
    assert len(dots.get_yticklabels()) == len(concordance_points(table))
    assert np.isclose(dots.get_xlim(), (-1.05, 1.05)).all()
