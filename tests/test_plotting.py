"""cartrisk.plotting: one colour per risk level whatever the number of groups, and a forest plot."""

from __future__ import annotations

import numpy as np
import pytest

from cartrisk.plotting import RISK_COLOURS, SERIES_COLOURS, forest_figure, risk_colours


def test_risk_levels_keep_their_colour_across_groupings():
    low, high = RISK_COLOURS["low"], RISK_COLOURS["high"]
    for n in range(2, 9):
        colours = risk_colours(n)
        assert len(colours) == n and colours[0] == low and colours[-1] == high
    assert risk_colours(3)[1] == RISK_COLOURS["intermediate"]
    assert risk_colours(4) == tuple(RISK_COLOURS[k] for k in ("low", "intermediate-low", "intermediate-high", "high"))
    assert not set(SERIES_COLOURS) & {low, RISK_COLOURS["intermediate"], high}
    with pytest.raises(ValueError, match="n_levels must be at least 1"):
        risk_colours(0)


def test_forest_figure_draws_each_estimate_with_its_interval():
    fig = forest_figure(["model", "rule"], [0.78, 0.6], [0.7, 0.52], [0.85, np.nan], xlabel="Uno's C", reference=0.5)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["model", "rule"]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["0.780 (0.700-0.850)", "0.600"]  # a missing bound: the estimate alone
    with pytest.raises(ValueError, match="one value per row"):
        forest_figure(["a"], [1, 2], [0, 1], [2, 3], xlabel="x")


def test_forest_figure_draws_a_pooled_diamond_hazard_ratios_on_a_log_scale_and_published_values():
    fig = forest_figure(["a", "b"], [0.8, 1.6], [0.6, 1.1], [1.1, 2.3], xlabel="O/E", reference=1.0, log_scale=True,
                        pooled={"estimate": 1.1, "lower": 0.9, "upper": 1.3, "pi_lower": 0.5, "pi_upper": 2.4},
                        overlay={"published HR": [np.nan, 2.0]}, decimals=2)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "pooled (REML)"]
    assert [t.get_text() for t in ax.texts] == ["0.80 (0.60-1.10)", "1.60 (1.10-2.30)", "1.10 (0.90-1.30)"]
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "1", "2"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["published HR", "95% prediction interval"]
    assert len(ax.patches) == 1  # the pooled diamond
    negative = forest_figure(["slope"], [0.1], [-0.2], [0.4], xlabel="slope")
    assert [t.get_text() for t in negative.axes[0].texts] == ["0.100 (-0.200 to 0.400)"]
