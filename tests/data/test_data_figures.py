"""cartrisk.data.figures and names for people: the registry against the published figures."""

from __future__ import annotations

from cartrisk.data.dictionary import column_title
from cartrisk.data.figures import OUTCOME_TARGETS, target_label, targets_figure
from cartrisk.data.simreport import simulation_report
from cartrisk.data.simulate import simulate


def test_targets_figure_draws_each_outcome_target_once():
    report = simulation_report(simulate(400, 0)[0])
    fig = targets_figure(report)
    rows = report[(report["use"] == "calibration") & report["quantity"].isin(OUTCOME_TARGETS)]
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert len(labels) == len(rows) and all("_" not in label for label in labels)
    assert f"{int(rows['within'].sum())} of {len(rows)} published figures" in fig.axes[0].get_title(loc="left")
    assert target_label("median_os2_months", "D0-30") == "median OS-2, D0-30"


def test_column_titles_read_as_words():
    assert column_title("ldh_failure") == "LDH at failure"
    assert column_title("crp_infusion") == "C-reactive protein at infusion"
    assert column_title("stage_failure") == "Ann Arbor stage at failure"
    assert column_title("age_years") == "age at infusion"
    assert column_title("days_to_failure") == "days from infusion to failure"
    assert column_title("not_a_column") == "not a column"
