"""Risk groups from a model's predictions and their comparison with the D0-30 rule and the PC-PI: cut-points
learned on training predictions, group calibration and recalibration, C differences, hazard ratios,
reclassification, decision curves, and their figures.

Names are handed on from the modules on first use (:func:`cartrisk.lazy_exports`).
"""

from __future__ import annotations

from cartrisk import lazy_exports

_EXPORTS = {
    "CDifference": "_stats",
    "ComparisonSettings": "rulecomparison",
    "GroupCalibration": "recalibration",
    "GroupComparison": "compare",
    "GroupSpec": "rulecomparison",
    "NRIResult": "reclassification",
    "Recalibrator": "recalibration",
    "RiskGrouper": "grouper",
    "RuleComparison": "rulecomparison",
    "c_difference": "_stats",
    "calibration_before_after": "recalibration",
    "calibration_figure": "figures",
    "compare_groupings": "compare",
    "compare_with_rules": "rulecomparison",
    "comparison_figures": "figures",
    "decision_curve": "reclassification",
    "decision_curve_figure": "figures",
    "default_labels": "grouper",
    "group_calibration": "recalibration",
    "group_histogram_figure": "figures",
    "group_survival_curves": "recalibration",
    "grouping_title": "rulecomparison",
    "km_figure": "figures",
    "model_grouping_name": "rulecomparison",
    "net_benefit": "reclassification",
    "net_reclassification": "reclassification",
    "observed_group_risk": "reclassification",
    "parse_groups": "rulecomparison",
    "plot_km": "figures",
    "write_comparison_figures": "figures",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
