"""Honest performance estimates: event-stratified cross-validation, survival metrics with
scikit-survival's signature, calibration at a horizon, bootstrap intervals.

Names are handed on from the modules on first use (:func:`cartrisk.lazy_exports`).
"""

from __future__ import annotations

from cartrisk import lazy_exports

_EXPORTS = {
    "BootstrapCI": "metrics",
    "CVResult": "crossval",
    "ClusterValidation": "clusters",
    "DCalibration": "calibration",
    "EventStratifiedKFold": "crossval",
    "ExternalValidation": "external",
    "FixedSplits": "crossval",
    "HEADLINE_METRICS": "crossval",
    "HorizonCalibration": "calibration",
    "IBS_GRID_POINTS": "metrics",
    "MetaAnalysis": "meta",
    "SampleSize": "samplesize",
    "UpdateTests": "updating",
    "bootstrap_ci": "metrics",
    "brier_at": "metrics",
    "calibration_at_horizon": "calibration",
    "check_horizons": "calibration",
    "check_survival_probabilities": "calibration",
    "closed_test": "updating",
    "cluster_splits": "clusters",
    "compare": "crossval",
    "comparison_table": "crossval",
    "cross_validate_survival": "crossval",
    "calibration_curve_figure": "figures",
    "horizon_calibration_figure": "figures",
    "d_calibration": "calibration",
    "external_validation": "external",
    "harrell_c": "metrics",
    "horizon_problems": "calibration",
    "integrated_brier": "metrics",
    "internal_external_validation": "clusters",
    "lookup_survival": "calibration",
    "random_effects": "meta",
    "riley_survival": "samplesize",
    "sample_size_check": "samplesize",
    "seed_estimator": "crossval",
    "subgroup_labels": "subgroups",
    "subgroup_performance": "subgroups",
    "survival_at_own_time": "calibration",
    "time_dependent_auc": "metrics",
    "uno_c": "metrics",
    "validation_metrics": "external",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
