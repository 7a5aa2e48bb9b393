"""Honest performance estimates: event-stratified cross-validation, survival metrics with
scikit-survival's signature, calibration at a horizon, bootstrap intervals.

Names are handed on from the modules on first use (:func:`cartrisk.lazy_exports`).
"""

from __future__ import annotations

from cartrisk import lazy_exports

_EXPORTS = {
    "bootstrap_ci": "metrics",
    "BootstrapCI": "metrics",
    "brier_at": "metrics",
    "calibration_at_horizon": "calibration",
    "centre_frailty": "frailty",
    "check_horizons": "calibration",
    "check_survival_probabilities": "calibration",
    "cloglog": "calibration",
    "closed_test": "updating",
    "cluster_splits": "clusters",
    "ClusterValidation": "clusters",
    "compare": "crossval",
    "comparison_table": "crossval",
    "cox_regression": "coxreg",
    "CoxFit": "coxreg",
    "cross_validate_survival": "crossval",
    "CVResult": "crossval",
    "d_calibration": "calibration",
    "DCalibration": "calibration",
    "derived_seed": "crossval",
    "EventStratifiedKFold": "crossval",
    "external_validation": "external",
    "ExternalValidation": "external",
    "FixedSplits": "crossval",
    "FrailtyFit": "frailty",
    "harrell_c": "metrics",
    "HEADLINE_METRICS": "crossval",
    "horizon_calibration_figure": "figures",
    "horizon_problems": "calibration",
    "HorizonCalibration": "calibration",
    "IBS_GRID_POINTS": "metrics",
    "integrated_brier": "metrics",
    "internal_external_validation": "clusters",
    "lookup_survival": "calibration",
    "MetaAnalysis": "meta",
    "nested_folds": "crossval",
    "ph_test": "coxreg",
    "random_effects": "meta",
    "riley_survival": "samplesize",
    "sample_size_check": "samplesize",
    "SampleSize": "samplesize",
    "seed_estimator": "crossval",
    "subgroup_labels": "subgroups",
    "subgroup_performance": "subgroups",
    "survival_at_own_time": "calibration",
    "time_dependent_auc": "metrics",
    "uno_c": "metrics",
    "UpdateTests": "updating",
    "validation_metrics": "external",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
