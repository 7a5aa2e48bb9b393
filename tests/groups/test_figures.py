"""cartrisk.groups.figures: what is drawn matches the numbers (KM steps, at-risk counts, calibration), files, MLflow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sksurv.nonparametric import kaplan_meier_estimator

from cartrisk.groups.figures import (
    calibration_figure,
    comparison_figures,
    decision_curve_figure,
    group_histogram_figure,
    km_figure,
    write_comparison_figures,
)
from cartrisk.groups.rulecomparison import ComparisonSettings, compare_with_rules, grouping_title
from cartrisk.modelling.rules import ThreeWindowRule
from cartrisk.plotting import RISK_COLOURS, SERIES_COLOURS
from cartrisk.units import DAYS_PER_MONTH

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def comparison(registry_cohort):
    (X_tr, y_tr), (X_te, y_te) = registry_cohort(300, 5), registry_cohort(300, 6)
    return compare_with_rules(ThreeWindowRule(), X_tr, y_tr, X_te, y_te,
        ComparisonSettings(rules=("d0_30", "d0_30_90"), n_boot=10, cv=3, random_state=0))


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    groups = pd.Categorical.from_codes(rng.integers(0, 3, 120), ["low", "mid", "high"], ordered=True)
    time = np.ceil(rng.exponential(200, 120) / (1 + np.asarray(groups.codes)))
    event = rng.uniform(size=120) < 0.8
    return time, event, groups


def test_km_curves_are_the_kaplan_meier_estimates_in_months(small):
    time, event, groups = small
    fig = km_figure({"rule": (time, event, groups), "model": (time, event, groups)}, tick_months=[0, 3, 6, 9])
    assert isinstance(fig, Figure) and isinstance(fig.canvas, FigureCanvasAgg)
    assert len(fig.axes) == 4  # two panels, each with its at-risk table
    ax = fig.axes[0]
    codes = np.asarray(groups.codes)
    for k, line in enumerate(ax.get_lines()):
        t, s = kaplan_meier_estimator(event[codes == k], time[codes == k])
        np.testing.assert_allclose(line.get_xdata(), np.r_[0.0, t / DAYS_PER_MONTH])
        np.testing.assert_allclose(line.get_ydata(), np.r_[1.0, s])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        f"{lab} (n={(codes == k).sum()})" for k, lab in enumerate(["low", "mid", "high"])]
    assert ax.get_title() == "rule" and fig.axes[2].get_title() == "model"


def test_at_risk_table_counts_patients_still_followed(small):
    time, event, groups = small
    fig = km_figure({"g": (time, event, groups)}, tick_months=[0, 3, 6])
    table = fig.axes[1]
    counts = {(round(t.get_position()[0]), round(t.get_position()[1])): int(t.get_text().replace(",", ""))
              for t in table.texts}
    codes = np.asarray(groups.codes)
    for k in range(3):
        for month in (0, 3, 6):
            expected = int((time[codes == k] >= month * DAYS_PER_MONTH).sum())
            assert counts[(month, 2 - k)] == expected  # highest-risk group on the bottom row
    assert [t.get_text() for t in table.get_yticklabels()] == ["high", "mid", "low"]


def test_calibration_figure_places_groups_at_predicted_and_observed(comparison):
    table = comparison.group_calibration("model[d0_30_90]")
    fig = calibration_figure(table, title="t")
    assert len(fig.axes) == 3 and [ax.get_title() for ax in fig.axes] == ["3 months", "6 months", "12 months"]
    row = table[(table.horizon_months == 6) & (table.stage == "after") & (table.group == "high")].iloc[0]
    points = [(c.lines[0].get_xdata()[0], c.lines[0].get_ydata()[0]) for c in fig.axes[1].containers]
    assert (pytest.approx(row.predicted), pytest.approx(row.observed)) in points
    with pytest.raises(ValueError, match=r"calibration table lacks column\(s\) \['observed_lower'"):
        calibration_figure(table.drop(columns=["observed_lower"]))


def test_decision_curve_figure_has_every_strategy(comparison):
    curve = comparison.comparison.decision_curve
    fig = decision_curve_figure(curve, horizon_months=6)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["model", "d0_30", "d0_30_90", "treat all", "treat none"]
    model = curve[curve.strategy == "model"].sort_values("threshold")
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), model.net_benefit)
    assert ax.get_xlabel() == "threshold probability of death by 6 months"
    with pytest.raises(ValueError, match="decision curve lacks column"):
        decision_curve_figure(curve.drop(columns="net_benefit"))


def test_write_comparison_figures_writes_pngs_and_logs_them(make_tracker, comparison, tmp_path):
    tracker = make_tracker(tmp_path, "figs")
    with tracker.run("figures") as run_id:  # the writer returns its paths; the caller logs them
        paths = write_comparison_figures(comparison, tmp_path / "out")
        for path in paths:
            tracker.log_file(run_id, path, "figures")
    names = [p.name for p in paths]
    assert names == list(f"{stem}.png" for stem in comparison_figures(comparison))
    assert names[:2] == ["km_d0_30.png", "km_d0_30_90.png"] and "decision_curve.png" in names
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in paths)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)  # no temporary files left
    logged = {a.path for a in tracker.client.list_artifacts(run_id, "figures")}
    assert logged == {f"figures/{n}" for n in names}


def test_km_panels_pair_each_rule_with_its_model_groups(comparison):
    figs = comparison_figures(comparison)
    titles = [ax.get_title() for ax in figs["km_d0_30_90"].axes[::2]]
    assert titles == ["D0-30 / D31-90 / >D90 rule", "model, groups sized like the D0-30 / D31-90 / >D90 rule"]
    with pytest.raises(ValueError, match="panels is empty"):
        km_figure({})


def test_each_risk_level_has_one_colour_in_every_figure(comparison):
    """Low is blue and high vermillion whether a grouping has two, three or four groups (Okabe-Ito)."""
    figs = comparison_figures(comparison)
    for stem, levels in (("km_d0_30", ("low", "high")), ("km_d0_30_90", ("low", "intermediate", "high"))):
        for ax in figs[stem].axes[::2]:
            colours = [line.get_color() for line in ax.get_lines()]
            assert colours == [RISK_COLOURS[level] for level in levels], stem
    curve_colours = {line.get_color() for line in figs["decision_curve"].axes[0].get_lines()}
    assert not curve_colours & set(RISK_COLOURS.values())  # strategies never borrow a risk level's colour
    assert curve_colours <= set(SERIES_COLOURS)


def test_group_histogram_bins_stop_at_the_cut_point():
    rng = np.random.default_rng(1)
    risk = rng.normal(size=400)
    groups = pd.Categorical.from_codes((risk > 0.3).astype(int), ["low", "high"], ordered=True)
    fig = group_histogram_figure(risk, groups, xlabel="risk score", cutpoints=[0.3])
    ax = fig.axes[0]
    bars = [(p.get_x(), p.get_x() + p.get_width(), p.get_facecolor()) for p in ax.patches if p.get_height() > 0]
    assert all(right <= 0.3 + 1e-9 or left >= 0.3 - 1e-9 for left, right, _ in bars)  # no bar straddles the cut
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"low (n={(risk <= 0.3).sum()})",
                                                                     f"high (n={(risk > 0.3).sum()})"]


def test_grouping_titles_read_as_words():
    assert grouping_title("d0_30") == "D0-30 rule" and grouping_title("pcpi") == "PC-PI"
    assert grouping_title("model[d0_30]") == "model, groups sized like the D0-30 rule"
    assert grouping_title("model[3 groups]") == "model, 3 groups" and grouping_title("model score") == "model score"
